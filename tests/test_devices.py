"""One device resolver and one AMP table for training and inference: "cuda:N" is accepted where
GPU N exists and refused, by name, where it does not (no GPU is needed: CUDA is faked)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from translate import devices
from translate.cli import main
from translate.devices import AMP_DTYPES, amp_dtype, autocast, resolve_amp, resolve_device
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


@pytest.fixture()
def fresh_notes():
    """Each test sees the precision choice logged anew (it is logged once per process)."""
    devices._note_once.cache_clear()
    yield
    devices._note_once.cache_clear()


@pytest.fixture()
def bf16_cpu(monkeypatch, fresh_notes) -> None:
    monkeypatch.setattr(devices, "cpu_computes_bf16", lambda: True)


@pytest.fixture()
def fp32_cpu(monkeypatch, fresh_notes) -> None:
    monkeypatch.setattr(devices, "cpu_computes_bf16", lambda: False)


def test_auto_is_bf16_on_a_cpu_that_computes_it_and_is_logged_once(bf16_cpu, caplog) -> None:
    cpu = torch.device("cpu")
    with caplog.at_level("INFO", logger="translate.devices"):
        assert resolve_amp("auto", cpu) == "bf16"
        assert resolve_amp("auto", cpu) == "bf16"
        a = torch.randn(4, 4)
        with autocast(cpu, "auto"):
            assert (a @ a).dtype == torch.bfloat16
    notes = [r.getMessage() for r in caplog.records if r.name == "translate.devices"]
    assert notes == ["amp auto on cpu: bf16 (the device computes bf16 natively)"]


def test_auto_is_full_precision_on_a_cpu_without_native_bf16(fp32_cpu, caplog) -> None:
    cpu = torch.device("cpu")
    with caplog.at_level("INFO", logger="translate.devices"):
        assert resolve_amp("auto", cpu) == "off"
        a = torch.randn(4, 4)
        with autocast(cpu, "auto"):
            assert (a @ a).dtype == torch.float32
    assert any("amp auto on cpu: off (this CPU has no native bf16" in r.getMessage() for r in caplog.records)


def test_auto_on_gpus_with_and_without_bf16(monkeypatch, fresh_notes) -> None:
    cuda = torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_amp("auto", cuda) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_amp("auto", cuda) == "off"  # training: fp16 would need a grad scaler
    assert resolve_amp("auto", cuda, cuda_fallback="fp16") == "fp16"


def test_explicit_precisions_stay_and_emulated_bf16_is_warned_as_slow(fp32_cpu) -> None:
    cpu = torch.device("cpu")
    assert resolve_amp("off", cpu) == "off" and resolve_amp("fp16", cpu) == "fp16"
    with pytest.warns(UserWarning, match="amp bf16 on this CPU: no native bf16.*slower than fp32"):
        assert resolve_amp("bf16", cpu) == "bf16"


def test_explicit_bf16_on_a_bf16_cpu_is_not_warned(bf16_cpu, recwarn) -> None:
    assert resolve_amp("bf16", torch.device("cpu")) == "bf16"
    assert not [w for w in recwarn if "bf16" in str(w.message)]


def test_unknown_amp_names_the_value_and_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown amp 'bf32'; known: auto, off, bf16, fp16"):
        resolve_amp("bf32", torch.device("cpu"))
    with pytest.raises(ConfigError, match="unknown amp 'bf32'"):
        autocast(torch.device("cpu"), "bf32")


def test_the_cpu_probe_answers_without_raising() -> None:
    """This torch's private oneDNN probe exists and answers; a torch without it counts as no bf16."""
    assert isinstance(devices.cpu_computes_bf16(), bool)


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


def test_translate_command_takes_amp_auto(bf16_cpu, tmp_path: Path, capsys) -> None:
    """--amp auto is a choice of `i2i translate` (it gets as far as the missing checkpoint)."""
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
            "cpu",
            "--amp",
            "auto",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "invalid choice" not in err and "G.safetensors" in err
    assert err.count("amp auto on cpu: bf16 (the device computes bf16 natively)") == 1  # the choice, said once


def test_translate_command_refuses_an_unknown_amp(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["translate", "--checkpoint", "G", "--input", "x", "--output", "y", "--amp", "bf32"])
    assert "argument --amp: invalid choice: 'bf32'" in capsys.readouterr().err
