"""The GTA5 dataset (Richter et al., "Playing for Data"): the usual synthetic *source* domain.

Layout on disk, as distributed::

    ROOT/images/00001.png ...   1914×1052 RGB frames
    ROOT/labels/00001.png ...   palette PNGs whose indices are Cityscapes label ids

Label ids map to the 19 Cityscapes trainIds (everything else is 255 = ignore). A few frames of
the public release have labels of a different size than their image; loading such a pair is an
error naming both files, never a silent resize.
"""

from __future__ import annotations

from pathlib import Path

from .segmentation import SegmentationDataset, Transform, folder_pairs


class GTA5Dataset(SegmentationDataset):
    """``(image RGB uint8 H×W×3, trainId label uint8 H×W)`` pairs of a GTA5 tree."""

    def __init__(self, root: str | Path, transform: Transform | None = None) -> None:
        self.root = Path(root)
        super().__init__(folder_pairs(self.root, "GTA5"), label_format="id", transform=transform)
