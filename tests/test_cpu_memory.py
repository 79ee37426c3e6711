"""CPU training keeps freed buffers: a large block reallocated every step stops faulting in pages;
only the trainer tunes malloc, and I2I_RETAIN_FREED_MEMORY=0 switches it off."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from translate.cpu_memory import SWITCH, retain_freed_memory
from translate.errors import ConfigError

ROOT = Path(__file__).parents[1]

# Runs in a fresh process, so glibc's thresholds start at their defaults whatever other tests did.
# One "step" allocates, touches and frees buffers the way a training step does; 48 MiB is above the
# largest mmap threshold glibc picks by itself (32 MiB), like a 64-channel 256x256 map at batch 3.
SIZES = (12 << 20, 2 << 20, 12 << 20, 9 << 20)  # float32 elements
STEPS = f"""
import resource, torch

def step():
    buffers = [torch.empty(n).fill_(1.0) for n in {SIZES}]
    del buffers

def faults_per_step(steps):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(steps):
        step()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / steps
"""
PROBE = (
    STEPS
    + """
from translate.cpu_memory import retain_freed_memory

faults_per_step(2)
default = faults_per_step(3)
applied = retain_freed_memory(torch.device("cpu"))
faults_per_step(6)  # freed blocks coalesce over the first steps
print(default, applied, faults_per_step(3))
"""
)
# the library used as a user would (import, inference, augment), then the trainer with the switch
# off, then with it on; each time a few steps show whether malloc keeps freed memory
LIBRARY_THEN_TRAINER = (
    STEPS
    + """
import os
import translate, augment
from translate.config import load_config
from translate.distributed import DistEnv
from translate.engine import build_runtime
from translate.infer import translate_image
from translate.nets import build_generator

def faults_after(action):
    action()
    faults_per_step(6)
    return faults_per_step(3)

def infer():
    generator = build_generator({"name": "resnet", "ngf": 4, "n_blocks": 1})
    translate_image(generator, torch.rand(1, 3, 40, 40), device="cpu")

def trainer(switch):
    os.environ["I2I_RETAIN_FREED_MEMORY"] = switch
    build_runtime(load_config(None, ["optim.max_steps=1", "engine.device=cpu",
                                     "model.generator={name: resnet, ngf: 4, n_blocks: 1}"]), DistEnv(), 1)

faults_per_step(2)
print(faults_per_step(3), faults_after(infer), faults_after(lambda: trainer("0")), faults_after(lambda: trainer("1")))
"""
)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="tunes glibc's malloc only")
def test_freed_buffers_are_reused_without_page_faults():
    out = run_probe(PROBE)
    default, applied, retained = float(out[0]), out[1] == "True", float(out[2])
    pages = sum(SIZES) * 4 // 4096
    assert default > pages / 2  # by default every step maps fresh zeroed pages
    assert applied
    assert retained < pages / 100  # afterwards the freed blocks are reused


def test_other_devices_are_left_alone():
    assert retain_freed_memory(torch.device("meta")) is False


def run_probe(code: str) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(SWITCH, None)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, cwd=ROOT)
    return done.stdout.split()


@pytest.mark.slow  # imports the whole library in a fresh process: 10-20 s on a small CPU
@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="tunes glibc's malloc only")
def test_only_the_trainer_tunes_malloc_and_the_switch_turns_it_off():
    default, library, switched_off, trainer = (float(v) for v in run_probe(LIBRARY_THEN_TRAINER))
    pages = sum(SIZES) * 4 // 4096
    assert default > pages / 2
    assert library > pages / 2  # importing and inference leave malloc's defaults alone
    assert switched_off > pages / 2  # I2I_RETAIN_FREED_MEMORY=0: the trainer leaves them alone too
    assert trainer < pages / 100  # by default the trainer tunes it


def test_the_switch_takes_0_or_1(monkeypatch):
    monkeypatch.setenv(SWITCH, "0")
    assert retain_freed_memory(torch.device("cpu")) is False
    monkeypatch.setenv(SWITCH, "maybe")
    with pytest.raises(ConfigError, match="I2I_RETAIN_FREED_MEMORY='maybe': expected 1 .* or 0"):
        retain_freed_memory(torch.device("cpu"))
