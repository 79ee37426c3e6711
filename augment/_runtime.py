"""Device and mixed-precision names used by the augment hooks.

A private resolver until the toolkit has one shared home for it; it accepts the same names as the
rest of the toolkit ("auto", "cpu", "cuda", "cuda:N") plus "mps".
"""

from __future__ import annotations

import contextlib
import re

import torch

from translate.errors import ConfigError

DEVICE_PATTERN = r"^(auto|cpu|mps|cuda(:\d+)?)$"
AMP_NAMES = ("auto", "off", "bf16", "fp16")
_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(device: str | torch.device) -> torch.device:
    """A concrete device; "auto" is the first CUDA device when there is one, else the CPU."""
    if isinstance(device, torch.device):
        return device
    if not re.match(DEVICE_PATTERN, str(device)):
        raise ConfigError(f"unknown device '{device}'; use auto, cpu, cuda, cuda:N or mps")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device '{device}' was asked for but no CUDA device is available")
    return torch.device(device)


def resolve_amp(amp: str, device: torch.device) -> str:
    """A concrete precision name ("off", "bf16", "fp16"). "auto" means bf16 on a CUDA device that has
    it (fp16 otherwise) and full precision elsewhere: CPU autocast is slower than fp32 on most CPUs."""
    if amp not in AMP_NAMES:
        raise ConfigError(f"unknown amp '{amp}'; known: {', '.join(AMP_NAMES)}")
    if amp != "auto":
        return amp
    if device.type != "cuda":
        return "off"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """Autocast for a concrete precision name ("off" gives a no-op context)."""
    if amp == "off":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_AMP_DTYPES[amp])
