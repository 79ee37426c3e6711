"""Two processes under torchrun (gloo, CPU): train, save once from rank 0, resume, stay in sync."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import tiny_cyclegan_overrides

from translate import io

REFERENCE = Path(__file__).parents[1] / "configs" / "cyclegan_reference.yaml"

WORKER = """
import sys, torch
from translate.config import load_config
from translate.engine import train
result = train(load_config(sys.argv[1], sys.argv[3:]))
import os
rank = os.environ["RANK"]
torch.save({k: v for k, v in result.model.state_dict().items() if isinstance(v, torch.Tensor)},
           f"{sys.argv[2]}/weights_rank{rank}.pt")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(tmp_path: Path, overrides: list[str]) -> subprocess.CompletedProcess:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={free_port()}",
        str(script),
        str(REFERENCE),
        str(tmp_path),
        *overrides,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.slow  # two processes of torch start-up and training: about 16 s
def test_two_process_training_saves_once_and_resumes(tiny_unpaired, tmp_path):
    a, b = tiny_unpaired
    out = tmp_path / "run"
    # a one-image pool makes every step after the first draw on the pool's RNG and contents
    overrides = tiny_cyclegan_overrides(a, b, out, steps=4) + ["engine.save_every=100", "model.pool_size=1"]
    first = torchrun(tmp_path, [*overrides, "engine.stop_at_step=2"])
    assert first.returncode == 0, first.stderr[-3000:]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["ckpt_00000002.pt"]
    # both ranks hold the same weights: gradients were averaged, not left per-rank
    w0, w1 = torch.load(tmp_path / "weights_rank0.pt"), torch.load(tmp_path / "weights_rank1.pt")
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    # 8 images over 2 ranks at batch 1: 4 steps per epoch, so the log says epoch 0.5 at step 2
    import csv

    with open(out / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["step"], float(r["epoch"])) for r in rows] == [("2", 0.5)]

    second = torchrun(tmp_path, overrides)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resumed from" in second.stdout and "at step 2/4" in second.stdout
    assert io.checkpoint_step(io.latest_checkpoint(out / "checkpoints")) == 4
    assert (out / "export" / "G_AB.safetensors").is_file()
    w0, w1 = torch.load(tmp_path / "weights_rank0.pt"), torch.load(tmp_path / "weights_rank1.pt")
    assert all(torch.equal(w0[k], w1[k]) for k in w0)

    # and the interrupted run ends where an uninterrupted one does: every rank's RNG and pool resume
    straight = torchrun(tmp_path, [*overrides, f"out_dir={tmp_path / 'straight'}"])
    assert straight.returncode == 0, straight.stderr[-3000:]
    resumed_weights = io.load_checkpoint(out / "checkpoints" / "ckpt_00000004.pt")["model"]
    straight_weights = io.load_checkpoint(tmp_path / "straight" / "checkpoints" / "ckpt_00000004.pt")["model"]
    for key, value in straight_weights.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, resumed_weights[key]), key
