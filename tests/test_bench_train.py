"""`i2i bench train`: one line per variant, each variant in its own process, on tiny nets."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REFERENCE = Path(__file__).parents[1] / "configs" / "cyclegan_reference.yaml"


@pytest.mark.slow
def test_bench_train_prints_time_and_memory_per_variant():
    cmd = [
        sys.executable,
        "-m",
        "translate.cli",
        "bench",
        "train",
        "--model",
        "cyclegan",
        "--config",
        str(REFERENCE),
        "--size",
        "32",
        "--steps",
        "1",
        "--warmup",
        "1",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--variants",
        "fp32,checkpointing",
        "model.generator.ngf=4",
        "model.generator.n_blocks=2",
        "model.discriminator.ndf=4",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if re.match(r"^\w+: [0-9.]+ s/iter, peak [0-9.]+ GB", line)]
    assert [line.split(":")[0] for line in lines] == ["fp32", "checkpointing"], done.stdout


def test_bench_train_refuses_unknown_variants(capsys):
    from translate.cli import main

    assert main(["bench", "train", "--config", str(REFERENCE), "--variants", "fp32,warp9", "--device", "cpu"]) == 2
    assert "unknown variant(s) ['warp9']" in capsys.readouterr().err


def test_cpu_runs_include_bf16_variants_and_fp32_is_full_precision(monkeypatch, capsys):
    """Without --variants a CPU run times bf16 and bf16+checkpointing too; fp32 sets amp off (not the
    config's), and the header says whether this CPU computes bf16 natively."""
    import json as jsonlib

    from translate import devices
    from translate.cli import main

    children = []

    def fake_run(cmd, **kwargs):
        children.append(jsonlib.loads(cmd[cmd.index("--one") + 1]))
        out = jsonlib.dumps({"kind": "cpu", "s_per_iter": 1.5, "peak_gb": 1.0, "step_gb": 0.5})
        return subprocess.CompletedProcess(cmd, 0, stdout=out + "\n", stderr="")

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(devices, "cpu_computes_bf16", lambda: True)
    assert main(["bench", "train", "--config", str(REFERENCE), "--device", "cpu", "engine.amp=bf16"]) == 0
    out = capsys.readouterr().out
    names = [line.split(":")[0] for line in out.splitlines() if " s/iter" in line]
    assert names == [
        "fp32",
        "channels_last",
        "checkpointing",
        "compile",
        "bf16",
        "bf16+checkpointing",
        "bf16+channels_last",
    ]
    assert children[0] == ["engine.amp=off"]
    assert children[4] == ["engine.amp=bf16"]
    assert children[5] == ["engine.amp=bf16", "engine.grad_checkpointing=true"]
    assert children[6] == ["engine.amp=bf16", "engine.channels_last=true"]
    assert "device cpu (native bf16)" in out
    assert "bf16: 1.500 s/iter" in out  # the line perf_side_by_side.sh reads with VARIANT=bf16


@pytest.mark.slow
def test_bench_train_times_bf16_on_the_cpu():
    cmd = [
        sys.executable,
        "-m",
        "translate.cli",
        "bench",
        "train",
        "--model",
        "cyclegan",
        "--config",
        str(REFERENCE),
        "--size",
        "32",
        "--steps",
        "1",
        "--warmup",
        "1",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--variants",
        "bf16,bf16+checkpointing",
        "model.generator.ngf=4",
        "model.generator.n_blocks=2",
        "model.discriminator.ndf=4",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if re.match(r"^[\w+]+: [0-9.]+ s/iter, peak", line)]
    assert [line.split(":")[0] for line in lines] == ["bf16", "bf16+checkpointing"], done.stdout


def test_a_segmenter_step_is_timed_on_its_own_kind_of_batch():
    """The study's segmenter trains on images and labels, not image pairs: the bench asks the model
    for its batch, and the timed steps run (with the layout variant too)."""
    from helpers import bench_train_args

    from translate.benchmarks.train import measure

    args = bench_train_args(
        "--config=configs/segmenter_synth.yaml",
        "--size=32",
        "--width=64",
        "--batch=2",
        "--steps=1",
        "--warmup=0",
        "--device=cpu",
        "model.segmenter.decoder_channels=[8,8,8]",
    )
    for variant in (["engine.amp=off"], ["engine.amp=off", "engine.channels_last=true"]):
        result = measure(args, variant)
        assert result["kind"] == "cpu" and result["s_per_iter"] > 0
