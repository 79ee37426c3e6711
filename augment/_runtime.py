"""Device and mixed-precision names of the augment hooks: the toolkit's own (``translate.devices``),
plus the hooks' "auto" precision policy."""

from __future__ import annotations

import torch

from translate.devices import AMP_NAMES, autocast, resolve_device
from translate.devices import resolve_amp as resolve_device_amp
from translate.errors import ConfigError

__all__ = ["AMP_NAMES", "DEVICE_PATTERN", "autocast", "check_cuda_usable_here", "resolve_amp", "resolve_device"]

#: what the transforms' schemas accept; ``resolve_device`` checks that a named GPU exists
DEVICE_PATTERN = r"^(auto|cpu|cuda(:\d+)?)$"


def resolve_amp(amp: str, device: torch.device) -> str:
    """A concrete precision name ("off", "bf16", "fp16"), ``translate.devices.resolve_amp`` for inference:
    "auto" is bf16 where the device computes it natively (a CUDA GPU with bf16, a bf16-native CPU), fp16
    on other GPUs (inference needs no grad scaler) and full precision on other CPUs."""
    return resolve_device_amp(amp, device, cuda_fallback="fp16")


def in_bad_cuda_fork() -> bool:
    """Whether this process was forked from one that had initialised CUDA (torch's own flag; such a
    child cannot initialise CUDA again)."""
    flag = getattr(torch.cuda, "_is_in_bad_fork", None)
    return bool(flag()) if callable(flag) else False


def check_cuda_usable_here(device: torch.device) -> None:
    """A ``ConfigError`` naming the fixes when ``device`` is a GPU and this process cannot use it:
    a DataLoader worker forked after the training process had initialised CUDA."""
    if device.type == "cuda" and in_bad_cuda_fork():
        raise ConfigError(
            f"device '{device}' cannot be used in this process: it was forked from one that had already "
            "initialised CUDA, and CUDA cannot start again in a fork; create the DataLoader with "
            "multiprocessing_context='spawn', or use device='cpu' in workers, or apply augment.TranslateBatch "
            "to the batch in the main process"
        )
