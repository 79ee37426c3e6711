"""Devices and autocast precision, named the same way everywhere (configs, command line, library).

A low-level module (it imports only ``errors``): training and inference both resolve a device
name and an AMP name here, so a spelling accepted by one is accepted by the other.
"""

from __future__ import annotations

import contextlib
import re

import torch

from .errors import ConfigError

#: AMP names -> the autocast dtype (``None``: full precision, no autocast)
AMP_DTYPES: dict[str, torch.dtype | None] = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}
#: the device names accepted besides "cuda:N" (a numbered GPU)
DEVICE_NAMES = ("auto", "cpu", "cuda")
DEVICE_HELP = "auto, cpu, cuda or cuda:N"
_CUDA_INDEXED = re.compile(r"cuda:(\d+)")


def resolve_device(spec: str | torch.device) -> torch.device:
    """The device named by ``spec``: "auto" (a GPU if there is one, else the CPU), "cpu", "cuda"
    (the current GPU) or "cuda:N" (GPU number N, which must exist). A ``torch.device`` is checked
    the same way. Anything else, or a GPU that is not there, is a ``ConfigError`` naming it.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    if not isinstance(spec, str):
        raise ConfigError(f"device must be a name ({DEVICE_HELP}), got {spec!r}")
    name = spec.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    indexed = _CUDA_INDEXED.fullmatch(name)
    if name == "cuda" or indexed:
        if not torch.cuda.is_available():
            raise ConfigError(f"device '{spec}' was asked for but no CUDA device is available")
        if indexed is None:
            return torch.device("cuda")
        index, count = int(indexed.group(1)), torch.cuda.device_count()
        if index >= count:
            raise ConfigError(f"device '{spec}' does not exist: {count} CUDA device(s), numbered 0 to {count - 1}")
        return torch.device("cuda", index)
    raise ConfigError(f"unknown device '{spec}'; use {DEVICE_HELP}")


def amp_dtype(amp: str) -> torch.dtype | None:
    """The autocast dtype of an AMP name (``None`` for "off"); a ``ConfigError`` for an unknown name."""
    if amp not in AMP_DTYPES:
        raise ConfigError(f"unknown amp '{amp}'; known: {', '.join(AMP_DTYPES)}")
    return AMP_DTYPES[amp]


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """Autocast to ``amp``'s dtype on ``device``'s type, or nothing for "off"."""
    dtype = amp_dtype(amp)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
