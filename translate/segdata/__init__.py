"""Segmentation data: the Cityscapes class table, GTA5, Cityscapes and (image, label) datasets.

Samples are ``(image, label)`` numpy arrays — RGB uint8 H×W×3 and a trainId map uint8 H×W
(255 = ignore) — for segmenters and the domain-adaptation study; translation datasets (tensors
in [-1, 1], keyed sampling) live in ``translate.data``.
"""

from .cityscapes import CityscapesDataset, cityscapes_pairs
from .classes import (
    CLASS_NAMES,
    CLASSES,
    ID_TO_TRAINID,
    IGNORE,
    NUM_CLASSES,
    PALETTE,
    SYNTHETIC_TRAIN_IDS,
    ClassTally,
    TrainClass,
    class_report,
    colorize,
    ids_to_train_ids,
    overlay,
)
from .datasets import (
    LABEL_FORMATS,
    MISMATCH_POLICIES,
    ArraySet,
    SegmentationDataset,
    SegmentationFolder,
    SegmentationSet,
    SyntheticSceneDataset,
    check_pair_sizes,
    folder_pairs,
    pair_with_labels,
    random_crop,
    read_label,
    resized_size,
)
from .gta5 import GTA5Dataset

__all__ = [
    "CLASSES",
    "CLASS_NAMES",
    "ArraySet",
    "ID_TO_TRAINID",
    "IGNORE",
    "LABEL_FORMATS",
    "MISMATCH_POLICIES",
    "NUM_CLASSES",
    "PALETTE",
    "SYNTHETIC_TRAIN_IDS",
    "CityscapesDataset",
    "ClassTally",
    "GTA5Dataset",
    "SegmentationDataset",
    "SegmentationFolder",
    "SegmentationSet",
    "SyntheticSceneDataset",
    "TrainClass",
    "check_pair_sizes",
    "cityscapes_pairs",
    "class_report",
    "colorize",
    "folder_pairs",
    "ids_to_train_ids",
    "overlay",
    "pair_with_labels",
    "read_label",
    "random_crop",
    "resized_size",
]
