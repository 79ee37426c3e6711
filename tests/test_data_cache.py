"""Decoded images kept in memory (translate.data.cache): the same samples, each file decoded once."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from translate.config import DataConfig
from translate.data import build_dataset
from translate.data.cache import DecodedCache
from translate.data.folders import PairedFolders, UnpairedFolders
from translate.data.images import write_image
from translate.data.transforms import PairTransform
from translate.errors import ConfigError, DataError
from translate.segdata import datasets as segdatasets
from translate.segdata.datasets import SegmentationClassMix, SegmentationConcat, SegmentationPairs


def _counting_loader(value):
    calls = []

    def load():
        calls.append(1)
        return value

    return load, calls


def test_a_key_is_loaded_once_and_every_caller_gets_its_own_copy() -> None:
    cache = DecodedCache(max_mb=1)
    image = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    load, calls = _counting_loader(image)
    first = cache.get("a", load)
    first[:] = 0  # an in-place transform of one sample ...
    second = cache.get("a", load)
    assert len(calls) == 1
    np.testing.assert_array_equal(second, image)  # ... does not reach the next epoch's
    assert second is not image and second.dtype == np.uint8 and second.shape == (4, 4, 3)


def test_pairs_are_kept_together_and_the_budget_is_never_exceeded() -> None:
    pair = (np.ones((512, 512, 3), np.uint8), np.zeros((512, 512), np.uint8))  # 1 MiB in all
    cache = DecodedCache(max_mb=2.5)
    loads = {key: _counting_loader(pair) for key in range(4)}
    for _ in range(3):
        for key, (load, _) in loads.items():
            image, label = cache.get(key, load)
            assert image.shape == (512, 512, 3) and label.shape == (512, 512)
    assert len(cache) == 2 and cache.used <= cache.budget
    assert [len(calls) for _, calls in loads.values()] == [1, 1, 3, 3]  # the rest is read every time


def test_no_budget_keeps_nothing_and_a_negative_one_is_an_error() -> None:
    cache = DecodedCache()
    load, calls = _counting_loader(np.zeros(3, np.uint8))
    cache.get(0, load), cache.get(0, load)
    assert len(calls) == 2 and len(cache) == 0
    with pytest.raises(ConfigError, match="cache_mb must be >= 0"):
        DecodedCache(-1)


def _segmentation_folders(tmp_path: Path, n: int = 5) -> dict[str, str]:
    rng = np.random.default_rng(0)
    for i in range(n):
        write_image(tmp_path / "images" / f"{i:03d}.png", rng.integers(0, 256, (24, 40, 3), dtype=np.uint8))
        (tmp_path / "labels").mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / "labels" / f"{i:03d}.png"), rng.integers(0, 9, (24, 40), dtype=np.uint8))
        write_image(tmp_path / "translated" / f"{i:03d}.png", rng.integers(0, 256, (24, 40, 3), dtype=np.uint8))
    return {"images": str(tmp_path / "images"), "labels": str(tmp_path / "labels")}


def _count_reads(monkeypatch: pytest.MonkeyPatch, module) -> list[str]:
    reads: list[str] = []
    original = module.read_image

    def counted(path, *args, **kwargs):
        reads.append(Path(path).name)
        return original(path, *args, **kwargs)

    monkeypatch.setattr(module, "read_image", counted)
    return reads


def test_segmentation_samples_are_the_same_with_the_cache_and_each_file_is_decoded_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folders = _segmentation_folders(tmp_path)
    options = dict(
        folders,
        size=[16, 32],
        crop=[8, 16],
        photometric=1.0,
        alternative_images=str(tmp_path / "translated"),
        p_alternative=0.5,
    )
    plain, cached = SegmentationPairs(**options), SegmentationPairs(**options, cache_mb=8)
    reads = _count_reads(monkeypatch, segdatasets)
    keys = [(index, seed) for seed in range(4) for index in range(5)]
    for key in keys:
        a, b = plain[key], cached[key]
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
    uncached_reads = len(reads) - len(set(reads))  # the plain set's reads repeat every epoch
    assert uncached_reads > 0
    reads.clear()
    for key in keys:
        cached[key]
    assert reads == []  # originals and alternatives all in memory now


def test_a_concatenated_set_hands_its_cache_to_parts_that_give_none(tmp_path: Path) -> None:
    folders = _segmentation_folders(tmp_path)
    combined = SegmentationConcat([dict(folders), dict(folders, cache_mb=0)], cache_mb=8)
    for index in range(len(combined)):
        combined[(index, 0)]
    assert len(combined.parts[0].pairs.cache) == 5
    assert len(combined.parts[1].pairs.cache) == 0


def test_translation_folders_decode_each_image_once_with_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from translate.data import folders

    rng = np.random.default_rng(1)
    for i in range(3):
        for side in "ab":
            write_image(tmp_path / side / f"{i}.png", rng.integers(0, 256, (20, 24, 3), dtype=np.uint8))
    transform = PairTransform("resize_and_crop", 18, 16, True)
    reads = _count_reads(monkeypatch, folders)
    for dataset_type, options in (
        (UnpairedFolders, {"root_a": str(tmp_path / "a"), "root_b": str(tmp_path / "b")}),
        (PairedFolders, {"root_a": str(tmp_path / "a"), "root_b": str(tmp_path / "b")}),
    ):
        plain = dataset_type(transform=transform, **options)
        cached = dataset_type(transform=transform, cache_mb=1, **options)
        for seed in range(3):
            for index in range(3):
                a, b = plain[(index, seed)], cached[(index, seed)]
                assert torch.equal(a["A"], b["A"]) and torch.equal(a["B"], b["B"])
        reads.clear()
        for index in range(3):
            cached[(index, 7)]
        assert reads == [], dataset_type.__name__


def test_the_engine_hands_data_cache_mb_to_datasets_that_take_it(tmp_path: Path, caplog) -> None:
    folders = _segmentation_folders(tmp_path)
    built = build_dataset(DataConfig(dataset={"name": "segmentation_pairs", **folders}, cache_mb=16))
    assert built.pairs.cache.budget == 16 * 2**20
    own = build_dataset(DataConfig(dataset={"name": "segmentation_pairs", **folders, "cache_mb": 1}, cache_mb=16))
    assert own.pairs.cache.budget == 2**20
    with caplog.at_level(logging.WARNING):
        build_dataset(DataConfig(dataset={"name": "ring8", "size": 16}, cache_mb=16))
    assert "data.cache_mb is ignored: dataset 'ring8'" in caplog.text
    with pytest.raises(ConfigError, match="data.cache_mb must be >= 0"):
        build_dataset(DataConfig(dataset={"name": "segmentation_pairs", **folders}, cache_mb=-2))


def test_a_classmix_part_pastes_from_the_same_set_as_the_part_it_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folders = _segmentation_folders(tmp_path)
    own = dict(folders, size=[16, 32])
    pseudo = dict(images=str(tmp_path / "translated"), labels=folders["labels"], size=[16, 32])
    parts = [own, {"name": "segmentation_classmix", "target": pseudo, "source": own}]
    combined = SegmentationConcat(parts, cache_mb=8)
    assert combined.parts[1].source is combined.parts[0]  # one set, one cache
    alone = [SegmentationPairs(**own), SegmentationClassMix(target=pseudo, source=own)]  # sets of their own
    reads = _count_reads(monkeypatch, segdatasets)
    for seed in range(2):
        for index in range(len(combined)):
            a, b = combined[(index, seed)], alone[index // 5][(index % 5, seed)]
            assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
    reads.clear()
    for index in range(len(combined)):
        combined[(index, 2)]
    assert reads == []  # the own set decoded once for both parts
    with pytest.raises(DataError, match="segmentation_classmix takes target, source and cache_mb"):
        SegmentationConcat([{"name": "segmentation_classmix", "target": pseudo, "source": own, "p": 1}])
