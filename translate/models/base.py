"""The short contract every translation model follows, and what the engine gives it.

A model builds its networks, performs one training step, and declares what it has: which nets
are generators (exported, EMA-averaged) and discriminators, which optimiser trains which nets, and
what images to show. The engine holds no per-model branches; it saves, logs and draws whatever a
model declares.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from typing import Any, ClassVar, Protocol

import torch
from torch import nn

from ..registry import Registry

MODELS: Registry[type["TranslationModel"]] = Registry("model")


class StepContext(Protocol):
    """What the engine lends a model for one training step."""

    step: int

    def autocast(self) -> AbstractContextManager:
        """Mixed-precision region for forward passes (a no-op when AMP is off)."""

    def optimize(self, group: str, loss: torch.Tensor) -> None:
        """Backward ``loss``, synchronise gradients across processes, step the ``group`` optimiser
        (skipped by the grad scaler on fp16 overflow) and zero its gradients."""


class TranslationModel(nn.Module):
    #: the model's typed options (a dataclass); ``model:`` in an experiment YAML is checked against it
    Config: ClassVar[type]
    #: True for models that need aligned A/B pairs (pix2pix)
    requires_paired: ClassVar[bool] = False

    def generators(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def discriminators(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def optimizer_groups(self) -> dict[str, list[nn.Module]]:
        """Optimiser name ("G", "D") -> the nets it trains; the engine reads lr_g / lr_d by name."""
        return {"G": list(self.generators().values()), "D": list(self.discriminators().values())}

    def training_step(self, batch: Mapping[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        """One full G+D update; returns detached scalar losses to log."""
        raise NotImplementedError

    @torch.no_grad()
    def visuals(self, batch: Mapping[str, torch.Tensor], generators: Mapping[str, nn.Module]) -> dict[str, torch.Tensor]:
        """Images to draw in sample grids, computed with ``generators`` (live or EMA copies)."""
        raise NotImplementedError

    def export_info(self) -> dict[str, dict[str, Any]]:
        """Generator name -> {"spec": architecture spec, "info": facts stored with the export}."""
        raise NotImplementedError


def normalises_per_sample(registry: Registry, spec: Mapping[str, Any]) -> bool:
    """True when a net's output for one image does not depend on the rest of the batch (any norm
    but batch norm). Such a net can run several inputs in one call, which is faster than one call
    each, with the same result."""
    from ..registry import resolved_spec

    return resolved_spec(registry, spec).get("norm", "none") != "batch"


def run_batched(net: nn.Module, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``net`` applied to each input, in one call on their concatenation."""
    return net(torch.cat(inputs)).split([x.shape[0] for x in inputs])


def discriminate_batched(net: nn.Module, *inputs: torch.Tensor) -> tuple[list[list[torch.Tensor]], ...]:
    """A discriminator applied to each input in one call; returns per-input feature lists."""
    out = net(torch.cat(inputs))
    sizes = [x.shape[0] for x in inputs]
    parts = [[[f.split(sizes)[i] for f in scale] for scale in out] for i in range(len(inputs))]
    return tuple(parts)


def set_requires_grad(nets: Iterable[nn.Module], flag: bool) -> None:
    """Freeze D while G is optimised: saves computing D's weight gradients nobody uses."""
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


def clip_weights(nets: Iterable[nn.Module], bound: float) -> None:
    with torch.no_grad():
        for net in nets:
            for p in net.parameters():
                p.clamp_(-bound, bound)
