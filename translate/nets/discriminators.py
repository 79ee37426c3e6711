"""Discriminators: PatchGAN and its multi-scale (pix2pixHD) stack.

Every discriminator returns a list with one entry per scale; each entry is the list of that
scale's intermediate feature maps, the last being the real/fake logits map. Objectives read the
last element, the feature-matching term reads the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..registry import Registry
from .layers import NETWORK_DECLARATIONS, conv_bias, maybe_spectral, norm_is_per_sample, norm_layer

DISCRIMINATORS: Registry[type[nn.Module]] = Registry("discriminator", required=NETWORK_DECLARATIONS)

Features = list[list[torch.Tensor]]


@DISCRIMINATORS.register("patchgan")
class PatchDiscriminator(nn.Module):
    """Classifies overlapping patches (70×70 for ``n_layers=3``) as real or fake."""

    @staticmethod
    def normalises_per_sample(spec: Mapping[str, Any]) -> bool:
        """Whether one sample's output is independent of the rest of the batch (see ``GANModel``)."""
        known_norm_per_sample = norm_is_per_sample(spec["norm"])
        return known_norm_per_sample or spec["spectral_norm"]  # spectral norm leaves the norm layers out

    def __init__(
        self,
        in_channels: int = 3,
        ndf: int = 64,
        n_layers: int = 3,
        norm: str = "instance",
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        sn, bias = spectral_norm, conv_bias(norm) or spectral_norm
        stages: list[nn.Module] = [
            nn.Sequential(maybe_spectral(nn.Conv2d(in_channels, ndf, 4, 2, 1), sn), nn.LeakyReLU(0.2, True))
        ]
        width = ndf
        for n in range(1, n_layers + 1):
            prev, width = width, ndf * min(2**n, 8)
            stride = 2 if n < n_layers else 1
            # spectral norm already bounds the layer, so the norm layer is left out with it
            norm_kind = "none" if sn else norm
            stages.append(
                nn.Sequential(
                    maybe_spectral(nn.Conv2d(prev, width, 4, stride, 1, bias=bias), sn),
                    norm_layer(norm_kind, width),
                    nn.LeakyReLU(0.2, True),
                )
            )
        stages.append(maybe_spectral(nn.Conv2d(width, 1, 4, 1, 1), sn))
        self.stages = nn.ModuleList(stages)
        self.strides = [2] + [2 if n < n_layers else 1 for n in range(1, n_layers + 1)] + [1]
        self.normed = norm != "none" and not sn
        self.n_layers = n_layers

    def output_sizes(self, length: int) -> list[int]:
        """Each stage's output length along one axis for an input of ``length`` (k 4, padding 1)."""
        sizes = []
        for stride in self.strides:
            length = (length - 2) // stride + 1
            sizes.append(length)
        return sizes

    def check_input(self, height: int, width: int) -> None:
        """A clear error instead of a norm layer's or convolution's deep in the forward pass."""
        hs, ws = self.output_sizes(height), self.output_sizes(width)
        too_small = min(hs[-1], ws[-1]) < 1 or (
            self.normed and any(h * w < 2 for h, w in zip(hs[1:-1], ws[1:-1], strict=False))
        )
        if too_small:
            least = next(
                n
                for n in range(2, 4096)
                if min(self.output_sizes(n)[-1], 1) >= 1
                and (not self.normed or all(v >= 2 for v in self.output_sizes(n)[1:-1]))
            )
            raise ConfigError(
                f"patchgan discriminator (n_layers={self.n_layers}) needs images of at least {least}×{least} pixels, "
                f"got {height}×{width}; use a larger data.crop_size or fewer discriminator n_layers"
            )

    def forward(self, x: torch.Tensor) -> Features:
        self.check_input(*x.shape[-2:])
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return [feats]


@DISCRIMINATORS.register("multiscale")
class MultiScaleDiscriminator(nn.Module):
    """``num_scales`` PatchGANs on the image downsampled by 1, 2, 4, … (pix2pixHD)."""

    normalises_per_sample = PatchDiscriminator.normalises_per_sample

    def __init__(
        self,
        in_channels: int = 3,
        ndf: int = 64,
        n_layers: int = 3,
        num_scales: int = 3,
        norm: str = "instance",
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        self.scales = nn.ModuleList(
            PatchDiscriminator(in_channels, ndf, n_layers, norm, spectral_norm) for _ in range(num_scales)
        )

    def forward(self, x: torch.Tensor) -> Features:
        out: Features = []
        for i, disc in enumerate(self.scales):
            if i:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            out += disc(x)
        return out
