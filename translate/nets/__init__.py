"""Networks: generators and discriminators, built by name from a spec dict.

``build_generator({"name": "resnet", "n_blocks": 9})`` -> an ``nn.Module``. The spec dict is also
what an exported generator stores in its metadata, so it must contain only plain data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from . import discriminators, generators  # noqa: F401  (fills the registries)
from .discriminators import DISCRIMINATORS
from .generators import GENERATORS, Generator
from .layers import init_weights

__all__ = ["GENERATORS", "DISCRIMINATORS", "Generator", "build_generator", "build_discriminator"]


def _build(registry, spec: Mapping[str, Any], init: str, init_gain: float, **extra) -> nn.Module:
    net = registry.build(spec, **extra)
    return init_weights(net, init, init_gain)


def build_generator(spec: Mapping[str, Any], init: str = "normal", init_gain: float = 0.02) -> Generator:
    return _build(GENERATORS, spec, init, init_gain)


def build_discriminator(
    spec: Mapping[str, Any], in_channels: int, init: str = "normal", init_gain: float = 0.02
) -> nn.Module:
    return _build(DISCRIMINATORS, spec, init, init_gain, in_channels=in_channels)
