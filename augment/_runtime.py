"""Device and mixed-precision names of the augment hooks: the toolkit's own (``translate.devices``),
plus the hooks' "auto" precision policy."""

from __future__ import annotations

import torch

from translate.devices import AMP_DTYPES, autocast, resolve_device
from translate.errors import ConfigError

__all__ = ["AMP_NAMES", "DEVICE_PATTERN", "autocast", "check_cuda_usable_here", "resolve_amp", "resolve_device"]

#: what the transforms' schemas accept; ``resolve_device`` checks that a named GPU exists
DEVICE_PATTERN = r"^(auto|cpu|cuda(:\d+)?)$"
AMP_NAMES = ("auto", *AMP_DTYPES)


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
