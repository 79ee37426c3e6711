"""Device and mixed-precision names of the augment hooks: the toolkit's own (``translate.devices``),
plus the hooks' "auto" precision policy."""

from __future__ import annotations

import torch

from translate.devices import AMP_DTYPES, autocast, resolve_device
from translate.errors import ConfigError

__all__ = ["AMP_NAMES", "DEVICE_PATTERN", "autocast", "resolve_amp", "resolve_device"]

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
