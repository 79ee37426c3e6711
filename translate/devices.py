"""Devices and autocast precision, named the same way everywhere (configs, command line, library).

A low-level module (it imports only ``errors``): training and inference both resolve a device
name and an AMP name here, so a spelling accepted by one is accepted by the other.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import warnings

import torch

from .errors import ConfigError

#: AMP names -> the autocast dtype (``None``: full precision, no autocast)
AMP_DTYPES: dict[str, torch.dtype | None] = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}
#: every AMP name a config, a command line or a library call accepts: "auto" picks one per device
AMP_NAMES = ("auto", *AMP_DTYPES)
AMP_HELP = "auto (bf16 where the device computes it natively, else off), off, bf16 or fp16"
#: YAML 1.1 reads an unquoted ``off`` as the boolean false, which a string field then holds as "False"
_YAML_OFF = ("False", "false")
#: the device names accepted besides "cuda:N" (a numbered GPU)
DEVICE_NAMES = ("auto", "cpu", "cuda")
DEVICE_HELP = "auto, cpu, cuda or cuda:N"
_CUDA_INDEXED = re.compile(r"cuda:(\d+)")
_log = logging.getLogger(__name__)


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
    """The autocast dtype of a concrete AMP name (``None`` for "off"); a ``ConfigError`` for an unknown
    name ("auto" has no dtype of its own: resolve it for a device first, ``resolve_amp``)."""
    if amp not in AMP_DTYPES:
        raise ConfigError(f"unknown amp '{amp}'; known: {', '.join(AMP_NAMES)}")
    return AMP_DTYPES[amp]


@functools.cache
def cpu_computes_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX), as oneDNN reports it; bf16 autocast
    is then faster than fp32 (convolutions about 3x), elsewhere it is emulated and slower. torch has no
    public call for this: its private ones are tried in turn, and a torch without them counts as no."""
    for probe in (
        lambda: torch.ops.mkldnn._is_mkldnn_bf16_supported(),
        lambda: torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported(),
    ):
        try:
            return bool(probe())
        except (AttributeError, RuntimeError):
            continue
    return False


def computes_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively: a CUDA GPU that supports it, or a bf16-native CPU."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return cpu_computes_bf16()
    return False


@functools.cache
def _note_once(device_type: str, amp: str, chosen: str, why: str) -> None:
    """Log (or, for a slow choice, warn about) one precision decision, once per process and device type."""
    if amp == "bf16":
        warnings.warn(f"amp bf16 on this {device_type.upper()}: {why}", stacklevel=4)
    else:
        _log.info("amp %s on %s: %s (%s)", amp, device_type, chosen, why)


def amp_name(amp: str) -> str:
    """``amp`` as its config meant it: YAML's unquoted ``off``, which a string field holds as "False", is "off"."""
    return "off" if str(amp) in _YAML_OFF else amp


def resolve_amp(amp: str, device: torch.device, cuda_fallback: str = "off") -> str:
    """The concrete precision ("off", "bf16", "fp16") that ``amp`` means on ``device``.

    "auto" is bf16 where the device computes it natively (a CUDA GPU with bf16, a CPU whose oneDNN
    reports bf16 support) and ``cuda_fallback`` on other GPUs ("off" for training, which would need
    a grad scaler for fp16; inference may pass "fp16"), full precision elsewhere. The choice is
    logged once per process. Explicit names stay as they are; bf16 on a CPU that emulates it works
    but is warned about as slow. An unknown name is a ``ConfigError`` naming it.
    """
    amp = amp_name(amp)
    if amp not in AMP_NAMES:
        raise ConfigError(f"unknown amp '{amp}'; known: {', '.join(AMP_NAMES)}")
    native = computes_bf16(device)
    if amp == "auto":
        if native:
            chosen, why = "bf16", "the device computes bf16 natively"
        elif device.type == "cuda":
            chosen, why = cuda_fallback, "this GPU has no bf16"
        else:
            chosen, why = "off", "this CPU has no native bf16 (emulated bf16 is slower than fp32)"
        _note_once(device.type, amp, chosen, why)
        return chosen
    if amp == "bf16" and device.type == "cpu" and not native:
        _note_once(device.type, amp, amp, "no native bf16 (no AVX512-BF16 or AMX), it is emulated and slower than fp32")
    return amp


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """Autocast to ``amp``'s dtype on ``device``'s type ("auto" resolved for the device, see
    ``resolve_amp``), or nothing for full precision."""
    dtype = amp_dtype(resolve_amp(amp, device))
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
