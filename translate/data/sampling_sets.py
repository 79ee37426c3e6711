"""Small offline datasets for training samplers: the 2-D ring of 8 Gaussians and scikit-learn's
handwritten digits (1,797 real 8×8 scans) upsampled to 32² or 64².

Both are built once in memory; an item is a pure function of its key like every dataset here
(the ring's points are drawn from a fixed seed at construction, so the key only picks one).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..errors import ConfigError
from .base import DATASETS

SPLITS = ("train", "test", "all")


def ring_centres(modes: int = 8, radius: float = 2.0) -> torch.Tensor:
    angles = torch.arange(modes, dtype=torch.float64) * (2 * math.pi / modes)
    return torch.stack([radius * angles.cos(), radius * angles.sin()], 1).float()


def _index(key) -> int:
    return int(key if isinstance(key, (int, np.integer)) else key[0])


@DATASETS.register("ring8")
class GaussianRing(Dataset):
    """``size`` points from ``modes`` isotropic Gaussians (std ``std``) evenly spaced on a circle
    of ``radius``: the standard mode-collapse benchmark. Items: {"point": float 2-vector}."""

    def __init__(
        self, size: int = 25600, modes: int = 8, radius: float = 2.0, std: float = 0.02, seed: int = 0
    ) -> None:
        self.modes, self.radius, self.std = modes, radius, std
        g = torch.Generator().manual_seed(seed)
        which = torch.randint(0, modes, (size,), generator=g)
        self.points = ring_centres(modes, radius)[which] + std * torch.randn(size, 2, generator=g)

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, key) -> dict[str, torch.Tensor]:
        return {"point": self.points[_index(key)]}


def digits_split(split: str, fraction: float = 1.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images (N×8×8 in 0..16) and labels of a fixed split of scikit-learn's digits: 80 % train,
    20 % test, stratified, always the same. ``fraction`` < 1 keeps a stratified share of the
    split, chosen by ``seed`` (the small real subsets of the downstream check)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if split not in SPLITS:
        raise ConfigError(f"digits split must be one of {', '.join(SPLITS)}, got '{split}'")
    if not 0 < fraction <= 1:
        raise ConfigError(f"digits fraction must be in (0, 1], got {fraction}")
    data = load_digits()
    images, labels = data.images, data.target
    if split != "all":
        tr_x, te_x, tr_y, te_y = train_test_split(images, labels, test_size=0.2, stratify=labels, random_state=0)
        images, labels = (tr_x, tr_y) if split == "train" else (te_x, te_y)
    if fraction < 1:
        images, _, labels, _ = train_test_split(images, labels, train_size=fraction, stratify=labels, random_state=seed)
    return images, labels


def digits_tensor(images: np.ndarray, size: int) -> torch.Tensor:
    """8×8 scans (0..16) -> N×1×size×size in [-1, 1] (bilinear upsampling)."""
    x = torch.from_numpy(np.asarray(images, np.float32) / 8.0 - 1.0)[:, None]
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(-1, 1)


@DATASETS.register("digits")
class Digits(Dataset):
    """Items: {"image": 1×size×size float in [-1, 1], "label": int64 digit}."""

    def __init__(self, split: str = "train", size: int = 32, fraction: float = 1.0, seed: int = 0) -> None:
        images, labels = digits_split(split, fraction, seed)
        self.images = digits_tensor(images, size)
        self.labels = torch.from_numpy(np.asarray(labels, np.int64))
        self.classes = 10

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key) -> dict[str, torch.Tensor]:
        i = _index(key)
        return {"image": self.images[i], "label": self.labels[i]}
