"""What a training run holds, and one optimisation step of it.

``build_runtime`` turns an experiment config into a ``Runtime``: the model on its device, one
optimiser, scheduler and (where asked) EMA per optimiser group the model declares, and the grad
scaler. ``train_step`` runs the model's step with an ``EngineStepContext``.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import ExperimentConfig
from ..cpu_memory import retain_freed_memory
from ..devices import AMP_HELP, autocast, resolve_amp, resolve_device
from ..distributed import DistEnv, average_gradients, broadcast_module
from ..ema import EMA
from ..errors import ConfigError
from ..models import GANModel, build_model

SCHEDULES = ("constant", "linear", "cosine", "poly", "onecycle")
OPTIMIZERS = ("adam", "adamw", "sgd")
#: the exponent of the "poly" schedule, (1 - step/total) ** 0.9, as DeepLab and its successors train
POLY_POWER = 0.9
#: the "onecycle" schedule's shape, torch's OneCycleLR defaults: a cosine warm-up over the first 10 %
#: from 1/25 of the rate, then a cosine decay to 1/(25 * 1e4) of it
ONECYCLE_WARMUP, ONECYCLE_START_DIV, ONECYCLE_END_DIV = 0.1, 25.0, 1e4
#: and its momentum (Adam's beta1, SGD's momentum), cycled against the rate: high at the start and
#: end, low at the peak rate
ONECYCLE_MOMENTUM_PEAK, ONECYCLE_MOMENTUM_REST = 0.85, 0.95


def select_device(spec: str, env: DistEnv) -> torch.device:
    """``engine.device`` resolved (see ``translate.devices``); an unnumbered GPU under torchrun is
    this process's own, ``cuda:LOCAL_RANK``."""
    device = resolve_device(spec)
    if device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", env.local_rank)
        torch.cuda.set_device(device)
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def lr_factor(step: int, total: int, schedule: str, constant_fraction: float) -> float:
    """Multiplier of the base learning rate at ``step`` of ``total``."""
    if schedule == "constant":
        return 1.0
    if schedule == "linear":
        # the reference's rule with steps for epochs: ``decay_start`` steps at the full rate, then
        # one equal decrement per step; the last step trains at 1/(decay steps + 1)
        decay_start = int(total * constant_fraction)
        return 1.0 - max(0, step + 1 - decay_start) / float(total - decay_start + 1)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
    if schedule == "poly":
        return (1.0 - min(step, total) / total) ** POLY_POWER
    if schedule == "onecycle":
        return onecycle_factor(step, total)
    raise ConfigError(f"unknown optim.schedule '{schedule}'; known: {', '.join(SCHEDULES)}")


def onecycle_factor(step: int, total: int) -> float:
    """torch's ``OneCycleLR`` learning rate (cosine annealing, two phases) as a multiplier of the
    peak rate; the phase ends are the same steps as there."""
    return _two_phase_cosine(step, total, 1.0 / ONECYCLE_START_DIV, 1.0, 1.0 / (ONECYCLE_START_DIV * ONECYCLE_END_DIV))


def onecycle_momentum(step: int, total: int) -> float:
    """torch's ``OneCycleLR`` momentum at ``step``: from 0.95 down to 0.85 at the peak rate, back up to 0.95."""
    return _two_phase_cosine(step, total, ONECYCLE_MOMENTUM_REST, ONECYCLE_MOMENTUM_PEAK, ONECYCLE_MOMENTUM_REST)


def _two_phase_cosine(step: int, total: int, start: float, middle: float, end: float) -> float:
    """Cosine from ``start`` to ``middle`` over the warm-up, then from ``middle`` to ``end``."""
    warmup_end = ONECYCLE_WARMUP * total - 1
    if step <= warmup_end:
        low, high, fraction = start, middle, step / warmup_end if warmup_end > 0 else 1.0
    else:
        low, high, fraction = middle, end, min(1.0, (step - warmup_end) / max(1e-12, total - 1 - warmup_end))
    return high + (low - high) / 2.0 * (1.0 + math.cos(math.pi * fraction))


def cycle_momentum(rt: Runtime) -> None:
    """With the ``onecycle`` schedule, set every optimiser's momentum for the current step as torch's
    ``OneCycleLR`` does (it lives in the optimisers' state, so a resumed run continues with it)."""
    if rt.cfg.optim.schedule != "onecycle":
        return
    momentum = onecycle_momentum(rt.step, rt.total_steps)
    for optimizer in rt.optimizers.values():
        for group in optimizer.param_groups:
            if "betas" in group:
                group["betas"] = (momentum, group["betas"][1])
            elif group.get("momentum", 0) > 0:
                group["momentum"] = momentum


def build_optimizer(cfg: ExperimentConfig, params: list[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    """The optimiser ``optim.optimizer`` names for one group: Adam (the GAN default), AdamW (both
    with ``optim.betas``) or SGD (``optim.momentum``, ``optim.nesterov``); ``optim.weight_decay``
    for each (decoupled in AdamW, L2 in the others)."""
    opt = cfg.optim
    if opt.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, betas=tuple(opt.betas), weight_decay=opt.weight_decay)
    if opt.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=tuple(opt.betas), weight_decay=opt.weight_decay)
    if opt.optimizer == "sgd":
        if opt.nesterov and opt.momentum <= 0:
            raise ConfigError(f"optim.nesterov needs optim.momentum > 0, got {opt.momentum}")
        return torch.optim.SGD(
            params, lr=lr, momentum=opt.momentum, nesterov=opt.nesterov, weight_decay=opt.weight_decay
        )
    raise ConfigError(f"unknown optim.optimizer '{opt.optimizer}'; known: {', '.join(OPTIMIZERS)}")


@dataclass
class Runtime:
    """Everything a training run holds; ``engine.state`` turns it into a complete checkpoint."""

    cfg: ExperimentConfig
    env: DistEnv
    device: torch.device
    model: GANModel
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, torch.optim.lr_scheduler.LambdaLR]
    scaler: torch.amp.GradScaler
    group_params: dict[str, list[nn.Parameter]]
    total_steps: int
    ema: EMA | None = None
    step: int = 0
    amp: str = "off"  # the precision engine.amp resolved to on this device ("auto" never stays)

    def sampling_nets(self) -> dict[str, nn.Module]:
        """The nets of averaged groups as samples and exports should use them: EMA copies if any."""
        return dict(self.ema.copies) if self.ema is not None else self.model.averaged_nets()


class EngineStepContext:
    """What a model's ``training_step`` uses to run forward passes and optimiser steps."""

    def __init__(self, runtime: Runtime) -> None:
        self.rt = runtime
        self.step = runtime.step

    def autocast(self) -> contextlib.AbstractContextManager:
        return autocast(self.rt.device, self.rt.amp)

    def optimize(self, groups: str | Sequence[str], loss: torch.Tensor) -> None:
        rt = self.rt
        names = [groups] if isinstance(groups, str) else list(groups)
        unknown = [g for g in names if g not in rt.optimizers]
        if unknown:
            raise KeyError(f"optimiser group(s) {unknown} not declared; the model declares {sorted(rt.optimizers)}")
        rt.scaler.scale(loss).backward()
        average_gradients([p for g in names for p in rt.group_params[g]], rt.env)
        for g in names:
            # with fp16 the scaler skips this optimiser's step if its gradients overflowed
            rt.scaler.step(rt.optimizers[g])
            rt.optimizers[g].zero_grad(set_to_none=True)


def prepare_nets(model: GANModel, cfg: ExperimentConfig) -> None:
    """Apply the engine's speed/memory options to the model's networks."""
    eng = cfg.engine
    nets = model.all_nets()
    if eng.grad_checkpointing:
        able = [net for net in nets.values() if hasattr(net, "set_grad_checkpointing")]
        if not able:
            raise ConfigError("engine.grad_checkpointing is on but none of this model's nets supports it")
        for net in able:
            net.set_grad_checkpointing(True)
    if eng.channels_last:
        model.to(memory_format=torch.channels_last)
    if eng.compile:
        for net in nets.values():
            net.compile()


def learning_rate(cfg: ExperimentConfig, group: str, key: str) -> float:
    if not hasattr(cfg.optim, key) or not key.startswith("lr"):
        raise ConfigError(f"optimiser group '{group}' reads its learning rate from optim.{key}, which does not exist")
    return float(getattr(cfg.optim, key))


def build_runtime(
    cfg: ExperimentConfig, env: DistEnv, steps_per_epoch: int, stored_model: Mapping[str, Any] | None = None
) -> Runtime:
    """Build the model, optimisers, schedules and scaler for ``cfg`` (no data, no resume).
    ``stored_model``: the model state of the checkpoint the run will resume from (see ``GANModel.rebuild``)."""
    eng, opt = cfg.engine, cfg.optim
    device = select_device(eng.device, env)
    try:
        amp = resolve_amp(eng.amp, device)
    except ConfigError:
        raise ConfigError(f"engine.amp must be one of {AMP_HELP}; got '{eng.amp}'") from None
    retain_freed_memory(device)  # CPU steps reuse freed buffers instead of faulting in fresh pages
    if eng.deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    seed_everything(eng.seed)  # identical initial weights on every rank
    model = build_model(cfg.model, stored_model).to(device)
    broadcast_module(model, env)
    if eng.ema_decay < 0:
        raise ConfigError(f"engine.ema_decay must be in (0, 1), or 0 for no EMA; got {eng.ema_decay}")
    ema = EMA(model.averaged_nets(), eng.ema_decay) if eng.ema_decay > 0 else None
    prepare_nets(model, cfg)

    optimizers, group_params = {}, {}
    for name, group in model.optimizer_groups().items():
        params = [p for net in group.nets.values() for p in net.parameters()]
        group_params[name] = params
        optimizers[name] = build_optimizer(cfg, params, learning_rate(cfg, name, group.lr))
    total = opt.max_steps or (opt.epochs_constant + opt.epochs_decay) * steps_per_epoch
    if total <= 0:
        raise ConfigError("training has no steps: set optim.max_steps or a positive epoch count")
    constant_fraction = opt.epochs_constant / max(1, opt.epochs_constant + opt.epochs_decay)
    lr_factor(0, total, opt.schedule, constant_fraction)  # validates the schedule name
    schedulers = {
        g: torch.optim.lr_scheduler.LambdaLR(o, lambda s: lr_factor(s, total, opt.schedule, constant_fraction))
        for g, o in optimizers.items()
    }
    scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
    # each rank draws its own dropout/augmentation randomness from here on
    seed_everything(eng.seed + 7919 * env.rank)
    runtime = Runtime(cfg, env, device, model, optimizers, schedulers, scaler, group_params, total, ema, amp=amp)
    cycle_momentum(runtime)
    return runtime


def move_batch(batch: Mapping[str, Any], device: torch.device, channels_last: bool) -> dict[str, Any]:
    """Every tensor of ``batch`` (any rank: images, labels, noise, codes) on ``device``; images
    (4-D) in channels_last when asked. Non-tensors (paths) pass through."""
    out = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor):
            fmt = torch.channels_last if channels_last and value.ndim == 4 else torch.preserve_format
            value = value.to(device, non_blocking=True, memory_format=fmt)
        out[key] = value
    return out


def train_step(rt: Runtime, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """One optimisation step of every optimiser, then schedules and EMA advance."""
    rt.model.train()
    logs = rt.model.training_step(batch, EngineStepContext(rt))
    rt.scaler.update()
    for scheduler in rt.schedulers.values():
        scheduler.step()
    if rt.ema is not None:
        rt.ema.update(rt.model.averaged_nets())
    rt.step += 1
    cycle_momentum(rt)
    return logs
