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
