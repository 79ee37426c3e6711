"""The dataset contract shared by every training data source.

Randomness is drawn first and applied second: the sampler yields ``(index, seed)`` keys and a
dataset derives *all* of its randomness for that sample (which unpaired partner, crop position,
flip) from ``seed``. A sample is therefore a pure function of its key, whichever worker loads it,
and an interrupted epoch can be resumed exactly by skipping the keys already consumed, without
loading them.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..registry import Registry

DATASETS: Registry[type[TranslationDataset]] = Registry("dataset")

Key = tuple[int, int]


def split_key(key: int | Key) -> Key:
    """A sample's ``(index, seed)``: the sampler's key, or a bare index, which is its own seed."""
    index, seed = (key, key) if isinstance(key, (int, np.integer)) else key
    return int(index), int(seed)


class TranslationDataset(Dataset):
    """Yields dicts with float tensors ``A`` and ``B`` (C×H×W in [-1, 1]) and their source paths.

    Paired datasets return aligned ``A``/``B``; unpaired ones return independent samples.
    """

    paired: bool = False

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def load(self, index: int, rng: np.random.Generator) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, key: int | Key) -> dict:
        index, seed = split_key(key)
        return self.load(index, np.random.default_rng(seed))


class EpochSampler(Sampler[Key]):
    """Deterministic shuffled order for one epoch, sharded over ranks, resumable mid-epoch.

    The order and the per-sample seeds depend only on ``(seed, epoch)``; rank ``r`` of ``world``
    takes every ``world``-th key, and the first ``skip`` keys of this rank's share are dropped
    (those already trained on before an interruption).
    """

    def __init__(
        self, size: int, seed: int, epoch: int, rank: int = 0, world: int = 1, shuffle: bool = True, skip: int = 0
    ) -> None:
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        order = torch.randperm(size, generator=g) if shuffle else torch.arange(size)
        # pad so that every rank gets the same number of samples (DDP steps stay in lockstep)
        per_rank = -(-size // world)
        order = torch.cat([order, order[: per_rank * world - size]])
        seeds = torch.randint(0, 2**62, (len(order),), generator=g)
        self.keys: list[Key] = list(zip(order[rank::world].tolist(), seeds[rank::world].tolist(), strict=False))[skip:]

    def __iter__(self) -> Iterator[Key]:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)
