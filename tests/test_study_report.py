"""The study's table arithmetic: mean ± std over seeds and the share of the gap recovered."""

from __future__ import annotations

import pytest

from apps.study.report import add_gap_shares, markdown, summarise


def _row(*mious: float) -> dict:
    return {
        seed: {"target_test": {"miou": m, "pixel_accuracy": 0.5 + m / 2, "per_class": {"road": m, "sky": 1 - m}}}
        for seed, m in enumerate(mious)
    }


def test_summary_means_stds_and_gap_shares() -> None:
    rows = {"source-only": _row(0.10, 0.14), "CycleGAN": _row(0.40, 0.44), "oracle": _row(0.52, 0.56)}
    summary = summarise(rows)
    add_gap_shares(summary, "source-only", "oracle")
    assert summary["CycleGAN"]["miou_mean"] == pytest.approx(0.42)
    assert summary["CycleGAN"]["miou_std"] == pytest.approx(0.028284, abs=1e-5)  # sample std over seeds
    assert summary["CycleGAN"]["gap_recovered"] == pytest.approx((0.42 - 0.12) / (0.54 - 0.12))
    assert summary["source-only"]["gap_recovered"] == 0 and summary["oracle"]["gap_recovered"] == 1
    assert summary["CycleGAN"]["per_class"] == pytest.approx({"road": 0.42, "sky": 0.58})
    quality = {"none": {"fcn_miou": 0.2, "fcn_pixel_accuracy": 0.5, "class_flip_rate": 0.0, "l1_to_paired_target": 0.3}}
    text = markdown(summary, quality, "source-only", "oracle", [0, 1])
    assert "| CycleGAN | **0.420** ± 0.028 |" in text and "71%" in text and "| road | sky |" in text
