"""One device resolver and one AMP table for training and inference: "cuda:N" is accepted where
GPU N exists and refused, by name, where it does not (no GPU is needed: CUDA is faked)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from translate.cli import main
from translate.devices import AMP_DTYPES, amp_dtype, autocast, resolve_device
from translate.errors import ConfigError


@pytest.fixture()
def two_gpus(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


@pytest.fixture()
def no_gpu(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


def test_numbered_gpu_is_resolved_when_it_exists(two_gpus) -> None:
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device(torch.device("cuda", 0)) == torch.device("cuda", 0)
    assert resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("auto") == torch.device("cuda")
    with pytest.raises(ConfigError, match=r"'cuda:2' does not exist: 2 CUDA device\(s\)"):
        resolve_device("cuda:2")


def test_without_a_gpu_cpu_is_chosen_and_cuda_refused(no_gpu) -> None:
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    for spec in ("cuda", "cuda:0", "cuda:1"):
        with pytest.raises(ConfigError, match="no CUDA device is available"):
            resolve_device(spec)


@pytest.mark.parametrize("spec", ["gpu", "cuda:", "cuda:x", "cuda:-1", "cuda1", ""])
def test_unknown_device_names_are_errors_naming_them(two_gpus, spec: str) -> None:
    with pytest.raises(ConfigError, match=f"unknown device '{spec}'"):
        resolve_device(spec)


def test_amp_names() -> None:
    assert AMP_DTYPES == {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    with pytest.raises(ConfigError, match="unknown amp 'fp8'"):
        amp_dtype("fp8")
    cpu = torch.device("cpu")
    a, b = torch.randn(8, 8), torch.randn(8, 8)
    with autocast(cpu, "bf16"):
        assert (a @ b).dtype == torch.bfloat16
    with autocast(cpu, "off"):
        assert (a @ b).dtype == torch.float32


def test_translate_command_takes_a_numbered_gpu(no_gpu, tmp_path: Path, capsys) -> None:
    """The device reaches the resolver (not an argparse choice list), whose error names it."""
    code = main(
        [
            "translate",
            "--checkpoint",
            str(tmp_path / "G.safetensors"),
            "--input",
            str(tmp_path),
            "--output",
            str(tmp_path / "out"),
            "--device",
            "cuda:1",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "invalid choice" not in err
    assert "device 'cuda:1' was asked for but no CUDA device is available" in err
