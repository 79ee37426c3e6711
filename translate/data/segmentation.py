"""Image/label pairs for semantic segmentation: one reader for synthetic, translated and real data.

Every segmentation source (the synthetic benchmark, GTA5, Cityscapes, a folder of translated
images) is a list of (image path, label path) pairs plus the label format — ``id`` (Cityscapes
label ids, as GTA5 and Cityscapes store them) or ``trainId`` (the 19 training classes, as the
synthetic benchmark stores them). Samples are ``(image, label)``: RGB uint8 H×W×3 and a trainId
map uint8 H×W (255 = ignore), so the study's training code never knows where data came from.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from ..errors import DataError
from .images import IMAGE_EXTENSIONS, read_image
from .labels import ID_TO_TRAINID, IGNORE, NUM_CLASSES

LABEL_FORMATS = ("id", "trainId")
Transform = Callable[..., dict]  # albumentations-style: transform(image=..., mask=...) -> {"image", "mask"}


def read_label(path: str | Path, label_format: str = "id") -> np.ndarray:
    """Read a label PNG as a trainId map (H×W uint8).

    Label maps are single-channel: 8-bit grey (Cityscapes ``*_labelIds.png``) or palette images
    whose indices are the ids (GTA5). A colour (RGB) label — a visualisation, not an id map —
    is refused with an error naming the file. PIL is used because OpenCV expands palette PNGs
    to colour, losing the ids.
    """
    from PIL import Image

    path = Path(path)
    if label_format not in LABEL_FORMATS:
        raise DataError(f"unknown label format '{label_format}'; known: {', '.join(LABEL_FORMATS)}")
    if not path.is_file():
        raise DataError(f"label file not found: {path}")
    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode in ("RGB", "RGBA", "LA", "CMYK", "YCbCr", "HSV"):
                raise DataError(
                    f"{path}: label is a {mode} colour image; expected a single-channel id map "
                    f"(8-bit grey or palette PNG holding {'Cityscapes label ids' if label_format == 'id' else 'trainIds'})"
                )
            arr = np.array(im)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"cannot read label {path}: {exc}") from None
    if arr.ndim != 2:
        raise DataError(f"{path}: label has shape {arr.shape}; expected a single-channel H×W id map")
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if arr.dtype != np.uint8:
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise DataError(f"{path}: label values {arr.min()}..{arr.max()} do not fit label ids 0..255")
        arr = arr.astype(np.uint8)
    if label_format == "id":
        return ID_TO_TRAINID[arr]
    bad = (arr >= NUM_CLASSES) & (arr != IGNORE)
    if bad.any():
        raise DataError(f"{path}: trainId label holds values {sorted(set(np.unique(arr[bad]).tolist()))[:8]} (valid: 0..{NUM_CLASSES - 1}, 255)")
    return arr


class SegmentationDataset(Dataset):
    """(image, trainId label) pairs from explicit file pairs; checks each pair as it loads it."""

    def __init__(self, pairs: Sequence[tuple[Path, Path]], label_format: str, transform: Transform | None = None) -> None:
        if label_format not in LABEL_FORMATS:
            raise DataError(f"unknown label format '{label_format}'; known: {', '.join(LABEL_FORMATS)}")
        self.pairs = [(Path(a), Path(b)) for a, b in pairs]
        self.label_format = label_format
        self.transform = transform

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image_path, label_path = self.pairs[index]
        image = read_image(image_path)
        label = read_label(label_path, self.label_format)
        if label.shape != image.shape[:2]:
            raise DataError(
                f"label {label_path} is {label.shape[1]}×{label.shape[0]} but its image {image_path} is "
                f"{image.shape[1]}×{image.shape[0]}"
            )
        if self.transform is not None:
            out = self.transform(image=image, mask=label)
            image, label = out["image"], out["mask"]
        return image, label

    def arrays(self, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The first ``limit`` samples stacked (N×H×W×3, N×H×W); all must have one size."""
        n = len(self) if limit is None else min(limit, len(self))
        samples = [self[i] for i in range(n)]
        shapes = {s[0].shape for s in samples}
        if len(shapes) > 1:
            raise DataError(f"samples have different sizes {sorted(shapes)[:3]}; resize them with a transform first")
        return np.stack([s[0] for s in samples]), np.stack([s[1] for s in samples])


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def folder_pairs(root: str | Path, what: str = "dataset") -> list[tuple[Path, Path]]:
    """Pairs ``root/images/NAME.*`` with ``root/labels/NAME.png`` (the GTA5 layout).

    Every image needs its label; labels without an image are ignored.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{what} root not found: {root}")
    images_dir, labels_dir = root / "images", root / "labels"
    for d in (images_dir, labels_dir):
        if not d.is_dir():
            raise DataError(f"{what} root {root} has no {d.name}/ folder (expected {root}/images/*.png and {root}/labels/*.png)")
    images = _images_in(images_dir)
    if not images:
        raise DataError(f"no images in {images_dir}")
    pairs = []
    for img in images:
        label = labels_dir / (img.stem + ".png")
        if not label.is_file():
            raise DataError(f"missing label file for {img}: expected {label}")
        pairs.append((img, label))
    return pairs


class SegmentationFolder(SegmentationDataset):
    """``root/images`` + ``root/labels`` with a given label format (e.g. translated synthetic data)."""

    def __init__(self, root: str | Path, label_format: str = "trainId", transform: Transform | None = None) -> None:
        super().__init__(folder_pairs(root, "segmentation folder"), label_format, transform)
        self.root = Path(root)


class SyntheticSceneDataset(SegmentationDataset):
    """Scenes written by ``i2i data synth``: the GTA5 folder layout, labels already trainIds.

    ``root`` is the folder holding ``manifest.json``; a paired set holds one folder per domain,
    chosen with ``domain``.
    """

    def __init__(self, root: str | Path, domain: str | None = None, transform: Transform | None = None) -> None:
        root = Path(root)
        manifest_path = root / "manifest.json"
        if not manifest_path.is_file():
            raise DataError(f"{root} is not a synthetic scene set: no manifest.json (write one with `i2i data synth`)")
        try:
            manifest = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{manifest_path} is not valid JSON: {exc}") from None
        if manifest.get("paired") and "domains" in manifest:
            if domain not in manifest["domains"]:
                raise DataError(f"{root} holds paired domains {', '.join(manifest['domains'])}; pass domain= one of them")
            root = root / domain
        elif domain is not None and manifest.get("domain") != domain:
            raise DataError(f"{root} holds the '{manifest.get('domain')}' domain, not '{domain}'")
        self.manifest = manifest
        self.root = root
        super().__init__(folder_pairs(root, "synthetic scene set"), manifest.get("label_format", "trainId"), transform)
