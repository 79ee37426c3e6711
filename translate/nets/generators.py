"""Image-to-image generators: ResNet (CycleGAN) and U-Net (pix2pix).

Both accept any H×W: the input is padded up to the network's stride multiple and the output is
cropped back, so users never have to resize to a multiple of 256. Both support gradient
checkpointing of their repeated blocks (``set_grad_checkpointing``), the blocks being where most
of the activation memory of a large image lives.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..errors import ConfigError
from ..registry import Registry
from .layers import (
    NETWORK_DECLARATIONS,
    conv_bias,
    crop_to,
    maybe_spectral,
    norm_is_per_sample,
    norm_layer,
    pad_to_multiple,
)

GENERATORS: Registry[type[nn.Module]] = Registry("generator", required=NETWORK_DECLARATIONS)

UPSAMPLING = ("transpose", "resize")
CONVOLUTIONS = ("standard", "separable")


class Generator(nn.Module):
    """What every generator offers the engine and its users, whatever it maps from (an image,
    noise, a label map): optional gradient checkpointing of its repeated blocks, and its named
    intermediate features on request (``forward_features``), which CUT's PatchNCE and perceptual
    terms read instead of reaching into the layers."""

    def __init__(self) -> None:
        super().__init__()
        self.grad_checkpointing = False

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        self.grad_checkpointing = enabled

    def run_block(self, block: nn.Module, *inputs: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(block, *inputs, use_reentrant=False)
        return block(*inputs)

    def feature_info(self) -> dict[str, dict[str, int]]:
        """Feature name -> {"channels", "reduction" (input size / feature size)}, input to output."""
        raise NotImplementedError(f"{type(self).__name__} does not expose named features")

    def forward_features(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """The features named in ``layers`` (see ``feature_info``) for input ``x``; the forward
        pass stops after the last one asked for."""
        raise NotImplementedError(f"{type(self).__name__} does not expose named features")

    def check_layers(self, layers: Sequence[str]) -> list[str]:
        known = list(self.feature_info())
        unknown = [name for name in layers if name not in known]
        if unknown:
            raise ConfigError(f"{type(self).__name__} has no feature(s) {unknown}; known: {', '.join(known)}")
        return known


class ImageGenerator(Generator):
    """An image-to-image generator: any H×W input, padded up to the body's stride multiple and
    cropped back, so users never resize to a multiple of 256."""

    #: height and width the body needs to be divisible by
    size_multiple: int = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded, size = pad_to_multiple(x, self.size_multiple)
        return crop_to(self.body(padded), size)

    def body(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def stages(self) -> list[Callable[[Any], Any]] | None:
        """``body`` as a chain of steps, each applied to the previous one's result (the first to
        the input), or ``None`` where the body is not split. Tiled inference
        (``translate.infer``) uses it to resume a pass from a cached intermediate state.
        """
        named = self.named_stages()
        return None if named is None else [step for _, step in named]

    def named_stages(self) -> list[tuple[str | None, Callable[[Any], Any]]] | None:
        """``stages()`` with the feature name (or None) of the state each step produces."""
        return None

    def forward_features(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """Features of the padded input; ``"input"`` is the padded image itself."""
        self.check_layers(layers)
        wanted = set(layers)
        state: Any = pad_to_multiple(x, self.size_multiple)[0]
        found = {"input": state} if "input" in wanted else {}
        for name, step in self.named_stages() or []:
            if len(found) == len(wanted):
                break  # the rest of the network would only cost time
            state = step(state)
            if name in wanted:
                found[name] = state
        return {name: found[name] for name in layers}


class SeparableConv2d(nn.Sequential):
    """A depthwise k×k convolution (one filter per channel) followed by a pointwise 1×1 one: the
    same receptive field as a full k×k convolution for about ``1/c_out + 1/k²`` of its MACs (MobileNet;
    GAN Compression's students)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int, bias: bool, sn: bool) -> None:
        super().__init__(
            maybe_spectral(nn.Conv2d(c_in, c_in, kernel, stride, padding, groups=c_in, bias=False), sn),
            maybe_spectral(nn.Conv2d(c_in, c_out, 1, bias=bias), sn),
        )


def conv2d(
    c_in: int, c_out: int, kernel: int, stride: int, padding: int, bias: bool, sn: bool, kind: str = "standard"
) -> nn.Module:
    """A k×k convolution of ``kind``: ``standard`` (one ``nn.Conv2d``) or ``separable`` (``SeparableConv2d``)."""
    if kind == "standard":
        return maybe_spectral(nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=bias), sn)
    if kind == "separable":
        return SeparableConv2d(c_in, c_out, kernel, stride, padding, bias, sn)
    raise ConfigError(f"unknown conv '{kind}'; known: {', '.join(CONVOLUTIONS)}")


def upsample_conv(
    c_in: int, c_out: int, mode: str, kernel: int, bias: bool, sn: bool, conv: str = "standard"
) -> list[nn.Module]:
    """×2 upsampling. ``resize`` (nearest + conv) avoids the checkerboard artefacts of ``transpose``.
    ``conv`` applies to ``resize``'s convolution; a transposed convolution is always a full one."""
    if mode == "transpose":
        pad = (kernel - 1) // 2
        return [
            maybe_spectral(nn.ConvTranspose2d(c_in, c_out, kernel, 2, pad, output_padding=kernel % 2, bias=bias), sn)
        ]
    if mode == "resize":
        return [
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.ReflectionPad2d(1),
            conv2d(c_in, c_out, 3, 1, 0, bias, sn, conv),
        ]
    raise ConfigError(f"unknown upsample '{mode}'; known: {', '.join(UPSAMPLING)}")


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, norm: str, dropout: float, sn: bool, conv: str = "standard") -> None:
        super().__init__()
        bias = conv_bias(norm)
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(1),
            conv2d(channels, channels, 3, 1, 0, bias, sn, conv),
            norm_layer(norm, channels),
            nn.ReLU(True),
        ]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers += [
            nn.ReflectionPad2d(1),
            conv2d(channels, channels, 3, 1, 0, bias, sn, conv),
            norm_layer(norm, channels),
        ]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)

    def stages(self) -> list[Callable[[Any], Any]]:
        """``forward`` as steps over a (skip, branch) pair: split, one step per body layer, add."""
        return [_split, *(partial(_on_branch, layer) for layer in self.body), _join]


def _split(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x, x


def _on_branch(layer: nn.Module, state: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    return state[0], layer(state[1])


def _join(state: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return state[0] + state[1]


class ResnetLayout(ImageGenerator):
    """Encoder, residual blocks, decoder: the layout every ResNet generator shares (ours and CUT's
    anti-aliased one). A subclass builds ``encoder``, ``blocks`` and ``decoder`` and sets
    ``in_channels``, ``out_channels``, ``ngf`` and ``n_downsampling``; the forward pass and the
    feature names follow from them."""

    def body(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)
        for block in self.blocks:
            h = self.run_block(block, h)
        return self.decoder(h)

    def feature_info(self) -> dict[str, dict[str, int]]:
        ngf, n_down = self.ngf, self.n_downsampling
        info = {"input": {"channels": self.in_channels, "reduction": 1}, "stem": {"channels": ngf, "reduction": 1}}
        for i in range(n_down):
            info[f"down{i + 1}"] = {"channels": ngf * 2 ** (i + 1), "reduction": 2 ** (i + 1)}
        for i in range(len(self.blocks)):
            info[f"block{i + 1}"] = {"channels": ngf * 2**n_down, "reduction": 2**n_down}
        for i in range(n_down):
            info[f"up{i + 1}"] = {"channels": ngf * 2 ** (n_down - i - 1), "reduction": 2 ** (n_down - i - 1)}
        info["output"] = {"channels": self.out_channels, "reduction": 1}
        return info


@GENERATORS.register("resnet")
class ResnetGenerator(ResnetLayout):
    """Johnson-style encoder / residual blocks / decoder, the CycleGAN reference generator.

    ``conv: separable`` makes the residual blocks' and the down- and (``resize``) upsampling
    convolutions depthwise-separable: a small, fast student for distillation (``models/distill.py``).
    The convolutions at full resolution that read and write the image stay full ones; at few
    channels they cost more time than their MACs suggest, so a student may shrink them
    (``outer_kernel: 3`` instead of the reference's 7).
    """

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
        upsample: str = "transpose",
        spectral_norm: bool = False,
        conv: str = "standard",
        outer_kernel: int = 7,
    ) -> None:
        super().__init__()
        if conv not in CONVOLUTIONS:
            raise ConfigError(f"resnet generator: unknown conv '{conv}'; known: {', '.join(CONVOLUTIONS)}")
        if outer_kernel < 1 or outer_kernel % 2 == 0:
            raise ConfigError(f"resnet generator: outer_kernel must be an odd number >= 1, got {outer_kernel}")
        if n_blocks < 0 or n_downsampling < 0:
            raise ConfigError("resnet generator: n_blocks and n_downsampling must be >= 0")
        self.size_multiple = 2**n_downsampling
        self.in_channels, self.out_channels, self.ngf, self.n_downsampling = (
            in_channels,
            out_channels,
            ngf,
            n_downsampling,
        )
        bias, sn = conv_bias(norm), spectral_norm
        stem: list[nn.Module] = [
            nn.ReflectionPad2d(outer_kernel // 2),
            maybe_spectral(nn.Conv2d(in_channels, ngf, outer_kernel, bias=bias), sn),
            norm_layer(norm, ngf),
            nn.ReLU(True),
        ]
        for i in range(n_downsampling):
            c = ngf * 2**i
            stem += [
                conv2d(c, 2 * c, 3, 2, 1, bias, sn, conv),
                norm_layer(norm, 2 * c),
                nn.ReLU(True),
            ]
        self.encoder = nn.Sequential(*stem)
        width = ngf * 2**n_downsampling
        self.blocks = nn.ModuleList(ResidualBlock(width, norm, dropout, sn, conv) for _ in range(n_blocks))
        head: list[nn.Module] = []
        for i in range(n_downsampling):
            c = width // 2**i
            head += [*upsample_conv(c, c // 2, upsample, 3, bias, sn, conv), norm_layer(norm, c // 2), nn.ReLU(True)]
        head += [nn.ReflectionPad2d(outer_kernel // 2), nn.Conv2d(ngf, out_channels, outer_kernel), nn.Tanh()]
        self.decoder = nn.Sequential(*head)

    def named_stages(self) -> list[tuple[str | None, Callable[[Any], Any]]]:
        # the stem is pad, conv, norm, ReLU; each downsampling and upsampling level ends in a ReLU
        named: list[tuple[str | None, Callable[[Any], Any]]] = []
        encoder = list(self.encoder)
        for i, layer in enumerate(encoder):
            name = "stem" if i == 3 else (f"down{(i - 3) // 3}" if i > 3 and (i - 3) % 3 == 0 else None)
            named.append((name, layer))
        for b, block in enumerate(self.blocks):
            steps = block.stages()
            named += [(None, step) for step in steps[:-1]] + [(f"block{b + 1}", steps[-1])]
        relus = [i for i, layer in enumerate(self.decoder) if isinstance(layer, nn.ReLU)]
        for i, layer in enumerate(self.decoder):
            name = f"up{relus.index(i) + 1}" if i in relus else ("output" if i == len(self.decoder) - 1 else None)
            named.append((name, layer))
        return named


@GENERATORS.register("unet")
class UnetGenerator(ImageGenerator):
    """U-Net with skip connections between mirrored levels, the pix2pix reference generator.

    ``num_downs`` levels each halve the resolution (8 levels reach 1×1 from 256×256). Inputs that are
    not a multiple of ``2**num_downs`` are padded internally and cropped back.
    """

    @staticmethod
    def normalises_per_sample(spec: Mapping[str, Any]) -> bool:
        """Whether one sample's output is independent of the rest of the batch (see ``GANModel``)."""
        return norm_is_per_sample(spec["norm"])

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        ngf: int = 64,
        num_downs: int = 8,
        norm: str = "batch",
        dropout: float = 0.5,
        upsample: str = "transpose",
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        if num_downs < 2:
            raise ConfigError("unet generator: num_downs must be >= 2")
        self.size_multiple = 2**num_downs
        self.in_channels, self.out_channels = in_channels, out_channels
        bias, sn = conv_bias(norm), spectral_norm
        widths = [ngf * min(2**i, 8) for i in range(num_downs)]
        innermost = num_downs - 1

        downs: list[nn.Module] = [maybe_spectral(nn.Conv2d(in_channels, widths[0], 4, 2, 1, bias=bias), sn)]
        for i in range(1, num_downs):
            layers = [nn.LeakyReLU(0.2), maybe_spectral(nn.Conv2d(widths[i - 1], widths[i], 4, 2, 1, bias=bias), sn)]
            if i != innermost:
                layers.append(norm_layer(norm, widths[i]))
            downs.append(nn.Sequential(*layers))
        self.downs = nn.ModuleList(downs)

        ups: list[nn.Module] = []
        for i in range(num_downs):
            c_in = widths[i] if i == innermost else 2 * widths[i]
            if i == 0:
                ups.append(
                    nn.Sequential(nn.ReLU(), *upsample_conv(c_in, out_channels, upsample, 4, True, False), nn.Tanh())
                )
                continue
            layers = [
                nn.ReLU(),
                *upsample_conv(c_in, widths[i - 1], upsample, 4, bias, sn),
                norm_layer(norm, widths[i - 1]),
            ]
            # as in the reference, the deep ngf*8 levels (not the innermost) use dropout as noise
            if dropout > 0 and 4 <= i < innermost:
                layers.append(nn.Dropout(dropout))
            ups.append(nn.Sequential(*layers))
        self.ups = nn.ModuleList(ups)
        self.widths = widths

    def feature_info(self) -> dict[str, dict[str, int]]:
        info = {"input": {"channels": self.in_channels, "reduction": 1}}
        for i, width in enumerate(self.widths):
            info[f"down{i + 1}"] = {"channels": width, "reduction": 2 ** (i + 1)}
        return info

    def forward_features(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """Encoder features of the padded input (the decoder's are not exposed)."""
        self.check_layers(layers)
        h = pad_to_multiple(x, self.size_multiple)[0]
        found = {"input": h}
        depth = max((int(name[4:]) for name in layers if name != "input"), default=0)
        for i, down in enumerate(self.downs[:depth]):
            h = down(h)
            found[f"down{i + 1}"] = h
        return {name: found[name] for name in layers}

    def body(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        h = x
        for down in self.downs:
            h = self.run_block(down, h)
            skips.append(h)
        h = self.run_block(self.ups[-1], skips[-1])
        for i in range(len(self.ups) - 2, -1, -1):
            h = self.run_block(self.ups[i], torch.cat([skips[i], h], dim=1))
        return h
