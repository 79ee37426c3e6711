"""The short contract every GAN model follows, and what the engine gives it.

A model builds its networks, performs one training step, and *declares* the rest:

* ``optimizer_groups()``: which optimiser trains which nets, at which learning rate, and whether
  those nets are averaged (EMA) and exported. Any number of groups: G and D for a translator, a
  third Q head for InfoGAN, an encoder MLP for CUT. The engine builds one optimiser, scheduler
  and (where asked) EMA per group and checkpoints all of them.
* ``training_step(batch, ctx)``: one full update. ``batch`` is a mapping of named tensors of any
  rank (images, class labels, noise, codes), already on the device. ``ctx.optimize(groups, loss)``
  backpropagates once and steps one or several groups.
* ``visuals(batch, nets)`` and ``export_info()``: what to draw and what to export.

The engine holds no per-model branches; it saves, logs and draws whatever a model declares.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch
from torch import nn

from ..errors import ConfigError
from ..registry import Registry, resolved_spec

MODELS: Registry[type[GANModel]] = Registry("model")


@dataclass(frozen=True)
class OptimGroup:
    """One optimiser's share of a model.

    ``nets``: the networks it trains, by name. ``lr``: the ``optim`` config key holding its
    learning rate (``lr_g``, ``lr_d``), so TTUR-style rates are a config change. ``averaged``:
    these nets get an EMA copy when ``engine.ema_decay`` > 0, used for samples and exports.
    """

    nets: Mapping[str, nn.Module]
    lr: str
    averaged: bool = False


class StepContext(Protocol):
    """What the engine lends a model for one training step."""

    step: int

    def autocast(self) -> AbstractContextManager:
        """Mixed-precision region for forward passes (a no-op when AMP is off)."""

    def optimize(self, groups: str | Sequence[str], loss: torch.Tensor) -> None:
        """Backward ``loss`` once, synchronise gradients across processes, step every optimiser
        in ``groups`` (each skipped by the grad scaler on fp16 overflow) and zero their gradients."""


class GANModel(nn.Module):
    #: the model's typed options (a dataclass); ``model:`` in an experiment YAML is checked against it
    Config: ClassVar[type]
    #: True for models that need aligned A/B pairs (pix2pix)
    requires_paired: ClassVar[bool] = False

    @classmethod
    def rebuild(cls, cfg: Any, stored: Mapping[str, Any]) -> GANModel:
        """The model of ``cfg`` for a checkpoint's model state ``stored`` (resume, export), which is
        loaded into it next. A model with frozen parts read from files at the start of training
        (CyCADA's segmenter) takes them from ``stored`` instead, so the run no longer needs them."""
        return cls(cfg)

    def optimizer_groups(self) -> dict[str, OptimGroup]:
        raise NotImplementedError

    def training_step(self, batch: Mapping[str, torch.Tensor], ctx: StepContext) -> dict[str, torch.Tensor]:
        """One full update of every group; returns detached scalar losses to log."""
        raise NotImplementedError

    @torch.no_grad()
    def visuals(self, batch: Mapping[str, torch.Tensor], nets: Mapping[str, nn.Module]) -> dict[str, torch.Tensor]:
        """Images (N×C×H×W in [-1, 1]) to draw in sample grids. ``nets`` holds every net of an
        averaged group: its EMA copy when there is one, else the live net."""
        raise NotImplementedError

    def export_info(self) -> dict[str, dict[str, Any]]:
        """Net name -> {"family": registry family (e.g. "generator"), "spec": architecture spec,
        "info": facts stored with the export}; an optional "parts": {submodule: net name} writes
        several of the model's nets as one file (a text sampler: its frozen text encoder and G)."""
        raise NotImplementedError

    def example_batch(self, shape: tuple[int, int, int, int]) -> dict[str, torch.Tensor]:
        """A random training batch of images of ``shape`` (N×3×H×W), for ``i2i bench train``: an
        image pair in [-1, 1] (translators); a model that trains on other inputs says which."""
        return {"A": torch.rand(shape) * 2 - 1, "B": torch.rand(shape) * 2 - 1}

    # --- derived from the declarations ---------------------------------------------------------

    def averaged_nets(self) -> dict[str, nn.Module]:
        """Nets of the groups declared ``averaged`` (generators, usually)."""
        return {name: net for g in self.optimizer_groups().values() if g.averaged for name, net in g.nets.items()}

    def all_nets(self) -> dict[str, nn.Module]:
        return {name: net for g in self.optimizer_groups().values() for name, net in g.nets.items()}


#: the name the first translators were written against
TranslationModel = GANModel


def normalises_per_sample(registry: Registry, spec: Mapping[str, Any]) -> bool:
    """True when a net's output for one image does not depend on the rest of the batch, as its
    class declares for this spec (``normalises_per_sample(spec)``, given the spec with every default
    filled in). Such a net can run several inputs in one call, which is faster than one call each,
    with the same result. A class that does not declare it, or answers other than True or False,
    is an error: guessing wrong would silently change what a model trains."""
    full = resolved_spec(registry, spec)
    declared = getattr(registry.get(full["name"]), "normalises_per_sample", None)
    if not callable(declared):
        raise ConfigError(f"{registry.family} '{full['name']}' does not declare normalises_per_sample(spec)")
    answer = declared(full)
    if not isinstance(answer, bool):
        raise ConfigError(
            f"{registry.family} '{full['name']}': normalises_per_sample returned {answer!r}, not True or False"
        )
    return answer


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


def noise_sampler_export(
    spec: Mapping[str, Any],
    model: str,
    noise_dim: int,
    data_key: str,
    classes: int = 0,
    code_dim: int = 0,
    **extra: Any,
) -> dict[str, dict[str, Any]]:
    """``export_info`` of a model whose generator ``G`` draws from noise (and a class label or
    codes): the facts ``translate.sampling.load_sampler`` reads, then the model's own ``extra``."""
    info = {
        "model": model,
        "classes": classes,
        "noise_dim": noise_dim,
        "code_dim": code_dim,
        "data_key": data_key,
        **extra,
    }
    return {"G": {"family": "sampler", "spec": spec, "info": info}}
