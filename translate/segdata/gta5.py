"""The GTA5 dataset (Richter et al., "Playing for Data"): the usual synthetic *source* domain.

Layout on disk, as distributed::

    ROOT/images/00001.png ...   1914×1052 RGB frames
    ROOT/labels/00001.png ...   palette PNGs whose indices are Cityscapes label ids

Label ids map to the 19 Cityscapes trainIds (everything else is 255 = ignore). A few frames of
the public release have labels of a different size than their image. The dataset compares the
sizes of every pair from the file headers when it is built and applies ``mismatched``:
``"error"`` (default) refuses the tree naming those files, ``"skip"`` leaves them out and
``"resize_label"`` resizes their labels to the image (nearest neighbour, so ids stay ids); the
pairs concerned are logged and listed in ``skipped`` / ``resized``.
"""

from __future__ import annotations

from pathlib import Path

from .datasets import SegmentationDataset, Transform, folder_pairs


class GTA5Dataset(SegmentationDataset):
    """``(image RGB uint8 H×W×3, trainId label uint8 H×W)`` pairs of a GTA5 tree."""

    def __init__(self, root: str | Path, transform: Transform | None = None, mismatched: str = "error") -> None:
        self.root = Path(root)
        super().__init__(folder_pairs(self.root, "GTA5"), label_format="id", transform=transform, mismatched=mismatched)
