"""Progressive growing of GANs (Karras et al. 2018): a generator and a discriminator that start at
4×4 and gain one resolution (×2) at a time up to ``image_size``, each new resolution faded in.

* **Growth schedule**: ``stabilise_steps`` at 4×4, then for every further resolution a fade-in of
  ``fade_steps`` followed by ``stabilise_steps``. ``growth_at(step, ...)`` is a pure function of
  the step, so a run resumed in the middle of a fade-in continues with exactly the same α.
* **Fade-in**: while a resolution fades in, G's output is ``α·toRGB_new(block(h)) + (1 − α)·
  upsample(toRGB_old(h))`` and D's first features are ``α·block(fromRGB_new(x)) + (1 − α)·
  fromRGB_old(avgpool(x))``.
* **Equalised learning rate** (``EqualizedConv2d``, ``EqualizedLinear``): weights are stored
  N(0, 1) and scaled at run time by the He constant ``gain / sqrt(fan_in)``, so Adam's per-weight
  step size is the same for every layer.
* **Pixel norm** (``PixelNorm``): every pixel's feature vector scaled to unit mean square.
* **Minibatch standard deviation** before D's last block (``samplers.minibatch_stddev``).

The layers are plain modules that any sampler can use; ``equalized_lr`` and ``pixel_norm`` are
options of both ProGAN nets (off: ordinary layers with the same initial weights' distribution).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .samplers import SAMPLER_CRITICS, SAMPLERS, Judgement, SamplerGenerator, minibatch_stddev

LEAK = 0.2
#: He's gain for LeakyReLU(0.2) layers; to-RGB layers use 1 (linear output)
LRELU_GAIN = math.sqrt(2.0 / (1.0 + LEAK**2))


# --- layers -----------------------------------------------------------------------------------


class EqualizedConv2d(nn.Module):
    """A conv whose weight is stored N(0, 1) and multiplied by ``gain / sqrt(fan_in)`` on every
    call (Karras et al.'s equalised learning rate)."""

    def __init__(self, cin: int, cout: int, kernel: int, padding: int = 0, gain: float = LRELU_GAIN) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.scale = gain / math.sqrt(cin * kernel * kernel)
        self.padding = padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


class EqualizedLinear(nn.Module):
    """The fully connected counterpart of ``EqualizedConv2d``."""

    def __init__(self, cin: int, cout: int, gain: float = LRELU_GAIN) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.scale = gain / math.sqrt(cin)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


class PixelNorm(nn.Module):
    """Each pixel's feature vector divided by its root mean square (over channels, dim 1)."""

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + self.eps)


def conv(cin: int, cout: int, kernel: int, equalized: bool, gain: float = LRELU_GAIN) -> nn.Module:
    """A same-padded conv: equalised, or an ordinary one initialised N(0, (gain / sqrt(fan_in))²)."""
    if equalized:
        return EqualizedConv2d(cin, cout, kernel, kernel // 2, gain)
    layer = nn.Conv2d(cin, cout, kernel, padding=kernel // 2)
    nn.init.normal_(layer.weight, 0.0, gain / math.sqrt(cin * kernel * kernel))
    nn.init.zeros_(layer.bias)
    return layer


def linear(cin: int, cout: int, equalized: bool, gain: float = LRELU_GAIN) -> nn.Module:
    if equalized:
        return EqualizedLinear(cin, cout, gain)
    layer = nn.Linear(cin, cout)
    nn.init.normal_(layer.weight, 0.0, gain / math.sqrt(cin))
    nn.init.zeros_(layer.bias)
    return layer


# --- the growth schedule ------------------------------------------------------------------------


class Growth(NamedTuple):
    level: int  # 0: 4×4, k: 4·2^k pixels
    alpha: float  # weight of the newest level (1 once it is stable)

    @property
    def resolution(self) -> int:
        return 4 * 2**self.level


def growth_at(step: int, levels: int, stabilise_steps: int, fade_steps: int) -> Growth:
    """The level trained at ``step`` (0-based) and its fade-in weight α: 4×4 for
    ``stabilise_steps``, then per further level ``fade_steps`` of fade-in (α = (i + 1) /
    (fade_steps + 1) on the fade's i-th step, strictly between 0 and 1) and ``stabilise_steps``
    at α = 1. The last level stays from then on."""
    if step < stabilise_steps:
        return Growth(0, 1.0)
    period = fade_steps + stabilise_steps
    level, within = divmod(step - stabilise_steps, period)
    level += 1
    if level >= levels:
        return Growth(levels - 1, 1.0)
    if within < fade_steps:
        return Growth(level, (within + 1) / (fade_steps + 1))
    return Growth(level, 1.0)


def steps_to_full_size(levels: int, stabilise_steps: int, fade_steps: int) -> int:
    """The first step at which the last level trains at α = 1."""
    if levels <= 1:
        return 0
    return stabilise_steps + (levels - 2) * (fade_steps + stabilise_steps) + fade_steps


def fade(old: torch.Tensor, new: torch.Tensor, alpha: float) -> torch.Tensor:
    """``alpha·new + (1 − alpha)·old``; ``new`` alone once alpha reaches 1."""
    return new if alpha >= 1.0 else alpha * new + (1.0 - alpha) * old


def level_count(image_size: int) -> int:
    """Levels from 4×4 to ``image_size`` (a power of two, at least 8)."""
    levels = int(math.log2(image_size)) - 1 if image_size >= 8 else 0
    if levels < 2 or 4 * 2 ** (levels - 1) != image_size:
        raise ConfigError(f"progressive nets take a power-of-two image_size >= 8, got {image_size}")
    return levels


def level_widths(image_size: int, width: int, max_width: int) -> list[int]:
    """Channels at each level, 4×4 first: ``width`` at ``image_size``, doubled per halving, at most ``max_width``."""
    if width < 1 or max_width < width:
        raise ConfigError(f"widths need 1 <= width <= max_width, got width={width}, max_width={max_width}")
    return [min(max_width, width * image_size // (4 * 2**k)) for k in range(level_count(image_size))]


def _act() -> nn.Module:
    return nn.LeakyReLU(LEAK)


# --- generator ----------------------------------------------------------------------------------


@SAMPLERS.register("progan")
class ProgressiveSampler(SamplerGenerator):
    """Noise -> 4×4 -> ... -> image_size² (``grow`` at any level and α). Called as a sampler it
    draws at the full resolution (α = 1), clamped to [-1, 1]; training uses ``grow``, unclamped,
    as in the paper's linear output."""

    @staticmethod
    def normalises_per_sample(spec: Mapping[str, Any]) -> bool:
        """Pixel norm is per pixel of one sample: no batch statistics."""
        return True

    def __init__(
        self,
        noise_dim: int = 64,
        image_size: int = 64,
        channels: int = 3,
        width: int = 16,
        max_width: int = 64,
        classes: int = 0,
        code_dim: int = 0,
        equalized_lr: bool = True,
        pixel_norm: bool = True,
    ) -> None:
        super().__init__(noise_dim, classes, code_dim, (channels, image_size, image_size))
        self.widths = level_widths(image_size, width, max_width)
        self.levels = len(self.widths)
        norm = PixelNorm if pixel_norm else nn.Identity
        w0 = self.widths[0]
        self.latent_norm = norm()
        # the paper's 4×4 "conv" on a 1×1 latent is this dense layer
        self.stem = nn.Sequential(
            linear(self.latent_dim, w0 * 16, equalized_lr, LRELU_GAIN / 4),
            nn.Unflatten(1, (w0, 4, 4)),
            _act(),
            norm(),
            conv(w0, w0, 3, equalized_lr),
            _act(),
            norm(),
        )
        blocks = [nn.Identity()]  # level 0 is the stem
        for k in range(1, self.levels):
            cin, cout = self.widths[k - 1], self.widths[k]
            blocks.append(
                nn.Sequential(
                    nn.Upsample(scale_factor=2, mode="nearest"),
                    conv(cin, cout, 3, equalized_lr),
                    _act(),
                    norm(),
                    conv(cout, cout, 3, equalized_lr),
                    _act(),
                    norm(),
                )
            )
        self.blocks = nn.ModuleList(blocks)
        self.to_rgb = nn.ModuleList(conv(w, channels, 1, equalized_lr, gain=1.0) for w in self.widths)

    def grow(self, z: torch.Tensor, level: int, alpha: float = 1.0) -> torch.Tensor:
        """Images at level ``level`` (4·2^level pixels) for concatenated latents ``z``, the
        newest level faded in with weight ``alpha``."""
        if not 0 <= level < self.levels:
            raise ConfigError(f"level must be in 0..{self.levels - 1}, got {level}")
        h = self.stem(self.latent_norm(z))
        for k in range(1, level):
            h = self.run_block(self.blocks[k], h)
        if level == 0:
            return self.to_rgb[0](h)
        new = self.to_rgb[level](self.run_block(self.blocks[level], h))
        if alpha >= 1.0:
            return new
        old = F.interpolate(self.to_rgb[level - 1](h), scale_factor=2, mode="nearest")
        return fade(old, new, alpha)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.grow(z, self.levels - 1, 1.0).clamp(-1.0, 1.0)


# --- discriminator ------------------------------------------------------------------------------


@SAMPLER_CRITICS.register("progan")
class ProgressiveDiscriminator(nn.Module):
    """fromRGB at the input's level, blocks halving down to 4×4, minibatch stddev, a 3×3 conv and
    two dense layers to one logit (unconditional). ``grow(x, level, alpha)`` judges images of
    level ``level``; called plainly it infers the level from the input's size (α = 1)."""

    @staticmethod
    def normalises_per_sample(spec: Mapping[str, Any]) -> bool:
        """Not with the minibatch spread, a statistic of the batch."""
        return not spec["minibatch_stddev"]

    def __init__(
        self,
        image_size: int = 64,
        channels: int = 3,
        width: int = 16,
        max_width: int = 64,
        minibatch_stddev: bool = True,
        equalized_lr: bool = True,
    ) -> None:
        super().__init__()
        self.widths = level_widths(image_size, width, max_width)
        self.levels = len(self.widths)
        self.stddev = minibatch_stddev
        self.from_rgb = nn.ModuleList(nn.Sequential(conv(channels, w, 1, equalized_lr), _act()) for w in self.widths)
        blocks = [nn.Identity()]
        for k in range(1, self.levels):
            cin, cout = self.widths[k], self.widths[k - 1]
            blocks.append(
                nn.Sequential(
                    conv(cin, cin, 3, equalized_lr), _act(), conv(cin, cout, 3, equalized_lr), _act(), nn.AvgPool2d(2)
                )
            )
        self.blocks = nn.ModuleList(blocks)
        w0 = self.widths[0]
        self.final_conv = nn.Sequential(conv(w0 + int(minibatch_stddev), w0, 3, equalized_lr), _act())
        self.final_dense = nn.Sequential(nn.Flatten(), linear(w0 * 16, w0, equalized_lr), _act())
        self.judge = linear(w0, 1, equalized_lr, gain=1.0)

    def grow(self, x: torch.Tensor, level: int, alpha: float = 1.0) -> Judgement:
        if x.shape[-1] != 4 * 2**level or x.shape[-2] != x.shape[-1]:
            raise ConfigError(f"level {level} judges {4 * 2**level}² images, got {tuple(x.shape[-2:])}")
        h = self.from_rgb[level](x)
        if level > 0:
            h = self.blocks[level](h)
            if alpha < 1.0:
                h = fade(self.from_rgb[level - 1](F.avg_pool2d(x, 2)), h, alpha)
        for k in range(level - 1, 0, -1):
            h = self.blocks[k](h)
        if self.stddev:
            h = minibatch_stddev(h)
        features = self.final_dense(self.final_conv(h))
        return Judgement(features, self.judge(features), None)

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None) -> Judgement:
        return self.grow(x, int(math.log2(x.shape[-1])) - 2)
