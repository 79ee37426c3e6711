"""Tiled inference: tiles sharing whole-image statistics match untiled inference; the CLI keeps
what it wrote and names every bad input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from translate.cli import main
from translate.data.images import read_image, to_tensor, write_image
from translate.errors import ConfigError
from translate.infer import (
    SharedNormStats,
    blend_window,
    effective_geometry,
    tile_spans,
    translate_image,
)
from translate.io import export_network
from translate.nets import build_generator

RESNET = {"name": "resnet", "ngf": 8, "n_blocks": 2}
UNET = {"name": "unet", "ngf": 8, "num_downs": 4, "norm": "instance", "dropout": 0.0}
LEVEL = 2.0 / 127.5  # 2/255 of the full range, in the [-1, 1] units of network tensors


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny tiles run fastest on one thread, and do not fight other processes for shared cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def photo(h: int, w: int) -> np.ndarray:
    """A real photograph (dark background, bright face, texture): tiles with very different statistics."""
    from skimage import data

    return cv2.resize(data.astronaut(), (w, h), interpolation=cv2.INTER_AREA)


def generator(spec: dict, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_generator(spec).eval()


def untiled(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return net(x)


def diffs(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    d = (a - b).abs()
    return d.mean().item(), d.max().item()


# --- geometry ----------------------------------------------------------------------------------


@pytest.mark.parametrize("length,tile,overlap,multiple", [(256, 64, 32, 4), (2048, 512, 64, 4), (304, 128, 40, 8), (130, 64, 16, 2)])
def test_cores_partition_and_windows_sum_to_one(length: int, tile: int, overlap: int, multiple: int) -> None:
    spans = tile_spans(length, tile, overlap, multiple)
    covered = torch.zeros(length)
    total = torch.zeros(length)
    for span in spans:
        assert span.stop - span.start == tile and span.start % multiple == 0
        assert span.start <= span.core_start < span.core_stop <= span.stop and span.core_start % multiple == 0
        covered[span.core_start : span.core_stop] += 1
        total[span.start : span.stop] += blend_window(span, length, overlap)
    assert spans[0].start == 0 and spans[-1].stop == length
    assert (covered == 1).all()  # the cores partition the image: statistics count each pixel once
    torch.testing.assert_close(total, torch.ones(length))  # no seams from the weights themselves


def test_geometry_is_checked() -> None:
    assert effective_geometry(510, 30, 4) == (508, 32)
    with pytest.raises(ConfigError, match="smaller than"):
        effective_geometry(8, 0, 16)
    with pytest.raises(ConfigError, match="less than the tile"):
        effective_geometry(64, 64, 4)


# --- accuracy ----------------------------------------------------------------------------------


def test_tiled_resnet_matches_untiled_and_naive_tiling_does_not() -> None:
    net = generator(RESNET)
    x = to_tensor(photo(256, 256))[None]  # 4× the tile size per side
    ref = untiled(net, x)
    assert ref.std() > 0.1  # the output has contrast, so the comparison means something
    mean, peak = diffs(translate_image(net, x, tile=64, overlap=32, device="cpu"), ref)
    naive_mean, _ = diffs(translate_image(net, x, tile=64, overlap=32, device="cpu", norm_stats="tile"), ref)
    assert mean < LEVEL, f"mean abs diff {mean * 127.5:.2f}/255"
    assert peak < 0.4
    assert naive_mean > 4 * mean  # per-tile statistics give tone seams: the test can fail


def test_cheaper_statistics_are_approximations() -> None:
    net = generator(RESNET)
    x = to_tensor(photo(256, 256))[None]
    ref = untiled(net, x)
    exact, _ = diffs(translate_image(net, x, tile=64, overlap=32, device="cpu"), ref)
    one_pass, _ = diffs(translate_image(net, x, tile=64, overlap=32, device="cpu", stat_passes=1), ref)
    thumb, _ = diffs(translate_image(net, x, tile=64, overlap=32, device="cpu", norm_stats="thumbnail"), ref)
    naive, _ = diffs(translate_image(net, x, tile=64, overlap=32, device="cpu", norm_stats="tile"), ref)
    assert exact < one_pass < naive and thumb < naive


def test_tiled_unet_with_instance_norm_matches_untiled() -> None:
    net = generator(UNET)
    assert net.size_multiple == 16
    x = to_tensor(photo(256, 256))[None]
    mean, _ = diffs(translate_image(net, x, tile=64, overlap=32, device="cpu"), untiled(net, x))
    assert mean < LEVEL, f"mean abs diff {mean * 127.5:.2f}/255"


def test_group_norm_shares_statistics_too() -> None:
    net = generator({**RESNET, "norm": "group"})
    x = to_tensor(photo(256, 256))[None]
    mean, _ = diffs(translate_image(net, x, tile=64, overlap=32, device="cpu"), untiled(net, x))
    assert mean < LEVEL, f"mean abs diff {mean * 127.5:.2f}/255"


def test_any_size_comes_back_the_same_size() -> None:
    net = generator(RESNET)
    x = to_tensor(photo(203, 317))[None]
    out = translate_image(net, x, tile=64, overlap=32, device="cpu")
    assert out.shape == (1, 3, 203, 317)
    mean, _ = diffs(out, untiled(net, x))
    assert mean < LEVEL


class Unsplit(torch.nn.Module):
    """A generator without ``stages()``: tiled passes cannot resume from cached states."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net, self.size_multiple = net, net.size_multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def count_convs(net: torch.nn.Module) -> list[int]:
    """A counter of convolution calls, by forward hooks left on ``net``."""
    calls = [0]
    for m in net.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            m.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


@pytest.mark.parametrize("stat_passes", [None, 3])
def test_resuming_from_cached_states_is_the_same_and_cheaper(stat_passes: int | None) -> None:
    net = generator(RESNET)
    x = to_tensor(photo(256, 256))[None]
    from functools import reduce

    with torch.inference_mode():  # the steps are the body
        torch.testing.assert_close(reduce(lambda s, f: f(s), net.stages(), x), untiled(net, x), rtol=0, atol=0)
    calls = count_convs(net)
    fast = translate_image(net, x, tile=64, overlap=32, device="cpu", stat_passes=stat_passes)
    fast_calls, calls[0] = calls[0], 0
    slow = translate_image(Unsplit(net), x, tile=64, overlap=32, device="cpu", stat_passes=stat_passes)
    assert torch.equal(fast, slow)  # the same statistics, the same arithmetic
    if stat_passes is None:  # 9 norm layers: recording costs about one pass instead of about five
        assert fast_calls < calls[0] / 3, (fast_calls, calls[0])
    # a cache budget too small for this image: no cache, the same result, the uncached cost
    calls[0] = 0
    bounded = translate_image(net, x, tile=64, overlap=32, device="cpu", stat_passes=stat_passes, cache_mb=0.01)
    assert torch.equal(bounded, fast)
    if stat_passes is None:
        assert calls[0] > 3 * fast_calls


def test_small_image_is_one_exact_pass_and_hooks_leave_no_trace() -> None:
    net = generator(RESNET)
    x = to_tensor(photo(60, 44))[None]
    ref = untiled(net, x)
    torch.testing.assert_close(translate_image(net, x, tile=64, overlap=32, device="cpu"), ref)
    with SharedNormStats(net, use={}, record=None) as hooks:
        hooks.set_core((60, 44), None)
        untiled(net, x)
    assert hooks.order and all(not m._forward_hooks for m in hooks.norms.values())
    torch.testing.assert_close(untiled(net, x), ref)


# --- command line ------------------------------------------------------------------------------


@pytest.fixture()
def exported(tmp_path: Path) -> Path:
    return export_network(tmp_path / "G.safetensors", generator(RESNET), RESNET)


def translate(checkpoint: Path, source: Path, out: Path, *extra: str) -> int:
    return main(["translate", "--checkpoint", str(checkpoint), "--input", str(source), "--output", str(out),
                 "--tile", "64", "--overlap", "32", "--device", "cpu", "--no-progress", *extra])


def test_cli_translates_a_folder_keeping_names_and_sizes(tmp_path: Path, exported: Path) -> None:
    src = tmp_path / "in"
    write_image(src / "a.jpg", photo(96, 130))
    write_image(src / "sub" / "b.png", photo(40, 52))
    out = tmp_path / "out"
    assert translate(exported, src, out) == 0
    assert read_image(out / "a.png").shape == (96, 130, 3)
    assert read_image(out / "sub" / "b.png").shape == (40, 52, 3)
    assert not list(out.rglob("*.tmp"))  # atomic writes leave no temporaries

    before = (out / "a.png").stat().st_mtime_ns
    assert translate(exported, src, out, "--skip-existing") == 0
    assert (out / "a.png").stat().st_mtime_ns == before


def test_cli_single_file_matches_the_library(tmp_path: Path, exported: Path) -> None:
    write_image(tmp_path / "x.png", photo(100, 140))
    assert translate(exported, tmp_path / "x.png", tmp_path / "out") == 0
    x = to_tensor(read_image(tmp_path / "x.png"))[None]
    expected = translate_image(generator(RESNET), x, tile=64, overlap=32, device="cpu")
    got = to_tensor(read_image(tmp_path / "out" / "x.png"))[None]
    assert (got - expected).abs().max() <= 1.01 / 127.5  # only 8-bit rounding


def test_cli_corrupt_image_is_named_and_the_others_are_kept(tmp_path: Path, exported: Path, capsys) -> None:
    src = tmp_path / "in"
    write_image(src / "a.png", photo(48, 48))
    (src / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    write_image(src / "c.png", photo(48, 48))
    assert translate(exported, src, tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "b.png" in err and "corrupt" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "c.png"]


def test_cli_wrong_architecture_checkpoint_is_named(tmp_path: Path, capsys) -> None:
    wrong = export_network(tmp_path / "G.safetensors", generator(RESNET), {**RESNET, "ngf": 16})
    write_image(tmp_path / "x.png", photo(48, 48))
    assert translate(wrong, tmp_path / "x.png", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "G.safetensors" in err and "does not fit this architecture" in err
    assert not (tmp_path / "out").exists()


def test_cli_pixel_limit_names_the_image(tmp_path: Path, exported: Path, capsys) -> None:
    write_image(tmp_path / "big.png", photo(100, 100))
    assert translate(exported, tmp_path / "big.png", tmp_path / "out", "--max-pixels", "5000") == 2
    err = capsys.readouterr().err
    assert "big.png" in err and "exceeds the limit" in err


def test_cli_never_overwrites_an_input(tmp_path: Path, exported: Path, capsys) -> None:
    write_image(tmp_path / "x.png", photo(48, 48))
    before = (tmp_path / "x.png").read_bytes()
    assert translate(exported, tmp_path, tmp_path) == 2
    assert "overwrite" in capsys.readouterr().err
    assert (tmp_path / "x.png").read_bytes() == before
