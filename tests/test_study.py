"""The domain-adaptation study (`i2i study`): end to end on the smoke config, resume of killed
stages, early errors, and the real-dataset config on fixture trees in the GTA5/Cityscapes layouts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from apps.study.stages import slug
from translate.cli import main
from translate.data.images import read_image, write_image
from translate.io import file_sha256, read_metadata
from translate.segdata.classes import IGNORE

SMOKE = "configs/study_synth_smoke.yaml"
OUTPUTS = [
    "results.md",
    "results.csv",
    "results.json",
    "translator_quality.csv",
    "miou_bars.png",
    "per_class_iou.png",
    "translator_samples.png",
    "example_predictions.png",
    "config.yaml",
    "configs/config_0001.yaml",
    "versions.json",
]


def _events(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "stages.log").read_text().splitlines()]


def _record(out: Path, stage: str) -> dict:
    """A stage's record as the study reads it: its paths inside the run folder resolved."""
    from apps.study.stages import StageRunner

    return StageRunner(out, echo=lambda _: None).record(stage)


def _study(out: Path, *overrides: str, config: str = SMOKE) -> int:
    return main(["study", config, f"out_dir={out}", "progress=false", *overrides])


@pytest.mark.slow
def test_smoke_study_writes_every_output_and_a_rerun_redoes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert _study(out) == 0
    for name in OUTPUTS:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    results = json.loads((out / "results.json").read_text())
    summary = results["summary"]
    assert list(summary) == [
        "source-only",
        "source + photometric",
        "CycleGAN",
        "CycleGAN + photometric",
        "CycleGAN mixed p=0.5",
        "CyCADA (CycleGAN + semantic)",
        "CycleGAN distilled",
        "CycleGAN + self-training",
        "CycleGAN ensemble",
        "CycleGAN + photometric + ensemble-taught self-training",
        "CUT",
        "FastCUT",
        "FDA β=0.05",
        "FDA β=0.09",
        "FDA multi-band",
        "FDA β=0.05 mixed p=0.5 + photometric",
        "histogram matching",
        "pixel-distribution adaptation",
        "source-only + AdaBN",
        "CycleGAN ensemble + AdaBN",
        "oracle",
    ]
    for row in summary.values():
        assert 0.0 <= row["miou_mean"] <= 1.0 and len(row["per_seed_miou"]) == 2
        assert row["per_class"], "per-class IoU always listed"
    assert summary["source-only"]["gap_recovered"] == 0.0 and summary["oracle"]["gap_recovered"] == 1.0
    translators = [
        "cyclegan",
        "cycada",
        "distilled",
        "cut",
        "fastcut",
        "fda05",
        "fda09",
        "histogram",
        "pixel_distribution",
    ]
    assert list(results["quality"]) == ["none", *translators]  # every kind is scored as a translator
    assert results["quality"]["none"]["class_flip_rate"] == 0.0  # nothing translated, nothing flips
    for name in translators:
        assert (
            0.0 <= results["quality"][name]["fcn_miou"] <= 1.0 and results["quality"][name]["l1_to_paired_target"] > 0
        )
        # offline: the whole source training set translated once, as files
        assert len(list((out / "data" / "translated" / name).glob("*.png"))) == 16, name
    assert not (out / "translators" / "fda05").exists()  # nothing trained for a training-free kind
    # the ensemble row is scored from its members' segmenters, one ensemble per seed
    for seed in (0, 1):
        record = json.loads((out / f"stages/ensemble_translated-fda05_translated-fda09-seed{seed}.json").read_text())
        assert [Path(f).parent.parent.name for f in record["members"]] == [
            f"translated-fda05-seed{seed}",
            f"translated-fda09-seed{seed}",
        ]
        assert summary["FDA multi-band"]["per_seed_miou"][str(seed)] == record["target_test"]["miou"]
    # the AdaBN rows: scored by exports whose batch-norm statistics were re-estimated on the target,
    # weights untouched; the ensemble's members are such exports
    adapted = _record(out, "normstats:source-seed0")
    assert read_metadata(adapted["file"])["info"]["norm_stats"] == "target"
    new, old = load_file(adapted["file"]), load_file(adapted["adapted_from"])
    means = [k for k in new if k.endswith("running_mean")]
    assert means and all(not torch.equal(new[k], old[k]) for k in means)
    assert all(torch.equal(new[k], old[k]) for k in new if k.endswith("weight"))
    assert summary["source-only + AdaBN"]["per_seed_miou"]["0"] == adapted["target_test"]["miou"]
    members = "ensemble:targetnorm-translated-cyclegan+targetnorm-translated-cyclegan-photometric-seed1"
    ensemble = _record(out, members)
    assert [read_metadata(f)["info"]["norm_stats"] for f in ensemble["members"]] == ["target", "target"]
    assert summary["CycleGAN ensemble + AdaBN"]["per_seed_miou"]["1"] == ensemble["target_test"]["miou"]
    csv_lines = (out / "results.csv").read_text().splitlines()
    # the self-training row: its rounds' pseudo-labels scored, its last round's segmenter scoring the row
    rounds = results["self_training"]["CycleGAN + self-training"]
    assert [r["round"] for r in rounds] == [0, 1, 2] and [r.get("portion") for r in rounds] == [None, 0.5, 0.7]
    assert all(
        0.0 < r["pseudo_coverage"]["mean"] <= 1.0 and 0.0 <= r["pseudo_accuracy"]["mean"] <= 1.0 for r in rounds[1:]
    )
    assert rounds[0]["target_test_miou"]["mean"] == summary["CycleGAN"]["miou_mean"]  # round 0: the plain row
    assert rounds[2]["target_test_miou"]["mean"] == summary["CycleGAN + self-training"]["miou_mean"]
    assert "| CycleGAN + self-training | 2 | 0.7 |" in (out / "results.md").read_text()
    # the ensemble-taught row: round 1 labelled by the CycleGAN ensemble's members, not its own segmenter
    taught = results["self_training"]["CycleGAN + photometric + ensemble-taught self-training"]
    assert [r["round"] for r in taught] == [0, 1]
    assert taught[0]["target_test_miou"]["mean"] == summary["CycleGAN + photometric"]["miou_mean"]
    for seed in (0, 1):
        stage = f"pseudolabels:CycleGAN + photometric + ensemble-taught self-training-seed{seed}-round1"
        inputs = json.loads((out / "stages" / f"{slug(stage)}.json").read_text())["inputs"]
        assert [k for k in inputs if k.startswith("stage ")] == [
            "stage data",
            f"stage ensemble:translated-cyclegan+translated-cyclegan-photometric-seed{seed}",
        ]
    labels = sorted((out / "self_training/CycleGAN___self-training/seed0-round1/labels").glob("*.png"))
    assert len(labels) == 16 and IGNORE in np.array(Image.open(labels[0]))
    assert len(csv_lines) == 1 + 21 and csv_lines[0].startswith("condition,miou_mean,miou_std")
    # sample grid: 2 scenes × [source | 9 translators | paired target] of 32×64, 2-pixel gaps
    grid = read_image(out / "translator_samples.png")
    assert grid.shape == (2 * 32 + 2, 11 * 64 + 10 * 2, 3)
    # CyCADA fine-tunes the finished CycleGAN (init_from), as its config says
    cycada = (out / "translators/cycada/config.yaml").read_text()
    assert "init_from: " + str(out / "translators/cyclegan/checkpoints/ckpt_00000006.pt") in cycada
    # the distilled student learns from the finished CycleGAN's export, which its file records
    distilled = (out / "translators/distilled/config.yaml").read_text()
    teacher = out / "translators/cyclegan/export/G_AB.safetensors"
    assert "teacher: " + str(teacher) in distilled
    info = read_metadata(out / "translators/distilled/export/G_AB.safetensors")["info"]
    assert info["teacher"]["sha256"] == file_sha256(teacher)
    assert info["macs"]["teacher"] > info["macs"]["student"]
    # a finished segmenter keeps its export, not its training checkpoints (disk: one set per row and seed)
    assert list((out / "segmenters").glob("*/export/*.safetensors"))
    assert not list((out / "segmenters").glob("*/checkpoints")) and not list(
        out.glob("self_training/*/*/*/checkpoints")
    )
    # segmenters of the same recipe and seed are shared, not retrained per row
    started = [e["stage"] for e in _events(out) if e["event"] == "started"]
    assert len(started) == len(set(started))

    before = {p: p.stat().st_mtime_ns for p in (out / "stages").glob("*.json")}
    first_run = len(_events(out))
    assert _study(out) == 0
    assert {p: p.stat().st_mtime_ns for p in (out / "stages").glob("*.json")} == before
    rerun = _events(out)[first_run:]
    assert rerun[0]["event"] == "run" and rerun[0]["config"] == "configs/config_0001.yaml"  # the same config
    assert rerun[1:] and all(e["event"] == "cached" for e in rerun[1:])


def _same_weights(a: str | Path, b: str | Path) -> bool:
    from safetensors.torch import load_file

    left, right = load_file(str(a)), load_file(str(b))
    return left.keys() == right.keys() and all(torch.equal(left[k], right[k]) for k in left)


def _straight_run(out: Path, stage: str, elsewhere: Path, *overrides: str) -> Path:
    """The file ``stage`` exports when trained without interruption, by the study's own code, on
    the data of run folder ``out``."""
    from apps.study.config import load_study_config
    from apps.study.data import load_data, present_classes
    from apps.study.pipeline import Study
    from apps.study.plan import Recipe
    from apps.study.translators import train_translator

    cfg = load_study_config(SMOKE, [f"out_dir={elsewhere}", "progress=false", *overrides])
    if stage.startswith("translator:"):
        return Path(train_translator(cfg, stage.split(":")[1], out / "data", elsewhere, None)["generator"])
    study = Study(cfg)
    study.data_dir = out / "data"  # the segmenter reads its image and label folders there
    study.data = load_data(cfg, out / "data")
    study.classes = present_classes(study.data.target_test)
    return Path(study._train_segmenter(Recipe("source"), 0, elsewhere)["file"])


@pytest.mark.slow
@pytest.mark.parametrize(
    "stage,step,checkpoint",
    [
        ("translator:cyclegan", 4, "translators/cyclegan/checkpoints/ckpt_00000004.pt"),
        ("segmenter:source-seed0", 4, "segmenters/source-seed0/checkpoints/ckpt_00000004.pt"),
    ],
)
def test_killed_stage_continues_from_its_checkpoint(tmp_path: Path, stage: str, step: int, checkpoint: str) -> None:
    out = tmp_path / "run"
    # keep it short: one seed and the rows this stage feeds
    only = ["segmenter.seeds=[0]"]
    assert _study(out, *only, f"interrupt={stage}@{step}") == 3
    assert (out / checkpoint).is_file()
    assert not (out / "stages" / f"{stage.replace(':', '_')}.json").exists()
    finished_before = {e["stage"] for e in _events(out) if e["event"] == "finished"}
    assert _study(out, *only) == 0
    record = _record(out, stage)
    assert record["resumed_at"] == step
    # what was resumed: the weights equal those of a run never stopped
    exported = record["generator"] if stage.startswith("translator:") else record["file"]
    assert _same_weights(exported, _straight_run(out, stage, tmp_path / "straight", *only))
    events = _events(out)
    assert any(e["stage"] == stage and e["event"] == "continues" for e in events)
    restarted = [e["stage"] for e in events if e["event"] == "started"]
    for done in finished_before:  # a finished stage is never redone
        assert restarted.count(done) == 1


@pytest.mark.slow
def test_changed_segmenter_steps_reruns_the_segmenters_and_report_and_keeps_the_translators(
    tmp_path: Path, capsys
) -> None:
    from translate.io import read_metadata

    out = tmp_path / "run"
    assert _study(out, "segmenter.seeds=[0]") == 0
    first_run = len(_events(out))
    capsys.readouterr()
    assert _study(out, "segmenter.seeds=[0]", "segmenter.steps=8") == 0
    said = capsys.readouterr().out
    second = {e["stage"]: e for e in _events(out)[first_run:] if e["event"] in ("cached", "rerun", "started")}
    untouched = ["cyclegan", "distilled", "cut", "fastcut", "fda05", "fda09", "histogram", "pixel_distribution"]
    assert {name for name, e in second.items() if e["event"] == "cached"} == {
        "data",
        *(f"translator:{t}" for t in untouched),
        *(f"translation:{t}" for t in untouched),
    }
    assert all(e["event"] == "rerun" for name, e in second.items() if name.startswith("segmenter:"))
    assert second["report"]["event"] == "rerun"
    # every segmenter says why, and the table is built from segmenters trained for 8 steps, afresh
    for name in (n for n in second if n.startswith("segmenter:")):
        assert second[name]["reason"].startswith("config changed (segmenter.steps 6 -> 8)"), second[name]
        record = _record(out, name)
        assert record["inputs"]["segmenter.steps"] == 8 and record["resumed_at"] == 0
        assert read_metadata(record["file"])["info"]["step"] == 8
    assert "[study] segmenter:source-seed0 reruns: config changed (segmenter.steps 6 -> 8)" in said
    # CyCADA's semantic term reads the source-only segmenter: that translator is redone, and says so
    assert second["translator:cycada"]["reason"] == "inputs changed (segmenter:source-seed0)"
    report = json.loads((out / "stages" / "report.json").read_text())
    assert (
        report["inputs"]["stage segmenter:source-seed0"]
        == json.loads((out / "stages" / "segmenter_source-seed0.json").read_text())["fingerprint"]
    )
    assert json.loads((out / "results.json").read_text())["summary"] == report["summary"]
    kept = sorted((out / "configs").glob("config_*.yaml"))
    assert len(kept) == 2 and "steps: 8" in (out / "config.yaml").read_text() and "steps: 6" in kept[0].read_text()


def test_bad_config_key_is_a_clear_error_before_training(tmp_path: Path, capsys) -> None:
    assert _study(tmp_path / "run", "segmenter.stepz=3") == 2
    err = capsys.readouterr().err
    assert "stepz" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_unknown_target_preset_is_a_clear_error_before_training(tmp_path: Path, capsys) -> None:
    assert _study(tmp_path / "run", "data.synthetic.target=mars") == 2
    err = capsys.readouterr().err
    assert "unknown appearance preset 'mars'" in err
    assert not (tmp_path / "run").exists()


def test_missing_dataset_path_is_a_clear_error_before_training(tmp_path: Path, capsys) -> None:
    code = _study(
        tmp_path / "run", f"data.real.gta5_root={tmp_path / 'nowhere'}", config="configs/study_gta5_cityscapes.yaml"
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "GTA5 root not found" in err and "nowhere" in err
    assert not (tmp_path / "run").exists()


def test_condition_naming_an_unknown_translator_is_an_error(tmp_path: Path) -> None:
    from apps.study.config import load_study_config
    from translate.errors import ConfigError

    config = tmp_path / "study.yaml"
    config.write_text(
        "conditions:\n  - {name: source-only, train_on: source}\n  - {name: oracle, train_on: target}\n"
        "  - {name: MUNIT, train_on: translated, translator: munit}\n"
    )
    with pytest.raises(ConfigError, match="translator 'munit'"):
        load_study_config(config)


def test_translator_init_from_must_name_another_translator(tmp_path: Path) -> None:
    from apps.study.config import load_study_config
    from translate.errors import ConfigError

    with pytest.raises(ConfigError, match=r"translators.cycada.init_from must name another translator, got 'cycle'"):
        load_study_config(SMOKE, ["translators.cycada.init_from=cycle"])
    with pytest.raises(ConfigError, match="must name another translator, got 'cycada'"):
        load_study_config(SMOKE, ["translators.cycada.init_from=cycada"])


@pytest.mark.parametrize(
    "override,message",
    [
        ("data.kind=kitti", "data.kind must be one of synthetic, gta5_cityscapes, got 'kitti'"),
        ("segmenter.seeds=[]", "segmenter.seeds must list at least one seed"),
        ("segmenter.decoder_channels=[8,8]", "segmenter.decoder_channels needs one entry per encoder stage"),
        ("segmenter.architecture=pspnet", "segmenter.architecture must be one of smp_deeplabv3, smp_deeplabv3plus, "),
        ("segmenter.optimizer=lamb", "segmenter.optimizer must be one of adam, adamw, sgd, got 'lamb'"),
        ("segmenter.schedule=step", "segmenter.schedule must be one of constant, linear, cosine, poly, onecycle"),
        ("segmenter.weights=/nowhere/resnet101.pth", "segmenter.weights: file not found: /nowhere/resnet101.pth"),
        ("translators.cyclegan.steps=0", "translators.cyclegan.steps must be >= 1"),
        ("conditions=[{name: a, train_on: source}, {name: a, train_on: target}]", "condition names must be unique"),
        ("conditions=[{name: src, train_on: source}]", "conditions need an oracle row (train_on: target)"),
        ("conditions=[{name: o, train_on: target}]", "conditions need a source-only row (train_on: source)"),
        (
            "conditions=[{name: s, train_on: source}, {name: o, train_on: target}, {name: x, train_on: sim}]",
            "condition 'x': train_on must be one of source, target, translated, ensemble, got 'sim'",
        ),
        (
            "conditions=[{name: s, train_on: source}, {name: o, train_on: target}, "
            "{name: m, train_on: translated, translator: cyclegan, p_translated: 1.5}]",
            "condition 'm': p_translated must be in [0, 1], got 1.5",
        ),
        ("translators.distilled.distill_from=cyclegn", "translators.distilled.distill_from must name another"),
        ("translators.distilled.distill_from=''", "model distill needs distill_from, the translator whose"),
        ("translators.cycada.distill_from=cyclegan", "translators.cycada.distill_from needs model.name distill"),
        ("translators.distilled.model.teacher=x.safetensors", "model.teacher is set from distill_from"),
    ],
)
def test_inconsistent_study_config_is_an_error_naming_the_key(
    override: str, message: str, tmp_path: Path, capsys
) -> None:
    assert _study(tmp_path / "run", override) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "run").exists()


def test_target_domain_is_a_preset_name_or_an_appearance_file(tmp_path: Path) -> None:
    from apps.study.data import appearance_of

    assert appearance_of("dusk", "real") != appearance_of("real", "real")
    assert appearance_of("configs/synthetic/foggy_evening.yaml", "real") != appearance_of("real", "real")


# ----------------------------------------------------------------------------- real-data layout
def _labels(h: int, w: int, ids: list[int], seed: int) -> np.ndarray:
    """Horizontal bands of Cityscapes label ids (road at the bottom, sky on top, ...)."""
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.choice(np.arange(2, h - 2), len(ids) - 1, replace=False))
    out = np.empty((h, w), np.uint8)
    for band, (lo, hi) in enumerate(zip([0, *cuts], [*cuts, h], strict=False)):
        out[lo:hi] = ids[band]
    return out


def _render(label_ids: np.ndarray, palette: dict[int, tuple[int, int, int]]) -> np.ndarray:
    img = np.zeros((*label_ids.shape, 3), np.uint8)
    for k, colour in palette.items():
        img[label_ids == k] = colour
    return img


IDS = [23, 11, 21, 8, 7]  # sky, building, vegetation, sidewalk, road
GAME = {23: (90, 160, 255), 11: (200, 80, 60), 21: (40, 200, 40), 8: (230, 230, 90), 7: (60, 60, 60)}
REAL = {23: (180, 190, 200), 11: (120, 110, 100), 21: (70, 100, 60), 8: (140, 140, 130), 7: (100, 100, 105)}


def _gta5_tree(root: Path, n: int, h: int, w: int) -> None:
    for i in range(n):
        ids = _labels(h, w, IDS, i)
        ids[0, 0] = 3  # out of roi -> ignore
        write_image(root / "images" / f"{i + 1:05d}.png", _render(ids, GAME))
        (root / "labels").mkdir(parents=True, exist_ok=True)
        im = Image.fromarray(ids, mode="P")
        im.putpalette([v for k in range(256) for v in ((k * 7) % 256, (k * 13) % 256, (k * 29) % 256)])
        im.save(root / "labels" / f"{i + 1:05d}.png")


def _cityscapes_tree(root: Path, split: str, n: int, h: int, w: int) -> None:
    for i in range(n):
        city = ["aachen", "bremen"][i % 2]
        stem = f"{city}_{i:06d}_000019"
        ids = _labels(h, w, IDS, 100 + i + (0 if split == "train" else 1000))
        ids[-1, -1] = 1  # ego vehicle -> ignore
        write_image(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", _render(ids, REAL))
        (root / "gtFine" / split / city).mkdir(parents=True, exist_ok=True)
        Image.fromarray(ids, mode="L").save(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png")


@pytest.mark.slow
def test_real_dataset_config_runs_end_to_end_on_fixture_trees(tmp_path: Path) -> None:
    gta, cs = tmp_path / "gta5", tmp_path / "cityscapes"
    _gta5_tree(gta, 8, 40, 72)
    _cityscapes_tree(cs, "train", 8, 40, 72)
    _cityscapes_tree(cs, "val", 4, 40, 72)
    tiny_net = "{name: cyclegan, generator: {name: resnet, ngf: 4, n_blocks: 1}, discriminator: {name: patchgan, ndf: 4, n_layers: 1}, pool_size: 2}"
    overrides = [
        f"data.real.gta5_root={gta}",
        f"data.real.cityscapes_root={cs}",
        "data.real.source_short_side=36",
        "data.real.crop=32x64",
        "data.real.target_size=32x64",
        "data.real.n_quality=2",
        "device=cpu",
        "segmenter.encoder=resnet18",
        "segmenter.encoder_depth=3",
        "segmenter.decoder_channels=[8,8,8]",
        "segmenter.steps=3",
        "segmenter.batch_size=2",
        "segmenter.seeds=[0]",
        "segmenter.save_every=2",
        "n_examples=2",
    ]
    for t in ("cyclegan", "cycada"):
        overrides += [
            f"translators.{t}.model={tiny_net}",
            f"translators.{t}.steps=3",
            f"translators.{t}.save_every=2",
            f"translators.{t}.sample_every=3",
            f"translators.{t}.ema_decay=0",
            f"translators.{t}.amp=off",
            f"translators.{t}.num_workers=0",
            f"translators.{t}.crop_size=32",
        ]
    out = tmp_path / "run"
    assert _study(out, *overrides, config="configs/study_gta5_cityscapes.yaml") == 0
    for name in OUTPUTS:
        assert (out / name).is_file(), name
    results = json.loads((out / "results.json").read_text())
    # scored over the classes the Cityscapes test split shows, nothing else
    assert set(results["summary"]["oracle"]["per_class"]) == {"sky", "building", "vegetation", "sidewalk", "road"}
    # AdaBN, the literature's training-free baseline: the statistics of the 8 Cityscapes train frames
    adapted = _record(out, "normstats:source-seed0")
    assert read_metadata(adapted["file"])["info"]["norm_stats_images"] == 8
    assert results["summary"]["source-only + AdaBN"]["per_seed_miou"]["0"] == adapted["target_test"]["miou"]
    # the ensemble-taught students: labels of the 8 Cityscapes train frames by the CycleGAN ensemble,
    # a round of the segmenter's steps, and their ensemble with Cityscapes statistics scored
    labels = _record(out, "pseudolabels:CycleGAN + photometric + ensemble-taught ST-seed0-round1")
    assert labels["images"] == 8 and len(list(Path(labels["folder"]).glob("*.png"))) == 8
    student = _record(out, "segmenter:CycleGAN + photometric + ensemble-taught ST-seed0-round1")
    assert student["inputs"]["segmenter.steps"] == 3 and student["inputs"]["segmenter.lr"] == 0.000125
    assert "ensemble-taught students + AdaBN" in results["summary"]
    assert np.isnan(results["quality"]["cyclegan"]["l1_to_paired_target"])  # no pairs in real data
    # the translators translate the full-resolution frames they were trained on crops of
    translated = sorted((out / "data" / "translated" / "cyclegan").glob("*.png"))
    assert len(translated) == 6 and read_image(translated[0]).shape == (40, 72, 3)
    # the last two GTA5 frames are held out for the quality set, never trained on
    linked = {p.name for p in (out / "data" / "source_train" / "images").iterdir()}
    held_out = {p.name for p in (out / "data" / "quality" / "images").iterdir()}
    assert held_out == {"00007.png", "00008.png"} and not held_out & linked and len(linked) == 6
