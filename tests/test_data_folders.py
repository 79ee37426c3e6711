"""Pair transforms and folder datasets: shared crop/flip for pairs, clear errors for bad data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from translate.config import DataConfig
from translate.data import DATASETS, EpochSampler, build_dataset
from translate.data.folders import PairedFolders, UnpairedFolders
from translate.data.images import to_image, to_tensor, write_image
from translate.data.transforms import PREPROCESS_MODES, PairTransform, TransformParams
from translate.errors import ConfigError, DataError


def _img(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _folder(root: Path, names: list[str], h: int = 20, w: int = 24, seed: int = 0) -> Path:
    for i, name in enumerate(names):
        write_image(root / name, _img(h, w, seed + i))
    return root


# ------------------------------------------------------------------------------------ transforms
@pytest.mark.parametrize(
    ("mode", "in_hw", "out_hw"),
    [
        ("resize_and_crop", (30, 50), (16, 16)),
        ("scale_shortside_and_crop", (30, 50), (16, 16)),
        ("crop", (30, 50), (16, 16)),
        ("none", (30, 50), (30, 50)),
    ],
)
def test_each_mode_output_size_dtype_range(mode: str, in_hw: tuple[int, int], out_hw: tuple[int, int]) -> None:
    t = PairTransform(mode, load_size=20, crop_size=16, flip=True)
    (out,) = t([_img(*in_hw)], np.random.default_rng(0))
    assert out.shape == (3, *out_hw) and out.dtype == torch.float32
    assert out.min() >= -1.0 and out.max() <= 1.0
    assert t.output_size(*in_hw) == out_hw


def test_scale_shortside_keeps_aspect() -> None:
    t = PairTransform("scale_shortside_and_crop", load_size=20, crop_size=16, flip=False)
    assert t.sample_params(np.random.default_rng(0), 30, 60).resize_to == (20, 40)
    assert t.sample_params(np.random.default_rng(0), 90, 45).resize_to == (40, 20)
    t = PairTransform("resize_and_crop", load_size=20, crop_size=16, flip=False)
    assert t.sample_params(np.random.default_rng(0), 30, 60).resize_to == (20, 20)


@pytest.mark.parametrize("mode", PREPROCESS_MODES)
def test_both_halves_share_params(mode: str) -> None:
    """B is the photographic negative of A: any crop/flip/resize mismatch breaks B == -A."""
    t = PairTransform(mode, load_size=24, crop_size=16, flip=True)
    a = _img(30, 40)
    for seed in range(8):
        same = t([a, a.copy()], np.random.default_rng(seed))
        torch.testing.assert_close(same[0], same[1], rtol=0, atol=0)
    if mode in ("crop", "none"):  # no interpolation, so the negative stays exact
        for seed in range(8):
            out_a, out_b = t([a, 255 - a], np.random.default_rng(seed))
            torch.testing.assert_close(out_b, -out_a, rtol=0, atol=1e-6)


def test_crop_matches_sampled_params() -> None:
    t = PairTransform("crop", load_size=16, crop_size=8, flip=True)
    a = _img(20, 30)
    params = t.sample_params(np.random.default_rng(3), 20, 30)
    (out,) = t([a], np.random.default_rng(3))
    expected = a[params.top : params.top + 8, params.left : params.left + 8]
    if params.flip:
        expected = expected[:, ::-1]
    np.testing.assert_array_equal(to_image(out), expected)
    assert isinstance(params, TransformParams) and set(params.to_dict()) == {"resize_to", "top", "left", "size", "flip"}


def test_flip_happens_for_some_seeds_only() -> None:
    a = _img(8, 10)
    plain, mirrored = to_tensor(a), to_tensor(np.ascontiguousarray(a[:, ::-1]))
    t = PairTransform("none", load_size=8, crop_size=8, flip=True)
    flipped = []
    for seed in range(20):
        (out,) = t([a], np.random.default_rng(seed))
        assert torch.equal(out, plain) or torch.equal(out, mirrored)
        flipped.append(torch.equal(out, mirrored))
    assert any(flipped) and not all(flipped)
    t = PairTransform("none", load_size=8, crop_size=8, flip=False)
    assert all(torch.equal(t([a], np.random.default_rng(s))[0], plain) for s in range(20))


def test_crop_offset_varies_and_is_deterministic() -> None:
    t = PairTransform("resize_and_crop", load_size=32, crop_size=16, flip=True)
    a = _img(40, 40)
    first = t([a], np.random.default_rng(7))[0]
    again = t([a], np.random.default_rng(7))[0]
    assert torch.equal(first, again)
    offsets = {(p.top, p.left) for p in (t.sample_params(np.random.default_rng(s), 40, 40) for s in range(10))}
    assert len(offsets) > 1


def test_flip_setting_does_not_change_crops() -> None:
    on = PairTransform("crop", load_size=16, crop_size=8, flip=True)
    off = PairTransform("crop", load_size=16, crop_size=8, flip=False)
    for s in range(5):
        p_on, p_off = (
            on.sample_params(np.random.default_rng(s), 20, 20),
            off.sample_params(np.random.default_rng(s), 20, 20),
        )
        assert (p_on.top, p_on.left) == (p_off.top, p_off.left) and not p_off.flip


def test_transform_errors() -> None:
    with pytest.raises(ConfigError, match="'zoom'.*resize_and_crop"):
        PairTransform("zoom", 286, 256, True)
    with pytest.raises(ConfigError, match="crop_size 300.*load_size 286"):
        PairTransform("resize_and_crop", 286, 300, True)
    with pytest.raises(ConfigError, match="crop_size"):
        PairTransform("scale_shortside_and_crop", 10, 12, True)
    with pytest.raises(ConfigError, match="load_size"):
        PairTransform("resize_and_crop", 0, 0, True)
    PairTransform("crop", 10, 12, True)  # crop mode ignores load_size
    t = PairTransform("crop", 16, 16, False)
    with pytest.raises(DataError, match="10×12.*crop_size 16"):
        t([_img(12, 10)], np.random.default_rng(0))
    with pytest.raises(DataError, match="same size.*24×20.*25×20"):
        t([_img(20, 24), _img(20, 25)], np.random.default_rng(0))


def test_transform_is_plain_data() -> None:
    t = PairTransform("crop", 20, 16, False)
    assert PairTransform(**t.to_dict()).to_dict() == t.to_dict()
    assert repr(t) == "PairTransform(preprocess='crop', load_size=20, crop_size=16, flip=False)"


# ------------------------------------------------------------------------------------ unpaired
def test_unpaired_len_and_deterministic_partner(tmp_path: Path) -> None:
    root_a = _folder(tmp_path / "A", ["a0.png", "a1.png", "a2.png"])
    root_b = _folder(tmp_path / "B", [f"b{i}.png" for i in range(5)], seed=10)
    ds = UnpairedFolders(str(root_a), str(root_b), PairTransform("crop", 20, 16, True))
    assert len(ds) == 5 and ds.paired is False
    s1, s2 = ds[(4, 123)], ds[(4, 123)]
    assert s1["A_path"] == s2["A_path"] and s1["B_path"] == s2["B_path"]
    assert torch.equal(s1["A"], s2["A"]) and torch.equal(s1["B"], s2["B"])
    assert Path(s1["A_path"]).name == "a1.png"  # index 4 wraps around the 3 A images
    assert s1["A"].shape == s1["B"].shape == (3, 16, 16)
    partners = {ds[(0, seed)]["B_path"] for seed in range(30)}
    assert len(partners) > 1


def test_unpaired_missing_or_empty_folder(tmp_path: Path) -> None:
    root_a = _folder(tmp_path / "A", ["a.png"])
    (tmp_path / "empty").mkdir()
    t = PairTransform("none", 20, 16, False)
    with pytest.raises(DataError, match="missing"):
        UnpairedFolders(str(root_a), str(tmp_path / "missing"), t)
    with pytest.raises(DataError, match="empty"):
        UnpairedFolders(str(tmp_path / "empty"), str(root_a), t)


def test_unpaired_errors_name_the_file(tmp_path: Path) -> None:
    root_a = _folder(tmp_path / "A", ["a.png"], h=10, w=10)
    root_b = _folder(tmp_path / "B", ["b.png"], h=40, w=40)
    ds = UnpairedFolders(str(root_a), str(root_b), PairTransform("crop", 16, 16, False))
    with pytest.raises(DataError, match=r"a\.png.*smaller than crop_size"):
        ds[0]
    ds = UnpairedFolders(str(root_a), str(root_b), PairTransform("none", 16, 16, False), max_pixels=1000)
    with pytest.raises(DataError, match=r"b\.png.*1000"):
        ds[0]
    (root_a / "a.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match=r"a\.png"):
        ds[0]
    with pytest.raises(ConfigError, match="max_pixels"):
        UnpairedFolders(str(root_a), str(root_b), PairTransform("none", 16, 16, False), max_pixels=0)


# ------------------------------------------------------------------------------------ paired
def test_paired_two_folders_match_by_name(tmp_path: Path) -> None:
    root_a = _folder(tmp_path / "A", ["1.png", "2.png", "sub/3.png"])
    for name, seed in [("2.jpg", 5), ("1.png", 6), ("sub/3.png", 7)]:
        write_image(tmp_path / "B" / name, _img(20, 24, seed))
    ds = PairedFolders(PairTransform("crop", 20, 16, True), root_a=str(root_a), root_b=str(tmp_path / "B"))
    assert len(ds) == 3 and ds.paired is True
    names = [(Path(ds[i]["A_path"]).name, Path(ds[i]["B_path"]).name) for i in range(3)]
    assert names == [("1.png", "1.png"), ("2.png", "2.jpg"), ("3.png", "3.png")]
    s = ds[(1, 9)]
    assert s["A"].shape == s["B"].shape == (3, 16, 16)


def test_paired_shares_crop_and_flip(tmp_path: Path) -> None:
    a = _img(20, 24)
    write_image(tmp_path / "A" / "x.png", a)
    write_image(tmp_path / "B" / "x.png", 255 - a)
    ds = PairedFolders(PairTransform("crop", 20, 12, True), root_a=str(tmp_path / "A"), root_b=str(tmp_path / "B"))
    for seed in range(6):
        s = ds[(0, seed)]
        torch.testing.assert_close(s["B"], -s["A"], rtol=0, atol=1e-6)


def test_paired_mismatched_names_are_listed(tmp_path: Path) -> None:
    _folder(tmp_path / "A", ["same.png", "onlyA1.png", "onlyA2.png"])
    _folder(tmp_path / "B", ["same.png", "onlyB.png"])
    with pytest.raises(DataError) as info:
        PairedFolders(PairTransform("none", 16, 16, False), root_a=str(tmp_path / "A"), root_b=str(tmp_path / "B"))
    message = str(info.value)
    assert "onlyA1" in message and "onlyA2" in message and "onlyB" in message and "same" not in message.split(":", 1)[1]


def test_paired_long_mismatch_list_is_truncated(tmp_path: Path) -> None:
    _folder(tmp_path / "A", [f"a{i}.png" for i in range(8)], h=4, w=4)
    _folder(tmp_path / "B", ["b.png"], h=4, w=4)
    with pytest.raises(DataError, match=r"8 file\(s\) \(a0, a1, a2, a3, a4, and 3 more\)"):
        PairedFolders(PairTransform("none", 16, 16, False), root_a=str(tmp_path / "A"), root_b=str(tmp_path / "B"))


def test_paired_mismatched_sizes(tmp_path: Path) -> None:
    write_image(tmp_path / "A" / "p.png", _img(20, 24))
    write_image(tmp_path / "B" / "p.png", _img(20, 30))
    t = PairTransform("none", 16, 16, False)
    with pytest.raises(DataError, match=r"A[/\\]p\.png is 24×20.*B[/\\]p\.png is 30×20"):
        PairedFolders(t, root_a=str(tmp_path / "A"), root_b=str(tmp_path / "B"))
    lazy = PairedFolders(t, root_a=str(tmp_path / "A"), root_b=str(tmp_path / "B"), check_sizes=False)
    with pytest.raises(DataError, match=r"A[/\\]p\.png is 24×20.*B[/\\]p\.png is 30×20"):
        lazy[0]


def test_paired_pixel_limit_checked_at_construction(tmp_path: Path) -> None:
    _folder(tmp_path / "A", ["p.png"])
    _folder(tmp_path / "B", ["p.png"])
    with pytest.raises(DataError, match=r"p\.png.*limit of 100"):
        PairedFolders(
            PairTransform("none", 16, 16, False), root_a=str(tmp_path / "A"), root_b=str(tmp_path / "B"), max_pixels=100
        )


def test_side_by_side_split_and_direction(tmp_path: Path) -> None:
    a, b = _img(16, 20, 1), _img(16, 20, 2)
    write_image(tmp_path / "AB" / "x.png", np.concatenate([a, b], axis=1))
    t = PairTransform("none", 16, 16, False)
    s = PairedFolders(t, root=str(tmp_path / "AB"))[0]
    np.testing.assert_array_equal(to_image(s["A"]), a)
    np.testing.assert_array_equal(to_image(s["B"]), b)
    assert s["A_path"] == s["B_path"]
    r = PairedFolders(t, root=str(tmp_path / "AB"), direction="BtoA")[0]
    np.testing.assert_array_equal(to_image(r["A"]), b)
    np.testing.assert_array_equal(to_image(r["B"]), a)


def test_two_folder_direction_swaps_paths(tmp_path: Path) -> None:
    _folder(tmp_path / "A", ["p.png"], seed=1)
    _folder(tmp_path / "B", ["p.png"], seed=2)
    ds = PairedFolders(
        PairTransform("none", 16, 16, False), root_a=str(tmp_path / "A"), root_b=str(tmp_path / "B"), direction="BtoA"
    )
    s = ds[0]
    assert Path(s["A_path"]).parent.name == "B" and Path(s["B_path"]).parent.name == "A"
    np.testing.assert_array_equal(to_image(s["A"]), _img(20, 24, 2))


def test_side_by_side_odd_width(tmp_path: Path) -> None:
    write_image(tmp_path / "AB" / "odd.png", _img(8, 21))
    t = PairTransform("none", 16, 16, False)
    with pytest.raises(DataError, match=r"odd\.png.*odd width 21"):
        PairedFolders(t, root=str(tmp_path / "AB"))
    with pytest.raises(DataError, match=r"odd\.png.*odd width 21"):
        PairedFolders(t, root=str(tmp_path / "AB"), check_sizes=False)[0]


def test_paired_bad_options(tmp_path: Path) -> None:
    root = _folder(tmp_path / "A", ["p.png"])
    t = PairTransform("none", 16, 16, False)
    with pytest.raises(ConfigError, match="direction"):
        PairedFolders(t, root=str(root), direction="sideways")
    with pytest.raises(ConfigError, match="root_b"):
        PairedFolders(t, root_a=str(root))
    with pytest.raises(ConfigError, match="not both"):
        PairedFolders(t, root_a=str(root), root_b=str(root), root=str(root))
    with pytest.raises(ConfigError, match="root"):
        PairedFolders(t)


# ------------------------------------------------------------------------------------ integration
def test_registered_names() -> None:
    assert DATASETS.get("unpaired_folders") is UnpairedFolders
    assert DATASETS.get("paired_folders") is PairedFolders


def test_build_dataset_and_loader(tmp_path: Path) -> None:
    _folder(tmp_path / "A", [f"a{i}.png" for i in range(5)], h=30, w=40)
    _folder(tmp_path / "B", [f"b{i}.jpg" for i in range(3)], h=36, w=36)
    cfg = DataConfig(
        dataset={
            "name": "unpaired_folders",
            "root_a": str(tmp_path / "A"),
            "root_b": str(tmp_path / "B"),
            "max_pixels": 10_000,
        },
        preprocess="scale_shortside_and_crop",
        load_size=24,
        crop_size=16,
        batch_size=2,
    )
    ds = build_dataset(cfg)
    assert isinstance(ds, UnpairedFolders) and ds.max_pixels == 10_000
    sampler = EpochSampler(len(ds), seed=0, epoch=0)
    loader = DataLoader(ds, batch_size=cfg.batch_size, sampler=sampler, num_workers=0)
    batches = list(loader)
    assert [b["A"].shape[0] for b in batches] == [2, 2, 1]
    assert all(b["A"].shape[1:] == (3, 16, 16) and b["B"].shape[1:] == (3, 16, 16) for b in batches)
    assert len(batches[0]["A_path"]) == 2
    again = list(DataLoader(ds, batch_size=2, sampler=EpochSampler(len(ds), seed=0, epoch=0)))
    assert all(torch.equal(x["B"], y["B"]) for x, y in zip(batches, again, strict=False))


def test_build_paired_dataset_and_unknown_option(tmp_path: Path) -> None:
    write_image(tmp_path / "AB" / "x.png", _img(20, 40))
    cfg = DataConfig(
        dataset={"name": "paired_folders", "root": str(tmp_path / "AB")},
        preprocess="resize_and_crop",
        load_size=20,
        crop_size=16,
    )
    batch = next(iter(DataLoader(build_dataset(cfg), batch_size=1, sampler=EpochSampler(1, seed=1, epoch=0))))
    assert batch["A"].shape == batch["B"].shape == (1, 3, 16, 16)
    bad = DataConfig(dataset={"name": "paired_folders", "root": str(tmp_path / "AB"), "rot": 1})
    with pytest.raises(ConfigError, match="'rot'"):
        build_dataset(bad)
