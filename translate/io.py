"""On-disk formats: training checkpoints and exported generators.

* Training checkpoint (``ckpt_XXXXXXXX.pt``): everything needed to continue a run exactly —
  weights, optimisers, schedulers, grad scaler, EMA, step/epoch and RNG states. Written to a
  temporary file and renamed, so a kill during a save leaves the previous checkpoint intact.
  Read with ``torch.load(weights_only=True)``: no arbitrary objects are ever unpickled.
* Exported generator (``*.safetensors``): the weights of one network plus metadata holding its
  architecture spec, so ``load_generator(path)`` rebuilds it without any training config.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from .atomic import atomic_write, file_sha256  # noqa: F401  (file_sha256: part of io's interface)
from .errors import CheckpointError, ConfigError
from .nets import NETWORK_FAMILIES
from .nets.layers import without_dropped_weights

FORMAT = "i2i-network"
FORMAT_VERSION = "1"
CHECKPOINT_PATTERN = re.compile(r"ckpt_(\d+)\.pt$")


# --- training checkpoints --------------------------------------------------------------------


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    path = Path(path)
    atomic_write(path, lambda tmp: torch.save(state, tmp))
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from None


def checkpoint_step(path: Path) -> int:
    match = CHECKPOINT_PATTERN.search(path.name)
    return int(match.group(1)) if match else -1


def checkpoints_newest_first(folder: str | Path) -> list[Path]:
    """The training checkpoints (``ckpt_XXXXXXXX.pt``) in ``folder``, highest step first."""
    found = [p for p in Path(folder).glob("ckpt_*.pt") if CHECKPOINT_PATTERN.search(p.name)]
    return sorted(found, key=checkpoint_step, reverse=True)


def latest_checkpoint(folder: str | Path) -> Path | None:
    found = checkpoints_newest_first(folder)
    return found[0] if found else None


def prune_checkpoints(folder: str | Path, keep: int) -> None:
    found = checkpoints_newest_first(folder)
    for old in found[keep:] if keep > 0 else []:
        old.unlink(missing_ok=True)


def load_state_strict(net: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``load_state_dict`` whose failure names the file and the mismatching keys/shapes (weights
    the net declares dropped, ``without_dropped_weights``, are not expected)."""
    state = without_dropped_weights(net, state)
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs net {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if isinstance(own[k], torch.Tensor) and own[k].shape != getattr(state[k], "shape", None)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
        if shapes:
            parts.append(f"{len(shapes)} of another shape (e.g. {shapes[:3]})")
        raise CheckpointError(f"{source} does not fit this architecture: " + "; ".join(parts))
    net.load_state_dict(state)


# --- exported networks -----------------------------------------------------------------------


def export_network(
    path: str | Path,
    net: nn.Module,
    spec: dict[str, Any],
    family: str = "generator",
    info: dict[str, Any] | None = None,
) -> Path:
    """Write ``net``'s weights and its architecture ``spec`` to one ``.safetensors`` file.

    ``info`` holds free, JSON-serialisable facts for users (model, direction, training step,
    value range of inputs and outputs).
    """
    path = Path(path)
    if family not in NETWORK_FAMILIES:
        raise ConfigError(f"unknown network family '{family}'; known: {', '.join(NETWORK_FAMILIES.names())}")
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in net.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "family": family,
        "architecture": json.dumps(spec, sort_keys=True),
        "info": json.dumps(info or {}, sort_keys=True),
    }
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
    return path


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The decoded metadata of an exported network: family, architecture spec and info."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"exported network not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except Exception as exc:
        raise CheckpointError(f"{path} is not a safetensors file: {exc}") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a safetensors file but not an exported i2i network (no '{FORMAT}' metadata)")
    return {
        "family": meta["family"],
        "format_version": meta.get("format_version"),
        "architecture": json.loads(meta["architecture"]),
        "info": json.loads(meta.get("info", "{}")),
    }


def load_network(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild an exported network and its metadata; the network is in eval mode."""
    from safetensors.torch import load_file

    meta = read_metadata(path)
    if meta["family"] not in NETWORK_FAMILIES:
        raise CheckpointError(
            f"{path} holds a network of family '{meta['family']}', which this version cannot build "
            f"(known: {', '.join(NETWORK_FAMILIES.names())})"
        )
    try:
        net = NETWORK_FAMILIES.get(meta["family"]).build(meta["architecture"])
    except ConfigError as exc:
        raise CheckpointError(f"{path}: its architecture cannot be built: {exc}") from None
    load_state_strict(net, load_file(str(path)), source=str(path))
    return net.to(device).eval(), meta


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """An exported image-to-image generator; any other family is an error naming what the file holds."""
    meta = read_metadata(path)
    if meta["family"] != "generator":
        what = meta["info"].get("model", meta["architecture"].get("name", "?"))
        raise CheckpointError(f"{path} holds a {meta['family']} (from '{what}'), not an image-to-image generator")
    return load_network(path, device)[0]
