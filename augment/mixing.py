"""Mixing generated samples into a real training set.

``SyntheticMix(real, sampler, ratio=0.5)`` is a Dataset of the real items followed by generated
ones, so that generated items make up ``ratio`` of the mix. Generated items copy the structure of
the real ones — an ``(image, target)`` tuple or a dict with image and label entries — so the
training loop that used ``real`` needs no change.

Which classes are generated: by default in the real set's class proportions; with
``balance=True`` the rarest classes are topped up first, so that the mix is as even across classes
as the budget allows. Generated item ``j`` is a pure function of ``(seed, j)``: samples are drawn
in fixed chunks, each from its own seed, whatever order the loader asks for them in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import Dataset

CHUNK = 256  # generated together, and cached, per chunk of this many items


class ClassSampler(Protocol):
    """What SyntheticMix needs from a sampler (``translate.sampling.Sampler`` is one)."""

    classes: int

    def sample(self, n: int, label: Any = None, code: Any = None, seed: int = 0) -> torch.Tensor: ...


def synthetic_count(real_size: int, ratio: float) -> int:
    """Generated items needed for them to make up ``ratio`` of the mix."""
    if not 0 <= ratio < 1:
        raise ValueError(f"ratio (the generated share of the mix) must be in [0, 1), got {ratio}")
    return int(round(real_size * ratio / (1 - ratio)))


def plan_labels(real_labels: Sequence[int], classes: int, count: int, balance: bool, seed: int) -> np.ndarray:
    """The class of each generated item. Proportional: drawn from the real class frequencies.
    Balanced: water-filling, each generated item going to the class that is rarest so far."""
    real_counts = np.bincount(np.asarray(real_labels, np.int64), minlength=classes)[:classes]
    rng = np.random.default_rng(seed)
    if not balance:
        shares = real_counts / real_counts.sum() if real_counts.sum() else np.full(classes, 1 / classes)
        return rng.choice(classes, size=count, p=shares)
    totals, plan = real_counts.astype(np.int64).copy(), np.empty(count, np.int64)
    for j in range(count):
        k = int(np.argmin(totals))  # ties go to the lowest class index, deterministically
        plan[j] = k
        totals[k] += 1
    return rng.permutation(plan)


class SyntheticMix(Dataset):
    """``real`` followed by ``synthetic_count(len(real), ratio)`` generated items.

    ``labels``: the real items' classes (read from ``real`` when not given). ``image_key`` and
    ``label_key`` name the entries of dict items; tuple items are ``(image, target)``.
    """

    def __init__(self, real: Dataset, sampler: ClassSampler, ratio: float, balance: bool = False, seed: int = 0,
                 labels: Sequence[int] | None = None, image_key: str = "image", label_key: str = "label") -> None:
        self.real, self.sampler, self.ratio, self.balance, self.seed = real, sampler, ratio, balance, seed
        self.image_key, self.label_key = image_key, label_key
        self.template = real[0]
        if not isinstance(self.template, (tuple, list, dict)):
            raise TypeError(f"SyntheticMix needs items that are (image, target) tuples or dicts, got {type(self.template).__name__}")
        if labels is None:
            labels = [int(self._label_of(real[i])) for i in range(len(real))]
        self.real_labels = np.asarray(labels, np.int64)
        classes = int(getattr(sampler, "classes", 0))
        if classes < 2:
            raise ValueError("SyntheticMix needs a class-conditional sampler (classes >= 2)")
        if self.real_labels.size and self.real_labels.max() >= classes:
            raise ValueError(f"real labels go up to {self.real_labels.max()}, the sampler knows {classes} classes")
        self.synthetic_labels = plan_labels(self.real_labels, classes, synthetic_count(len(real), ratio), balance, seed)
        self._chunks: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.real) + len(self.synthetic_labels)

    def is_synthetic(self, index: int) -> bool:
        return index >= len(self.real)

    def _label_of(self, item) -> Any:
        return item[self.label_key] if isinstance(item, dict) else item[1]

    def _image_of(self, item) -> Any:
        return item[self.image_key] if isinstance(item, dict) else item[0]

    def _chunk(self, c: int) -> torch.Tensor:
        if c not in self._chunks:
            labels = torch.from_numpy(self.synthetic_labels[c * CHUNK:(c + 1) * CHUNK])
            self._chunks[c] = self.sampler.sample(len(labels), labels, seed=self.seed * 1_000_003 + c)
        return self._chunks[c]

    def __getitem__(self, key):
        index = int(key if isinstance(key, (int, np.integer)) else key[0])
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for a mix of {len(self)} items")
        if not self.is_synthetic(index):
            return self.real[key]
        j = index - len(self.real)
        image = self._chunk(j // CHUNK)[j % CHUNK]
        like = self._image_of(self.template)
        if isinstance(like, torch.Tensor):
            image = image.to(like.dtype)
        label = int(self.synthetic_labels[j])
        like_label = self._label_of(self.template)
        if isinstance(like_label, torch.Tensor):
            label = torch.tensor(label, dtype=like_label.dtype)
        if isinstance(self.template, dict):
            # other entries (e.g. a path) are the first real item's: same keys and types, so batches collate
            return {**self.template, self.image_key: image, self.label_key: label}
        parts = [image, label, *self.template[2:]]
        return tuple(parts) if isinstance(self.template, tuple) else parts
