"""Sampler networks: generators that map noise (plus a class label and latent codes) to data, and
the discriminators that judge them.

* ``mlp``: the original GAN's fully connected nets, for points (the 2-D ring) or flat images.
* ``dcgan``: Radford et al.'s all-convolutional nets for 32² or 64² images of any channel count,
  upsampling by transposed convs or by resize + conv (no checkerboard artefacts).

Conditioning on a class label works in three ways, chosen on the discriminator:
``concat`` (cGAN: a one-hot label is concatenated to D's input), ``projection`` (Miyato & Koyama:
the inner product of a class embedding with D's features is added to its logit) and ``auxiliary``
(AC-GAN: D also classifies its input). Generators always take the one-hot label concatenated to
the noise. InfoGAN codes (one-hot categorical and continuous) are further generator inputs;
the discriminator exposes its penultimate features so a Q head can predict them.

A discriminator returns a ``Judgement``: its features, its logit and (AC-GAN) class logits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..registry import Registry
from .generators import Generator
from .layers import NETWORK_DECLARATIONS

SAMPLERS: Registry[type[nn.Module]] = Registry("sampler", required=NETWORK_DECLARATIONS)
SAMPLER_CRITICS: Registry[type[nn.Module]] = Registry("sampler discriminator", required=NETWORK_DECLARATIONS)

CONDITIONING = ("none", "concat", "projection", "auxiliary")
UPSAMPLING = ("transpose", "resize")


class Judgement(NamedTuple):
    features: torch.Tensor  # N×F, the penultimate layer (feature matching, InfoGAN's Q head)
    logit: torch.Tensor  # N×1, real vs fake
    class_logits: torch.Tensor | None  # N×classes for AC-GAN, else None


class SamplerGenerator(Generator):
    """(noise, label, code) -> a sample. The three inputs are concatenated into one latent vector;
    ``label`` is an int64 class index (one-hot encoded here), ``code`` a float vector of
    ``code_dim`` values (InfoGAN's one-hot categorical codes followed by continuous ones)."""

    def __init__(self, noise_dim: int, classes: int, code_dim: int, out_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.noise_dim, self.classes, self.code_dim = noise_dim, classes, code_dim
        self.out_shape = tuple(out_shape)

    @property
    def latent_dim(self) -> int:
        return self.noise_dim + self.classes + self.code_dim

    def latent(self, noise: torch.Tensor, label: torch.Tensor | None, code: torch.Tensor | None) -> torch.Tensor:
        parts = [noise]
        if self.classes:
            if label is None:
                raise ConfigError(f"this sampler is conditioned on {self.classes} classes: give a label")
            parts.append(F.one_hot(label.long(), self.classes).to(noise.dtype))
        if self.code_dim:
            if code is None or code.shape[-1] != self.code_dim:
                got = None if code is None else code.shape[-1]
                raise ConfigError(f"this sampler takes a code of {self.code_dim} values, got {got}")
            parts.append(code.to(noise.dtype))
        return torch.cat(parts, 1)

    def forward(self, noise: torch.Tensor, label: torch.Tensor | None = None, code: torch.Tensor | None = None):
        return self.decode(self.latent(noise, label, code))

    def decode(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


def _check(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise ConfigError(f"{what} must be one of {', '.join(allowed)}, got '{value}'")
    return value


def minibatch_stddev(x: torch.Tensor) -> torch.Tensor:
    """Karras et al.'s minibatch standard deviation: the mean over features of the per-feature
    standard deviation across the batch, appended as one more feature (channel). A collapsed G
    produces near-identical samples, whose low spread D can then see."""
    spread = x.float().std(dim=0, unbiased=False).mean().to(x.dtype)
    extra = spread.expand(x.shape[0], 1, *x.shape[2:])
    return torch.cat([x, extra], 1)


def _norm1d(norm: str, width: int) -> nn.Module:
    return {"batch": lambda: nn.BatchNorm1d(width), "layer": lambda: nn.LayerNorm(width), "none": nn.Identity}[
        _check(norm, ("batch", "layer", "none"), "norm")
    ]()


def _sampler_norm_per_sample(norm: str) -> bool:
    """Whether ``_norm1d``/``_norm2d`` of ``norm`` normalise each sample alone (all but batch norm)."""
    return _check(norm, ("batch", "layer", "none"), "norm") != "batch"


def _norm2d(norm: str, channels: int) -> nn.Module:
    factories = {
        "batch": lambda: nn.BatchNorm2d(channels),
        # per-sample norm: the one WGAN-GP's critic may use (its penalty is per sample)
        "layer": lambda: nn.GroupNorm(1, channels),
        "none": nn.Identity,
    }
    return factories[_check(norm, tuple(factories), "norm")]()


# --- MLP ------------------------------------------------------------------------------------


@SAMPLERS.register("mlp")
class MLPSampler(SamplerGenerator):
    """Fully connected generator; ``out_shape`` [2] for points, [C, H, W] for small images."""

    @staticmethod
    def normalises_per_sample(spec: Mapping[str, Any]) -> bool:
        """Whether one sample's output is independent of the rest of the batch (see ``GANModel``)."""
        return _sampler_norm_per_sample(spec["norm"])

    def __init__(
        self,
        noise_dim: int = 2,
        out_shape: list[int] | tuple[int, ...] = (2,),
        width: int = 128,
        depth: int = 3,
        classes: int = 0,
        code_dim: int = 0,
        norm: str = "none",
        tanh: bool = False,
    ) -> None:
        super().__init__(noise_dim, classes, code_dim, tuple(out_shape))
        layers, size = [], self.latent_dim
        for _ in range(depth):
            layers += [nn.Linear(size, width), _norm1d(norm, width), nn.ReLU(inplace=True)]
            size = width
        out = int(torch.tensor(self.out_shape).prod())
        layers.append(nn.Linear(size, out))
        if tanh:  # images live in [-1, 1]; points are unbounded
            layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, *self.out_shape)


class _ConditionalHead(nn.Module):
    """The end every sampler discriminator shares: logit, projection term, auxiliary classifier."""

    def __init__(self, features: int, classes: int, conditioning: str) -> None:
        super().__init__()
        self.conditioning = _check(conditioning, CONDITIONING, "conditioning")
        if conditioning != "none" and classes < 2:
            raise ConfigError(f"conditioning '{conditioning}' needs classes >= 2, got {classes}")
        self.classes = classes
        self.judge = nn.Linear(features, 1)
        self.embed = nn.Embedding(classes, features) if conditioning == "projection" else None
        self.classify = nn.Linear(features, classes) if conditioning == "auxiliary" else None

    def forward(self, h: torch.Tensor, label: torch.Tensor | None) -> Judgement:
        logit = self.judge(h)
        if self.embed is not None:
            logit = logit + (self.embed(label) * h).sum(1, keepdim=True)
        class_logits = self.classify(h) if self.classify is not None else None
        return Judgement(h, logit, class_logits)

    def needs_label(self, label: torch.Tensor | None) -> None:
        if self.conditioning in ("concat", "projection") and label is None:
            raise ConfigError(f"a '{self.conditioning}' discriminator needs the label")


@SAMPLER_CRITICS.register("mlp")
class MLPDiscriminator(nn.Module):
    """Fully connected critic for points or small images, with the shared conditional head."""

    @staticmethod
    def normalises_per_sample(spec: Mapping[str, Any]) -> bool:
        """Whether one sample's output is independent of the rest of the batch (see ``GANModel``):
        not with batch norm, nor with the minibatch spread, which is a statistic of the batch."""
        return _sampler_norm_per_sample(spec["norm"]) and not spec["minibatch_stddev"]

    def __init__(
        self,
        in_shape: list[int] | tuple[int, ...] = (2,),
        width: int = 128,
        depth: int = 3,
        classes: int = 0,
        conditioning: str = "none",
        minibatch_stddev: bool = False,
        norm: str = "none",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_size = int(torch.tensor(list(in_shape)).prod())
        self.head = _ConditionalHead(width, classes, conditioning)
        self.stddev = minibatch_stddev
        size = self.in_size + (classes if conditioning == "concat" else 0)
        layers = []
        for i in range(depth):
            if self.stddev and i == depth - 1:
                size += 1
            block = [nn.Linear(size, width), _norm1d(norm, width), nn.LeakyReLU(0.2, inplace=True)]
            if dropout:
                block.append(nn.Dropout(dropout))
            layers.append(nn.Sequential(*block))
            size = width
        self.blocks = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None) -> Judgement:
        self.head.needs_label(label)
        h = x.flatten(1)
        if self.head.conditioning == "concat":
            h = torch.cat([h, F.one_hot(label, self.head.classes).to(h.dtype)], 1)
        for i, block in enumerate(self.blocks):
            if self.stddev and i == len(self.blocks) - 1:
                h = minibatch_stddev(h[:, :, None, None])[:, :, 0, 0]
            h = block(h)
        return self.head(h, label)


# --- DCGAN ----------------------------------------------------------------------------------


def _doublings(image_size: int) -> int:
    if image_size not in (32, 64):
        raise ConfigError(f"DCGAN nets take 32 or 64 pixel images, got image_size={image_size}")
    return {32: 3, 64: 4}[image_size]


@SAMPLERS.register("dcgan")
class DCGANSampler(SamplerGenerator):
    """Latent -> 4×4×(width·2^k) -> doubled k times -> image_size² × channels, tanh.
    ``upsample``: ``transpose`` (stride-2 transposed convs, the paper) or ``resize`` (nearest
    resize then a 3×3 conv, which avoids checkerboard artefacts)."""

    @staticmethod
    def normalises_per_sample(spec: Mapping[str, Any]) -> bool:
        """Whether one sample's output is independent of the rest of the batch (see ``GANModel``)."""
        return _sampler_norm_per_sample(spec["norm"])

    def __init__(
        self,
        noise_dim: int = 64,
        image_size: int = 32,
        channels: int = 1,
        width: int = 32,
        classes: int = 0,
        code_dim: int = 0,
        upsample: str = "transpose",
        norm: str = "batch",
    ) -> None:
        super().__init__(noise_dim, classes, code_dim, (channels, image_size, image_size))
        _check(upsample, UPSAMPLING, "upsample")
        k = _doublings(image_size)
        self.start = width * 2 ** (k - 1)
        self.project = nn.Sequential(
            nn.Linear(self.latent_dim, self.start * 16),
            nn.Unflatten(1, (self.start, 4, 4)),
            _norm2d(norm, self.start),
            nn.ReLU(inplace=True),
        )
        blocks, ch = [], self.start
        for i in range(k):
            last = i == k - 1
            out = channels if last else ch // 2
            if upsample == "transpose":
                conv = nn.ConvTranspose2d(ch, out, 4, 2, 1, bias=last or norm == "none")
            else:
                conv = nn.Sequential(
                    nn.Upsample(scale_factor=2, mode="nearest"),
                    nn.Conv2d(ch, out, 3, 1, 1, bias=last or norm == "none"),
                )
            blocks.append(
                nn.Sequential(conv, nn.Tanh())
                if last
                else nn.Sequential(conv, _norm2d(norm, out), nn.ReLU(inplace=True))
            )
            ch = out
        self.blocks = nn.ModuleList(blocks)

    def feature_info(self) -> dict[str, dict[str, int]]:
        info, ch, size = {}, self.start, 4
        for i in range(len(self.blocks)):
            ch, size = (self.out_shape[0] if i == len(self.blocks) - 1 else ch // 2), size * 2
            info[f"up{i}"] = {"channels": ch, "reduction": self.out_shape[1] // size}
        return info

    def forward_features(self, latent: torch.Tensor, layers) -> dict[str, torch.Tensor]:
        """Named features for an already concatenated latent (see ``latent``)."""
        self.check_layers(layers)
        out, h = {}, self.project(latent)
        for i, block in enumerate(self.blocks):
            h = self.run_block(block, h)
            if f"up{i}" in layers:
                out[f"up{i}"] = h
            if len(out) == len(set(layers)):
                break
        return out

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = self.project(z)
        for block in self.blocks:
            h = self.run_block(block, h)
        return h


@SAMPLER_CRITICS.register("dcgan")
class DCGANDiscriminator(nn.Module):
    """Strided 4×4 convs with LeakyReLU halving image_size² down to 4×4, then the shared head.
    No norm on the first layer (DCGAN); ``norm: layer`` or ``none`` for WGAN-GP critics."""

    @staticmethod
    def normalises_per_sample(spec: Mapping[str, Any]) -> bool:
        """Whether one sample's output is independent of the rest of the batch (see ``GANModel``):
        not with batch norm, nor with the minibatch spread, which is a statistic of the batch."""
        return _sampler_norm_per_sample(spec["norm"]) and not spec["minibatch_stddev"]

    def __init__(
        self,
        image_size: int = 32,
        channels: int = 1,
        width: int = 32,
        classes: int = 0,
        conditioning: str = "none",
        minibatch_stddev: bool = False,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        k = _doublings(image_size)
        self.head = _ConditionalHead(width * 2 ** (k - 1), classes, conditioning)
        self.stddev = minibatch_stddev
        ch = channels + (classes if conditioning == "concat" else 0)
        layers = []
        for i in range(k):
            out = width * 2**i
            layers += [nn.Conv2d(ch, out, 4, 2, 1, bias=i == 0 or norm == "none")]
            layers += [nn.Identity() if i == 0 else _norm2d(norm, out), nn.LeakyReLU(0.2, inplace=True)]
            ch = out
        self.body = nn.Sequential(*layers)
        self.final = nn.Conv2d(ch + int(minibatch_stddev), ch, 4, 1, 0)  # 4×4 -> 1×1 features

    def forward(self, x: torch.Tensor, label: torch.Tensor | None = None) -> Judgement:
        self.head.needs_label(label)
        if self.head.conditioning == "concat":
            maps = F.one_hot(label, self.head.classes).to(x.dtype)[:, :, None, None]
            x = torch.cat([x, maps.expand(-1, -1, *x.shape[2:])], 1)
        h = self.body(x)
        if self.stddev:
            h = minibatch_stddev(h)
        h = F.leaky_relu(self.final(h), 0.2).flatten(1)
        return self.head(h, label)
