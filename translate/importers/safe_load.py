"""Reading foreign ``.pth`` files safely.

A ``.pth`` file is a pickle, and unpickling can run any code the file names. Foreign checkpoints
are therefore read with ``torch.load(weights_only=True)`` only, which accepts tensors and plain
containers; a file that needs anything else is refused, naming what it asked for.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from ..errors import CheckpointError

#: what the weights-only unpickler names when it meets a global it will not load
_GLOBAL_NAME = re.compile(r"(?:GLOBAL|global)\s+([\w.]+)")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a bare ``state_dict`` file (as the reference codes save them), on the CPU.

    A ``module.`` prefix left by ``DataParallel`` on every key is removed.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    loaded = _load_weights_only(path)
    if not isinstance(loaded, Mapping):
        raise CheckpointError(
            f"{path} holds a {type(loaded).__name__}, not a state_dict (a mapping of names to tensors)"
        )
    not_tensors = [key for key, value in loaded.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(
            f"{path} is not a bare state_dict: key '{not_tensors[0]}' holds a {type(loaded[not_tensors[0]]).__name__}, "
            "not a tensor"
        )
    state = {str(key): value for key, value in loaded.items()}
    if state and all(key.startswith("module.") for key in state):
        state = {key[len("module.") :]: value for key, value in state.items()}
    return state


def _load_weights_only(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        needed = _GLOBAL_NAME.search(str(exc))
        if needed is None:  # not a request for code: a damaged or foreign file
            raise CheckpointError(f"cannot read {path} as a PyTorch checkpoint: {_unpickler_reason(exc)}") from None
        raise CheckpointError(
            f"{path} needs code to load ({needed.group(1)}): only plain state_dicts of tensors are read "
            "(torch.load with weights_only=True); save the network's state_dict() instead of the network"
        ) from None
    except Exception as exc:  # a truncated zip, a file that is no pickle at all
        raise CheckpointError(f"cannot read {path} as a PyTorch checkpoint: {_first_line(exc)}") from None


def _unpickler_reason(exc: Exception) -> str:
    """The weights-only unpickler's own reason, without the advice to unpickle unsafely."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    after = [i for i, line in enumerate(lines) if "WeightsUnpickler error" in line]
    return lines[after[0] + 1] if after and after[0] + 1 < len(lines) else _first_line(exc)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")
