"""DCGAN's own experiments (Radford et al. 2016, sections 5 and 6), as measures of a trained sampler:

* **the discriminator as a representation**: every convolutional layer's activations max-pooled
  to a small grid, flattened and concatenated, read by a linear classifier trained on a few labels
  per class (``discriminator_features``, ``few_labels``, ``linear_probe``), compared with the same
  discriminator architecture trained supervised on those labels alone
  (``train_supervised_discriminator``) and with the linear classifier on raw pixels;
* **arithmetic on latent vectors**: the latent of a concept is the mean of the latents of a few
  samples that show it (``concept_latent``), and "A − B + C" is computed on those means
  (``latent_arithmetic``); on digits the concepts are measurable — the class by a classifier of
  real digits, stroke thickness by the ink mass of the image (``ink_mass``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError
from .nets.samplers import DCGANDiscriminator


@torch.no_grad()
def discriminator_features(
    discriminator: DCGANDiscriminator, images: torch.Tensor, grid: int = 4, batch: int = 256
) -> torch.Tensor:
    """N×F features: the output of every activation of the discriminator's convolutional body,
    each max-pooled to ``grid``×``grid`` and flattened, concatenated in depth order. For a 32² DCGAN
    discriminator of width w: (w + 2w + 4w)·grid² values."""
    if grid < 1:
        raise ConfigError(f"feature grid must be >= 1, got {grid}")
    was_training = discriminator.training
    discriminator.eval()
    out = []
    for start in range(0, len(images), batch):
        h, pooled = images[start : start + batch], []
        for layer in discriminator.body:
            h = layer(h)
            if isinstance(layer, nn.LeakyReLU):
                pooled.append(F.adaptive_max_pool2d(h, grid).flatten(1))
        out.append(torch.cat(pooled, 1))
    discriminator.train(was_training)
    return torch.cat(out)


def few_labels(labels: np.ndarray | torch.Tensor, per_class: int, seed: int) -> np.ndarray:
    """Indices of ``per_class`` items of every class, drawn by ``seed`` (sorted)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        if len(members) < per_class:
            raise ConfigError(f"class {c} has {len(members)} items, fewer than the {per_class} labels asked for")
        chosen.append(rng.choice(members, per_class, replace=False))
    return np.sort(np.concatenate(chosen))


def linear_probe(
    train_x: torch.Tensor | np.ndarray,
    train_y: torch.Tensor | np.ndarray,
    test_x: torch.Tensor | np.ndarray,
    test_y: torch.Tensor | np.ndarray,
    seed: int = 0,
    c: float = 1.0,
) -> float:
    """Test accuracy of a logistic-regression classifier (scikit-learn, features standardised on
    the training items) trained on ``train_x``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    as_np = lambda a: a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)  # noqa: E731
    train_x, test_x = as_np(train_x).reshape(len(train_x), -1), as_np(test_x).reshape(len(test_x), -1)
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000, random_state=seed))
    probe.fit(train_x, as_np(train_y))
    return float((probe.predict(test_x) == as_np(test_y)).mean())


def train_supervised_discriminator(
    spec: dict, images: torch.Tensor, labels: torch.Tensor, steps: int = 300, seed: int = 0, lr: float = 2e-4
) -> DCGANDiscriminator:
    """The discriminator architecture of ``spec`` (its DCGANDiscriminator options) trained from
    scratch as a classifier of ``labels`` (its auxiliary head, cross-entropy), with ±2 pixel shifts
    as the digit classifiers here use; batches of up to 64 labelled items."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    classes = int(labels.max()) + 1
    net = DCGANDiscriminator(**{**spec, "classes": classes, "conditioning": "auxiliary"})
    opt = torch.optim.Adam(net.parameters(), lr=lr, betas=(0.5, 0.999))
    net.train()
    for _ in range(steps):
        idx = torch.randperm(len(images), generator=g)[:64]
        dx, dy = torch.randint(-2, 3, (2,), generator=g).tolist()
        loss = F.cross_entropy(net(torch.roll(images[idx], (dy, dx), (2, 3))).class_logits, labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


@torch.no_grad()
def classify(net: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Class logits of a supervised discriminator (its auxiliary head) or of any classifier."""
    out = net(images)
    return out.class_logits if hasattr(out, "class_logits") else out


# --- latent arithmetic ----------------------------------------------------------------------


def ink_mass(images: torch.Tensor) -> torch.Tensor:
    """Stroke thickness as the share of ink: the mean pixel value of each N×C×H×W image in
    [-1, 1] mapped to [0, 1] (ink is bright in scikit-learn's digits)."""
    return ((images.float().clamp(-1, 1) + 1) / 2).flatten(1).mean(1)


def concept_latent(latents: torch.Tensor) -> torch.Tensor:
    """The latent of a concept: the mean of the latents (k×D) of the samples that show it."""
    if latents.ndim != 2 or len(latents) == 0:
        raise ConfigError(f"a concept needs a k×D stack of latents, got shape {tuple(latents.shape)}")
    return latents.mean(0)


def latent_arithmetic(plus: torch.Tensor, minus: torch.Tensor, add: torch.Tensor) -> torch.Tensor:
    """DCGAN's "A − B + C" on concept latents (each a k×D stack of sample latents, averaged first)."""
    return concept_latent(plus) - concept_latent(minus) + concept_latent(add)


def pick_concept(scores: torch.Tensor, eligible: torch.Tensor, k: int, largest: bool) -> torch.Tensor:
    """Indices of the ``k`` eligible samples with the largest (or smallest) score."""
    candidates = torch.nonzero(eligible).flatten()
    if len(candidates) < k:
        raise ConfigError(f"only {len(candidates)} samples show the concept, {k} needed: draw more samples")
    order = scores[candidates].argsort(descending=largest)
    return candidates[order[:k]]


def summarise(values: Sequence[float]) -> tuple[float, float]:
    """Mean and (population) standard deviation."""
    arr = np.asarray(values, np.float64)
    return float(arr.mean()), float(arr.std())
