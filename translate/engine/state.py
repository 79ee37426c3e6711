"""Complete training state on disk: checkpoints a run resumes from exactly, and exports.

A checkpoint holds weights, every declared optimiser group's optimiser and scheduler, the grad
scaler, EMA copies, the step, each rank's RNG streams and model extra state (image pools), and the
config it was trained with. Resuming checks that the file fits the run: the same groups, the same
extra state; anything else is an error naming what differs, never a silent partial load. The
config and the number of processes must match too, except for keys that do not change the
trajectory (``RESUME_FREE_KEYS``), unless the user forces it (``resume=force``).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import io
from ..config import ExperimentConfig, config_dict, config_from_dict, trajectory_changes
from ..distributed import barrier, gather_to_main
from ..ema import EMA
from ..errors import CheckpointError
from ..models import GANModel, build_model
from .runtime import Runtime

log = logging.getLogger(__name__)

REQUIRED_KEYS = ("step", "model", "optimizers", "schedulers", "scaler", "per_rank")


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


# --- random streams and per-rank state ----------------------------------------------------------


def rng_state(device: torch.device) -> dict[str, Any]:
    """Every random stream this process draws on, complete (numpy's and Python's cached Gaussian
    included), and the CUDA stream of this process's own device only: a resume on a machine
    with fewer GPUs then finds nothing it cannot place, and no other GPU is touched."""
    _, numpy_keys, numpy_pos, has_gauss, cached_gaussian = np.random.get_state()
    _, python_internal, python_gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": numpy_keys.tolist(),
            "pos": int(numpy_pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "python": {"internal": list(python_internal), "gauss_next": python_gauss_next},
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _numpy_state(saved: Any) -> tuple:
    if isinstance(saved, Mapping):
        keys = np.array(saved["keys"], dtype=np.uint32)
        return ("MT19937", keys, int(saved["pos"]), int(saved["has_gauss"]), float(saved["cached_gaussian"]))
    # checkpoints of earlier versions: keys and position only
    return ("MT19937", np.array(saved[:-1], dtype=np.uint32), int(saved[-1]), 0, 0.0)


def _python_state(saved: Any) -> tuple:
    if isinstance(saved, Mapping):
        return (3, tuple(saved["internal"]), saved["gauss_next"])
    return (3, tuple(saved), None)  # checkpoints of earlier versions


def _own_cuda_state(saved: Any, device: torch.device) -> torch.Tensor | None:
    if isinstance(saved, torch.Tensor):
        return saved
    # checkpoints of earlier versions hold every visible GPU's state: this device's, if it was there
    index = device.index or 0
    return saved[index] if isinstance(saved, (list, tuple)) and index < len(saved) else None


def set_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    """Restore ``rng_state``'s streams; a CUDA stream goes to ``device``, whichever GPU wrote it."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(_numpy_state(state["numpy"]))
    random.setstate(_python_state(state["python"]))
    cuda = _own_cuda_state(state["cuda"], device) if "cuda" in state and device.type == "cuda" else None
    if cuda is not None:
        torch.cuda.set_rng_state(cuda, device)


def extra_state_keys(model: nn.Module) -> set[str]:
    return {k for k in model.state_dict() if k.endswith("_extra_state")}


def rank_local_state(model: nn.Module, device: torch.device) -> dict[str, Any]:
    """What differs between ranks: RNG states and the models' extra state (e.g. image pools)."""
    state = model.state_dict()
    return {"rng": rng_state(device), "extra": {k: state[k] for k in extra_state_keys(model)}}


# --- checkpoints --------------------------------------------------------------------------------


def training_state(rt: Runtime, per_rank: list[dict]) -> dict[str, Any]:
    return {
        "step": rt.step,
        "total_steps": rt.total_steps,
        "model": rt.model.state_dict(),
        "optimizers": {k: o.state_dict() for k, o in rt.optimizers.items()},
        "schedulers": {k: s.state_dict() for k, s in rt.schedulers.items()},
        "scaler": rt.scaler.state_dict(),
        "ema": rt.ema.state_dict() if rt.ema else None,
        "per_rank": per_rank,
        # what was trained: a resume compares it with its own config (see check_resume_config)
        "config": config_dict(rt.cfg),
    }


def _same_names(what: str, found: Mapping[str, Any], expected: Mapping[str, Any] | set[str], source: str) -> None:
    missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    if missing or unexpected:
        parts = ([f"missing {missing}"] if missing else []) + ([f"unexpected {unexpected}"] if unexpected else [])
        raise CheckpointError(f"{source}: its {what} do not match this run's: {'; '.join(parts)}")


def check_resume_config(rt: Runtime, state: Mapping[str, Any], source: str, force: bool) -> list[str]:
    """The trajectory-changing differences between the checkpoint's run and this one (config keys
    outside ``RESUME_FREE_KEYS``, and the number of processes, which sets the effective batch);
    any is an error naming each ``key: old -> new`` unless ``force``."""
    if "config" in state:
        changes = trajectory_changes(state["config"], config_dict(rt.cfg))
    else:
        log.warning(
            "%s holds no config (an earlier version wrote it): this run's config cannot be checked "
            "against the one it was trained with",
            source,
        )
        changes = []
    saved_world = len(state["per_rank"])
    if saved_world != rt.env.world:
        changes.append(f"processes: {saved_world} -> {rt.env.world}")
    if changes and not force:
        retry = "resume=force" if rt.cfg.resume == "auto" else f"resume=force:{source}"
        raise CheckpointError(
            f"{source} was trained with other values of keys that change the training trajectory; use the "
            f"checkpoint's values, or {retry} to continue with the new ones:\n" + "\n".join(f"  {c}" for c in changes)
        )
    return changes


class _ConfiguredHyperparameters:
    """This run's optimiser hyperparameters and base learning rates, taken before a checkpoint's
    replace them, so that a forced resume trains on with the new config's values."""

    def __init__(self, rt: Runtime) -> None:
        self.groups = {
            g: [{k: v for k, v in pg.items() if k != "params"} for pg in o.param_groups]
            for g, o in rt.optimizers.items()
        }
        self.base_lrs = {g: list(s.base_lrs) for g, s in rt.schedulers.items()}

    def apply(self, rt: Runtime) -> None:
        for g, optimizer in rt.optimizers.items():
            scheduler = rt.schedulers[g]
            scheduler.base_lrs = list(self.base_lrs[g])
            for param_group, configured, base_lr, factor in zip(
                optimizer.param_groups, self.groups[g], scheduler.base_lrs, scheduler.lr_lambdas, strict=True
            ):
                param_group.update(configured)
                # the new schedule (new total steps) evaluated at the restored step
                param_group["lr"] = base_lr * factor(scheduler.last_epoch)
            scheduler._last_lr = [pg["lr"] for pg in optimizer.param_groups]


def restore_training_state(rt: Runtime, state: Mapping[str, Any], source: str, force: bool = False) -> list[str]:
    """Load ``state`` into ``rt``; every part must match exactly (see the module docstring), and
    the config too unless ``force`` (then weights, optimiser moments, scaler, EMA, step, random
    streams and pools continue, while hyperparameters and schedule come from this run's config).
    Returns the trajectory changes a forced resume accepted."""
    missing = sorted(set(REQUIRED_KEYS) - set(state))
    if missing:
        raise CheckpointError(
            f"{source} is not a complete training checkpoint of this version (no {', '.join(missing)})"
        )
    changes = check_resume_config(rt, state, source, force)
    per_rank = state["per_rank"]
    _same_names("optimiser groups", state["optimizers"], rt.optimizers, source)
    _same_names("schedulers", state["schedulers"], rt.schedulers, source)
    # a forced resume on more processes than saved: the new ranks keep their fresh streams and pools
    own = per_rank[rt.env.rank] if rt.env.rank < len(per_rank) else None
    if own is not None:
        _same_names("model extra-state entries", own["extra"], extra_state_keys(rt.model), source)

    configured = _ConfiguredHyperparameters(rt)
    io.load_state_strict(rt.model, state["model"], source)
    for k, o in rt.optimizers.items():
        o.load_state_dict(state["optimizers"][k])
    for k, s in rt.schedulers.items():
        s.load_state_dict(state["schedulers"][k])
    if changes:
        configured.apply(rt)
    rt.scaler.load_state_dict(state["scaler"])
    if rt.ema is not None:
        if state.get("ema") is None:
            raise CheckpointError(f"{source} has no EMA weights but engine.ema_decay > 0")
        _same_names("EMA nets", state["ema"], rt.ema.copies, source)
        rt.ema.load_state_dict(state["ema"])
    rt.step = int(state["step"])
    if own is not None:
        set_rng_state(own["rng"], rt.device)
        # the keys were checked above; strict=False only because extra state is part of the dict
        rt.model.load_state_dict(own["extra"], strict=False)
    return changes


def initialise_from(rt: Runtime, path: Path) -> None:
    """Start ``rt``'s nets (and their EMA copies) from another run's checkpoint, for fine-tuning:
    every net of this model must be in it with the same architecture; parts that are not nets
    (a frozen helper such as a semantic segmenter) and the training state are not taken."""
    if not path.is_file():
        raise CheckpointError(f"init_from checkpoint not found: {path}")
    state = io.load_checkpoint(path)
    if "model" not in state:
        raise CheckpointError(f"{path} is not a training checkpoint (no model weights)")
    nets = rt.model.all_nets()
    weights = {
        name: {k[len(name) + 1 :]: v for k, v in state["model"].items() if k.startswith(name + ".")} for name in nets
    }
    absent = sorted(name for name, found in weights.items() if not found)
    if absent:
        raise CheckpointError(f"init_from: {path} has no weights for net(s) {absent} of this model")
    for name, net in nets.items():
        io.load_state_strict(net, weights[name], f"init_from {path} ({name})")
    if rt.ema is not None:
        averaged = state.get("ema") or {}
        for name, copy in rt.ema.copies.items():
            copy.load_state_dict(averaged.get(name, nets[name].state_dict()))


def save_training_state(rt: Runtime, paths: RunPaths, keep: int = 2) -> Path | None:
    """Collective: every rank sends its local state (RNG, image pools) to rank 0, which writes
    the file; no rank receives another's."""
    per_rank = gather_to_main(rank_local_state(rt.model, rt.device), rt.env)
    path = None
    if rt.env.is_main:
        path = io.save_checkpoint(paths.checkpoint(rt.step), training_state(rt, per_rank))
        io.prune_checkpoints(paths.checkpoints, keep)
    barrier(rt.env)
    return path


@dataclass(frozen=True)
class ResumePoint:
    path: Path
    state: dict[str, Any]
    force: bool  # continue although trajectory-changing keys differ


def _resume_request(resume: str) -> tuple[str | None, bool]:
    """``cfg.resume`` as (``"auto"``, a path, or None for never; whether forced)."""
    force = resume == "force" or resume.startswith("force:")
    target = resume.removeprefix("force").removeprefix(":") if force else resume
    if target in ("", "auto"):
        return "auto", force
    return (None, False) if target == "never" else (target, force)


def load_latest_readable(folder: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint in ``folder`` that can be read, each unreadable newer one (a disk
    fault, a copy cut short) skipped with a warning naming it; an error if none can be read."""
    unreadable = []
    for path in io.checkpoints_newest_first(folder):
        try:
            return path, io.load_checkpoint(path)
        except CheckpointError as exc:
            log.warning("skipping unreadable checkpoint %s (%s); trying the one before it", path, exc)
            unreadable.append(path.name)
    if unreadable:
        raise CheckpointError(
            f"no readable checkpoint in {folder}: {', '.join(unreadable)} cannot be read; "
            "set resume=never to start over, or resume=PATH for another checkpoint"
        )
    return None


def load_resume_point(cfg: ExperimentConfig, paths: RunPaths) -> ResumePoint | None:
    """The checkpoint ``cfg.resume`` asks for, read: ``auto`` and ``force`` take the run folder's
    latest readable one (None if there is none); a path must exist and be readable."""
    target, force = _resume_request(cfg.resume)
    if target is None:
        return None
    if target == "auto":
        found = load_latest_readable(paths.checkpoints)
        return ResumePoint(found[0], found[1], force) if found is not None else None
    path = Path(target)
    if not path.is_file():
        raise CheckpointError(f"resume checkpoint not found: {path}")
    return ResumePoint(path, io.load_checkpoint(path), force)


# --- exports ------------------------------------------------------------------------------------


def export_nets(model: GANModel, ema: EMA | None, folder: Path, step: int) -> dict[str, Path]:
    """Write each net the model exports (its EMA copy when there is one) as a self-describing
    safetensors file recording its family, architecture and facts."""
    nets = {**model.all_nets(), **(ema.copies if ema is not None else {})}
    out = {}
    for name, entry in model.export_info().items():
        info = {**entry["info"], "step": step, "ema": ema is not None and name in ema.copies}
        net = nets[name]
        if "parts" in entry:  # one file of several nets, e.g. a text sampler: its frozen text encoder and G
            net = nn.ModuleDict({part: nets[source] for part, source in entry["parts"].items()})
        out[name] = io.export_network(folder / f"{name}.safetensors", net, entry["spec"], entry["family"], info)
    return out


def model_from_checkpoint(path: Path) -> tuple[GANModel, EMA | None, int]:
    """Rebuild a model (and its EMA nets) from a training checkpoint, on CPU."""
    state = io.load_checkpoint(path)
    missing = sorted(set(REQUIRED_KEYS) - set(state)) + ([] if "config" in state else ["config"])
    if missing:
        raise CheckpointError(f"{path} is not a complete training checkpoint of this version (no {', '.join(missing)})")
    cfg = config_from_dict(state["config"], where=f"config in {path}")
    model = build_model(cfg.model, stored=state["model"])  # frozen parts come from the checkpoint
    io.load_state_strict(model, state["model"], str(path))
    ema = None
    if state.get("ema"):
        ema = EMA(model.averaged_nets(), cfg.engine.ema_decay)
        ema.load_state_dict(state["ema"])
    return model, ema, int(state["step"])
