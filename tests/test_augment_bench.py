"""`i2i bench augment` runs and reports a rate for every generator and hook asked for."""

from __future__ import annotations

import re

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
