"""Complete training state on disk: checkpoints a run resumes from exactly, and exports.

A checkpoint holds weights, every declared optimiser group's optimiser and scheduler, the grad
scaler, EMA copies, the step, and each rank's RNG streams and model extra state (image pools).
Resuming checks that the file fits the run: the same groups, the same extra state, the same
number of processes; anything else is an error naming what differs, never a silent partial load.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn

from .. import io
from ..config import ExperimentConfig, config_from_dict
from ..distributed import all_gather_objects, barrier
from ..ema import EMA
from ..errors import CheckpointError
from ..models import GANModel, build_model
from .runtime import Runtime

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


def extra_state_keys(model: nn.Module) -> set[str]:
    return {k for k in model.state_dict() if k.endswith("_extra_state")}


def rank_local_state(model: nn.Module) -> dict[str, Any]:
    """What differs between ranks: RNG states and the models' extra state (e.g. image pools)."""
    state = model.state_dict()
    return {"rng": rng_state(), "extra": {k: state[k] for k in extra_state_keys(model)}}


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
        "config": OmegaConf.to_container(OmegaConf.structured(rt.cfg)),
    }


def _same_names(what: str, found: Mapping[str, Any], expected: Mapping[str, Any] | set[str], source: str) -> None:
    missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    if missing or unexpected:
        parts = ([f"missing {missing}"] if missing else []) + ([f"unexpected {unexpected}"] if unexpected else [])
        raise CheckpointError(f"{source}: its {what} do not match this run's: {'; '.join(parts)}")


def restore_training_state(rt: Runtime, state: Mapping[str, Any], source: str) -> None:
    """Load ``state`` into ``rt``; every part must match exactly (see the module docstring)."""
    missing = sorted(set(REQUIRED_KEYS) - set(state))
    if missing:
        raise CheckpointError(f"{source} is not a complete training checkpoint of this version (no {', '.join(missing)})")
    per_rank = state["per_rank"]
    if len(per_rank) != rt.env.world:
        raise CheckpointError(
            f"{source} was written by {len(per_rank)} process(es) but this run has {rt.env.world}; each rank's random "
            f"streams and image pools are part of the state, so resume with {len(per_rank)} process(es)"
        )
    _same_names("optimiser groups", state["optimizers"], rt.optimizers, source)
    _same_names("schedulers", state["schedulers"], rt.schedulers, source)
    own = per_rank[rt.env.rank]
    _same_names("model extra-state entries", own["extra"], extra_state_keys(rt.model), source)

    io.load_state_strict(rt.model, state["model"], source)
    for k, o in rt.optimizers.items():
        o.load_state_dict(state["optimizers"][k])
    for k, s in rt.schedulers.items():
        s.load_state_dict(state["schedulers"][k])
    rt.scaler.load_state_dict(state["scaler"])
    if rt.ema is not None:
        if state.get("ema") is None:
            raise CheckpointError(f"{source} has no EMA weights but engine.ema_decay > 0")
        _same_names("EMA nets", state["ema"], rt.ema.copies, source)
        rt.ema.load_state_dict(state["ema"])
    rt.step = int(state["step"])
    set_rng_state(own["rng"])
    # the keys were checked above; strict=False only because extra state is part of the dict
    rt.model.load_state_dict(own["extra"], strict=False)


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
    weights = {name: {k[len(name) + 1:]: v for k, v in state["model"].items() if k.startswith(name + ".")} for name in nets}
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
    """Collective: every rank contributes its local state; rank 0 writes the file."""
    per_rank = all_gather_objects(rank_local_state(rt.model), rt.env)
    path = None
    if rt.env.is_main:
        path = io.save_checkpoint(paths.checkpoint(rt.step), training_state(rt, per_rank))
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


# --- exports ------------------------------------------------------------------------------------


def export_nets(model: GANModel, ema: EMA | None, folder: Path, step: int) -> dict[str, Path]:
    """Write each net the model exports (its EMA copy when there is one) as a self-describing
    safetensors file recording its family, architecture and facts."""
    nets = {**model.all_nets(), **(ema.copies if ema is not None else {})}
    out = {}
    for name, entry in model.export_info().items():
        info = {**entry["info"], "step": step, "ema": ema is not None and name in ema.copies}
        out[name] = io.export_network(folder / f"{name}.safetensors", nets[name], entry["spec"], entry["family"], info)
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
