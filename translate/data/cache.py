"""Decoded images kept in memory, up to a budget, so a small set is decoded once per loading process.

At the embedded benchmark's size (64×128) a study segmenter decodes 4,800 PNG images and labels
in a stage of 28 s, every epoch the same files again; keeping them shortened the stage by about
1 s on a 2-core CPU (docs/benchmarks.md). A set that fits in the budget is read from disk once;
a larger one fills the budget with the first samples drawn and reads the rest each time (no
eviction: with uniformly drawn samples, evicting one to keep another gains nothing). Each DataLoader worker holds its own copy, and workers that are not
persistent start empty every epoch, so the cache pays off in the loading process that lives longest
(``num_workers: 0``, the CPU default).

Callers get copies, so an in-place transform can never change what the next epoch reads.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TypeVar

import numpy as np

from ..errors import ConfigError

Decoded = TypeVar("Decoded", np.ndarray, tuple[np.ndarray, ...])

MEGABYTE = 2**20


class DecodedCache:
    """``get(key, load)``: ``load()``'s arrays (an array or a tuple of arrays), from memory when
    this key was loaded before and fitted in ``max_mb`` megabytes (0: nothing is kept)."""

    def __init__(self, max_mb: float = 0.0) -> None:
        if not max_mb >= 0:
            raise ConfigError(f"cache_mb must be >= 0 (megabytes of decoded images kept in memory), got {max_mb}")
        self.budget = int(max_mb * MEGABYTE)
        self.used = 0
        self._kept: dict[Hashable, Decoded] = {}

    def __len__(self) -> int:
        return len(self._kept)

    def get(self, key: Hashable, load: Callable[[], Decoded]) -> Decoded:
        kept = self._kept.get(key)
        if kept is not None:
            return _copy(kept)
        value = load()
        size = _nbytes(value)
        if self.used + size > self.budget:
            return value
        self._kept[key] = value
        self.used += size
        return _copy(value)


def _nbytes(value: Decoded) -> int:
    return value.nbytes if isinstance(value, np.ndarray) else sum(a.nbytes for a in value)


def _copy(value: Decoded) -> Decoded:
    return value.copy() if isinstance(value, np.ndarray) else tuple(a.copy() for a in value)
