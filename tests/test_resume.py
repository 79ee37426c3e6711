"""Checkpoints: exact resume, atomic writes, stop on signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import tiny_cyclegan_overrides

from translate import io
from translate.config import load_config
from translate.engine import train

REFERENCE = Path(__file__).parents[1] / "configs" / "cyclegan_reference.yaml"


def model_state(path: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in io.load_checkpoint(path)["model"].items() if isinstance(v, torch.Tensor)}


def test_resume_is_exact(tiny_unpaired, tmp_path):
    a, b = tiny_unpaired
    straight = tiny_cyclegan_overrides(a, b, tmp_path / "straight", steps=6)
    split = tiny_cyclegan_overrides(a, b, tmp_path / "split", steps=6)
    train(load_config(REFERENCE, straight))
    first = train(load_config(REFERENCE, [*split, "engine.stop_at_step=3"]))
    assert first.step == 3 and first.checkpoint.name == "ckpt_00000003.pt"
    second = train(load_config(REFERENCE, split))
    assert second.step == 6
    ref = model_state(tmp_path / "straight/checkpoints/ckpt_00000006.pt")
    got = model_state(tmp_path / "split/checkpoints/ckpt_00000006.pt")
    assert ref.keys() == got.keys()
    for key in ref:
        assert torch.equal(ref[key], got[key]), key
    # the optimiser moments are restored too, not only the weights
    opt_ref = io.load_checkpoint(tmp_path / "straight/checkpoints/ckpt_00000006.pt")["optimizers"]["G"]["state"][0]
    opt_got = io.load_checkpoint(tmp_path / "split/checkpoints/ckpt_00000006.pt")["optimizers"]["G"]["state"][0]
    assert torch.equal(opt_ref["exp_avg_sq"], opt_got["exp_avg_sq"])


def test_interrupted_save_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    good = io.save_checkpoint(tmp_path / "ckpt_00000001.pt", {"step": 1, "w": torch.ones(3)})

    def crash(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"partial")
        raise KeyboardInterrupt("killed mid-save")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint(good, {"step": 2, "w": torch.zeros(3)})
    monkeypatch.undo()
    assert torch.equal(io.load_checkpoint(good)["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == [good.name]  # no temp file left behind


def test_checkpoints_load_without_unpickling_objects(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    path = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, path)
    with pytest.raises(io.CheckpointError):
        io.load_checkpoint(path)


def test_sigterm_saves_and_resumes(tiny_unpaired, tmp_path):
    a, b = tiny_unpaired
    out = tmp_path / "run"
    overrides = tiny_cyclegan_overrides(a, b, out, steps=100000)
    overrides += ["engine.save_every=100000", "engine.sample_every=100000", "engine.log_every=1"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "translate.cli", "train", str(REFERENCE), *overrides],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    metrics = out / "metrics.csv"
    for _ in range(600):  # wait until a few steps have been logged
        if metrics.exists() and len(metrics.read_text().splitlines()) > 3:
            break
        if proc.poll() is not None:
            break
        import time

        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert "stopped by signal" in output
    ckpt = io.latest_checkpoint(out / "checkpoints")
    assert ckpt is not None and io.checkpoint_step(ckpt) >= 3
    saved = io.checkpoint_step(ckpt)
    # mark the checkpoint: a run that really resumes from it carries the mark, a fresh one cannot
    state = io.load_checkpoint(ckpt)
    marked = "G_AB.decoder.0.bias"
    state["model"][marked] = state["model"][marked] + 0.5
    io.save_checkpoint(ckpt, state)
    resumed = train(load_config(REFERENCE, [*overrides, f"engine.stop_at_step={saved + 1}"]))
    assert resumed.step == saved + 1
    after = io.load_checkpoint(io.latest_checkpoint(out / "checkpoints"))
    assert io.checkpoint_step(io.latest_checkpoint(out / "checkpoints")) == saved + 1
    # one Adam step moves a weight by a few lr (2e-4) at most: the mark of 0.5 is still there
    torch.testing.assert_close(after["model"][marked], state["model"][marked], rtol=0, atol=0.01)
    # and the optimiser state came from the checkpoint too: Adam counted every step since the start
    assert {int(s["step"]) for s in after["optimizers"]["G"]["state"].values()} == {saved + 1}


def test_incomplete_checkpoint_is_a_clear_error(tiny_unpaired, tmp_path):
    a, b = tiny_unpaired
    bogus = io.save_checkpoint(tmp_path / "weights_only.pt", {"model": {}, "step": 3})
    cfg = load_config(REFERENCE, [*tiny_cyclegan_overrides(a, b, tmp_path / "run"), f"resume={bogus}"])
    with pytest.raises(io.CheckpointError, match=r"weights_only\.pt is not a complete training checkpoint"):
        train(cfg)
