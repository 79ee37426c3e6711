"""The synthetic street-scene benchmark: determinism, labels, domains, pairing, files, configs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from translate.cli import main
from translate.errors import ConfigError
from translate.segdata.classes import CLASS_NAMES, IGNORE, SYNTHETIC_TRAIN_IDS
from translate.synthetic import (
    MATERIAL_NAMES,
    PRESETS,
    SceneGenerator,
    appearance_from,
    class_report,
    load_appearance,
    parse_size,
    preset,
)

SIZE = (64, 128)
ROOT = Path(__file__).resolve().parents[1]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _synth(out: Path, *extra: str) -> int:
    return main(["data", "synth", "--out", str(out), "--size", "64x128", "--no-progress", *extra])


# ----------------------------------------------------------------------------- determinism and files
def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    for name in ("a", "b"):
        assert _synth(tmp_path / name, "--domain", "target", "--n", "4", "--seed", "7") == 0
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert sorted(a) == [
        "images/00000.png",
        "images/00001.png",
        "images/00002.png",
        "images/00003.png",
        "labels/00000.png",
        "labels/00001.png",
        "labels/00002.png",
        "labels/00003.png",
        "manifest.json",
    ]
    assert a == b
    assert _synth(tmp_path / "c", "--domain", "target", "--n", "4", "--seed", "8") == 0
    assert _files(tmp_path / "c")["images/00000.png"] != a["images/00000.png"]


def test_scene_does_not_depend_on_count(tmp_path: Path) -> None:
    _synth(tmp_path / "two", "--domain", "source", "--n", "2", "--seed", "3")
    _synth(tmp_path / "three", "--domain", "source", "--n", "3", "--seed", "3")
    two, three = _files(tmp_path / "two"), _files(tmp_path / "three")
    for name in ("images/00001.png", "labels/00001.png"):
        assert two[name] == three[name]


def test_manifest_and_label_files(tmp_path: Path) -> None:
    from translate.segdata.datasets import SyntheticSceneDataset

    _synth(tmp_path, "--domain", "source", "--n", "3", "--seed", "1")
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert m["domain"] == "source" and m["preset"] == "game" and m["seed"] == 1 and m["n"] == 3
    assert m["size"] == [64, 128] and m["paired"] is False and m["label_format"] == "trainId"
    assert set(m["classes"]) == {CLASS_NAMES[c] for c in SYNTHETIC_TRAIN_IDS}
    assert "palette" in m["appearance"]
    ds = SyntheticSceneDataset(tmp_path)
    gen = SceneGenerator(seed=1, height=64, width=128)
    for i in range(3):
        image, label = ds[i]
        assert image.shape == (64, 128, 3) and label.shape == (64, 128)
        want_image, want_label = gen.scene(i, "source")
        np.testing.assert_array_equal(label, want_label)
        np.testing.assert_array_equal(image, want_image)  # PNG is lossless


def test_paired_mode_writes_both_domains_with_same_labels(tmp_path: Path) -> None:
    assert _synth(tmp_path, "--paired", "--n", "3", "--seed", "2") == 0
    files = _files(tmp_path)
    for i in range(3):
        name = f"{i:05d}.png"
        assert files[f"source/labels/{name}"] == files[f"target/labels/{name}"]
        assert files[f"source/images/{name}"] != files[f"target/images/{name}"]
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert m["paired"] is True and set(m["domains"]) == {"source", "target"}
    from translate.errors import DataError
    from translate.segdata.datasets import SyntheticSceneDataset

    with pytest.raises(DataError, match="domain"):
        SyntheticSceneDataset(tmp_path)
    assert len(SyntheticSceneDataset(tmp_path, domain="target")) == 3


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert _synth(tmp_path, "--n", "1") == 2  # no domain
    assert _synth(tmp_path, "--n", "1", "--domain", "target", "--preset", "nope") == 2
    assert main(["data", "synth", "--out", str(tmp_path), "--n", "1", "--domain", "target", "--size", "64by128"]) == 2
    assert "unknown appearance preset 'nope'" in capsys.readouterr().err


# ----------------------------------------------------------------------------- labels and layouts
@pytest.fixture(scope="module")
def layouts() -> list:
    gen = SceneGenerator(seed=11, height=SIZE[0], width=SIZE[1])
    return [gen.layout(i, "target") for i in range(50)]


def test_label_values_are_the_synthetic_train_ids(layouts: list) -> None:
    allowed = set(SYNTHETIC_TRAIN_IDS) | {IGNORE}
    for layout in layouts:
        assert layout.label.dtype == np.uint8 and layout.label.shape == SIZE
        assert set(np.unique(layout.label).tolist()) <= allowed


def test_every_class_appears_in_a_good_share_of_scenes(layouts: list) -> None:
    report = class_report([lay.label for lay in layouts])
    for name, r in report.items():
        assert r["scene_share"] >= 0.5, (name, r)
        assert r["pixel_share"] > 0.0005, (name, r)
    assert report["road"]["scene_share"] == 1.0 and report["sky"]["scene_share"] >= 0.9


def test_paired_layouts_shared_unpaired_independent() -> None:
    paired = SceneGenerator(seed=4, height=64, width=128, paired=True)
    src, tgt, label = paired.pair(0)
    np.testing.assert_array_equal(paired.layout(0, "source").label, paired.layout(0, "target").label)
    np.testing.assert_array_equal(paired.scene(0, "target")[1], label)
    assert src.shape == tgt.shape == (64, 128, 3)
    unpaired = SceneGenerator(seed=4, height=64, width=128)
    assert not np.array_equal(unpaired.layout(0, "source").label, unpaired.layout(0, "target").label)
    with pytest.raises(ConfigError):
        unpaired.pair(0)


def test_any_size() -> None:
    for h, w in ((32, 32), (100, 60), (256, 512)):
        image, label = SceneGenerator(seed=0, height=h, width=w).scene(0, "target")
        assert image.shape == (h, w, 3) and label.shape == (h, w)
    assert parse_size("128x256") == (128, 256)
    with pytest.raises(ConfigError):
        parse_size("8x8")


# ----------------------------------------------------------------------------- the two domains
def _luma(img: np.ndarray) -> np.ndarray:
    return img.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def test_target_differs_from_source_class_by_class() -> None:
    """The gap is not a global colour shift: the road/sidewalk brightness order flips, and texture appears."""
    gen = SceneGenerator(seed=5, height=64, width=128, paired=True)
    order_src, order_tgt, tex_src, tex_tgt = [], [], [], []
    for i in range(12):
        src, tgt, label = gen.pair(i)
        road, walk = label == 0, label == 1
        ls, lt = _luma(src), _luma(tgt)
        order_src.append(ls[road].mean() - ls[walk].mean())
        order_tgt.append(lt[road].mean() - lt[walk].mean())
        # texture: typical difference between horizontally neighbouring road pixels
        both = road[:, 1:] & road[:, :-1]
        tex_src.append(np.median(np.abs(np.diff(ls, axis=1))[both]))
        tex_tgt.append(np.median(np.abs(np.diff(lt, axis=1))[both]))
        assert np.abs(src.astype(int) - tgt.astype(int)).mean() > 20
    assert (
        np.mean(order_src) < -30 and np.mean(order_tgt) > 10
    )  # darker than the sidewalk in the game, lighter in "real"
    assert np.median(tex_src) < 0.5 and np.median(tex_tgt) > 2.0


def test_source_is_flat_and_clean() -> None:
    image, label = SceneGenerator(seed=9, height=64, width=128).scene(0, "source")
    sky = label == 10
    # cel-shaded sky: a smooth gradient, no noise (neighbouring sky pixels nearly equal)
    diffs = np.abs(np.diff(image.astype(int), axis=1))[sky[:, 1:] & sky[:, :-1]]
    assert np.median(diffs) <= 1


# ----------------------------------------------------------------------------- appearance configs
def test_presets_and_overrides(tmp_path: Path) -> None:
    for name in PRESETS:
        app = preset(name)
        assert set(app.palette) == set(MATERIAL_NAMES)
    app = appearance_from("real", {"jpeg_quality": 40, "palette": {"road": [[10, 10, 10]]}})
    assert app.jpeg_quality == 40 and app.palette["road"] == [[10, 10, 10]] and "sidewalk" in app.palette
    with pytest.raises(ConfigError, match="blurr_sigma"):
        appearance_from("real", {"blurr_sigma": 1.0})
    with pytest.raises(ConfigError, match="lava"):
        appearance_from("real", {"textures": {"road": "lava"}})
    with pytest.raises(ConfigError, match="road2"):
        appearance_from("real", {"palette": {"road2": [[1, 2, 3]]}})


def test_shipped_yaml_configs_load_and_change_the_image(tmp_path: Path) -> None:
    configs = sorted((ROOT / "configs" / "synthetic").glob("*.yaml"))
    assert configs
    base = SceneGenerator(seed=0, height=64, width=128).scene(0, "target")[0]
    for path in configs:
        _, app = load_appearance(str(path), "real")
        image = SceneGenerator(seed=0, height=64, width=128, appearances={"target": app}).scene(0, "target")[0]
        if path.stem != "real":
            assert not np.array_equal(image, base), path.name
    cfg = tmp_path / "dark.yaml"
    cfg.write_text("preset: dusk\nexposure: 0.3\n")
    assert _synth(tmp_path / "out", "--domain", "target", "--n", "1", "--config", str(cfg)) == 0
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert m["appearance"]["exposure"] == 0.3 and m["preset"].startswith("dusk")
    cfg.write_text("exposur: 0.3\n")
    assert _synth(tmp_path / "bad", "--domain", "target", "--n", "1", "--config", str(cfg)) == 2


def test_preview_and_stats_commands(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from translate.data.images import read_image

    out = tmp_path / "sheet.png"
    assert main(["data", "preview", "--out", str(out), "--n", "2", "--size", "32x64"]) == 0
    sheet = read_image(out)
    assert sheet.shape == (2 * 32 + 2, 3 * 64 + 4, 3)
    assert main(["data", "stats", "--n", "5", "--size", "32x64"]) == 0
    text = capsys.readouterr().out
    assert "traffic sign" in text and "%" in text
