"""`i2i bench augment` runs and reports a rate for every generator and hook asked for."""

from __future__ import annotations

import re

import pytest

from translate.cli import main


def test_bench_augment_reports_images_per_second(capsys):
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
            "off",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    rates = re.findall(r"^small \(0\.5 M\)\s+(GANTranslate|TranslateBatch).*?\s([\d.]+)\s+([\d.]+)$", out, flags=re.M)
    assert [r[0] for r in rates] == ["GANTranslate", "TranslateBatch"]
    assert all(float(r[1]) > 0 for r in rates)


def test_bench_augment_names_unknown_choices(capsys):
    assert main(["bench", "augment", "--generators", "huge"]) == 2
    assert "unknown generator huge" in capsys.readouterr().err


def test_bench_augment_measures_exported_checkpoints_at_a_rectangular_size(tmp_path, capsys):
    """Teacher against student: exported generators side by side, at the study's H×W, with their MACs."""
    from translate.io import export_network
    from translate.nets import build_generator
    from translate.nets.macs import count_macs

    specs = {
        "teacher": {"name": "resnet", "ngf": 8, "n_blocks": 2, "n_downsampling": 1},
        "student": {"name": "resnet", "ngf": 4, "n_blocks": 1, "n_downsampling": 1, "conv": "separable"},
    }
    paths = [export_network(tmp_path / f"{k}.safetensors", build_generator(v), v) for k, v in specs.items()]
    args = [
        "bench",
        "augment",
        "--size",
        "16x32",
        "--images",
        "2",
        "--batch-size",
        "2",
        "--modes",
        "loader0",
        "--amp",
        "off",
    ]
    assert main([*args, "--checkpoints", ",".join(map(str, paths))]) == 0
    out = capsys.readouterr().out
    rates = re.findall(r"^(teacher|student) \(0\.0 M\)\s+GANTranslate.*?\s([\d.]+)\s+([\d.]+)$", out, flags=re.M)
    assert [r[0] for r in rates] == ["teacher", "student"]  # and no random-weight generator
    assert "16×32 uint8 RGB" in out
    for name, spec in specs.items():
        macs = count_macs(build_generator(spec), (3, 16, 32)) / 1e9
        assert f"{name}: " in out and f"{macs:.4f} GMACs per image" in out


def test_bench_augment_checkpoint_and_size_errors(tmp_path, capsys):
    assert main(["bench", "augment", "--checkpoints", str(tmp_path / "gone.safetensors")]) == 2
    assert f"exported network not found: {tmp_path / 'gone.safetensors'}" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "augment", "--size", "64by128"])
    assert "expected a positive side or HxW (e.g. 256 or 64x128), got '64by128'" in capsys.readouterr().err
