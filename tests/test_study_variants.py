"""Study configs built on another (`base`) and several studies from one config (`variants`, e.g.
every target preset): each variant is a study of its own, compared in summary.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apps.study.config import load_study_config
from apps.study.variants import compare, markdown
from translate.cli import main
from translate.errors import ConfigError

SMOKE = Path("configs/study_synth_smoke.yaml").resolve()


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_config_with_a_base_changes_only_what_it_says(tmp_path: Path) -> None:
    child = _write(tmp_path / "child.yaml", f"base: {SMOKE}\nname: child\nsegmenter:\n  steps: 3\n")
    cfg = load_study_config(child)
    base = load_study_config(SMOKE)
    assert (cfg.name, cfg.segmenter.steps) == ("child", 3)
    assert cfg.segmenter.batch_size == base.segmenter.batch_size == 4
    assert cfg.translators["cyclegan"].model == base.translators["cyclegan"].model
    # a command-line override still wins over both files
    assert load_study_config(child, ["segmenter.steps=5"]).segmenter.steps == 5


def test_the_presets_config_keeps_the_quick_study_settings_and_changes_only_the_target() -> None:
    presets = load_study_config("configs/study_synth_presets.yaml")
    quick = load_study_config("configs/study_synth_quick.yaml")
    assert set(presets.variants) == {"real", "dusk", "overcast"}
    assert presets.segmenter == quick.segmenter
    # the quick study's translators untouched; more only as continuations of them
    assert {name: presets.translators[name] for name in quick.translators} == quick.translators
    added = {name: t for name, t in presets.translators.items() if name not in quick.translators}
    assert all(
        t.init_from in quick.translators and t.model == quick.translators[t.init_from].model for t in added.values()
    )
    # every quick-study row, as defined there, plus rows that add to them (self-training, ensembles,
    # the continued translators, statistics from the target)
    assert [c for c in presets.conditions if c.name in {q.name for q in quick.conditions}] == quick.conditions
    extra = [c for c in presets.conditions if c not in quick.conditions]
    assert {c.train_on for c in extra} <= {"translated", "ensemble", "source"}
    assert (
        all(c.self_training or c.ensemble or c.translator in added or c.norm_stats == "target" for c in extra) and extra
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("base: missing.yaml\n", "base config not found: missing.yaml"),
        ("base: loop.yaml\n", "leads back to a config already read"),
    ],
)
def test_a_bad_base_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    config = _write(tmp_path / "loop.yaml", text)
    with pytest.raises(ConfigError, match=message):
        load_study_config(config)


@pytest.mark.parametrize(
    ("variants", "message"),
    [
        ("{'a/b': [name=x]}", "'a/b' is not a folder name"),
        ("{dusk: [data.synthetic.target]}", "variants.dusk: overrides must look like key=value"),
        ("{dusk: ['variants={}']}", "a variant cannot set variants"),
    ],
)
def test_a_bad_variant_is_a_clear_error_before_anything_runs(tmp_path: Path, variants: str, message: str) -> None:
    config = _write(tmp_path / "v.yaml", f"base: {SMOKE}\nout_dir: {tmp_path / 'run'}\nvariants: {variants}\n")
    with pytest.raises(ConfigError, match=message):
        load_study_config(config)
    assert not (tmp_path / "run").exists()


def _summary(miou: dict[str, float], std: float = 0.01) -> dict:
    lo, hi = miou["source-only"], miou["oracle"]
    return {
        "summary": {
            c: {"miou_mean": m, "miou_std": std, "gap_recovered": (m - lo) / (hi - lo)} for c, m in miou.items()
        }
    }


def test_the_comparison_names_each_variants_best_row_without_the_reference_rows() -> None:
    results = {
        "real": _summary({"source-only": 0.1, "CycleGAN": 0.4, "FDA": 0.2, "oracle": 0.5}),
        "dusk": _summary({"source-only": 0.2, "CycleGAN": 0.3, "oracle": 0.6}),
    }
    refs = {v: {"source-only", "oracle"} for v in results}
    summary = compare(results, {"real": "r", "dusk": "d"}, refs)
    assert summary["conditions"] == ["source-only", "CycleGAN", "FDA", "oracle"]
    assert summary["best"]["real"]["condition"] == "CycleGAN"
    assert summary["best"]["real"]["gap_recovered"] == pytest.approx(0.75)
    assert summary["best"]["dusk"]["gap_recovered"] == pytest.approx(0.25)
    text = markdown(summary)
    assert "| CycleGAN | 0.400 ± 0.010 (75%) | 0.300 ± 0.010 (25%) |" in text
    assert "| FDA | 0.200 ± 0.010 (25%) | — |" in text  # a row one variant lacks


@pytest.mark.slow
def test_variants_run_as_studies_of_their_own_and_are_compared(tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = _write(
        tmp_path / "presets.yaml",
        f"""base: {SMOKE}
name: presets
out_dir: {out}
segmenter: {{seeds: [0]}}
translators:
  cyclegan: {{model: {{name: cyclegan, generator: {{name: resnet, ngf: 4, n_blocks: 1}},
              discriminator: {{name: patchgan, ndf: 4, n_layers: 1}}}}, steps: 4, save_every: 2}}
conditions:
  - {{name: source-only, train_on: source}}
  - {{name: CycleGAN, train_on: translated, translator: cyclegan}}
  - {{name: oracle, train_on: target}}
variants:
  real: [data.synthetic.target=real]
  dusk: [data.synthetic.target=dusk]
""",
    )
    assert main(["study", str(config), "progress=false"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["variants"] == ["real", "dusk"]
    for variant in ("real", "dusk"):
        own = json.loads((out / variant / "results.json").read_text())["summary"]
        assert load_study_config(out / variant / "config.yaml").data.synthetic.target == variant
        for condition, cell in summary["table"].items():
            assert cell[variant]["miou_mean"] == own[condition]["miou_mean"]
    # the two targets differ, so their oracles (trained and scored on each target) differ too
    assert summary["table"]["oracle"]["real"] != summary["table"]["oracle"]["dusk"]
    for name in ("summary.md", "summary.csv", "summary_gap.png"):
        assert (out / name).stat().st_size > 0, name
    assert "| CycleGAN |" in (out / "summary.md").read_text()

    # a rerun finds every stage of every variant finished
    before = {v: (out / v / "stages.log").read_text() for v in ("real", "dusk")}
    assert main(["study", str(config), "progress=false"]) == 0
    for v, log in before.items():
        new = (out / v / "stages.log").read_text()[len(log) :]
        assert '"event": "started"' not in new, new
