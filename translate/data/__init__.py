"""Translation data: paired/unpaired folder datasets, pair transforms, keyed epoch sampling, image I/O.

Samples are tensors in [-1, 1] drawn by ``(index, seed)`` keys. Segmentation data (class table,
GTA5, Cityscapes) is in ``translate.segdata``; the synthetic street scenes in ``translate.synthetic``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from torch.utils.data import Dataset

from . import captions, folders, label_folders, sampling_sets  # noqa: F401  (fills DATASETS)
from .base import DATASETS, EpochSampler, TranslationDataset

if TYPE_CHECKING:
    from ..config import DataConfig

__all__ = ["DATASETS", "EpochSampler", "TranslationDataset", "build_dataset"]


def build_dataset(cfg: DataConfig) -> Dataset:
    """The dataset named in ``cfg.dataset``. Image datasets (whose constructor takes a
    ``transform``) get the pair transform described by ``cfg``; others (noise, labels) do not."""
    from ..registry import accepted_kwargs
    from .transforms import PairTransform

    name = cfg.dataset.get("name")
    accepted = accepted_kwargs(DATASETS.get(name)) if name is not None else None
    if accepted is not None and "transform" not in accepted:
        return DATASETS.build(cfg.dataset)
    transform = PairTransform(cfg.preprocess, cfg.load_size, cfg.crop_size, cfg.flip)
    return DATASETS.build(cfg.dataset, transform=transform)
