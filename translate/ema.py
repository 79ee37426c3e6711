"""Exponential moving average of generator weights (Karras et al.; Yazıcı et al.).

Averaged generators give visibly steadier samples than the last iterate of a GAN; exports use
them when they exist.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .errors import ConfigError


class EMA:
    def __init__(self, nets: dict[str, nn.Module], decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ConfigError(f"engine.ema_decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.copies = {name: copy.deepcopy(net).eval().requires_grad_(False) for name, net in nets.items()}

    @torch.no_grad()
    def update(self, nets: dict[str, nn.Module]) -> None:
        for name, net in nets.items():
            average = self.copies[name]
            for a, p in zip(average.parameters(), net.parameters(), strict=True):
                a.lerp_(p.detach(), 1.0 - self.decay)
            for a, b in zip(average.buffers(), net.buffers(), strict=True):
                a.copy_(b)

    def state_dict(self) -> dict:
        return {name: net.state_dict() for name, net in self.copies.items()}

    def load_state_dict(self, state: dict) -> None:
        for name, net in self.copies.items():
            net.load_state_dict(state[name])
