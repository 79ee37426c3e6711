"""The ResNet generator of CUT/FastCUT (contrastive unpaired translation), with anti-aliased
down- and upsampling, so that generators trained with that code can be imported exactly.

Anti-aliasing ("Making Convolutional Networks Shift-Invariant Again") replaces a strided conv by a
stride-1 conv, norm and ReLU followed by a fixed binomial blur with stride 2 (``BlurDownsample``),
and a transposed conv by a fixed blur-upsampling (``BlurUpsample``) followed by a stride-1 conv.
Either side can be switched off on its own, as in CUT (``--no_antialias``, ``--no_antialias_up``);
with both off the network is the CycleGAN ResNet (``resnet``).

Layers are laid out as in CUT's flat ``model`` list (stem, downsampling, blocks, upsampling,
head), split into ``encoder``, ``blocks`` and ``decoder`` as in ``ResnetGenerator``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .generators import GENERATORS, ResidualBlock, ResnetLayout
from .layers import conv_bias, norm_is_per_sample, norm_layer

#: binomial filter taps by size, as CUT's ``get_filter``
BINOMIAL_TAPS = {3: (1.0, 2.0, 1.0), 4: (1.0, 3.0, 3.0, 1.0)}


def binomial_filter(size: int, channels: int, gain: float = 1.0) -> torch.Tensor:
    """A normalised 2-D binomial blur of ``size``×``size`` taps, one copy per channel (depthwise)."""
    taps = torch.tensor(BINOMIAL_TAPS[size], dtype=torch.float64)
    kernel = taps[:, None] * taps[None, :]
    kernel = (kernel / kernel.sum() * gain).to(torch.float32)
    return kernel[None, None].repeat(channels, 1, 1, 1)


class BlurDownsample(nn.Module):
    """Reflection pad 1, then a depthwise 3×3 binomial blur with stride 2 (CUT's ``Downsample``).

    The filter is a constant, rebuilt from the channel count, so it is not part of the state dict.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.register_buffer("filt", binomial_filter(3, channels), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
        return F.conv2d(padded, self.filt.to(x.dtype), stride=2, groups=self.channels)


class BlurUpsample(nn.Module):
    """×2 upsampling by a depthwise transposed 4×4 binomial blur after replication padding 1,
    cropped back to exactly twice the size (CUT's ``Upsample``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.register_buffer("filt", binomial_filter(4, channels, gain=4.0), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
        up = F.conv_transpose2d(padded, self.filt.to(x.dtype), stride=2, padding=2, groups=self.channels)
        return up[:, :, 1:-1, 1:-1]


@GENERATORS.register("cut_resnet")
class AntialiasResnetGenerator(ResnetLayout):
    """CUT's ResNet generator: encoder, residual blocks, decoder, with anti-aliased resampling."""

    @staticmethod
    def normalises_per_sample(spec: Mapping[str, Any]) -> bool:
        """Whether one sample's output is independent of the rest of the batch (see ``GANModel``)."""
        return norm_is_per_sample(spec["norm"])

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        ngf: int = 64,
        n_blocks: int = 9,
        n_downsampling: int = 2,
        norm: str = "instance",
        dropout: float = 0.0,
        antialias_down: bool = True,
        antialias_up: bool = True,
    ) -> None:
        super().__init__()
        if n_blocks < 0 or n_downsampling < 0:
            raise ConfigError("cut_resnet generator: n_blocks and n_downsampling must be >= 0")
        self.size_multiple = 2**n_downsampling
        self.in_channels, self.out_channels = in_channels, out_channels
        self.ngf, self.n_downsampling = ngf, n_downsampling
        bias = conv_bias(norm)
        stem: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, ngf, 7, bias=bias),
            norm_layer(norm, ngf),
            nn.ReLU(True),
        ]
        for i in range(n_downsampling):
            c = ngf * 2**i
            stem += _downsampling_level(c, 2 * c, norm, bias, antialias_down)
        self.encoder = nn.Sequential(*stem)
        width = ngf * 2**n_downsampling
        self.blocks = nn.ModuleList(ResidualBlock(width, norm, dropout, False) for _ in range(n_blocks))
        head: list[nn.Module] = []
        for i in range(n_downsampling):
            c = width // 2**i
            head += _upsampling_level(c, c // 2, norm, bias, antialias_up)
        head += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
        self.decoder = nn.Sequential(*head)

    def named_stages(self) -> list[tuple[str | None, Callable[[Any], Any]]]:
        # every encoder level ends where the resolution has halved (a blur or a strided conv's
        # ReLU), every decoder level in its ReLU
        named: list[tuple[str | None, Callable[[Any], Any]]] = []
        level_ends = _level_ends(list(self.encoder))
        for i, layer in enumerate(self.encoder):
            named.append((level_ends.get(i), layer))
        for b, block in enumerate(self.blocks):
            steps = block.stages()
            named += [(None, step) for step in steps[:-1]] + [(f"block{b + 1}", steps[-1])]
        relus = [i for i, layer in enumerate(self.decoder) if isinstance(layer, nn.ReLU)]
        for i, layer in enumerate(self.decoder):
            name = f"up{relus.index(i) + 1}" if i in relus else ("output" if i == len(self.decoder) - 1 else None)
            named.append((name, layer))
        return named


def _downsampling_level(c_in: int, c_out: int, norm: str, bias: bool, antialias: bool) -> list[nn.Module]:
    if antialias:
        conv = nn.Conv2d(c_in, c_out, 3, 1, 1, bias=bias)  # zero padding, as in CUT
        return [conv, norm_layer(norm, c_out), nn.ReLU(True), BlurDownsample(c_out)]
    return [nn.Conv2d(c_in, c_out, 3, 2, 1, bias=bias), norm_layer(norm, c_out), nn.ReLU(True)]


def _upsampling_level(c_in: int, c_out: int, norm: str, bias: bool, antialias: bool) -> list[nn.Module]:
    if antialias:
        return [BlurUpsample(c_in), nn.Conv2d(c_in, c_out, 3, 1, 1, bias=bias), norm_layer(norm, c_out), nn.ReLU(True)]
    conv = nn.ConvTranspose2d(c_in, c_out, 3, 2, 1, output_padding=1, bias=bias)
    return [conv, norm_layer(norm, c_out), nn.ReLU(True)]


def _level_ends(encoder: list[nn.Module]) -> dict[int, str]:
    """Encoder index -> feature name: the stem's ReLU, then the last layer of each downsampling level."""
    relus = [i for i, layer in enumerate(encoder) if isinstance(layer, nn.ReLU)]
    ends = {relus[0]: "stem"}
    for level, relu in enumerate(relus[1:], start=1):
        blurred = relu + 1 < len(encoder) and isinstance(encoder[relu + 1], BlurDownsample)
        ends[relu + 1 if blurred else relu] = f"down{level}"
    return ends
