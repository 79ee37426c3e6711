"""Precision in the augment hooks and their benchmarks: "auto" follows the device's native bf16, and
`i2i bench augment` / `i2i bench infer` time fp32 and bf16 side by side."""

from __future__ import annotations

import re

import pytest
import torch

from augment._runtime import resolve_amp
from translate import devices
from translate.cli import main


@pytest.fixture()
def bf16_cpu(monkeypatch):
    devices._note_once.cache_clear()
    monkeypatch.setattr(devices, "cpu_computes_bf16", lambda: True)
    yield
    devices._note_once.cache_clear()


def test_augment_auto_is_bf16_on_a_bf16_cpu_and_fp16_on_a_gpu_without_bf16(bf16_cpu, monkeypatch):
    assert resolve_amp("auto", torch.device("cpu")) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_amp("auto", torch.device("cuda", 0)) == "fp16"  # inference needs no grad scaler


def test_bench_augment_times_each_precision(bf16_cpu, capsys):
    code = main(
        [
            "bench",
            "augment",
            "--size",
            "32",
            "--images",
            "2",
            "--batch-size",
            "2",
            "--generators",
            "small",
            "--modes",
            "loader0,batch",
            "--device",
            "cpu",
            "--amp",
            "off,bf16",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    rows = re.findall(
        r"^small \(0\.5 M\)\s+(GANTranslate|TranslateBatch).*?amp (\w+)\)\s+([\d.]+)\s+[\d.]+$", out, re.M
    )
    assert [(hook, amp) for hook, amp, _ in rows] == [
        ("GANTranslate", "off"),
        ("GANTranslate", "bf16"),
        ("TranslateBatch", "off"),
        ("TranslateBatch", "bf16"),
    ]
    assert all(float(rate) > 0 for _, _, rate in rows)


@pytest.mark.parametrize("what", ["augment", "infer"])
def test_bench_refuses_an_unknown_precision(what, capsys):
    assert main(["bench", what, "--amp", "off,bf32", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "bf32" in err and "auto" in err and "off" in err


@pytest.mark.slow
def test_bench_infer_compares_bf16_with_fp32(capsys):
    args = ["bench", "infer", "--size", "64", "--tile", "32", "--overlap", "8", "--ngf", "4", "--n-blocks", "1"]
    assert main([*args, "--variants", "untiled", "--device", "cpu", "--amp", "off,bf16"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines if line.startswith("untiled ")]
    assert [row[6] for row in rows] == ["off", "bf16"]
    assert rows[0][7] == "-" and 0 < float(rows[1][7]) < 5.0  # bf16 rounding, in /255, against fp32
