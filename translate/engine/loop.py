"""The one training loop every model shares: data order, logging, samples, checkpoints, signals."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from .. import io
from ..config import ExperimentConfig, to_yaml
from ..data import EpochSampler, build_dataset
from ..devices import resolve_device
from ..distributed import DistEnv, all_reduce_mean, any_rank, init_distributed, shutdown
from ..errors import ConfigError
from ..models import MODELS, GANModel
from ..tracking import MetricsLog, save_grid, visuals_grid
from .runtime import Runtime, build_runtime, move_batch, train_step
from .state import (
    ResumePoint,
    RunPaths,
    export_nets,
    initialise_from,
    load_resume_point,
    restore_training_state,
    save_training_state,
)

# --- data -----------------------------------------------------------------------------------


def steps_per_epoch(dataset: Dataset, batch_size: int, env: DistEnv) -> int:
    per_rank = -(-len(dataset) // env.world)
    steps = per_rank // batch_size
    if steps == 0:
        raise ConfigError(
            f"the dataset has {len(dataset)} samples, fewer than batch_size {batch_size} × {env.world} process(es)"
        )
    return steps


def batches(rt: Runtime, dataset: Dataset, per_epoch: int) -> Iterator[dict[str, Any]]:
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
            worker_init_fn=leave_stop_signals_to_the_main_process if cfg.data.num_workers > 0 else None,
        )
        for batch in loader:
            yield move_batch(batch, rt.device, cfg.engine.channels_last)


def leave_stop_signals_to_the_main_process(worker_id: int) -> None:
    """Loader workers ignore SIGINT and SIGTERM. A terminal's Ctrl-C reaches the whole process
    group: a worker that died of it would break the loop before the main process saves its
    checkpoint. The main process stops them when it is done; they exit if it dies."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def fixed_sample_batch(dataset: Dataset, count: int) -> dict[str, Any]:
    return default_collate([dataset[(i, i)] for i in range(min(count, len(dataset)))])


# --- the loop -------------------------------------------------------------------------------


class StopFlag:
    """Set by SIGTERM/SIGINT so the loop saves a checkpoint at the next step boundary and exits."""

    def __init__(self) -> None:
        self.raised = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
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
    model: GANModel
    step: int
    checkpoint: Path | None
    exports: dict[str, Path]
    last_logs: dict[str, float]


def train(cfg: ExperimentConfig) -> TrainResult:
    """Train ``cfg.model`` on ``cfg.data``; resumes from the run folder's latest checkpoint."""
    env = init_distributed(resolve_device(cfg.engine.device).type)
    try:
        return _train(cfg, env)
    finally:
        shutdown(env)


def _train(cfg: ExperimentConfig, env: DistEnv) -> TrainResult:
    paths = RunPaths(Path(cfg.out_dir))
    dataset = build_dataset(cfg.data)
    if MODELS.get(cfg.model["name"]).requires_paired and not getattr(dataset, "paired", False):
        raise ConfigError(f"model '{cfg.model['name']}' needs a paired dataset, got '{cfg.data.dataset.get('name')}'")
    per_epoch = steps_per_epoch(dataset, cfg.data.batch_size, env)
    resume = load_resume_point(cfg, paths)
    # a resumed model is rebuilt from the checkpoint's own state (e.g. a CyCADA run's frozen segmenter)
    rt = build_runtime(cfg, env, per_epoch, stored_model=resume.state.get("model") if resume is not None else None)
    changes = []
    if resume is not None:
        changes = restore_training_state(rt, resume.state, str(resume.path), force=resume.force)
    elif cfg.init_from:
        initialise_from(rt, Path(cfg.init_from))
    if env.is_main:
        record_config(cfg, paths, resume, changes, rt.step)
        if resume is not None:
            print(f"resumed from {resume.path} at step {rt.step}/{rt.total_steps}")

    resumed_at = rt.step if resume is not None else None
    log = MetricsLog(paths.root, cfg.engine.tensorboard, resumed_at) if env.is_main else None
    sample_batch = (
        move_batch(fixed_sample_batch(dataset, 4), rt.device, cfg.engine.channels_last) if env.is_main else None
    )
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
                values.update({f"lr_{g}": o.param_groups[0]["lr"] for g, o in rt.optimizers.items()})
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
        exports = export_nets(rt.model, rt.ema, paths.exports, rt.step)
    if log is not None:
        log.close()
    return TrainResult(paths.root, rt.model, rt.step, checkpoint, exports, last_logs)


def record_config(
    cfg: ExperimentConfig, paths: RunPaths, resume: ResumePoint | None, changes: list[str], step: int
) -> None:
    """``config.yaml`` records what a run was started with and is never overwritten by a resume;
    a forced resume that changed the trajectory adds ``config_resume_<step>.yaml`` beside it."""
    paths.root.mkdir(parents=True, exist_ok=True)
    original = paths.root / "config.yaml"
    if resume is None or not original.is_file():
        io.atomic_write(original, lambda tmp: tmp.write_text(to_yaml(cfg)))
    if changes:
        record = paths.root / f"config_resume_{step:08d}.yaml"
        header = f"# forced resume at step {step} from {resume.path}; changed:\n"
        header += "".join(f"#   {c}\n" for c in changes)
        io.atomic_write(record, lambda tmp: tmp.write_text(header + to_yaml(cfg)))
        print(f"resumed with changed trajectory keys (resume=force); this config is kept in {record}")


def _progress_bar(rt: Runtime, stop_at: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=stop_at, initial=rt.step, disable=not enabled, desc=rt.cfg.name, dynamic_ncols=True)


def _save_samples(rt: Runtime, batch: Mapping[str, Any], paths: RunPaths, log: MetricsLog | None) -> None:
    was_training = rt.model.training
    rt.model.eval()
    visuals = rt.model.visuals(batch, rt.sampling_nets())
    rt.model.train(was_training)
    grid = visuals_grid(visuals)
    save_grid(paths.samples / f"step_{rt.step:08d}.png", grid)
    if log is not None:
        log.log_image("samples", grid, rt.step)
