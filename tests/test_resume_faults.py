"""Resume after things went wrong: an unreadable latest checkpoint, a machine with fewer devices
or processes, Ctrl-C with loader workers, and random streams that must come back complete."""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import tiny_cyclegan_overrides

from translate import io
from translate.config import load_config
from translate.engine import train
from translate.engine.state import rng_state, set_rng_state
from translate.errors import CheckpointError

REFERENCE = Path(__file__).parents[1] / "configs" / "cyclegan_reference.yaml"
ROOT = Path(__file__).parents[1]


def run(a, b, out, steps, *extra):
    return train(load_config(REFERENCE, [*tiny_cyclegan_overrides(a, b, out, steps=steps), *extra]))


# --- an unreadable latest checkpoint -------------------------------------------------------------


def test_an_unreadable_latest_checkpoint_falls_back_to_the_previous_one(tiny_unpaired, tmp_path, caplog):
    a, b = tiny_unpaired
    out = tmp_path / "run"
    run(a, b, out, 9, "engine.stop_at_step=6")
    latest = out / "checkpoints/ckpt_00000006.pt"
    latest.write_bytes(latest.read_bytes()[:1000])  # a copy cut short
    with caplog.at_level(logging.WARNING):
        result = run(a, b, out, 9, "engine.stop_at_step=7")
    assert result.step == 7  # 3 from the previous checkpoint, then 4 more
    assert any("unreadable checkpoint" in r.message and str(latest) in r.message for r in caplog.records)


def test_no_readable_checkpoint_is_an_error_naming_the_files(tiny_unpaired, tmp_path):
    a, b = tiny_unpaired
    out = tmp_path / "run"
    run(a, b, out, 9, "engine.stop_at_step=6")
    for path in (out / "checkpoints").iterdir():
        path.write_bytes(b"not a checkpoint")
    with pytest.raises(
        CheckpointError,
        match=r"no readable checkpoint in .*checkpoints: ckpt_00000006\.pt, "
        r"ckpt_00000003\.pt cannot be read; set resume=never",
    ):
        run(a, b, out, 9)


# --- fewer devices or processes than were saved -------------------------------------------------


def test_a_checkpoint_of_four_ranks_on_cuda3_resumes_in_one_cpu_process_when_forced(tiny_unpaired, tmp_path):
    """As if rank 3 of 4 wrote it on cuda:3 (earlier versions kept every visible GPU's stream)."""
    a, b = tiny_unpaired
    out = tmp_path / "run"
    run(a, b, out, 6, "engine.stop_at_step=3")
    path = out / "checkpoints/ckpt_00000003.pt"
    state = io.load_checkpoint(path)
    state["config"]["engine"]["device"] = "cuda:3"
    gpu_streams = [torch.zeros(16, dtype=torch.uint8) + i for i in range(4)]
    state["per_rank"] = [{**state["per_rank"][0], "rng": {**state["per_rank"][0]["rng"], "cuda": gpu_streams}}] * 4
    io.save_checkpoint(path, state)
    # the device is free to change; four processes to one changes the effective batch, so it is asked for
    with pytest.raises(CheckpointError) as refused:
        run(a, b, out, 6, "engine.device=cpu")
    assert str(refused.value).splitlines()[1:] == ["  processes: 4 -> 1"]
    result = run(a, b, out, 6, "engine.device=cpu", "resume=force")
    assert result.step == 6


class FakeGPUs:
    """Just enough of ``torch.cuda`` for a machine with ``count`` GPUs whose RNG streams are recorded."""

    def __init__(self, monkeypatch, count: int) -> None:
        self.count, self.set = count, {}
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
        monkeypatch.setattr(torch.cuda, "set_rng_state", self.set_rng_state)
        monkeypatch.setattr(torch.cuda.random, "set_rng_state", self.set_rng_state)

    def set_rng_state(self, state, device="cuda"):
        index = torch.device(device).index if not isinstance(device, int) else device
        index = 0 if index is None else index
        if index >= self.count:
            raise RuntimeError(f"CUDA error: invalid device ordinal {index}")
        self.set[index] = state


def test_a_gpu_stream_saved_on_cuda3_is_restored_on_the_only_gpu(monkeypatch):
    gpus = FakeGPUs(monkeypatch, count=1)
    saved = rng_state(torch.device("cpu"))
    own = torch.full((16,), 3, dtype=torch.uint8)
    set_rng_state({**saved, "cuda": own}, torch.device("cuda", 0))
    assert torch.equal(gpus.set[0], own)
    # an earlier version's list of every visible GPU's stream: the one of this device index only
    everyone = [torch.full((16,), i, dtype=torch.uint8) for i in range(4)]
    set_rng_state({**saved, "cuda": everyone}, torch.device("cuda", 0))
    assert torch.equal(gpus.set[0], everyone[0]) and list(gpus.set) == [0]


# --- random streams round-trip completely --------------------------------------------------------


def draws() -> list[float]:
    return [
        *np.random.standard_normal(3),
        np.random.random(),
        random.gauss(0, 1),
        random.random(),
        *torch.randn(2).tolist(),
    ]


def test_numpy_and_python_random_streams_round_trip_completely():
    np.random.seed(1)
    random.seed(1)
    np.random.standard_normal()  # Gaussians come in pairs: the second is now cached
    random.gauss(0, 1)  # likewise for Python's
    state = rng_state(torch.device("cpu"))
    expected = draws()
    draws()
    set_rng_state(state, torch.device("cpu"))
    assert draws() == expected


# --- Ctrl-C with loader workers ------------------------------------------------------------------


# A terminal's Ctrl-C reaches every process of the foreground job. Loader workers started with
# "spawn" or "forkserver" (macOS's default, and Linux's from Python 3.14) do not inherit the
# trainer's handler; a slow dataset keeps them busy when the signal comes, so a worker that died of
# it would take with it the batch the trainer waits for.
SLOW_DATA = """
import time
from translate.data.folders import DATASETS, UnpairedFolders

@DATASETS.register("slow_unpaired_folders")
class SlowUnpairedFolders(UnpairedFolders):
    def __getitem__(self, key):
        time.sleep(2.0)
        return super().__getitem__(key)
"""
CLI_WITH_SLOW_DATA = (
    "import multiprocessing, sys, slow_data; multiprocessing.set_start_method('spawn'); "
    "from translate.cli import main; sys.exit(main(sys.argv[1:]))"
)


@pytest.mark.slow
def test_ctrl_c_to_the_process_group_with_loader_workers_saves_and_resumes(tiny_unpaired, tmp_path):
    a, b = tiny_unpaired
    (tmp_path / "slow_data.py").write_text(SLOW_DATA)
    out = tmp_path / "run"
    overrides = tiny_cyclegan_overrides(a, b, out, steps=100000)
    overrides += [
        "engine.save_every=100000",
        "engine.sample_every=100000",
        "engine.log_every=1",
        "data.num_workers=2",
        "data.dataset.name=slow_unpaired_folders",
    ]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", CLI_WITH_SLOW_DATA, "train", str(REFERENCE), *overrides]
    # a session of its own, as a terminal's foreground job
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    metrics = out / "metrics.csv"
    try:
        for _ in range(900):
            if (metrics.exists() and len(metrics.read_text().splitlines()) > 1) or proc.poll() is not None:
                break
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, output
    assert "stopped by signal" in output
    saved = io.checkpoint_step(io.latest_checkpoint(out / "checkpoints"))
    assert saved >= 1
    resumed = subprocess.run(
        [*command, f"engine.stop_at_step={saved + 1}"], env=env, capture_output=True, text=True, timeout=120
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from {out / 'checkpoints'}" in resumed.stdout
    assert io.checkpoint_step(io.latest_checkpoint(out / "checkpoints")) == saved + 1


def test_a_checkpoint_without_its_config_resumes_with_a_warning(tiny_unpaired, tmp_path, caplog):
    a, b = tiny_unpaired
    out = tmp_path / "run"
    run(a, b, out, 6, "engine.stop_at_step=3")
    path = out / "checkpoints/ckpt_00000003.pt"
    state = io.load_checkpoint(path)
    del state["config"]
    io.save_checkpoint(path, state)
    with caplog.at_level(logging.WARNING):
        assert run(a, b, out, 6).step == 6
    assert any(f"{path} holds no config" in r.message for r in caplog.records)
