"""Training fixes from the GAN literature that samplers switch on in their config, as small
pieces with explicit inputs (Salimans et al. 2016; Sønderby et al. / Arjovsky & Bottou 2017;
Gulrajani et al. 2017)."""

from __future__ import annotations

import torch
from torch import nn


def instance_noise_std(start: float, anneal_steps: int, step: int) -> float:
    """Std of the Gaussian noise added to D's inputs (real and fake alike) at ``step``: ``start``
    decayed linearly to 0 over ``anneal_steps`` (0: constant). Overlapping the two distributions
    keeps D's gradients informative early on."""
    if start <= 0:
        return 0.0
    if anneal_steps <= 0:
        return start
    return start * max(0.0, 1.0 - step / anneal_steps)


def with_instance_noise(x: torch.Tensor, std: float) -> torch.Tensor:
    return x + std * torch.randn_like(x) if std > 0 else x


def feature_matching_loss(real_features: torch.Tensor, fake_features: torch.Tensor) -> torch.Tensor:
    """Salimans et al.'s feature matching: squared distance between the batch means of D's
    penultimate features on real and on generated data (real detached)."""
    return (real_features.detach().float().mean(0) - fake_features.float().mean(0)).pow(2).sum()


class HistoricalAverage(nn.Module):
    """Salimans et al.'s historical averaging: a penalty ‖θ − θ̄‖² pulling a net's parameters
    towards the running mean θ̄ of their past values. The means are buffers, so they are saved in
    and resumed from the training checkpoint with the model."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))
        for i, p in enumerate(net.parameters()):
            self.register_buffer(f"mean_{i}", p.detach().clone())

    def means(self) -> list[torch.Tensor]:
        return [b for name, b in self.named_buffers() if name.startswith("mean_")]

    def penalty(self, net: nn.Module) -> torch.Tensor:
        terms = [(p.float() - m.float()).pow(2).sum() for p, m in zip(net.parameters(), self.means(), strict=True)]
        return torch.stack(terms).sum()

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        self.count += 1
        weight = 1.0 / float(self.count + 1)  # cumulative mean, the initial weights counting once
        for p, m in zip(net.parameters(), self.means(), strict=True):
            m.lerp_(p.detach(), weight)
