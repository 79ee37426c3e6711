"""The Cityscapes dataset (Cordts et al.): the usual real *target* domain.

Layout on disk, as distributed::

    ROOT/leftImg8bit/{split}/{city}/{city}_{seq}_{frame}_leftImg8bit.png
    ROOT/gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_labelIds.png

``split`` is train, val or test (the test labels are withheld: all ignore). Label ids map to the
19 trainIds; everything else is 255.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from .datasets import SegmentationDataset, Transform, pair_with_labels

IMAGE_SUFFIX = "_leftImg8bit.png"


def cityscapes_pairs(root: str | Path, split: str, label_type: str = "gtFine") -> list[tuple[Path, Path]]:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"Cityscapes root not found: {root}")
    images_root = root / "leftImg8bit"
    if not images_root.is_dir():
        raise DataError(
            f"Cityscapes root {root} has no leftImg8bit/ folder (expected leftImg8bit/{{split}}/{{city}}/*{IMAGE_SUFFIX})"
        )
    split_dir = images_root / split
    if not split_dir.is_dir():
        known = sorted(p.name for p in images_root.iterdir() if p.is_dir())
        raise DataError(f"Cityscapes split '{split}' not found in {images_root}; present: {', '.join(known) or 'none'}")
    labels_dir = root / label_type / split
    if not labels_dir.is_dir():
        raise DataError(f"Cityscapes labels folder not found: {labels_dir}")
    images = sorted(split_dir.glob(f"*/*{IMAGE_SUFFIX}"))
    if not images:
        raise DataError(f"no *{IMAGE_SUFFIX} images under {split_dir}/{{city}}/")

    def label_of(img: Path) -> Path:
        stem = img.name[: -len(IMAGE_SUFFIX)]
        return labels_dir / img.parent.name / f"{stem}_{label_type}_labelIds.png"

    return pair_with_labels(images, label_of)


class CityscapesDataset(SegmentationDataset):
    """``(image RGB uint8 H×W×3, trainId label uint8 H×W)`` pairs of one Cityscapes split."""

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transform: Transform | None = None,
        label_type: str = "gtFine",
        mismatched: str = "error",
    ) -> None:
        self.root = Path(root)
        self.split = split
        pairs = cityscapes_pairs(self.root, split, label_type)
        super().__init__(pairs, label_format="id", transform=transform, mismatched=mismatched)
