"""LAPGAN (Denton et al. 2015): a Laplacian pyramid of generators, sampled coarse to fine.

The pyramid of an image ``I`` with levels coarse to fine: ``I_0`` (the image downsampled to
``base_size``) and, for every finer level k, the residual ``h_k = I_k − up(I_{k−1})`` where
``I_{k−1} = down(I_k)``; ``reconstruct`` adds the residuals back, coarse to fine. ``down`` is a 2×2
average and ``up`` a bilinear ×2 resize.

The sampler holds a coarse unconditional generator for ``I_0`` and one residual generator per
finer level; each residual generator takes the upsampled coarser image and a noise plane (the
paper's fourth input channel) and draws that level's residual. Sampling runs coarse to fine,
each level conditioned on the image generated so far. The noise vector a caller gives is the
coarse generator's noise followed by every level's noise plane, flattened, so one seed fixes a
whole sample and spherical interpolation still applies.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .samplers import SAMPLERS, SamplerGenerator


def downsample(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 2)


def upsample(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def gaussian_pyramid(image: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """``levels`` images, coarse to fine, the last being ``image`` itself."""
    images = [image]
    for _ in range(levels - 1):
        images.append(downsample(images[-1]))
    return images[::-1]


def laplacian_pyramid(image: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """The coarsest image, then each finer level's residual over the upsampled coarser image."""
    gauss = gaussian_pyramid(image, levels)
    return [gauss[0], *(fine - upsample(coarse) for coarse, fine in zip(gauss, gauss[1:], strict=False))]


def reconstruct(pyramid: list[torch.Tensor]) -> torch.Tensor:
    """The image a Laplacian pyramid stands for (the inverse of ``laplacian_pyramid``)."""
    image = pyramid[0]
    for residual in pyramid[1:]:
        image = upsample(image) + residual
    return image


def pyramid_levels(image_size: int, base_size: int) -> int:
    """Levels from ``base_size`` (at least 8) to ``image_size``, both powers of two."""
    ratio = image_size // base_size if base_size > 0 else 0
    if (
        base_size < 8
        or ratio < 2
        or base_size * ratio != image_size
        or ratio & (ratio - 1)
        or base_size & (base_size - 1)
    ):
        raise ConfigError(
            f"LAPGAN needs powers of two 8 <= base_size < image_size, got base_size={base_size}, image_size={image_size}"
        )
    return int(math.log2(ratio)) + 1


class CoarseGenerator(nn.Module):
    """Noise -> a ``size``² image (DCGAN-like: dense to 4×4, then resize-conv doublings, tanh)."""

    def __init__(self, noise_dim: int, size: int, channels: int, width: int) -> None:
        super().__init__()
        doublings = int(math.log2(size // 4))
        layers: list[nn.Module] = [
            nn.Linear(noise_dim, width * 16),
            nn.Unflatten(1, (width, 4, 4)),
            nn.BatchNorm2d(width),
            nn.ReLU(),
        ]
        for _ in range(doublings):
            layers += [nn.Upsample(scale_factor=2), nn.Conv2d(width, width, 3, 1, 1), nn.BatchNorm2d(width), nn.ReLU()]
        layers += [nn.Conv2d(width, channels, 3, 1, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        return self.net(noise)


class ResidualGenerator(nn.Module):
    """(upsampled coarser image, noise plane) -> the level's residual: three 3×3 convs, linear output."""

    def __init__(self, channels: int, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels + 1, width, 3, 1, 1),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, 1, 1),
            nn.ReLU(),
            nn.Conv2d(width, channels, 3, 1, 1),
        )

    def forward(self, coarse_up: torch.Tensor, noise_plane: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([coarse_up, noise_plane], 1))


class LevelDiscriminator(nn.Module):
    """Strided 4×4 convs with LeakyReLU from ``size``² down to 4×4, then a dense logit. The
    residual levels' discriminators see the residual and its upsampled coarser image, stacked."""

    def __init__(self, size: int, in_channels: int, width: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        ch = in_channels
        for _ in range(int(math.log2(size // 4))):
            layers += [nn.Conv2d(ch, width, 4, 2, 1), nn.LeakyReLU(0.2)]
            ch = width
        self.body = nn.Sequential(*layers, nn.Flatten())
        self.judge = nn.Linear(ch * 16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.judge(self.body(x))


@SAMPLERS.register("lapgan")
class LaplacianSampler(SamplerGenerator):
    """The whole pyramid of generators as one sampler. ``noise_dim`` (the spec) is the coarse
    generator's; the sampler's ``noise_dim`` attribute counts the noise planes too."""

    @staticmethod
    def normalises_per_sample(spec: Mapping[str, Any]) -> bool:
        """The coarse generator uses batch norm."""
        return False

    def __init__(
        self,
        noise_dim: int = 32,
        image_size: int = 64,
        base_size: int = 16,
        channels: int = 3,
        width: int = 32,
        residual_width: int = 32,
        classes: int = 0,
        code_dim: int = 0,
    ) -> None:
        if classes or code_dim:
            raise ConfigError("the lapgan sampler is unconditional: classes and code_dim must be 0")
        sizes = [base_size * 2**k for k in range(pyramid_levels(image_size, base_size))]
        super().__init__(noise_dim + sum(s * s for s in sizes[1:]), 0, 0, (channels, image_size, image_size))
        self.levels, self.sizes, self.coarse_noise_dim = len(sizes), sizes, noise_dim
        self.coarse = CoarseGenerator(noise_dim, base_size, channels, width)
        self.residuals = nn.ModuleList(ResidualGenerator(channels, residual_width) for _ in self.sizes[1:])

    def split_noise(self, z: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The coarse noise vector and one N×1×S×S noise plane per finer level."""
        parts = z.split([self.coarse_noise_dim, *(s * s for s in self.sizes[1:])], dim=1)
        return parts[0], [p.reshape(-1, 1, s, s) for p, s in zip(parts[1:], self.sizes[1:], strict=False)]

    def residual(self, level: int, coarser: torch.Tensor, noise_plane: torch.Tensor) -> torch.Tensor:
        """Level ``level``'s (1..levels-1) residual for the coarser image ``coarser``."""
        return self.run_block(self.residuals[level - 1], upsample(coarser), noise_plane)

    def pyramid(self, z: torch.Tensor) -> list[torch.Tensor]:
        """The generated image at every level, coarse to fine, each built on the one before."""
        coarse_noise, planes = self.split_noise(z)
        images = [self.coarse(coarse_noise)]
        for level, plane in enumerate(planes, start=1):
            images.append(upsample(images[-1]) + self.residual(level, images[-1], plane))
        return images

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.pyramid(z)[-1].clamp(-1.0, 1.0)
