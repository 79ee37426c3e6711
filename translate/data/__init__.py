"""Translation data: paired/unpaired folder datasets, pair transforms, keyed epoch sampling, image I/O.

Samples are tensors in [-1, 1] drawn by ``(index, seed)`` keys. Segmentation data (class table,
GTA5, Cityscapes) is in ``translate.segdata``; the synthetic street scenes in ``translate.synthetic``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from torch.utils.data import Dataset

from ..errors import ConfigError
from . import captions, folders, label_folders, sampling_sets  # noqa: F401  (fills DATASETS)
from .base import DATASETS, EpochSampler, TranslationDataset

if TYPE_CHECKING:
    from ..config import DataConfig

log = logging.getLogger(__name__)

__all__ = ["DATASETS", "EpochSampler", "TranslationDataset", "build_dataset"]


def build_dataset(cfg: DataConfig) -> Dataset:
    """The dataset named in ``cfg.dataset``. Image datasets (whose constructor takes a
    ``transform``) get the pair transform described by ``cfg``; others (noise, labels) do not.
    Datasets that take ``cache_mb`` get ``cfg.cache_mb`` unless their own options set it."""
    from ..registry import accepted_kwargs
    from .transforms import PairTransform

    name = cfg.dataset.get("name")
    accepted = accepted_kwargs(DATASETS.get(name)) if name is not None else None
    options = dict(cfg.dataset)
    if cfg.cache_mb:
        if not cfg.cache_mb > 0:
            raise ConfigError(f"data.cache_mb must be >= 0 (megabytes of decoded images), got {cfg.cache_mb}")
        if accepted is not None and "cache_mb" in accepted:
            options.setdefault("cache_mb", cfg.cache_mb)
        else:
            log.warning("data.cache_mb is ignored: dataset '%s' keeps no decoded images", name)
    if accepted is not None and "transform" not in accepted:
        return DATASETS.build(options)
    transform = PairTransform(cfg.preprocess, cfg.load_size, cfg.crop_size, cfg.flip)
    return DATASETS.build(options, transform=transform)
