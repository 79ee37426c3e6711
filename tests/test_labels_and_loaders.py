"""Cityscapes classes and colouriser; GTA5, Cityscapes and folder loaders on fixture trees."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from translate.data.images import write_image
from translate.errors import DataError
from translate.segdata.cityscapes import CityscapesDataset
from translate.segdata.classes import (
    CLASSES,
    ID_TO_TRAINID,
    IGNORE,
    NUM_CLASSES,
    PALETTE,
    colorize,
    ids_to_train_ids,
    overlay,
)
from translate.segdata.datasets import SegmentationFolder, read_label
from translate.segdata.gta5 import GTA5Dataset

# label id -> trainId, the standard Cityscapes table
STANDARD = {
    7: 0,
    8: 1,
    11: 2,
    12: 3,
    13: 4,
    17: 5,
    19: 6,
    20: 7,
    21: 8,
    22: 9,
    23: 10,
    24: 11,
    25: 12,
    26: 13,
    27: 14,
    28: 15,
    31: 16,
    32: 17,
    33: 18,
}


# ----------------------------------------------------------------------------- class table
def test_id_to_train_id_table() -> None:
    assert NUM_CLASSES == 19 and ID_TO_TRAINID.shape == (256,) and ID_TO_TRAINID.dtype == np.uint8
    for label_id in range(256):
        assert ID_TO_TRAINID[label_id] == STANDARD.get(label_id, IGNORE), label_id
    assert [c.name for c in CLASSES][:3] == ["road", "sidewalk", "building"] and CLASSES[18].name == "bicycle"
    ids = np.array([[7, 26, 0], [33, 1, 255]], np.uint8)
    np.testing.assert_array_equal(ids_to_train_ids(ids), [[0, 13, 255], [18, 255, 255]])


def test_colorize_and_overlay() -> None:
    label = np.array([[0, 13, 255], [10, 8, 2]], np.uint8)
    rgb = colorize(label)
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 0]) == (128, 64, 128) and tuple(rgb[0, 1]) == (0, 0, 142) and tuple(rgb[0, 2]) == (0, 0, 0)
    assert tuple(rgb[1, 0]) == (70, 130, 180)
    assert len({tuple(PALETTE[c]) for c in range(NUM_CLASSES)}) == NUM_CLASSES
    image = np.full((2, 3, 3), 200, np.uint8)
    blended = overlay(image, label, alpha=0.5)
    assert tuple(blended[0, 2]) == (200, 200, 200)  # ignore stays untouched
    assert tuple(blended[0, 0]) == (164, 132, 164)
    with pytest.raises(ValueError):
        colorize(np.zeros((2, 2, 3), np.uint8))


def test_class_shares_have_one_definition() -> None:
    """Pixel share = class pixels / labelled (non-ignore) pixels, whichever classes are reported."""
    from translate.segdata.classes import ClassTally, class_report

    a = np.array([[0, 0, 13, 255]], np.uint8)  # road, road, car, ignore
    b = np.array([[0, 2, 2, 2]], np.uint8)  # road, building ×3 (building not reported below)
    report = class_report([a, b], class_ids=(0, 13))
    assert report["road"] == {"scene_share": 1.0, "pixel_share": 3 / 7}
    assert report["car"] == {"scene_share": 0.5, "pixel_share": 1 / 7}
    tally = ClassTally()
    tally.add(a)
    tally.add(b)
    assert tally.labelled_pixels == 7 and tally.pixel_share(2) == 3 / 7
    assert sum(tally.pixel_share(c) for c in range(NUM_CLASSES)) == pytest.approx(1.0)


def test_scene_set_manifest_uses_the_same_class_shares(tmp_path: Path) -> None:
    import json

    from translate.segdata.classes import class_report
    from translate.segdata.datasets import SyntheticSceneDataset
    from translate.synthetic import write_scene_set

    manifest = write_scene_set(tmp_path, n=3, seed=4, size=(32, 48), domain="source", progress=False)
    labels = [label for _, label in SyntheticSceneDataset(tmp_path)]
    for name, shares in class_report(labels).items():
        written = json.loads((tmp_path / "manifest.json").read_text())["classes"][name]
        assert written == manifest["classes"][name]
        assert written["scene_share"] == round(shares["scene_share"], 4)
        assert written["pixel_share"] == round(shares["pixel_share"], 5)


# ----------------------------------------------------------------------------- fixture trees
def _image(value: int, h: int = 12, w: int = 16) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = value
    return img


def _palette_png(path: Path, ids: np.ndarray) -> None:
    """A palette ('P') PNG whose indices are the ids, as GTA5 ships its labels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(ids, mode="P")
    im.putpalette([v for i in range(256) for v in ((i * 7) % 256, (i * 13) % 256, (i * 29) % 256)])
    im.save(path)


def _grey_png(path: Path, ids: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(ids, mode="L").save(path)


def _gta5(root: Path, n: int = 3, h: int = 12, w: int = 16) -> Path:
    for i in range(n):
        write_image(root / "images" / f"{i + 1:05d}.png", _image(10 * (i + 1), h, w))
        ids = np.full((h, w), [7, 26, 24][i % 3], np.uint8)
        ids[0, 0] = 3  # 'out of roi' -> ignore
        _palette_png(root / "labels" / f"{i + 1:05d}.png", ids)
    return root


def _cityscapes(root: Path, split: str = "val", h: int = 12, w: int = 16) -> list[tuple[str, int]]:
    frames = [
        ("frankfurt", "frankfurt_000000_000294", 21),
        ("lindau", "lindau_000001_000019", 23),
        ("lindau", "lindau_000002_000019", 33),
    ]
    for k, (city, stem, label_id) in enumerate(frames):
        write_image(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", _image(50 + k, h, w))
        ids = np.full((h, w), label_id, np.uint8)
        ids[-1, -1] = 1  # ego vehicle -> ignore
        _grey_png(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", ids)
    return [(stem, STANDARD[label_id]) for _, stem, label_id in frames]


# ----------------------------------------------------------------------------- GTA5
def test_gta5_pairs_and_maps_ids(tmp_path: Path) -> None:
    ds = GTA5Dataset(_gta5(tmp_path))
    assert len(ds) == 3
    for i, train_id in enumerate([0, 13, 11]):
        image, label = ds[i]
        assert image.shape == (12, 16, 3) and image.dtype == np.uint8 and int(image[0, 0, 0]) == 10 * (i + 1)
        assert label.shape == (12, 16) and label.dtype == np.uint8
        assert label[0, 0] == IGNORE and (label[1:] == train_id).all()
    images, labels = ds.arrays()
    assert images.shape == (3, 12, 16, 3) and labels.shape == (3, 12, 16)


def test_gta5_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="GTA5 root not found"):
        GTA5Dataset(tmp_path / "nowhere")
    (tmp_path / "flat").mkdir()
    with pytest.raises(DataError, match="labels/"):
        write_image(tmp_path / "flat" / "images" / "00001.png", _image(1))
        GTA5Dataset(tmp_path / "flat")

    root = _gta5(tmp_path / "missing")
    (root / "labels" / "00002.png").unlink()
    with pytest.raises(DataError, match=r"missing label file .*00002\.png"):
        GTA5Dataset(root)

    root = _gta5(tmp_path / "size")
    _palette_png(root / "labels" / "00002.png", np.full((10, 16), 7, np.uint8))
    with pytest.raises(DataError, match=r"00002\.png is 16×10 but its image .* is 16×12"):
        GTA5Dataset(root)  # when the dataset is built, not in the middle of an epoch

    root = _gta5(tmp_path / "rgb")
    Image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(root / "labels" / "00003.png")  # a colour visualisation
    with pytest.raises(DataError, match=r"00003\.png: label is a RGB colour image"):
        GTA5Dataset(root)[2]


def test_gta5_label_size_policy_is_applied_when_the_dataset_is_built(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = _gta5(tmp_path, n=3, h=12, w=16)
    ids = np.full((6, 8), 7, np.uint8)  # half size: road on the left, car on the right
    ids[:, 4:] = 26
    _palette_png(root / "labels" / "00002.png", ids)

    with pytest.raises(
        DataError, match=r"1 of 3 labels .*00002\.png is 8×6 but its image .*00002\.png is 16×12.*mismatched="
    ):
        GTA5Dataset(root)

    with caplog.at_level(logging.WARNING):
        skipping = GTA5Dataset(root, mismatched="skip")
    assert len(skipping) == 2 and [image.name for image, _ in skipping.skipped] == ["00002.png"]
    assert [image.name for image, _ in skipping.pairs] == ["00001.png", "00003.png"]
    assert "skipped 1 of 3" in caplog.text and "00002.png" in caplog.text
    assert all(skipping[i][1].shape == (12, 16) for i in range(len(skipping)))

    resizing = GTA5Dataset(root, mismatched="resize_label")
    assert (
        len(resizing) == 3 and [label.name for _, label in resizing.resized] == ["00002.png"] and not resizing.skipped
    )
    image, label = resizing[1]
    assert image.shape == (12, 16, 3) and label.shape == (12, 16)
    assert (label[:, :8] == 0).all() and (label[:, 8:] == 13).all()  # nearest neighbour: no blended ids
    images, labels = resizing.arrays()
    assert labels.shape == (3, 12, 16)

    with pytest.raises(DataError, match="unknown mismatched policy 'pad'"):
        GTA5Dataset(root, mismatched="pad")


# ----------------------------------------------------------------------------- Cityscapes
def test_cityscapes_pairs_and_maps_ids(tmp_path: Path) -> None:
    frames = _cityscapes(tmp_path, "val")
    ds = CityscapesDataset(tmp_path, split="val")
    assert len(ds) == 3
    for i, (stem, train_id) in enumerate(frames):
        image_path, label_path = ds.pairs[i]
        assert image_path.name == f"{stem}_leftImg8bit.png" and label_path.name == f"{stem}_gtFine_labelIds.png"
        image, label = ds[i]
        assert int(image[0, 0, 0]) == 50 + i
        assert label[-1, -1] == IGNORE and label[0, 0] == train_id


def test_cityscapes_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="Cityscapes root not found"):
        CityscapesDataset(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no leftImg8bit/"):
        CityscapesDataset(tmp_path / "empty")
    _cityscapes(tmp_path / "cs", "val")
    with pytest.raises(DataError, match="split 'train' not found .* present: val"):
        CityscapesDataset(tmp_path / "cs", split="train")

    (tmp_path / "cs" / "gtFine" / "val" / "lindau" / "lindau_000001_000019_gtFine_labelIds.png").unlink()
    with pytest.raises(DataError, match=r"missing label file .*lindau_000001_000019_leftImg8bit\.png"):
        CityscapesDataset(tmp_path / "cs", split="val")

    _cityscapes(tmp_path / "wrong", "val")
    label = tmp_path / "wrong" / "gtFine" / "val" / "frankfurt" / "frankfurt_000000_000294_gtFine_labelIds.png"
    _grey_png(label, np.zeros((6, 8), np.uint8))
    with pytest.raises(DataError, match="is 8×6 but its image"):
        CityscapesDataset(tmp_path / "wrong", split="val")[0]
    Image.fromarray(np.zeros((12, 16, 4), np.uint8)).save(label)
    with pytest.raises(DataError, match="RGBA colour image"):
        CityscapesDataset(tmp_path / "wrong", split="val")[0]


# ----------------------------------------------------------------------------- label reading, folders
def test_read_label_formats(tmp_path: Path) -> None:
    _grey_png(tmp_path / "t.png", np.array([[0, 18, 255]], np.uint8))
    np.testing.assert_array_equal(read_label(tmp_path / "t.png", "trainId"), [[0, 18, 255]])
    np.testing.assert_array_equal(read_label(tmp_path / "t.png", "id"), [[255, 255, 255]])
    _grey_png(tmp_path / "bad.png", np.array([[0, 40]], np.uint8))
    with pytest.raises(DataError, match=r"bad\.png: trainId label holds values \[40\]"):
        read_label(tmp_path / "bad.png", "trainId")
    Image.fromarray(np.array([[7, 26]], np.uint16)).save(tmp_path / "sixteen.png")  # 16-bit grey ids
    np.testing.assert_array_equal(read_label(tmp_path / "sixteen.png", "id"), [[0, 13]])
    with pytest.raises(DataError, match="label file not found"):
        read_label(tmp_path / "none.png")
    (tmp_path / "junk.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot read label"):
        read_label(tmp_path / "junk.png")


def test_segmentation_folder_with_transform(tmp_path: Path) -> None:
    write_image(tmp_path / "images" / "a.png", _image(5))
    _grey_png(tmp_path / "labels" / "a.png", np.full((12, 16), 13, np.uint8))

    def crop(image: np.ndarray, mask: np.ndarray) -> dict:
        return {"image": image[:4, :4], "mask": mask[:4, :4]}

    ds = SegmentationFolder(tmp_path, label_format="trainId", transform=crop)
    image, label = ds[0]
    assert image.shape == (4, 4, 3) and (label == 13).all()
