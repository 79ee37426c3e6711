"""The one training loop every model shares.

The engine owns everything that is not specific to a model: device and precision, gradient
checkpointing, channels_last, ``torch.compile``, multi-process gradient averaging, learning-rate
schedules, EMA, the data order, logging, sample grids, and complete, atomic checkpoints from which
a run resumes exactly. Models only implement one training step (see ``models/base.py``).
"""

from __future__ import annotations

import contextlib
import math
import random
import signal
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn
from torch.utils.data import DataLoader

from . import cpu_memory, io
from .config import ExperimentConfig, config_from_dict, to_yaml
from .data import EpochSampler, TranslationDataset, build_dataset
from .distributed import (
    DistEnv,
    all_gather_objects,
    all_reduce_mean,
    any_rank,
    average_gradients,
    barrier,
    broadcast_module,
    init_distributed,
    shutdown,
)
from .ema import EMA
from .errors import CheckpointError, ConfigError
from .models import MODELS, TranslationModel, build_model
from .tracking import MetricsLog, save_grid, visuals_grid

AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}
SCHEDULES = ("constant", "linear", "cosine")


# --- runtime set-up ---------------------------------------------------------------------------


def device_spec(spec: str) -> str:
    """``auto`` resolved to ``cuda`` when a GPU is present, else ``cpu``; other specs unchanged."""
    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return spec


def select_device(spec: str, env: DistEnv) -> torch.device:
    device = torch.device(device_spec(spec))
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("engine.device asks for CUDA but no GPU is available")
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
        decay_start = int(total * constant_fraction)
        return 1.0 - max(0, step - decay_start) / float(total - decay_start + 1)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
    raise ConfigError(f"unknown optim.schedule '{schedule}'; known: {', '.join(SCHEDULES)}")


class EngineStepContext:
    """What a model's ``training_step`` uses to run forward passes and optimiser steps."""

    def __init__(self, runtime: "Runtime") -> None:
        self.rt = runtime
        self.step = runtime.step

    def autocast(self) -> contextlib.AbstractContextManager:
        dtype = AMP_DTYPES[self.rt.cfg.engine.amp]
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.rt.device.type, dtype=dtype)

    def optimize(self, group: str, loss: torch.Tensor) -> None:
        rt = self.rt
        optimizer = rt.optimizers[group]
        rt.scaler.scale(loss).backward()
        average_gradients(rt.group_params[group], rt.env)
        # with fp16 the scaler skips this optimiser's step if its gradients overflowed
        rt.scaler.step(optimizer)
        optimizer.zero_grad(set_to_none=True)


@dataclass
class Runtime:
    """Everything a training run holds; ``state_dict`` of it is a complete checkpoint."""

    cfg: ExperimentConfig
    env: DistEnv
    device: torch.device
    model: TranslationModel
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, torch.optim.lr_scheduler.LambdaLR]
    scaler: torch.amp.GradScaler
    group_params: dict[str, list[nn.Parameter]]
    total_steps: int
    ema: EMA | None = None
    step: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def state_dict(self, per_rank: list[dict]) -> dict[str, Any]:
        return {
            "step": self.step,
            "total_steps": self.total_steps,
            "model": self.model.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema else None,
            "per_rank": per_rank,
            "config": OmegaConf.to_container(OmegaConf.structured(self.cfg)),
        }

    def load_state_dict(self, state: Mapping[str, Any], source: str) -> None:
        missing = sorted({"step", "model", "optimizers", "schedulers", "scaler", "per_rank"} - set(state))
        if missing:
            raise CheckpointError(f"{source} is not a complete training checkpoint of this version (no {', '.join(missing)})")
        io.load_state_strict(self.model, state["model"], source)
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        for k, s in self.schedulers.items():
            s.load_state_dict(state["schedulers"][k])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None:
            if state.get("ema") is None:
                raise CheckpointError(f"{source} has no EMA weights but engine.ema_decay > 0")
            self.ema.load_state_dict(state["ema"])
        self.step = int(state["step"])
        per_rank = state["per_rank"]
        # each rank continues with its own random streams and history pools when the process
        # count is unchanged; otherwise every rank keeps rank 0's pools and its fresh seeds
        if len(per_rank) == self.env.world:
            own = per_rank[self.env.rank]
            set_rng_state(own["rng"])
            self.model.load_state_dict(own["extra"], strict=False)


def rank_local_state(model: nn.Module) -> dict[str, Any]:
    """What differs between ranks: RNG states and the models' extra state (e.g. image pools)."""
    extra = {k: v for k, v in model.state_dict().items() if k.endswith("_extra_state")}
    return {"rng": rng_state(), "extra": extra}


def rng_state() -> dict[str, Any]:
    _, numpy_keys, numpy_pos, *_ = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": numpy_keys.tolist() + [int(numpy_pos)],
        "python": list(random.getstate()[1]),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    keys = np.array(state["numpy"][:-1], dtype=np.uint32)
    np.random.set_state(("MT19937", keys, int(state["numpy"][-1]), 0, 0.0))
    random.setstate((3, tuple(state["python"]), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def prepare_nets(model: TranslationModel, cfg: ExperimentConfig) -> None:
    """Apply the engine's speed/memory options to the model's networks."""
    eng = cfg.engine
    if eng.grad_checkpointing:
        for net in model.generators().values():
            net.set_grad_checkpointing(True)
    if eng.channels_last:
        model.to(memory_format=torch.channels_last)
    if eng.compile:
        for net in [*model.generators().values(), *model.discriminators().values()]:
            net.compile()


def build_runtime(cfg: ExperimentConfig, env: DistEnv, steps_per_epoch: int) -> Runtime:
    """Build the model, optimisers, schedules and scaler for ``cfg`` (no data, no resume)."""
    eng, opt = cfg.engine, cfg.optim
    if eng.amp not in AMP_DTYPES:
        raise ConfigError(f"engine.amp must be one of {', '.join(AMP_DTYPES)}, got '{eng.amp}'")
    device = select_device(eng.device, env)
    cpu_memory.retain_freed_memory(device)  # CPU steps reuse freed buffers instead of faulting in pages
    if eng.deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    seed_everything(eng.seed)  # identical initial weights on every rank
    model = build_model(cfg.model).to(device)
    broadcast_module(model, env)
    ema = EMA(model.generators(), eng.ema_decay) if eng.ema_decay > 0 else None
    prepare_nets(model, cfg)

    lrs = {"G": opt.lr_g, "D": opt.lr_d}
    optimizers, group_params = {}, {}
    for group, nets in model.optimizer_groups().items():
        params = [p for net in nets for p in net.parameters()]
        group_params[group] = params
        optimizers[group] = torch.optim.Adam(params, lr=lrs[group], betas=tuple(opt.betas))
    total = opt.max_steps or (opt.epochs_constant + opt.epochs_decay) * steps_per_epoch
    if total <= 0:
        raise ConfigError("training has no steps: set optim.max_steps or a positive epoch count")
    constant_fraction = opt.epochs_constant / max(1, opt.epochs_constant + opt.epochs_decay)
    lr_factor(0, total, opt.schedule, constant_fraction)  # validates the schedule name
    schedulers = {
        g: torch.optim.lr_scheduler.LambdaLR(o, lambda s: lr_factor(s, total, opt.schedule, constant_fraction))
        for g, o in optimizers.items()
    }
    scaler = torch.amp.GradScaler(device.type, enabled=eng.amp == "fp16")
    # each rank draws its own dropout/augmentation randomness from here on
    seed_everything(eng.seed + 7919 * env.rank)
    return Runtime(cfg, env, device, model, optimizers, schedulers, scaler, group_params, total, ema)


def move_batch(batch: Mapping[str, Any], device: torch.device, channels_last: bool) -> dict[str, Any]:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return {
        k: v.to(device, non_blocking=True, memory_format=fmt) if isinstance(v, torch.Tensor) and v.ndim == 4 else v
        for k, v in batch.items()
    }


def train_step(rt: Runtime, batch: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """One optimisation step of every optimiser, then schedules and EMA advance."""
    rt.model.train()
    logs = rt.model.training_step(batch, EngineStepContext(rt))
    rt.scaler.update()
    for scheduler in rt.schedulers.values():
        scheduler.step()
    if rt.ema is not None:
        rt.ema.update(rt.model.generators())
    rt.step += 1
    return logs


# --- data -----------------------------------------------------------------------------------


def steps_per_epoch(dataset: TranslationDataset, batch_size: int, env: DistEnv) -> int:
    per_rank = -(-len(dataset) // env.world)
    steps = per_rank // batch_size
    if steps == 0:
        raise ConfigError(
            f"the dataset has {len(dataset)} samples, fewer than batch_size {batch_size} × {env.world} process(es)"
        )
    return steps


def batches(rt: Runtime, dataset: TranslationDataset, per_epoch: int) -> Iterator[dict[str, Any]]:
    """Batches from the current step on; a resumed run continues mid-epoch where it stopped."""
    cfg = rt.cfg
    while True:
        epoch, position = divmod(rt.step, per_epoch)
        sampler = EpochSampler(
            len(dataset), cfg.engine.seed, epoch, rt.env.rank, rt.env.world, skip=position * cfg.data.batch_size
        )
        loader = DataLoader(
            dataset,
            batch_size=cfg.data.batch_size,
            sampler=sampler,
            num_workers=cfg.data.num_workers,
            drop_last=True,
            pin_memory=rt.device.type == "cuda",
            # an own generator keeps the loader from drawing on the global RNG, which would make
            # a resumed run diverge from an uninterrupted one
            generator=torch.Generator().manual_seed(cfg.engine.seed + epoch),
        )
        for batch in loader:
            yield move_batch(batch, rt.device, cfg.engine.channels_last)


def fixed_sample_batch(dataset: TranslationDataset, count: int) -> dict[str, Any]:
    from torch.utils.data import default_collate

    return default_collate([dataset[(i, i)] for i in range(min(count, len(dataset)))])


# --- checkpoints and exports ----------------------------------------------------------------


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def samples(self) -> Path:
        return self.root / "samples"

    @property
    def exports(self) -> Path:
        return self.root / "export"

    def checkpoint(self, step: int) -> Path:
        return self.checkpoints / f"ckpt_{step:08d}.pt"


def save_training_state(rt: Runtime, paths: RunPaths, keep: int = 2) -> Path | None:
    """Collective: every rank contributes its local state; rank 0 writes the file."""
    per_rank = all_gather_objects(rank_local_state(rt.model), rt.env)
    path = None
    if rt.env.is_main:
        path = io.save_checkpoint(paths.checkpoint(rt.step), rt.state_dict(per_rank))
        io.prune_checkpoints(paths.checkpoints, keep)
    barrier(rt.env)
    return path


def resolve_resume(cfg: ExperimentConfig, paths: RunPaths) -> Path | None:
    if cfg.resume == "never":
        return None
    if cfg.resume == "auto":
        return io.latest_checkpoint(paths.checkpoints)
    path = Path(cfg.resume)
    if not path.is_file():
        raise CheckpointError(f"resume checkpoint not found: {path}")
    return path


def export_generators(model: TranslationModel, ema: EMA | None, folder: Path, step: int) -> dict[str, Path]:
    """Write each generator (its EMA copy when there is one) as a self-describing safetensors file."""
    nets = ema.copies if ema is not None else model.generators()
    out = {}
    for name, entry in model.export_info().items():
        info = {**entry["info"], "step": step, "ema": ema is not None}
        out[name] = io.export_network(folder / f"{name}.safetensors", nets[name], entry["spec"], "generator", info)
    return out


# --- the loop -------------------------------------------------------------------------------


class StopFlag:
    """Set by SIGTERM/SIGINT so the loop saves a checkpoint at the next step boundary and exits."""

    def __init__(self) -> None:
        self.raised = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopFlag":
        with contextlib.suppress(ValueError):  # signals can only be caught in the main thread
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.raised:  # a second signal: stop now
            raise KeyboardInterrupt
        self.raised = True

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@dataclass
class TrainResult:
    out_dir: Path
    model: TranslationModel
    step: int
    checkpoint: Path | None
    exports: dict[str, Path]
    last_logs: dict[str, float]


def train(cfg: ExperimentConfig) -> TrainResult:
    """Train ``cfg.model`` on ``cfg.data``; resumes from the run folder's latest checkpoint."""
    env = init_distributed(torch.device(device_spec(cfg.engine.device)).type)
    try:
        return _train(cfg, env)
    finally:
        shutdown(env)


def _train(cfg: ExperimentConfig, env: DistEnv) -> TrainResult:
    paths = RunPaths(Path(cfg.out_dir))
    dataset = build_dataset(cfg.data)
    if MODELS.get(cfg.model["name"]).requires_paired and not dataset.paired:
        raise ConfigError(f"model '{cfg.model['name']}' needs a paired dataset, got '{cfg.data.dataset.get('name')}'")
    per_epoch = steps_per_epoch(dataset, cfg.data.batch_size, env)
    rt = build_runtime(cfg, env, per_epoch)

    resume_from = resolve_resume(cfg, paths)
    if resume_from is not None:
        rt.load_state_dict(io.load_checkpoint(resume_from), str(resume_from))
    if env.is_main:
        paths.root.mkdir(parents=True, exist_ok=True)
        (paths.root / "config.yaml").write_text(to_yaml(cfg))
        if resume_from is not None:
            print(f"resumed from {resume_from} at step {rt.step}/{rt.total_steps}")

    log = MetricsLog(paths.root, cfg.engine.tensorboard) if env.is_main else None
    sample_batch = move_batch(fixed_sample_batch(dataset, 4), rt.device, cfg.engine.channels_last) if env.is_main else None
    stop_at = min(rt.total_steps, cfg.engine.stop_at_step or rt.total_steps)
    progress = _progress_bar(rt, stop_at, enabled=env.is_main and cfg.engine.progress)
    sums: dict[str, torch.Tensor] = {}
    window_start, window_steps = time.perf_counter(), 0
    last_logs: dict[str, float] = {}
    checkpoint = None

    with StopFlag() as stop:
        data = batches(rt, dataset, per_epoch)
        while rt.step < stop_at:
            logs = train_step(rt, next(data))
            for k, v in logs.items():
                sums[k] = sums.get(k, 0) + v.float()
            window_steps += 1
            progress.update(1)

            if rt.step % cfg.engine.log_every == 0 or rt.step == stop_at:
                values = {k: float(v) / window_steps for k, v in sums.items()}
                values = all_reduce_mean(values, env, rt.device)
                values["lr_G"] = rt.optimizers["G"].param_groups[0]["lr"]
                values["s_per_iter"] = (time.perf_counter() - window_start) / window_steps
                values["epoch"] = rt.step / per_epoch
                last_logs = values
                if log is not None:
                    log.log(rt.step, values)
                    progress.set_postfix({k: f"{v:.3g}" for k, v in values.items() if k in logs})
                sums, window_start, window_steps = {}, time.perf_counter(), 0
            if env.is_main and (rt.step % cfg.engine.sample_every == 0 or rt.step == stop_at):
                _save_samples(rt, sample_batch, paths, log)
            stopping = any_rank(stop.raised, env, rt.device)
            if rt.step % cfg.engine.save_every == 0 or rt.step == stop_at or stopping:
                checkpoint = save_training_state(rt, paths)
            if stopping:
                if env.is_main:
                    print(f"\nstopped by signal at step {rt.step}; checkpoint {checkpoint}")
                break
    progress.close()
    exports = {}
    if env.is_main and rt.step >= rt.total_steps:
        exports = export_generators(rt.model, rt.ema, paths.exports, rt.step)
    if log is not None:
        log.close()
    return TrainResult(paths.root, rt.model, rt.step, checkpoint, exports, last_logs)


def _progress_bar(rt: Runtime, stop_at: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=stop_at, initial=rt.step, disable=not enabled, desc=rt.cfg.name, dynamic_ncols=True)


def _save_samples(rt: Runtime, batch: Mapping[str, Any], paths: RunPaths, log: MetricsLog | None) -> None:
    generators = rt.ema.copies if rt.ema is not None else rt.model.generators()
    was_training = rt.model.training
    rt.model.eval()
    visuals = rt.model.visuals(batch, generators)
    rt.model.train(was_training)
    grid = visuals_grid(visuals)
    save_grid(paths.samples / f"step_{rt.step:08d}.png", grid)
    if log is not None:
        log.log_image("samples", grid, rt.step)


def model_from_checkpoint(path: Path) -> tuple[TranslationModel, EMA | None, int]:
    """Rebuild a model (and its EMA generators) from a training checkpoint, on CPU."""
    state = io.load_checkpoint(path)
    cfg = config_from_dict(state["config"], where=f"config in {path}")
    model = build_model(cfg.model)
    io.load_state_strict(model, state["model"], str(path))
    ema = None
    if state.get("ema"):
        ema = EMA(model.generators(), cfg.engine.ema_decay)
        ema.load_state_dict(state["ema"])
    return model, ema, int(state["step"])


__all__ = ["train", "build_runtime", "train_step", "Runtime", "TrainResult", "export_generators", "model_from_checkpoint"]
