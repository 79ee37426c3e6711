"""The study's cache is keyed by what determined each stage: a changed config key redoes exactly the
stages that read it and those downstream, says why, never resumes work of other inputs, and the run
folder keeps every config it was run with. Incomplete translations are errors, not finished stages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import smooth_images, write_folder

from apps.study.config import load_study_config
from apps.study.plan import Plan
from apps.study.stages import Interrupted, Stage, StageRunner
from translate.errors import DataError
from translate.segdata import ArraySet

SMOKE = "configs/study_synth_smoke.yaml"
#: the smoke config's row whose first pseudo-labels come from an ensemble of two CycleGAN rows
TAUGHT = "CycleGAN + photometric + ensemble-taught self-training"


def _runner(root: Path, said: list[str] | None = None) -> StageRunner:
    return StageRunner(root, echo=(said.append if said is not None else lambda _: None))


def _stage(name: str, reads: list[Stage] = (), **config) -> Stage:
    return Stage(name, {**config, **{f"stage {s.name}": s.fingerprint for s in reads}, "i2i version": "1"})


def _counting(calls: list[str], name: str, value):
    def work() -> dict:
        calls.append(name)
        return {"value": value}

    return work


def test_a_changed_key_reruns_its_stage_and_those_reading_it_and_says_why(tmp_path: Path) -> None:
    def run_all(steps: int, said: list[str]) -> list[str]:
        runner, calls = _runner(tmp_path, said), []
        data = _stage("data", n=4)
        seg = _stage("segmenter:a", [data], **{"segmenter.steps": steps})
        other = _stage("translator:t", [data], **{"translators.t.steps": 3})
        report = _stage("report", [seg, other])
        for stage in (data, seg, other, report):
            runner.run(stage, _counting(calls, stage.name, steps))
        return calls

    assert run_all(400, []) == ["data", "segmenter:a", "translator:t", "report"]
    said: list[str] = []
    assert run_all(800, said) == ["segmenter:a", "report"]
    assert "[study] segmenter:a reruns: config changed (segmenter.steps 400 -> 800)" in said
    assert "[study] report reruns: inputs changed (segmenter:a)" in said
    assert "[study] data: done" in said and "[study] translator:t: done" in said
    record = json.loads((tmp_path / "stages" / "segmenter_a.json").read_text())
    assert record["value"] == 800 and record["inputs"]["segmenter.steps"] == 800
    reruns = [e for e in StageRunner(tmp_path).events() if e["event"] == "rerun"]
    assert [(e["stage"], e["changed"]) for e in reruns] == [
        ("segmenter:a", ["segmenter.steps"]),
        ("report", ["stage segmenter:a"]),
    ]
    assert run_all(800, []) == []  # the same inputs again: everything cached


def test_a_moved_or_copied_run_folder_reads_its_own_files(tmp_path: Path) -> None:
    """Records name the files of their run folder relative to it: a copy reads the copy's files, and
    its origin may since hold other results or be gone."""
    import shutil

    outside = tmp_path / "weights.bin"
    outside.write_bytes(b"shared")
    origin = tmp_path / "a" / "run"
    stage = _stage("segmenter:a", n=1)

    def work() -> dict:
        (origin / "segmenters").mkdir(parents=True, exist_ok=True)
        (origin / "segmenters" / "S.bin").write_bytes(b"trained in a")
        file = str(origin / "segmenters" / "S.bin")
        (origin / "linked.bin").symlink_to(outside)  # a dataset file linked into the run folder
        linked = str(origin / "linked.bin")
        return {"file": file, "members": [file, str(outside)], "linked": linked, "name": "CycleGAN/photo", "value": 0.5}

    first = _runner(origin).run(stage, work)
    assert first["file"] == str(origin / "segmenters" / "S.bin")
    stored = json.loads((origin / "stages" / "segmenter_a.json").read_text())
    assert stored["file"] == "<run>/segmenters/S.bin"
    assert stored["members"] == ["<run>/segmenters/S.bin", str(outside)]  # a file elsewhere stays as named
    assert stored["linked"] == "<run>/linked.bin"  # the link is the run folder's, wherever it points
    assert stored["name"] == "CycleGAN/photo" and stored["value"] == 0.5
    assert _runner(origin).record("segmenter:a")["file"] == first["file"]

    copy = tmp_path / "b" / "run"
    shutil.copytree(origin, copy)
    (origin / "segmenters" / "S.bin").write_bytes(b"retrained in a")  # the origin moves on
    calls: list[str] = []
    cached = _runner(copy).run(stage, _counting(calls, "segmenter:a", 0))
    assert calls == []  # the copy's stage is still done ...
    assert Path(cached["file"]).read_bytes() == b"trained in a"  # ... and reads its own file
    assert cached["members"] == [str(copy / "segmenters" / "S.bin"), str(outside)]
    shutil.rmtree(tmp_path / "a")
    assert Path(_runner(copy).record("segmenter:a")["file"]).is_file()


def _fingerprints(*overrides: str) -> dict[str, str]:
    """Every stage of the smoke study under ``overrides``, by name."""
    return {s.name: s.fingerprint for s in Plan(load_study_config(SMOKE, list(overrides))).all_stages()}


def test_changing_segmenter_steps_changes_the_segmenters_and_what_reads_them_only() -> None:
    before, after = _fingerprints(), _fingerprints("segmenter.steps=8")
    assert before.keys() == after.keys()
    changed = {name for name in before if before[name] != after[name]}
    segmenters = {name for name in before if name.startswith(("segmenter:", "ensemble:", "normstats:"))}
    # every translator is scored with the oracle and source-only segmenters
    quality = {name for name in before if name.startswith("quality:")}
    assert quality >= {"quality:none", "quality:cyclegan", "quality:fda05", "quality:histogram", "quality:cut"}
    # CyCADA's semantic term reads the source-only segmenter, so that translator is redone too
    # and the self-training row's pseudo-labels, which its segmenters make
    pseudo = {f"pseudolabels:CycleGAN + self-training-seed{s}-round{r}" for s in (0, 1) for r in (1, 2)}
    pseudo |= {f"pseudolabels:{TAUGHT}-seed{s}-round1" for s in (0, 1)}
    assert changed == segmenters | quality | pseudo | {
        "translator:cycada",
        "translation:cycada",
        "report",
    }
    assert {"data", "translator:cyclegan", "translation:cyclegan", "translator:distilled"} <= before.keys() - changed
    assert {"translator:fda05", "translation:fda05", "translator:cut", "translation:cut"} <= before.keys() - changed


@pytest.mark.parametrize(
    "override,unchanged",
    [
        ("segmenter.seeds=[0,1,2]", "segmenter:source-seed0"),  # a new seed leaves the others' segmenters
        ("segmenter.save_every=3", "segmenter:source-seed0"),  # a checkpoint cadence changes no result
        ("translators.cyclegan.sample_every=2", "translator:cyclegan"),
        ("progress=false", "report"),
        ("segmenter.photometric_strength=0.5", "segmenter:source-seed0"),  # read by photometric rows only
    ],
)
def test_keys_that_do_not_change_a_result_keep_its_stage(override: str, unchanged: str) -> None:
    before, after = _fingerprints(), _fingerprints(override)
    assert before[unchanged] == after[unchanged]


def test_photometric_strength_reruns_the_photometric_rows() -> None:
    before, after = _fingerprints(), _fingerprints("segmenter.photometric_strength=0.5")
    assert {n for n in before if before[n] != after[n]} == {
        "segmenter:source-photometric-seed0",
        "segmenter:source-photometric-seed1",
        "segmenter:translated-cyclegan-photometric-seed0",
        "segmenter:translated-cyclegan-photometric-seed1",
        "segmenter:translated-fda05-photometric-p0.5-seed0",
        "segmenter:translated-fda05-photometric-p0.5-seed1",
        # the ensemble holding the photometric row, and the row it teaches (its own set is photometric too)
        "ensemble:translated-cyclegan+translated-cyclegan-photometric-seed0",
        "ensemble:translated-cyclegan+translated-cyclegan-photometric-seed1",
        *(f"{kind}:{TAUGHT}-seed{s}-round1" for kind in ("pseudolabels", "segmenter") for s in (0, 1)),
        # the same ensemble with target statistics, through its re-estimated photometric member
        *(f"normstats:translated-cyclegan-photometric-seed{s}" for s in (0, 1)),
        *(
            f"ensemble:targetnorm-translated-cyclegan+targetnorm-translated-cyclegan-photometric-seed{s}"
            for s in (0, 1)
        ),
        "report",
    }


def test_a_killed_stage_continues_its_work_only_under_the_same_inputs(tmp_path: Path) -> None:
    folder = tmp_path / "segmenters" / "a"
    seen: list[bool] = []

    def work(stop: bool):
        def run() -> dict:
            seen.append((folder / "train_state.pt").is_file())  # what a trainer would resume from
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "train_state.pt").write_text("state")
            if stop:
                raise Interrupted("stopped")
            return {}

        return run

    steps_400, steps_800 = _stage("segmenter:a", steps=400), _stage("segmenter:a", steps=800)
    with pytest.raises(Interrupted):
        _runner(tmp_path).run(steps_400, work(stop=True), [folder])
    with pytest.raises(Interrupted):
        _runner(tmp_path).run(steps_400, work(stop=True), [folder])  # same inputs: continues
    said: list[str] = []
    _runner(tmp_path, said).run(steps_800, work(stop=False), [folder])  # other inputs: starts afresh
    assert seen == [False, True, False]
    assert "[study] segmenter:a: removed work of other inputs (segmenters/a)" in said
    seen.clear()
    _runner(tmp_path).run(steps_400, work(stop=False), [folder])  # a finished stage of other inputs: afresh
    assert seen == [False]


def test_a_record_of_an_older_version_without_fingerprint_is_redone(tmp_path: Path) -> None:
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "data.json").write_text(json.dumps({"source_train": 16}))
    said, calls = [], []
    _runner(tmp_path, said).run(_stage("data", n=4), _counting(calls, "data", 1))
    assert calls == ["data"]
    assert said == ["[study] data reruns: its record has no fingerprint (written by an older version)"]


def test_an_unfinished_rerun_leaves_no_old_record(tmp_path: Path) -> None:
    _runner(tmp_path).run(_stage("data", n=4), lambda: {"value": 4})

    def fails() -> dict:
        raise DataError("broken")

    with pytest.raises(DataError):
        _runner(tmp_path).run(_stage("data", n=8), fails)
    assert not (tmp_path / "stages" / "data.json").exists()
    assert StageRunner(tmp_path).events()[-1] | {"time": 0} == {
        "stage": "data",
        "event": "failed",
        "error": "broken",
        "time": 0,
    }


def test_the_run_folder_keeps_every_config_it_was_run_with(tmp_path: Path) -> None:
    from apps.study.pipeline import write_setup

    (tmp_path / "config.yaml").write_text("written before configs were kept\n")
    first = write_setup(load_study_config(SMOKE), tmp_path)
    again = write_setup(load_study_config(SMOKE), tmp_path)
    changed = write_setup(load_study_config(SMOKE, ["segmenter.steps=8"]), tmp_path)
    kept = sorted((tmp_path / "configs").iterdir())
    assert [p.name for p in kept] == ["config_0001.yaml", "config_0002.yaml", "config_0003.yaml"]
    assert kept[0].read_text() == "written before configs were kept\n"
    assert first == again == kept[1] and "steps: 6\n" in kept[1].read_text()
    assert changed == kept[2] and "steps: 8\n" in kept[2].read_text()
    assert (tmp_path / "config.yaml").read_text() == kept[2].read_text()  # config.yaml is the latest


# ----------------------------------------------------------------------------- incomplete translation
SPEC = {"name": "resnet", "ngf": 4, "n_blocks": 1}


@pytest.fixture
def generator_file(tmp_path: Path) -> Path:
    from translate.io import export_network
    from translate.nets import build_generator

    torch.manual_seed(0)
    return export_network(tmp_path / "g.safetensors", build_generator(SPEC), SPEC, "generator", {})


def test_a_translation_with_a_failed_image_is_an_error(tmp_path: Path, generator_file: Path) -> None:
    from apps.study.translators import translate_folder

    source = write_folder(tmp_path / "source", smooth_images(3, 16, seed=0))
    (source / "img_003.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"1 of 4 images failed \(first .*img_003.png"):
        translate_folder(generator_file, source, tmp_path / "out", "cpu", progress=False)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["img_000.png", "img_001.png", "img_002.png"]


def test_a_translation_missing_outputs_is_an_error(tmp_path: Path, generator_file: Path, monkeypatch) -> None:
    import translate.infer
    from apps.study.translators import translate_folder
    from translate.infer import FolderReport

    source = write_folder(tmp_path / "source", smooth_images(3, 16, seed=0))
    # a translator that reports success but wrote nothing (a full disk, a lost network share)
    monkeypatch.setattr(translate.infer, "translate_path", lambda *a, **k: FolderReport([], [], []))
    with pytest.raises(DataError, match=r"3 of 3 images have no translation \(first img_000.png\)"):
        translate_folder(generator_file, source, tmp_path / "out", "cpu", progress=False)


def test_translated_images_must_match_the_source_labels_one_to_one(tmp_path: Path, monkeypatch) -> None:
    from apps.study.pipeline import Study

    study = Study(load_study_config(SMOKE, [f"out_dir={tmp_path}"]))
    study.data = type(
        "Data", (), {"source_train": ArraySet(np.zeros((3, 8, 8, 3), np.uint8), np.zeros((3, 8, 8), np.uint8))}
    )
    folder = write_folder(tmp_path / "translated", smooth_images(2, 8, seed=0))
    monkeypatch.setattr(study, "translation", lambda name: folder)
    with pytest.raises(DataError, match="holds 2 translated images, the source training set 3"):
        study.translated_images("cyclegan")


def test_an_unused_newer_translator_option_keeps_the_stages_of_runs_made_before_it() -> None:
    from apps.study.plan import OPTIONAL_TRANSLATOR_KEYS

    plan = Plan(load_study_config(SMOKE))
    inputs = plan.translator("cyclegan").inputs
    for key in OPTIONAL_TRANSLATOR_KEYS:
        assert f"translators.cyclegan.{key}" not in inputs  # a fingerprint of before the option
    assert plan.translator("distilled").inputs["translators.distilled.distill_from"] == "cyclegan"


def test_segmenter_precision_is_in_the_fingerprint_only_when_set() -> None:
    """amp changes the numbers, so a bf16 segmenter is another stage; while off the key is left out,
    so run folders made before the option keep their segmenters."""
    default = _fingerprints()
    inputs = {s.name: s for s in Plan(load_study_config(SMOKE)).all_stages()}["segmenter:source-seed0"].inputs
    assert "segmenter.amp" not in inputs
    bf16 = _fingerprints("segmenter.amp=bf16")
    assert bf16["segmenter:source-seed0"] != default["segmenter:source-seed0"]
    assert bf16["translator:cyclegan"] == default["translator:cyclegan"]
    assert _fingerprints("segmenter.amp=off")["segmenter:source-seed0"] == default["segmenter:source-seed0"]


def test_segmenter_precision_reaches_the_engine_and_is_checked(tmp_path: Path) -> None:
    from apps.study.segmenter import experiment
    from translate.errors import ConfigError

    cfg = load_study_config(SMOKE, ["segmenter.amp=auto"])
    assert experiment(cfg.segmenter, {}, 0, tmp_path).engine.amp == "auto"
    with pytest.raises(ConfigError, match="segmenter.amp"):
        load_study_config(SMOKE, ["segmenter.amp=half"])


def test_segmenter_channels_last_reaches_the_engine_and_like_the_translators_speed_keys_keeps_the_stages(
    tmp_path: Path,
) -> None:
    from apps.study.segmenter import experiment

    assert _fingerprints("segmenter.channels_last=true") == _fingerprints()
    cfg = load_study_config(SMOKE, ["segmenter.channels_last=true"])
    assert experiment(cfg.segmenter, {}, 0, tmp_path).engine.channels_last is True


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_is_fingerprinted_as_what_it_means_on_this_machine(monkeypatch, native: bool) -> None:
    """amp=auto is bf16 on a bf16-native CPU and full precision elsewhere: the stage is the bf16 one
    there, and the cached full-precision one here (same fingerprint as amp=off)."""
    import translate.devices

    monkeypatch.setattr(translate.devices, "cpu_computes_bf16", lambda: native)
    auto = _fingerprints("segmenter.amp=auto", "translators.cyclegan.amp=auto")
    like = "bf16" if native else "off"
    same = _fingerprints(f"segmenter.amp={like}", f"translators.cyclegan.amp={like}")
    assert auto["segmenter:source-seed0"] == same["segmenter:source-seed0"]
    assert auto["translator:cyclegan"] == same["translator:cyclegan"]
    assert (auto["segmenter:source-seed0"] == _fingerprints()["segmenter:source-seed0"]) is not native


def test_a_translator_seed_is_another_translator_and_reaches_the_engine(tmp_path: Path) -> None:
    """seed 0 (the default) keeps the stages of runs made before the option; another seed is
    another translator, and everything downstream of it is redone."""
    from apps.study.translators import experiment
    from translate.errors import ConfigError

    default, seeded = _fingerprints(), _fingerprints("translators.cyclegan.seed=1")
    assert _fingerprints("translators.cyclegan.seed=0") == default
    assert seeded["translator:cyclegan"] != default["translator:cyclegan"]
    assert seeded["segmenter:source-seed0"] == default["segmenter:source-seed0"]
    cfg = load_study_config(SMOKE, ["translators.cyclegan.seed=3"])
    exp = experiment(cfg, "cyclegan", cfg.translators["cyclegan"], tmp_path, tmp_path / "t", None)
    assert exp.engine.seed == 3
    with pytest.raises(ConfigError, match="takes no seed"):
        load_study_config(SMOKE, ["translators.fda05.seed=1"])


def test_stage_file_names_stay_within_the_file_system_limit_and_apart() -> None:
    from apps.study.stages import MAX_SLUG, slug

    assert slug("segmenter:CycleGAN + photometric-seed0") == "segmenter_CycleGAN___photometric-seed0"
    members = "+".join(f"translated-cyclegan_{k}k-photometric-β" for k in range(12))
    long_a, long_b = f"ensemble:{members}-seed0", f"ensemble:{members}-seed1"
    a, b = slug(long_a), slug(long_b)
    assert a != b and len(a.encode()) <= MAX_SLUG and len(b.encode()) <= MAX_SLUG
    assert a.startswith("ensemble_translated-cyclegan_0k") and slug(long_a) == a  # stable across runs
