"""CPU training keeps freed buffers: a large block reallocated every step stops faulting in pages."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest
import torch

from translate.cpu_memory import retain_freed_memory

# Runs in a fresh process, so glibc's thresholds start at their defaults whatever other tests did.
# One "step" allocates, touches and frees buffers the way a training step does; 48 MiB is above the
# largest mmap threshold glibc picks by itself (32 MiB), like a 64-channel 256x256 map at batch 3.
SIZES = (12 << 20, 2 << 20, 12 << 20, 9 << 20)  # float32 elements
PROBE = f"""
import resource, torch
from translate.cpu_memory import retain_freed_memory

def step():
    buffers = [torch.empty(n).fill_(1.0) for n in {SIZES}]
    del buffers

def faults_per_step(steps):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(steps):
        step()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / steps

faults_per_step(2)
default = faults_per_step(3)
applied = retain_freed_memory(torch.device("cpu"))
faults_per_step(6)  # freed blocks coalesce over the first steps
print(default, applied, faults_per_step(3))
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="tunes glibc's malloc only")
def test_freed_buffers_are_reused_without_page_faults():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout.split()
    default, applied, retained = float(out[0]), out[1] == "True", float(out[2])
    pages = sum(SIZES) * 4 // 4096
    assert default > pages / 2  # by default every step maps fresh zeroed pages
    assert applied
    assert retained < pages / 100  # afterwards the freed blocks are reused


def test_other_devices_are_left_alone():
    assert retain_freed_memory(torch.device("meta")) is False
