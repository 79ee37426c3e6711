"""Training data: folder datasets, the synthetic street-scene benchmark, GTA5 and Cityscapes."""

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
