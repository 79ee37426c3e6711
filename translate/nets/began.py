"""BEGAN's networks (Berthelot et al. 2017): a generator shaped like a decoder, and a
discriminator that is an autoencoder (encoder → bottleneck ``hidden`` → decoder).

Both decoders are the paper's: a linear map of the latent to an 8×8×``width`` map, then blocks of
two 3×3 convolutions with ELU separated by nearest-neighbour upsampling, and a last 3×3
convolution to the image channels. The encoder mirrors it: 3×3 convolutions with ELU, each
downsampling by a stride-2 convolution that adds ``width`` channels, then a linear map of the
8×8 map to the bottleneck. The generator ends in tanh (samples stay in [-1, 1], as every sampler's
do); the discriminator's reconstruction is left unbounded, as in the paper.

No normalisation anywhere, so every output of one sample is independent of the rest of its batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..registry import Registry
from .layers import NETWORK_DECLARATIONS
from .samplers import SAMPLERS, SamplerGenerator

#: BEGAN's discriminators: autoencoders, image in, reconstruction out (never exported)
AUTOENCODER_CRITICS: Registry[type[nn.Module]] = Registry("BEGAN discriminator", required=NETWORK_DECLARATIONS)

START = 8  # the decoders start, and the encoder ends, at 8×8


def _doublings(image_size: int) -> int:
    if image_size not in (32, 64):
        raise ConfigError(f"BEGAN nets take 32 or 64 pixel images, got image_size={image_size}")
    return {32: 2, 64: 3}[image_size]


def _conv_pair(channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, 1, 1), nn.ELU(), nn.Conv2d(channels, channels, 3, 1, 1), nn.ELU()
    )


class BEGANDecoder(nn.Module):
    """``latent`` values -> 8×8×width -> doubled to image_size² -> channels (no final activation)."""

    def __init__(self, latent: int, width: int, channels: int, image_size: int) -> None:
        super().__init__()
        self.width = width
        self.project = nn.Linear(latent, width * START * START)
        blocks = [_conv_pair(width)]
        for _ in range(_doublings(image_size)):
            blocks.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), _conv_pair(width)))
        self.blocks = nn.Sequential(*blocks)
        self.to_image = nn.Conv2d(width, channels, 3, 1, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.project(z).view(-1, self.width, START, START)
        return self.to_image(self.blocks(h))


class BEGANEncoder(nn.Module):
    """Image -> ``hidden`` values; channels grow by ``width`` at every stride-2 downsampling."""

    def __init__(self, hidden: int, width: int, channels: int, image_size: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, 1, 1), nn.ELU()]
        ch = width
        for _ in range(_doublings(image_size)):
            layers += [_conv_pair(ch), nn.Conv2d(ch, ch + width, 3, 2, 1), nn.ELU()]
            ch += width
        layers += [_conv_pair(ch), nn.Flatten(), nn.Linear(ch * START * START, hidden)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@SAMPLERS.register("began")
class BEGANGenerator(SamplerGenerator):
    """BEGAN's generator: the decoder architecture, from noise (plus label/code when asked), tanh."""

    @staticmethod
    def normalises_per_sample(spec: Mapping[str, Any]) -> bool:
        """No normalisation layers: one sample's output never depends on the rest of the batch."""
        return True

    def __init__(
        self,
        noise_dim: int = 32,
        image_size: int = 32,
        channels: int = 1,
        width: int = 16,
        classes: int = 0,
        code_dim: int = 0,
    ) -> None:
        super().__init__(noise_dim, classes, code_dim, (channels, image_size, image_size))
        self.decoder = BEGANDecoder(self.latent_dim, width, channels, image_size)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.decoder(z))


@AUTOENCODER_CRITICS.register("began")
class BEGANAutoencoder(nn.Module):
    """BEGAN's discriminator: ``forward(x)`` is the reconstruction of ``x`` through a ``hidden``-value
    bottleneck; ``encode`` gives the bottleneck itself. With ``classes`` >= 2 it is conditioned on
    a label (a conditional BEGAN): the one-hot label is concatenated to the image as constant
    channels and to the bottleneck before decoding, so D judges how well it reconstructs an image
    *as that class*."""

    @staticmethod
    def normalises_per_sample(spec: Mapping[str, Any]) -> bool:
        """No normalisation layers: one sample's reconstruction never depends on the rest of the batch."""
        return True

    def __init__(
        self, image_size: int = 32, channels: int = 1, width: int = 16, hidden: int = 32, classes: int = 0
    ) -> None:
        super().__init__()
        if classes == 1 or classes < 0:
            raise ConfigError(f"a BEGAN discriminator takes classes=0 (unconditional) or >= 2, got {classes}")
        self.classes = classes
        self.encoder = BEGANEncoder(hidden, width, channels + classes, image_size)
        self.decoder = BEGANDecoder(hidden + classes, width, channels, image_size)

    def _one_hot(self, label: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
        if not self.classes:
            return None
        if label is None:
            raise ConfigError(f"this BEGAN discriminator is conditioned on {self.classes} classes: give a label")
        return F.one_hot(label.long(), self.classes).to(like.dtype)

    def encode(self, x: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        one_hot = self._one_hot(label, x)
        if one_hot is not None:
            x = torch.cat([x, one_hot[:, :, None, None].expand(-1, -1, *x.shape[2:])], 1)
        return self.encoder(x)

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        h = self.encode(x, label)
        one_hot = self._one_hot(label, h)
        return self.decoder(h if one_hot is None else torch.cat([h, one_hot], 1))
