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

SCHEDULES = ("constant", "linear", "cosine")


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
    raise ConfigError(f"unknown optim.schedule '{schedule}'; known: {', '.join(SCHEDULES)}")


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
        optimizers[name] = torch.optim.Adam(params, lr=learning_rate(cfg, name, group.lr), betas=tuple(opt.betas))
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
    return Runtime(cfg, env, device, model, optimizers, schedulers, scaler, group_params, total, ema, amp=amp)


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
    return logs
