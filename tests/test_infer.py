"""Tiled inference: tiles sharing whole-image statistics match untiled inference; the CLI keeps
what it wrote and names every bad input."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from translate.cli import main
from translate.data.images import read_image, to_tensor, write_image
from translate.errors import ConfigError, DataError
from translate.infer import (
    DiskSlots,
    FolderLock,
    Moments,
    SharedNormStats,
    TranslateOptions,
    blend_window,
    effective_geometry,
    frontier_cache_mode,
    shareable_norms,
    tile_spans,
    translate_image,
    translate_path,
    unshared_norms,
)
from translate.io import export_network
from translate.nets import build_generator

RESNET = {"name": "resnet", "ngf": 8, "n_blocks": 2}
UNET = {"name": "unet", "ngf": 8, "num_downs": 4, "norm": "instance", "dropout": 0.0}


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


@pytest.mark.parametrize(
    "length,tile,overlap,multiple", [(256, 64, 32, 4), (2048, 512, 64, 4), (304, 128, 40, 8), (130, 64, 16, 2)]
)
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


#: tiled vs untiled with exact whole-image statistics, in 1/255 steps (mean, max absolute
#: difference): about 1.2× what is measured (docs/inference.md), so a change that makes tiling
#: worse fails, while per-tile statistics (naive tiling, 4.7-19/255 mean) fail by far
EXACT_CASES = {
    # name: (generator spec, image H×W, mean bound, max bound); measured mean, max in comments
    "resnet": (RESNET, (256, 256), 1.4, 34.0),  # 1.15, 28.2
    "unet": (UNET, (256, 256), 1.6, 21.0),  # 1.33, 17.6
    "group": ({**RESNET, "norm": "group"}, (256, 256), 1.3, 27.0),  # 1.06, 21.9
    "odd-size": (RESNET, (203, 317), 1.3, 33.0),  # 1.05, 27.5
}


@pytest.mark.parametrize("case", list(EXACT_CASES))
def test_tiles_with_whole_image_statistics_match_untiled_and_naive_tiles_do_not(case: str) -> None:
    spec, (h, w), mean_bound, max_bound = EXACT_CASES[case]
    net = generator(spec)
    x = to_tensor(photo(h, w))[None]
    ref = untiled(net, x)
    assert ref.std() > 0.05  # the output has contrast (9.8/255 for the U-Net), so the comparison means something
    out = translate_image(net, x, tile=64, overlap=32, device="cpu")
    assert out.shape == (1, 3, h, w)  # any size comes back the same size
    mean, peak = (v * 127.5 for v in diffs(out, ref))
    assert mean < mean_bound and peak < max_bound, f"{case}: mean {mean:.2f}/255, max {peak:.2f}/255"
    naive_mean, naive_peak = (
        v * 127.5 for v in diffs(translate_image(net, x, tile=64, overlap=32, device="cpu", norm_stats="tile"), ref)
    )
    # the bounds can fail: tiles with their own statistics break both of them
    assert naive_mean > 2 * mean_bound and naive_peak > max_bound, (naive_mean, naive_peak)


def test_cheaper_statistics_are_approximations() -> None:
    net = generator(RESNET)
    x = to_tensor(photo(256, 256))[None]
    ref = untiled(net, x)
    exact, _ = diffs(translate_image(net, x, tile=64, overlap=32, device="cpu"), ref)
    one_pass, _ = diffs(translate_image(net, x, tile=64, overlap=32, device="cpu", stat_passes=1), ref)
    thumb, _ = diffs(translate_image(net, x, tile=64, overlap=32, device="cpu", norm_stats="thumbnail"), ref)
    naive, _ = diffs(translate_image(net, x, tile=64, overlap=32, device="cpu", norm_stats="tile"), ref)
    assert exact < one_pass < naive and thumb < naive


def batch_norm_generator(x: torch.Tensor) -> torch.nn.Module:
    """A ResNet with BatchNorm whose running statistics were gathered on crops of ``x``, in eval mode."""
    net = generator({**RESNET, "norm": "batch"})
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # a plain average over the batches below
    net.train()
    with torch.no_grad():
        for top in range(0, x.shape[-2] - 64 + 1, 64):
            net(x[..., top : top + 64, :])
    return net.eval()


def test_batch_norm_generator_tiles_without_shared_statistics() -> None:
    x = to_tensor(photo(256, 256))[None]
    net = batch_norm_generator(x)
    assert not shareable_norms(net)  # eval-mode BatchNorm uses stored statistics: nothing to share
    ref = untiled(net, x)
    assert ref.std() > 0.1
    out = translate_image(net, x, tile=64, overlap=32, device="cpu")
    mean, peak = (v * 127.5 for v in diffs(out, ref))
    assert mean < 1.25 and peak < 26.0, (mean, peak)  # measured 1.02, 21.5: tile edges only
    # a net handed over in training mode (batch statistics of each tile) is put in eval mode
    assert torch.equal(translate_image(net.train(), x, tile=64, overlap=32, device="cpu"), out)


class SpatialLayerNorm(torch.nn.Module):
    """Layer norm over channels and pixels of each sample, as some image GANs use it (MUNIT)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.layer_norm(x, x.shape[1:])


class AdaIN(torch.nn.Module):
    """A custom adaptive instance norm: calls ``F.instance_norm`` itself, so it is no InstanceNorm module."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.instance_norm(x) * self.scale.view(1, -1, 1, 1)


def norm_generator(norm: torch.nn.Module) -> torch.nn.Module:
    """conv, ``norm``, conv: the smallest generator whose tiles depend on how ``norm`` is shared."""
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), norm, torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 3, padding=1), torch.nn.Tanh()
    ).eval()


UNSHARED_NORMS = {
    "layer norm over the pixels": (SpatialLayerNorm(), "SpatialLayerNorm calling layer_norm"),
    "custom instance norm": (AdaIN(8), "AdaIN calling instance_norm"),
    "batch norm without running statistics": (
        torch.nn.BatchNorm2d(8, track_running_stats=False),
        "BatchNorm2d calling batch_norm",
    ),
}


@pytest.mark.parametrize("case", list(UNSHARED_NORMS))
def test_norms_whose_statistics_tiles_cannot_share_are_refused_by_name(case: str) -> None:
    norm, what = UNSHARED_NORMS[case]
    net = norm_generator(norm)
    x = to_tensor(photo(128, 128))[None]
    with pytest.raises(
        ConfigError,
        match=rf"generator layer\(s\) '1' \({what}\) normalise each tile with its own "
        r"statistics.*translate untiled \(tile >= 128\).*allow_unshared_norms=True",
    ):
        translate_image(net, x, tile=64, overlap=16, device="cpu")
    # the seams the refusal prevents: tiles normalised alone are far from the untiled image
    seamed = translate_image(net, x, tile=64, overlap=16, device="cpu", allow_unshared_norms=True)
    seams, _ = diffs(seamed, untiled(net, x))
    assert seams * 127.5 > 2.0
    # untiled (the image fits one tile), there is nothing to share
    torch.testing.assert_close(translate_image(net, x, tile=128, device="cpu"), untiled(net, x))


class Permuted(torch.nn.Module):
    """``module`` applied channels-last."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


ACCEPTED_NORMS = {  # whole-image statistics for the first two, stored or per-pixel ones for the others
    "group norm": lambda: norm_generator(torch.nn.GroupNorm(2, 8)),
    "instance norm": lambda: norm_generator(torch.nn.InstanceNorm2d(8)),
    "eval batch norm": lambda: norm_generator(torch.nn.BatchNorm2d(8)),
    "layer norm over the channels alone": lambda: norm_generator(Permuted(torch.nn.LayerNorm(8))),
    "resnet": lambda: generator(RESNET),
    "resnet, group norm": lambda: generator({**RESNET, "norm": "group"}),
    "unet, batch norm": lambda: generator({**UNET, "norm": "batch"}),
}


@pytest.mark.parametrize("case", list(ACCEPTED_NORMS))
def test_norms_tiles_can_share_or_do_not_need_to_are_accepted(case: str) -> None:
    assert unshared_norms(ACCEPTED_NORMS[case](), torch.zeros(1, 3, 32, 32)) == {}


def test_a_group_norm_generator_tiles_like_the_untiled_one() -> None:
    net = norm_generator(torch.nn.GroupNorm(2, 8))
    x = to_tensor(photo(128, 128))[None]
    mean, _ = diffs(translate_image(net, x, tile=64, overlap=16, device="cpu"), untiled(net, x))
    assert mean * 127.5 < 0.5


def test_bf16_autocast_runs_and_stays_close_to_float32() -> None:
    net = generator(RESNET)
    x = to_tensor(photo(256, 256))[None]
    full = translate_image(net, x, tile=64, overlap=32, device="cpu")
    half = translate_image(net, x, tile=64, overlap=32, device="cpu", amp="bf16")
    assert half.dtype == torch.float32 and half.shape == full.shape
    mean, peak = (v * 127.5 for v in diffs(half, full))
    # measured 0.38/255 mean, 3.7/255 max (untiled bf16 vs fp32: 0.39, 4.0); a bf16 run that
    # silently ran in fp32 would differ by nothing
    assert 0.05 < mean < 0.6 and peak < 6.0, (mean, peak)


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
    # no cache: the same result at the uncached cost
    calls[0] = 0
    uncached = translate_image(net, x, tile=64, overlap=32, device="cpu", stat_passes=stat_passes, cache="off")
    assert torch.equal(uncached, fast)
    if stat_passes is None:
        assert calls[0] > 3 * fast_calls


def count_spills(monkeypatch) -> list[int]:
    """A counter of states written to a disk frontier."""
    spills = [0]
    put = DiskSlots.put

    def counting_put(self, index, state):
        spills[0] += 1
        put(self, index, state)

    monkeypatch.setattr(DiskSlots, "put", counting_put)
    return spills


@pytest.mark.parametrize("amp", ["off", "bf16"])
def test_frontier_spilled_to_disk_gives_the_ram_output_at_the_ram_cost(monkeypatch, tmp_path: Path, amp: str) -> None:
    net = generator(RESNET)
    x = to_tensor(photo(256, 256))[None]
    calls, spills = count_convs(net), count_spills(monkeypatch)
    in_ram = translate_image(net, x, tile=64, overlap=32, device="cpu", amp=amp, cache="ram")
    ram_calls, calls[0] = calls[0], 0
    assert spills[0] == 0
    # "auto" with a budget this image's frontier exceeds: spilled to a file in cache_dir
    assert frontier_cache_mode(net, 256, 256, 64, 32, cache_mb=0.01, cache_dir=str(tmp_path)) == "disk"
    on_disk = translate_image(
        net, x, tile=64, overlap=32, device="cpu", amp=amp, cache_mb=0.01, cache_dir=str(tmp_path)
    )
    assert spills[0] > 16  # every tile's state, several times
    assert torch.equal(on_disk, in_ram) and calls[0] == ram_calls
    assert not list(tmp_path.iterdir())  # the spill file is gone


def test_disk_slots_return_what_was_put_as_fresh_copies(tmp_path: Path) -> None:
    slots = DiskSlots(slot_bytes=4096, directory=str(tmp_path))  # 3 slots: bytes 0-12287
    skip = torch.randn(1, 4, 8, 8)
    states = {0: (skip, torch.randn(1, 4, 8, 8).bfloat16()), 1: torch.arange(12, dtype=torch.float32).view(1, 3, 2, 2)}
    for index, state in states.items():
        slots.put(index, state)
    got = slots.get(0, torch.device("cpu"))
    assert isinstance(got, tuple) and got[1].dtype == torch.bfloat16
    assert torch.equal(got[0], skip) and torch.equal(got[1], states[0][1])
    got[0].zero_()  # the caller may work in place: the stored state stays
    assert torch.equal(slots.get(0, torch.device("cpu"))[0], skip)
    assert torch.equal(slots.get(1, torch.device("cpu")), states[1])
    slots.put(1, states[1].repeat(1, 1, 2, 2))  # a later state of another shape replaces the slot
    assert slots.get(1, torch.device("cpu")).shape == (1, 3, 4, 4)
    with pytest.raises(RuntimeError, match="does not fit"):
        slots.put(0, torch.zeros(2048))
    # a channels-last state comes back channels-last with the same values (a view of another layout too)
    bf16_cl = torch.randn(1, 5, 6, 7).bfloat16().contiguous(memory_format=torch.channels_last)
    slots.put(2, (bf16_cl, bf16_cl[..., 1:4, 2:6]))
    back, window = slots.get(2, torch.device("cpu"))
    assert back.is_contiguous(memory_format=torch.channels_last) and not back.is_contiguous()
    assert torch.equal(back, bf16_cl) and torch.equal(window, bf16_cl[..., 1:4, 2:6])
    slots.close()


def test_cache_options_are_checked(tmp_path: Path) -> None:
    net = generator(RESNET)
    assert frontier_cache_mode(net, 256, 256, 64, 32) == "ram"
    assert frontier_cache_mode(net, 256, 256, 64, 32, cache="off", cache_mb=0.01) == "off"
    x = to_tensor(photo(128, 128))[None]
    with pytest.raises(ConfigError, match="unknown cache 'memory'"):
        translate_image(net, x, tile=64, overlap=32, device="cpu", cache="memory")
    with pytest.raises(ConfigError, match="cache_mb"):
        translate_image(net, x, tile=64, overlap=32, device="cpu", cache_mb=-1)
    with pytest.raises(ConfigError, match="cache folder not found"):
        translate_image(net, x, tile=64, overlap=32, device="cpu", cache="disk", cache_dir=str(tmp_path / "missing"))


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
    return main(
        [
            "translate",
            "--checkpoint",
            str(checkpoint),
            "--input",
            str(source),
            "--output",
            str(out),
            "--tile",
            "64",
            "--overlap",
            "32",
            "--device",
            "cpu",
            "--no-progress",
            *extra,
        ]
    )


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


def test_cli_keeps_freed_memory_for_its_own_process_only(tmp_path: Path, exported: Path, monkeypatch) -> None:
    from translate import cpu_memory

    devices: list[torch.device] = []
    monkeypatch.setattr(cpu_memory, "retain_freed_memory", lambda device: devices.append(device) or True)
    write_image(tmp_path / "x.png", photo(40, 48))
    translate_image(generator(RESNET), torch.rand(1, 3, 40, 48), device="cpu")
    assert devices == []  # a library call leaves the caller's malloc alone
    assert translate(exported, tmp_path / "x.png", tmp_path / "out") == 0
    assert devices == [torch.device("cpu")]


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


def test_cli_refuses_a_second_run_on_the_same_output(tmp_path: Path, exported: Path, capsys) -> None:
    write_image(tmp_path / "in" / "a.png", photo(48, 48))
    with FolderLock(tmp_path / "out"):  # a run in progress
        assert translate(exported, tmp_path / "in", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert f"out is being written by another run (pid {os.getpid()} on host {socket.gethostname()}" in err
    assert not (tmp_path / "out" / "a.png").exists()
    assert translate(exported, tmp_path / "in", tmp_path / "out") == 0
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a.png"]  # the lock is gone with its run


def test_a_write_error_is_reported_for_its_image_and_the_others_are_kept(
    tmp_path: Path, exported: Path, monkeypatch, capsys
) -> None:
    import translate.infer.files as files

    for name in ("a", "b", "c"):
        write_image(tmp_path / "in" / f"{name}.png", photo(40, 40))
    real_write = files.write_png

    def write_png(path: Path, rgb: np.ndarray) -> Path:
        if path.name == "b.png":
            raise OSError(28, "No space left on device")
        return real_write(path, rgb)

    monkeypatch.setattr(files, "write_png", write_png)
    assert translate(exported, tmp_path / "in", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'in' / 'b.png'}: cannot write {tmp_path / 'out' / 'b.png'}: [Errno 28] No space left" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "c.png"]


def test_an_output_lost_during_a_folder_run_is_named(tmp_path: Path, exported: Path, monkeypatch) -> None:
    import translate.infer.files as files

    for name in ("a", "b", "c"):
        write_image(tmp_path / "in" / f"{name}.png", photo(40, 40))
    real_write = files.write_png
    # a write that reports success but leaves nothing (another process removed it, a lost write)
    monkeypatch.setattr(files, "write_png", lambda path, rgb: path if path.name == "b.png" else real_write(path, rgb))
    net = generator(RESNET)
    with pytest.raises(DataError, match=r"1 of 3 inputs have no output .*no reported failure: .*b\.png"):
        translate_path(net, tmp_path / "in", tmp_path / "out", TranslateOptions(device="cpu"), progress=False)


# --- benchmark ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_bench_infer_prints_its_lines_and_table(capsys) -> None:
    """A tiny ``i2i bench infer``: each variant in its own process, then the comparison table."""
    assert (
        main(
            [
                "bench",
                "infer",
                "--size",
                "96",
                "--tile",
                "48",
                "--overlap",
                "16",
                "--ngf",
                "4",
                "--n-blocks",
                "1",
                "--variants",
                "untiled,image",
                "--device",
                "cpu",
                "--cache",
                "disk",
                "--amp",
                "off",
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("  untiled: ") and " s, peak " in line for line in lines)
    assert any(line.startswith("  image: ") and line.endswith("cache disk") for line in lines)
    assert any("96² image, tile 48, overlap 16" in line for line in lines)
    (row,) = [line.split() for line in lines if line.startswith("image ")]
    seconds, peak_mb, mean, peak = map(float, row[1:5])
    assert seconds >= 0 and peak_mb >= 0 and row[5] == "disk"  # seconds print as 0.0 for so small a run
    assert mean < 2.0 and 0 <= mean <= peak  # tiled against untiled, in /255


def test_progress_counts_every_tile_pass_towards_a_total_known_up_front():
    torch.manual_seed(0)
    g = build_generator({"name": "resnet", "ngf": 4, "n_blocks": 1}).eval()
    calls = []
    image = torch.rand(1, 3, 96, 96) * 2 - 1
    out = translate_image(g, image, tile=64, overlap=16, device="cpu", progress=lambda d, t: calls.append((d, t)))
    totals = {t for _, t in calls}
    assert len(totals) == 1 and [d for d, _ in calls] == list(range(1, len(calls) + 1))
    assert calls[-1][0] == calls[-1][1]  # it ends at the total it announced
    # 4 tiles, one statistics pass per norm layer and one output pass
    assert calls[-1][1] == 4 * (len(shareable_norms(g)) + 1)
    same = translate_image(g, image, tile=64, overlap=16, device="cpu")
    assert torch.equal(out, same)
    small = []
    translate_image(
        g, image[..., :32, :32], tile=64, overlap=16, device="cpu", progress=lambda d, t: small.append((d, t))
    )
    assert small == [(1, 1)]


@pytest.mark.parametrize("layout", ["contiguous", "view", "channels_last_bf16"])
def test_moments_match_float64_sums_in_every_layout(layout: str) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 8, 96, 120, generator=g) * 3 + 2
    if layout == "view":
        x = x[..., 5:90, 7:111]
    elif layout == "channels_last_bf16":
        x = x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    moments = Moments.zeros(8)
    moments.add(x)
    moments.add(x[..., :10, :])
    exact = torch.cat([x, x[..., :10, :]], dim=2).double()
    mean, var = moments.mean_var()
    assert moments.count == exact.shape[2] * exact.shape[3]
    assert torch.allclose(mean, exact.mean(dim=(0, 2, 3)), rtol=1e-6, atol=1e-9)
    assert torch.allclose(var, exact.var(dim=(0, 2, 3), unbiased=False), rtol=1e-6)
