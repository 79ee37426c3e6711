"""How good a sampler is, measured: mode coverage on the ring of 8 Gaussians, conditional
correctness and code->class agreement judged by a classifier trained on real digits, and FID/KID.

FID and KID need an image feature extractor. Inception weights cannot be downloaded here, so by
default the features come from a small classifier this module trains on the same real data
(``digits-cnn`` features); a user with a local copy of torchmetrics' FID Inception weights can
pass its path instead. The two feature spaces give numbers on different scales: every result is
labelled with the extractor it used and must only be compared with results of the same label.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data.sampling_sets import digits_split, digits_tensor, ring_centres
from .errors import ConfigError

# --- ring of 8 Gaussians --------------------------------------------------------------------


@dataclass(frozen=True)
class RingCoverage:
    modes_covered: int  # modes with at least ``min_count`` high-quality samples
    modes: int
    high_quality: float  # share of samples within ``sigmas`` std of their nearest mode


def ring_coverage(
    points: torch.Tensor,
    modes: int = 8,
    radius: float = 2.0,
    std: float = 0.02,
    sigmas: float = 3.0,
    min_share: float = 0.01,
) -> RingCoverage:
    """The usual ring measures (as in VEEGAN and PacGAN): a sample is *high quality* when it lies
    within ``sigmas`` standard deviations of its nearest mode's centre; a mode is *covered* when
    at least ``min_share`` of the expected per-mode count (1/modes of the samples) — at least one
    sample — lands on it with high quality."""
    centres = ring_centres(modes, radius)
    dist = torch.cdist(points.float().cpu(), centres)
    nearest, which = dist.min(1)
    good = nearest <= sigmas * std
    counts = torch.bincount(which[good], minlength=modes)
    needed = max(1, int(min_share * len(points) / modes))
    return RingCoverage(int((counts >= needed).sum()), modes, float(good.float().mean()))


# --- a classifier of real digits ------------------------------------------------------------


class DigitClassifier(nn.Module):
    """A small CNN for 1×32×32 digits; ``features`` is its 128-d penultimate layer."""

    def __init__(self, classes: int = 10, channels: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 3, 1, 1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, 1, 1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, 1, 1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
            nn.Linear(256, 128),
            nn.ReLU(),
        )
        self.out = nn.Linear(128, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x))


def train_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    epochs: int = 30,
    seed: int = 0,
    batch_size: int = 64,
    lr: float = 2e-3,
    augment: bool = True,
    steps: int | None = None,
    classes: int = 10,
) -> DigitClassifier:
    """Train a ``DigitClassifier`` on N×C×H×W images in [-1, 1]. ``augment`` shifts images by up
    to 2 pixels, which small training sets need. ``steps`` (optimiser steps) replaces ``epochs``
    when given, so that training sets of different sizes get the same training budget."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = DigitClassifier(classes, channels=images.shape[1])
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    per_epoch = -(-len(images) // batch_size)
    total = steps if steps is not None else epochs * per_epoch
    for step in range(total):
        if step % per_epoch == 0:
            order = torch.randperm(len(images), generator=g)
        start = (step % per_epoch) * batch_size
        idx = order[start : start + batch_size]
        x = images[idx]
        if augment:
            dx, dy = torch.randint(-2, 3, (2,), generator=g).tolist()
            x = torch.roll(x, (dy, dx), (2, 3))
        loss = F.cross_entropy(net(x), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def real_digit_classifier(size: int = 32, epochs: int = 30, seed: int = 0) -> DigitClassifier:
    """The judge of conditional samples: trained on the fixed real training split only."""
    images, labels = digits_split("train")
    return train_classifier(digits_tensor(images, size), torch.from_numpy(labels), epochs, seed)


@torch.no_grad()
def accuracy(classifier: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int = 512) -> float:
    preds = torch.cat([classifier(images[i : i + batch]).argmax(1) for i in range(0, len(images), batch)])
    return float((preds == labels).float().mean())


def conditional_accuracy(classifier: nn.Module, samples: torch.Tensor, requested: torch.Tensor) -> float:
    """Share of samples generated for label k that the real-data classifier calls k."""
    return accuracy(classifier, samples, requested)


def best_code_accuracy(
    codes: torch.Tensor, predicted_classes: torch.Tensor, classes: int = 10
) -> tuple[float, list[int]]:
    """InfoGAN: how well a categorical code matches digit identity under the best one-to-one
    assignment of code values to classes (Hungarian matching of the confusion matrix)."""
    from scipy.optimize import linear_sum_assignment

    k = int(codes.max()) + 1
    confusion = np.zeros((k, classes), np.int64)
    np.add.at(confusion, (codes.numpy(), predicted_classes.numpy()), 1)
    rows, cols = linear_sum_assignment(-confusion)
    mapping = [-1] * k
    for r, c in zip(rows, cols, strict=False):
        mapping[r] = int(c)
    return float(confusion[rows, cols].sum() / len(codes)), mapping


# --- FID / KID ------------------------------------------------------------------------------


class _Features(nn.Module):
    """Adapts a feature extractor to torchmetrics: uint8 or [0, 1] images in, N×F features out."""

    def __init__(self, extractor: nn.Module, num_features: int) -> None:
        super().__init__()
        self.extractor = extractor.eval()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        return self.extractor.features(x * 2 - 1).double()


def feature_label(inception_weights: str | Path | None) -> str:
    return (
        "inception(local weights)" if inception_weights else "digits-cnn (trained here on real digits; not Inception)"
    )


def fid_kid(
    real: torch.Tensor,
    fake: torch.Tensor,
    extractor: nn.Module | None = None,
    inception_weights: str | Path | None = None,
    kid_subset: int = 100,
) -> dict[str, float | str]:
    """FID and KID between real and generated N×C×H×W images in [-1, 1]. With
    ``inception_weights`` (a local torchmetrics FID Inception file) the standard Inception
    features are used; otherwise ``extractor.features`` (e.g. of ``real_digit_classifier()``)
    provides them."""
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    to_unit = lambda x: (x.float().clamp(-1, 1) + 1) / 2  # noqa: E731
    if inception_weights:
        path = Path(inception_weights)
        if not path.is_file():
            raise ConfigError(f"Inception weights not found: {path}")
        rgb = lambda x: to_unit(x).expand(-1, 3, -1, -1) if x.shape[1] == 1 else to_unit(x)  # noqa: E731
        real, fake = rgb(real), rgb(fake)
        feature: int | nn.Module = 2048
        kwargs = {"feature_extractor_weights_path": str(path)}
    else:
        if extractor is None:
            raise ConfigError("fid_kid needs a feature extractor or a local Inception weights path")
        real, fake = to_unit(real), to_unit(fake)
        with torch.no_grad():  # any net with a ``features`` method will do; its width is measured
            width = extractor.features(real[:1].float() * 2 - 1).shape[1]
        feature = _Features(extractor, width)
        kwargs = {}
    fid = FrechetInceptionDistance(feature=feature, normalize=True, **kwargs)
    kid = KernelInceptionDistance(
        feature=feature, normalize=True, subset_size=min(kid_subset, len(real), len(fake)), **kwargs
    )
    with torch.no_grad():
        for metric in (fid, kid):
            metric.update(real, real=True)
            metric.update(fake, real=False)
        kid_mean, kid_std = kid.compute()
        return {
            "fid": float(fid.compute()),
            "kid": float(kid_mean),
            "kid_std": float(kid_std),
            "features": feature_label(inception_weights),
        }
