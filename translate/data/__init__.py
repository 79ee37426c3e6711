"""Translation data: paired/unpaired folder datasets, pair transforms, keyed epoch sampling, image I/O.

Samples are tensors in [-1, 1] drawn by ``(index, seed)`` keys. Segmentation data (class table,
GTA5, Cityscapes) is in ``translate.segdata``; the synthetic street scenes in ``translate.synthetic``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import folders  # noqa: F401  (fills DATASETS)
from .base import DATASETS, EpochSampler, TranslationDataset

if TYPE_CHECKING:
    from ..config import DataConfig

__all__ = ["DATASETS", "EpochSampler", "TranslationDataset", "build_dataset"]


def build_dataset(cfg: "DataConfig") -> TranslationDataset:
    from .transforms import PairTransform

    transform = PairTransform(cfg.preprocess, cfg.load_size, cfg.crop_size, cfg.flip)
    return DATASETS.build(cfg.dataset, transform=transform)
