"""Networks: generators and discriminators, built by name from a spec dict.

``build_generator({"name": "resnet", "n_blocks": 9})`` -> an ``nn.Module``. The spec dict is also
what an exported generator stores in its metadata, so it must contain only plain data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from ..registry import Registry
from . import (  # noqa: F401  (registers)
    began,
    discriminators,
    generators,
    label_maps,
    laplacian,
    progressive,
    reference,
    samplers,
    segmenters,
    text,
)
from .discriminators import DISCRIMINATORS
from .generators import GENERATORS, Generator, ImageGenerator
from .layers import init_weights
from .samplers import SAMPLER_CRITICS, SAMPLERS
from .segmenters import SEGMENTERS, Segmenter

#: network families an exported file can hold, each the registry that rebuilds its nets from the
#: architecture spec stored in the file; a new family (samplers, CUT's heads) registers here
NETWORK_FAMILIES: Registry[Registry] = Registry("network family")
NETWORK_FAMILIES.register("generator")(GENERATORS)
NETWORK_FAMILIES.register("discriminator")(DISCRIMINATORS)
NETWORK_FAMILIES.register("sampler")(SAMPLERS)
NETWORK_FAMILIES.register("sampler_discriminator")(SAMPLER_CRITICS)
NETWORK_FAMILIES.register("segmenter")(SEGMENTERS)

__all__ = [
    "DISCRIMINATORS",
    "GENERATORS",
    "NETWORK_FAMILIES",
    "SAMPLERS",
    "SAMPLER_CRITICS",
    "SEGMENTERS",
    "Segmenter",
    "Generator",
    "ImageGenerator",
    "build_discriminator",
    "build_generator",
    "build_network",
]


def _build(registry, spec: Mapping[str, Any], init: str, init_gain: float, **extra) -> nn.Module:
    net = registry.build(spec, **extra)
    return init_weights(net, init, init_gain)


def build_network(family: str, spec: Mapping[str, Any]) -> nn.Module:
    """A net of a registered family from its complete spec (e.g. one read from an export)."""
    return NETWORK_FAMILIES.get(family).build(spec)


def build_generator(spec: Mapping[str, Any], init: str = "normal", init_gain: float = 0.02) -> ImageGenerator:
    return _build(GENERATORS, spec, init, init_gain)


def build_discriminator(
    spec: Mapping[str, Any], in_channels: int, init: str = "normal", init_gain: float = 0.02
) -> nn.Module:
    return _build(DISCRIMINATORS, spec, init, init_gain, in_channels=in_channels)
