"""Offline translation of a dataset tree: layout kept, labels copied byte for byte, resumable after a
kill without redoing finished files, and each file done exactly once by two torchrun processes."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from helpers import smooth_images

from augment.offline import STAMP_NAME, plan_jobs, shard, translate_dataset
from translate.cli import main
from translate.data.images import read_image, to_image, to_tensor
from translate.errors import ConfigError, DataError
from translate.io import export_network, load_generator
from translate.nets import build_generator

ROOT = Path(__file__).parents[1]


def export_tiny(path: Path, ngf: int = 4, n_blocks: int = 1) -> Path:
    torch.manual_seed(0)
    spec = {"name": "resnet", "ngf": ngf, "n_blocks": n_blocks}
    return export_network(path, build_generator(spec), spec, "generator", {})


def write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array
    assert cv2.imwrite(str(path), image)


def make_tree(root: Path, n_images: int, size: int = 16) -> tuple[list[str], list[str]]:
    """A GTA5-like tree: images in two cities, a label map per image, a JSON file, one JPEG.
    Returns (relative paths to translate, relative paths to copy)."""
    images = smooth_images(n_images, size, seed=1)
    rng = np.random.default_rng(0)
    to_translate, to_copy = [], []
    for i, image in enumerate(images):
        city = "aachen" if i % 2 else "bremen"
        write_png(root / "images" / city / f"{i:04d}.png", image)
        write_png(root / "labels" / city / f"{i:04d}.png", rng.integers(0, 34, (size, size), dtype=np.uint8))
        to_translate.append(f"images/{city}/{i:04d}.png")
        to_copy.append(f"labels/{city}/{i:04d}.png")
    cv2.imwrite(str(root / "images" / "extra.jpg"), images[0])
    to_translate.append("images/extra.jpg")
    (root / "classes.json").write_text('{"road": 7}')
    to_copy.append("classes.json")
    return to_translate, to_copy


def files_under(root: Path) -> set[str]:
    """Files of a tree, less the one provenance record an output root holds."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != STAMP_NAME}


@pytest.mark.slow
def test_layout_kept_labels_copied_byte_for_byte_and_images_translated(tmp_path):
    source, out = tmp_path / "gta", tmp_path / "gta_translated"
    to_translate, to_copy = make_tree(source, 300)
    checkpoint = export_tiny(tmp_path / "g.safetensors")
    report = translate_dataset(checkpoint, source, out, labels_glob=("labels/*",), device="cpu", progress=False)
    assert (report.translated, report.copied, report.skipped, report.failed) == (301, 301, 0, 0)
    assert files_under(out) == files_under(source)
    for relative in to_copy:
        assert (out / relative).read_bytes() == (source / relative).read_bytes()
    net = load_generator(checkpoint)
    for relative in to_translate[:5]:
        with torch.no_grad():
            expected = to_image(net(to_tensor(read_image(source / relative))[None]))
        got = read_image(out / relative)
        assert got.shape == expected.shape and np.abs(got.astype(int) - expected.astype(int)).max() <= 1
    jpeg = read_image(out / "images/extra.jpg")
    assert jpeg.shape == (16, 16, 3) and not np.array_equal(jpeg, read_image(source / "images/extra.jpg"))
    # a second run finds everything done
    again = translate_dataset(checkpoint, source, out, labels_glob=("labels/*",), device="cpu", progress=False)
    assert (again.translated, again.copied, again.skipped) == (0, 0, 602)


def test_shards_are_disjoint_and_complete(tmp_path):
    make_tree(tmp_path / "src", 10)
    jobs = plan_jobs(tmp_path / "src", tmp_path / "out")
    for world in (1, 2, 3, 4):
        shares = [shard(jobs, rank, world) for rank in range(world)]
        flat = [job for share in shares for job in share]
        assert len(flat) == len(jobs) and set(flat) == set(jobs)


def test_stale_temporaries_removed_and_overlapping_roots_refused(tmp_path):
    source, out = tmp_path / "src", tmp_path / "out"
    make_tree(source, 4)
    checkpoint = export_tiny(tmp_path / "g.safetensors")
    stale = out / "images" / "bremen" / "0000.png.k3j4h5.tmp"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half an image")
    translate_dataset(checkpoint, source, out, device="cpu", progress=False)
    assert not stale.exists() and files_under(out) == files_under(source)
    for bad_out in (source, source / "translated"):
        with pytest.raises(DataError, match="overlap"):
            translate_dataset(checkpoint, source, bad_out, device="cpu", progress=False)
    with pytest.raises(ConfigError, match="tile"):
        translate_dataset(checkpoint, source, out, tile=8, device="cpu", progress=False)
    with pytest.raises(ConfigError, match="batch size"):
        translate_dataset(checkpoint, source, out, batch_size=0, device="cpu", progress=False)


def test_cli_errors_are_one_line(tmp_path, capsys):
    make_tree(tmp_path / "src", 2)
    code = main(["augment", "translate-dataset", "--checkpoint", str(tmp_path / "nope.safetensors"),
                 "--input", str(tmp_path / "src"), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "exported network not found" in err and "Traceback" not in err
    tiny = tmp_path / "tiny"
    write_png(tiny / "a.png", np.zeros((3, 3, 3), np.uint8))
    write_png(tiny / "b.png", np.zeros((8, 8, 3), np.uint8))
    code = main(["augment", "translate-dataset", "--checkpoint", str(export_tiny(tmp_path / "g.safetensors")),
                 "--input", str(tiny), "--output", str(tmp_path / "tiny_out"), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1 and "smaller than the generator takes" in captured.err and "failed 1" in captured.out
    assert files_under(tmp_path / "tiny_out") == {"b.png"}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "translate.cli", "augment", "translate-dataset", *args]


def environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


@pytest.mark.slow
def test_killed_run_resumes_without_redoing_finished_files(tmp_path):
    source, out = tmp_path / "src", tmp_path / "out"
    make_tree(source, 300, size=64)
    checkpoint = export_tiny(tmp_path / "g.safetensors", ngf=8, n_blocks=2)
    args = cli("--checkpoint", str(checkpoint), "--input", str(source), "--output", str(out),
               "--labels-glob", "labels/*", "--device", "cpu", "--batch-size", "1", "--no-progress")
    process = subprocess.Popen(args, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        done = [p for p in (out / "images").rglob("*.png")] if (out / "images").exists() else []
        if len(done) >= 40:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    finished = {p: p.stat().st_mtime_ns for p in out.rglob("*")
                if p.is_file() and not p.name.endswith(".tmp") and p.name != STAMP_NAME}
    total = len(files_under(source))
    assert 40 <= len(finished) < total
    for path in finished:  # nothing half-written under a final name
        if path.suffix == ".png":
            assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED) is not None
    rerun = subprocess.run(args, env=environment(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"skipped {len(finished)} already done" in rerun.stdout
    assert re.search(rf"translated {301 - sum(1 for p in finished if 'images' in p.parts)} images", rerun.stdout)
    assert all(path.stat().st_mtime_ns == mtime for path, mtime in finished.items())
    assert files_under(out) == files_under(source)  # no temporary file left either


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_torchrun_processes_do_each_file_exactly_once(tmp_path):
    source, out = tmp_path / "src", tmp_path / "out"
    to_translate, to_copy = make_tree(source, 200)
    checkpoint = export_tiny(tmp_path / "g.safetensors")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
               "-m", "translate.cli", "augment", "translate-dataset", "--checkpoint", str(checkpoint),
               "--input", str(source), "--output", str(out), "--labels-glob", "labels/*", "--device", "cpu"]
    result = subprocess.run(command, env=environment(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    ranks = {int(m[0]): (int(m[1]), int(m[2]), int(m[3]))
             for m in re.findall(r"rank (\d): translated (\d+), copied (\d+), skipped (\d+)", result.stdout)}
    assert set(ranks) == {0, 1}
    # every output exists and was not there before, and the counts add up to the file count, so
    # no file was done twice; the shares are also balanced
    assert sum(r[0] for r in ranks.values()) == len(to_translate)
    assert sum(r[1] for r in ranks.values()) == len(to_copy)
    assert all(r[2] == 0 for r in ranks.values())
    assert abs(ranks[0][0] - ranks[1][0]) <= 2
    assert files_under(out) == files_under(source)
    assert re.search(r"translated 201 images in [\d.]+ s \([\d.]+ images/s, 2 processes\)", result.stdout)


def test_label_globs_match_relative_paths_and_names(tmp_path):
    root = tmp_path / "cityscapes"
    image = smooth_images(1, 8, seed=0)[0]
    write_png(root / "leftImg8bit/train/aachen/a_leftImg8bit.png", image)
    write_png(root / "gtFine/train/aachen/a_gtFine_labelIds.png", image[..., 0])
    write_png(root / "gtFine/train/aachen/a_gtFine_color.png", image)
    jobs = {job.source.relative_to(root).as_posix(): job.translate
            for job in plan_jobs(root, tmp_path / "out", ("*_labelIds.png", "gtFine/*"))}
    assert jobs == {"leftImg8bit/train/aachen/a_leftImg8bit.png": True,
                    "gtFine/train/aachen/a_gtFine_labelIds.png": False,
                    "gtFine/train/aachen/a_gtFine_color.png": False}


def test_sixteen_bit_gray_and_rgba_inputs_become_translated_8_bit_rgb(tmp_path):
    source, out = tmp_path / "src", tmp_path / "out"
    image = smooth_images(1, 16, seed=2)[0]
    source.mkdir()
    cv2.imwrite(str(source / "deep.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)
    cv2.imwrite(str(source / "gray.png"), image[..., 1])
    cv2.imwrite(str(source / "rgba.png"), np.dstack([cv2.cvtColor(image, cv2.COLOR_RGB2BGR), np.full((16, 16), 128, np.uint8)]))
    checkpoint = export_tiny(tmp_path / "g.safetensors")
    report = translate_dataset(checkpoint, source, out, device="cpu", progress=False)
    assert report.translated == 3 and report.failed == 0
    net = load_generator(checkpoint)
    on_white = np.rint(image * (128 / 255) + 255 * (127 / 255)).astype(np.uint8)  # half transparent, as a viewer shows it
    for name, as_rgb in [("deep.png", image), ("gray.png", np.repeat(image[..., 1:2], 3, axis=2)), ("rgba.png", on_white)]:
        written = cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED)
        assert written.dtype == np.uint8 and written.shape == (16, 16, 3)
        with torch.no_grad():
            expected = to_image(net(to_tensor(as_rgb)[None]))
        assert np.abs(cv2.cvtColor(written, cv2.COLOR_BGR2RGB).astype(int) - expected.astype(int)).max() <= 1


def test_rerun_with_another_generator_is_refused_instead_of_mixing_outputs(tmp_path):
    make_tree(tmp_path / "in", 3)
    first, other = export_tiny(tmp_path / "g1.safetensors"), export_tiny(tmp_path / "g2.safetensors", ngf=8)
    translate_dataset(first, tmp_path / "in", tmp_path / "out", device="cpu", progress=False)
    # the same generator resumes (nothing left to do); another one is refused, naming both
    again = translate_dataset(first, tmp_path / "in", tmp_path / "out", device="cpu", progress=False)
    assert again.translated == 0 and again.skipped > 0
    with pytest.raises(ConfigError, match=r"made with .*g1\.safetensors .*not with .*g2\.safetensors"):
        translate_dataset(other, tmp_path / "in", tmp_path / "out", device="cpu", progress=False)
    with pytest.raises(ConfigError, match="tile=512.*tile=64"):
        translate_dataset(first, tmp_path / "in", tmp_path / "out", device="cpu", tile=64, progress=False)
