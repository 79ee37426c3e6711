"""The study at real scale: stand-in trees in the GTA5/Cityscapes layouts (`i2i data synth
--layout`), study sets read lazily from files, the literature's sizes (aspect kept, random crops,
predictions upsampled to the label), the translators' engine options and their fingerprints."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from apps.study.config import load_study_config
from translate.cli import main
from translate.errors import DataError
from translate.segdata import CityscapesDataset, GTA5Dataset, SegmentationSet, folder_pairs

SMOKE = "configs/study_synth_smoke.yaml"
REAL = "configs/study_gta5_cityscapes.yaml"


# ----------------------------------------------------------------------------- stand-in trees
def test_gta5_stand_in_tree_is_read_by_the_gta5_loader_with_label_ids(tmp_path: Path) -> None:
    assert (
        main(
            [
                "data",
                "synth",
                "--layout",
                "gta5",
                "--n",
                "3",
                "--size",
                "40x72",
                "--out",
                str(tmp_path),
                "--no-progress",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == ["00001.png", "00002.png", "00003.png"]
    with Image.open(tmp_path / "labels" / "00001.png") as label:
        assert label.mode == "P"  # palette indices are the ids, as GTA5 stores them
        ids = set(np.unique(np.array(label)).tolist())
    assert {7, 11, 23} <= ids  # road, building, sky as Cityscapes label ids, not trainIds
    image, train_ids = GTA5Dataset(tmp_path)[0]
    assert image.shape == (40, 72, 3) and train_ids.shape == (40, 72)
    assert {0, 2, 10} <= set(np.unique(train_ids).tolist())


def test_cityscapes_stand_in_tree_has_the_split_city_layout(tmp_path: Path) -> None:
    for split, n in (("train", 3), ("val", 2)):
        args = ["data", "synth", "--layout", "cityscapes", "--split", split, "--n", str(n), "--size", "32x64"]
        assert main([*args, "--out", str(tmp_path), "--no-progress"]) == 0
    assert (tmp_path / "leftImg8bit/val/bremen/bremen_000000_000001_leftImg8bit.png").is_file()
    assert (tmp_path / "gtFine/val/bremen/bremen_000000_000001_gtFine_labelIds.png").is_file()
    train, val = CityscapesDataset(tmp_path, "train"), CityscapesDataset(tmp_path, "val")
    assert len(train) == 3 and len(val) == 2 and train[0][0].shape == (32, 64, 3)
    assert not np.array_equal(train[0][0], val[0][0])  # the splits are different scenes


def test_stand_in_trees_default_to_the_real_resolution(monkeypatch, tmp_path: Path) -> None:
    import translate.synthetic.trees as trees

    seen = {}
    monkeypatch.setattr(
        trees, "write_tree", lambda out, layout, n, size, render_size, **kw: seen.update(size=size) or n
    )
    assert main(["data", "synth", "--layout", "gta5", "--n", "1", "--out", str(tmp_path)]) == 0
    assert seen["size"] == (1052, 1914)
    assert main(["data", "synth", "--layout", "cityscapes", "--n", "1", "--out", str(tmp_path)]) == 0
    assert seen["size"] == (1024, 2048)


@pytest.mark.parametrize(
    "args,message",
    [
        (["--layout", "gta5", "--paired"], "--layout gta5 sets the domain itself; leave out --paired and --domain"),
        (["--layout", "cityscapes", "--split", "tets"], "unknown Cityscapes split 'tets'; known: train, val, test"),
        (["--domain", "source", "--render-size", "16x32"], "--render-size applies to --layout trees only"),
        (["--layout", "gta5", "--size", "12x1914"], "size must be at least 16x16, got '12x1914'"),
    ],
)
def test_stand_in_tree_bad_options_are_one_clear_line(tmp_path: Path, capsys, args: list[str], message: str) -> None:
    out = tmp_path / "tree"
    assert main(["data", "synth", "--n", "1", "--out", str(out), "--no-progress", *args]) == 2
    assert message in capsys.readouterr().err
    assert not any(out.rglob("*.png"))  # nothing half-written


# ----------------------------------------------------------------------------- lazily read sets
def _tree(root: Path, n: int, h: int, w: int) -> list[tuple[Path, Path]]:
    from translate.data.images import write_image

    rng = np.random.default_rng(0)
    for i in range(n):
        write_image(root / "images" / f"{i:03d}.png", rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        (root / "labels").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 19, (h, w), dtype=np.uint8), mode="L").save(root / "labels" / f"{i:03d}.png")
    return folder_pairs(root)


def test_a_set_keeps_the_aspect_and_crops_from_the_given_generator(tmp_path: Path) -> None:
    pairs = _tree(tmp_path, 2, 50, 91)  # GTA5's 1914×1052 at 1/21
    s = SegmentationSet(pairs, "trainId", short_side=36, crop=(32, 64))
    image, label = s[0]
    assert image.shape == (36, 66, 3) and label.shape == (36, 66)  # 91 × 36/50 = 65.5: not squashed to 2:1
    a = s.sample(1, np.random.default_rng(3))
    b = s.sample(1, np.random.default_rng(3))
    assert a[0].shape == (32, 64, 3) and np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    full = s[1]
    top_left = [
        (t, left) for t in range(5) for left in range(2) if np.array_equal(full[0][t : t + 32, left : left + 64], a[0])
    ]
    assert top_left and np.array_equal(full[1][top_left[0][0] :][:32, top_left[0][1] :][:, :64], a[1])


def test_a_set_holds_paths_not_pixels(tmp_path: Path) -> None:
    small = SegmentationSet(_tree(tmp_path / "a", 2, 64, 64), "trainId")
    large = SegmentationSet(_tree(tmp_path / "b", 20, 64, 64), "trainId")
    # what a DataLoader worker receives grows with the file list only (bytes per file, not pixels)
    per_file = (len(pickle.dumps(large)) - len(pickle.dumps(small))) / 18
    assert per_file < 400 < 64 * 64 * 3


def test_a_crop_larger_than_the_frame_names_the_file(tmp_path: Path) -> None:
    s = SegmentationSet(_tree(tmp_path, 1, 30, 60), "trainId", crop=(32, 64))
    with pytest.raises(DataError, match=r"000.png: frame of 60×30 \(after resizing\) is smaller than the crop 64×32"):
        s.sample(0, np.random.default_rng(0))


def test_predictions_are_upsampled_to_a_label_kept_at_its_file_size(tmp_path: Path) -> None:
    import torch

    from apps.study.evaluation import evaluate_set

    class Constant(torch.nn.Module):
        """Class 1 in the left half, 0 in the right, at any input size."""

        input_multiple = 1

        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):
            logits = torch.zeros(x.shape[0], 19, *x.shape[2:])
            half = x.shape[3] // 2
            logits[:, 1, :, :half] = 1
            logits[:, 0, :, half:] = 1
            return logits

    root = tmp_path / "set"
    _tree(root, 1, 40, 80)
    label = np.zeros((40, 80), np.uint8)
    label[:, :40] = 1
    Image.fromarray(label, mode="L").save(root / "labels" / "000.png")
    s = SegmentationSet(folder_pairs(root), "trainId", size=(10, 20), full_size_labels=True)
    assert s[0][0].shape == (10, 20, 3) and s[0][1].shape == (40, 80)
    result = evaluate_set(Constant(), s, [0, 1])
    assert result["pixel_accuracy"] == 1.0 and result["miou"] == 1.0


# ----------------------------------------------------------------------------- the data stage
def test_synthetic_sets_are_written_as_files_with_the_same_scenes(tmp_path: Path) -> None:
    from apps.study.data import load_data, present_classes, write_data
    from translate.synthetic import SceneGenerator

    cfg = load_study_config(SMOKE, [f"out_dir={tmp_path}", "data.synthetic.n_train=3", "data.synthetic.n_test=2"])
    counts = write_data(cfg, tmp_path / "data", progress=False)
    assert counts == {"source_train": 3, "target_train": 3, "target_test": 2, "quality": 4, "quality_target": 4}
    assert not list((tmp_path / "data").rglob("*.npz"))
    data = load_data(cfg, tmp_path / "data")
    image, label = data.target_test[1]
    expected = SceneGenerator(seed=1000, height=32, width=64).scene(1, "target")
    assert np.array_equal(image, expected[0]) and np.array_equal(label, expected[1])  # PNG is lossless
    source, target, pair_label = SceneGenerator(seed=2000, height=32, width=64, paired=True).pair(2)
    assert np.array_equal(data.quality[2][0], source) and np.array_equal(data.quality_target[2][0], target)
    assert np.array_equal(data.quality[2][1], pair_label)
    assert set(present_classes(data.target_test)) <= {0, 1, 2, 5, 7, 8, 10, 11, 13}


def test_real_sets_hold_out_the_quality_frames_and_refuse_too_few(tmp_path: Path) -> None:
    from apps.study.data import write_data

    gta = tmp_path / "gta5"
    cs = tmp_path / "cs"
    main(["data", "synth", "--layout", "gta5", "--n", "3", "--size", "20x36", "--out", str(gta), "--no-progress"])
    for split in ("train", "val"):
        args = ["--layout", "cityscapes", "--split", split, "--n", "2", "--size", "16x32", "--out", str(cs)]
        main(["data", "synth", *args, "--no-progress"])
    base = [f"out_dir={tmp_path}", f"data.real.gta5_root={gta}", f"data.real.cityscapes_root={cs}"]
    cfg = load_study_config(REAL, [*base, "data.real.n_quality=1"])
    counts = write_data(cfg, tmp_path / "data", progress=False)
    assert counts == {"source_train": 2, "target_train": 2, "target_test": 2, "quality": 1}
    assert [p.name for p in (tmp_path / "data/quality/images").iterdir()] == ["00003.png"]
    assert (tmp_path / "data/source_train/images/00001.png").resolve() == (gta / "images/00001.png").resolve()
    cfg = load_study_config(REAL, [*base, "data.real.n_quality=3"])
    with pytest.raises(DataError, match="has 3 usable frames; data.real.n_quality=3 holds that many out of training"):
        write_data(cfg, tmp_path / "data2", progress=False)


# ----------------------------------------------------------------------------- config and fingerprints
@pytest.mark.parametrize(
    "override,message",
    [
        ("data.real.crop=512x2048", "data.real.crop 512x2048 is larger than data.real.target_size 512x1024"),
        ("data.real.source_short_side=256", "data.real.crop 512x1024 is taller than the resized GTA5 frames"),
        ("data.real.target_size=big", "size must look like HxW (e.g. 128x256), got 'big'"),
        ("translators.cyclegan.amp=fp8", "translators.cyclegan.amp must be one of off, bf16, fp16, auto, got 'fp8'"),
        ("translators.cyclegan.num_workers=-1", "translators.cyclegan.num_workers must be >= 0, got -1"),
        ("translators.cyclegan.preprocess=zoom", "unknown preprocess 'zoom'"),
        ("data.real.size=256x512", "size"),
    ],
)
def test_bad_real_protocol_values_are_errors_before_training(
    tmp_path: Path, capsys, override: str, message: str
) -> None:
    assert main(["study", REAL, f"out_dir={tmp_path / 'run'}", override]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_translator_options_reach_the_engine_and_amp_alone_changes_the_fingerprint(tmp_path: Path) -> None:
    from apps.study.plan import Plan
    from apps.study.translators import experiment

    def cfg(*overrides: str):
        return load_study_config(SMOKE, [f"out_dir={tmp_path}", *overrides])

    options = [
        "translators.cyclegan.amp=bf16",
        "translators.cyclegan.num_workers=2",
        "translators.cyclegan.channels_last=true",
        "translators.cyclegan.grad_checkpointing=true",
        "translators.cyclegan.preprocess=crop",
        "translators.cyclegan.crop_size=24",
    ]
    c = cfg(*options)
    exp = experiment(c, "cyclegan", c.translators["cyclegan"], tmp_path / "data", tmp_path / "t", None)
    assert (exp.engine.amp, exp.engine.channels_last, exp.engine.grad_checkpointing) == ("bf16", True, True)
    assert (exp.data.num_workers, exp.data.preprocess, exp.data.crop_size) == (2, "crop", 24)
    assert exp.data.dataset["root_a"] == str(tmp_path / "data/source_train/images")

    base = Plan(cfg()).translator("cyclegan").fingerprint
    for speed in ("num_workers=2", "channels_last=true", "compile=true", "grad_checkpointing=true"):
        assert Plan(cfg(f"translators.cyclegan.{speed}")).translator("cyclegan").fingerprint == base, speed
    for result in ("amp=bf16", "preprocess=crop", "crop_size=24"):
        assert Plan(cfg(f"translators.cyclegan.{result}")).translator("cyclegan").fingerprint != base, result
    assert cfg("translators.cyclegan.amp=auto").translators["cyclegan"].amp == "auto"
    assert cfg("translators.cyclegan.amp=off").translators["cyclegan"].amp == "off"  # YAML's bare off


# ----------------------------------------------------------------------------- end to end on stand-in trees
@pytest.mark.slow
def test_real_config_runs_end_to_end_on_stand_in_trees(tmp_path: Path) -> None:
    """The real config, its protocol intact, on stand-in trees at 1/10 of the real resolution
    (docs/benchmarks.md has the same run at full resolution)."""
    gta, cs = tmp_path / "gta5", tmp_path / "cityscapes"
    quiet = ["--no-progress"]
    assert main(["data", "synth", "--layout", "gta5", "--n", "8", "--size", "105x191", "--out", str(gta), *quiet]) == 0
    for split, n in (("train", 6), ("val", 3)):
        args = ["--layout", "cityscapes", "--split", split, "--n", str(n), "--size", "102x204", "--out", str(cs)]
        assert main(["data", "synth", *args, *quiet]) == 0
    tiny = "{name: cyclegan, generator: {name: resnet, ngf: 4, n_blocks: 1}, discriminator: {name: patchgan, ndf: 4, n_layers: 1}}"
    overrides = [
        f"out_dir={tmp_path / 'run'}",
        "progress=false",
        "device=cpu",
        f"data.real.gta5_root={gta}",
        f"data.real.cityscapes_root={cs}",
        "data.real.n_quality=2",
        "data.real.source_short_side=72",  # 720 / 10
        "data.real.crop=48x96",
        "data.real.target_size=51x102",  # 512x1024 / 10
        "data.num_workers=0",
        "segmenter.encoder_depth=3",
        "segmenter.decoder_channels=[8,8,8]",
        "segmenter.encoder=resnet18",
        "segmenter.steps=2",
        "segmenter.batch_size=2",
        "segmenter.seeds=[0]",
        "n_examples=2",
    ]
    for t in ("cyclegan", "cycada"):
        overrides += [f"translators.{t}.{k}" for k in ("steps=2", "save_every=2", "sample_every=2", "amp=off")]
        overrides += [
            f"translators.{t}.model={tiny}",
            f"translators.{t}.num_workers=0",
            f"translators.{t}.crop_size=48",
        ]
    assert main(["study", REAL, *overrides]) == 0
    out = tmp_path / "run"
    for name in ("results.md", "results.csv", "results.json", "translator_quality.csv", "miou_bars.png"):
        assert (out / name).is_file(), name
    for name in ("per_class_iou.png", "translator_samples.png", "example_predictions.png", "versions.json"):
        assert (out / name).is_file(), name
    results = json.loads((out / "results.json").read_text())
    # the 7 default rows, AdaBN, the CycleGAN ensemble, three ensemble-taught students and their ensemble
    assert len(results["summary"]) == 13 and set(results["quality"]) == {"none", "cyclegan", "cycada"}
    translated = sorted((out / "data/translated/cyclegan").glob("*.png"))
    assert len(translated) == 6 and Image.open(translated[0]).size == (191, 105)  # whole frames at full size


@pytest.mark.slow
def test_segmenters_train_and_score_the_same_on_files_as_on_the_arrays_of_the_same_scenes(tmp_path: Path) -> None:
    """The embedded default keeps its numbers: the same scenes, the same draws, the same scores."""
    import torch

    from apps.study.data import load_data, stack, write_data
    from apps.study.evaluation import evaluate_set
    from apps.study.metrics import score
    from apps.study.segmenter import predict, train_segmenter, write_segmentation_folder
    from translate.io import load_network

    overrides = ["data.synthetic.n_train=6", "data.synthetic.n_test=3", "segmenter.steps=2", "segmenter.batch_size=3"]
    cfg = load_study_config(SMOKE, [f"out_dir={tmp_path}", *overrides])
    write_data(cfg, tmp_path / "data", progress=False)
    data = load_data(cfg, tmp_path / "data")
    images, labels = stack(data.source_train)  # what the data stage held in memory before
    files = {"images": str(tmp_path / "data/source_train/images"), "labels": str(tmp_path / "data/source_train/labels")}
    arrays = write_segmentation_folder(images, labels, tmp_path / "arrays")
    from_files = load_network(train_segmenter(cfg.segmenter, files, 0, tmp_path / "from_files")["file"])[0]
    from_arrays = load_network(train_segmenter(cfg.segmenter, arrays, 0, tmp_path / "from_arrays")["file"])[0]
    for a, b in zip(from_files.state_dict().values(), from_arrays.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    test_images, test_labels = stack(data.target_test)
    assert evaluate_set(from_files, data.target_test) == score(predict(from_arrays, test_images), test_labels)
