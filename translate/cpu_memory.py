"""Keep freed host memory for reuse during CPU training.

A CPU training step allocates and frees the same large activation and gradient buffers every
step (a 64-channel 256×256 map at batch 2 is 32 MiB). glibc's malloc serves blocks above its
mmap threshold (at most 32 MiB, adjusted at run time) with a fresh ``mmap`` and returns them to the
system on ``free``, and trims the top of its heap once enough is free, so each step faults in and
zeroes about 1 GB of new pages again (≈ 250,000 minor page faults per CycleGAN step at 256²).
Raising both thresholds keeps those pages in the process for the next step (freed blocks
coalesce within the first few steps): the numbers computed are the same and the peak memory is
not raised, but resident memory stays near that peak between steps instead of shrinking.

Tiled inference does the same per tile (a 4096² image with ResNet-9 in bf16 spent 40 of its
106 s in the kernel; 83 s with the tuning).

The tuning is process-wide, so it is applied only where the process is the toolkit's own: by the
training engine (``build_runtime``) and by the ``i2i translate`` and ``i2i bench infer`` commands,
on a CPU device; never on import, nor by library calls (``translate_image``, sampling, augment
hooks) that run inside someone else's process. A process that trains or translates beside other
work can leave malloc alone with ``I2I_RETAIN_FREED_MEMORY=0``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

import torch

from .errors import ConfigError

# mallopt parameter numbers from glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# largest first: some glibc versions refuse a threshold above half their maximum heap size (32 MiB)
_MMAP_THRESHOLDS = (1 << 30, 1 << 28, 32 << 20)
_NEVER_TRIM = 2**31 - 1  # the largest value mallopt's int argument takes


#: the environment variable that switches the tuning off ("0") or on ("1", the default)
SWITCH = "I2I_RETAIN_FREED_MEMORY"
_ON, _OFF = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def retain_freed_memory(device: torch.device) -> bool:
    """On a CPU ``device``, make malloc keep freed blocks for reuse instead of unmapping or
    trimming them. True when applied (glibc); False for other devices and C libraries, and when
    ``I2I_RETAIN_FREED_MEMORY=0``, where it does nothing. Process-wide and idempotent."""
    return device.type == "cpu" and switched_on() and _tune_glibc_malloc()


def switched_on() -> bool:
    """False when the environment asks to leave malloc alone (``I2I_RETAIN_FREED_MEMORY=0``)."""
    value = os.environ.get(SWITCH, "1").strip().lower()
    if value not in _ON + _OFF:
        raise ConfigError(
            f"{SWITCH}='{value}': expected 1 (keep freed memory for reuse, the default) or 0 (leave malloc alone)"
        )
    return value in _ON


@functools.cache
def _tune_glibc_malloc() -> bool:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if not any(mallopt(_M_MMAP_THRESHOLD, value) == 1 for value in _MMAP_THRESHOLDS):
        return False
    return mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM) == 1
