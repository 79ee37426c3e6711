"""Offline translation of a dataset tree: layout kept, labels copied byte for byte, resumable after a
kill without redoing finished files, and each file done exactly once by two torchrun processes."""

from __future__ import annotations

import json
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

import augment.offline as offline
from augment.offline import STAMP_NAME, plan_jobs, translate_dataset
from translate.cli import main
from translate.data.images import read_image, to_image, to_tensor
from translate.errors import ConfigError, DataError
from translate.infer import FolderLock
from translate.infer.lock import LOCK_NAME
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
    """Files of a tree, less the provenance record an output root holds and the lock of a run in progress."""
    return {
        p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name not in (STAMP_NAME, LOCK_NAME)
    }


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


def files_written_by_each_rank(source: Path, out: Path, checkpoint: Path, world: int):
    """Run every rank's share in turn into one output tree; returns each rank's report and the files
    that appeared in the tree during its run."""
    reports, written = [], []
    for rank in range(world):
        before = files_under(out) if out.exists() else set()
        reports.append(
            translate_dataset(
                checkpoint, source, out, labels_glob=("labels/*",), device="cpu", progress=False, rank=rank, world=world
            )
        )
        written.append(files_under(out) - before)
    return reports, written


def check_each_file_done_by_exactly_one_rank(tmp_path: Path, world: int = 3) -> None:
    source, out = tmp_path / "src", tmp_path / "out"
    make_tree(source, 5)
    everything = files_under(source)
    reports, written = files_written_by_each_rank(source, out, export_tiny(tmp_path / "g.safetensors"), world)
    # a rank that finds a file done did it again or would have (another rank's share overlaps)
    assert [r.skipped for r in reports] == [0] * world, "a file was in two ranks' shares"
    for rank, files in enumerate(written):
        assert len(files) == reports[rank].translated + reports[rank].copied
        for other in written[rank + 1 :]:
            assert not files & other, "two ranks wrote the same file"
    assert set().union(*written) == everything, "a file was in no rank's share"
    shares = sorted(len(files) for files in written)
    assert shares[-1] - shares[0] <= 1, f"unbalanced shares {shares}"


def test_each_file_is_done_by_exactly_one_rank(tmp_path):
    check_each_file_done_by_exactly_one_rank(tmp_path)


BROKEN_SHARDS = {
    "every rank does everything": lambda jobs, rank, world: jobs,
    "every rank does rank 0's share": lambda jobs, rank, world: jobs[0::world],
    "a file is dropped": lambda jobs, rank, world: jobs[rank::world][1:] if rank == 0 else jobs[rank::world],
    "a file is done twice": lambda jobs, rank, world: jobs[rank::world] + ([jobs[1]] if rank == 0 else []),
}


@pytest.mark.parametrize("broken", list(BROKEN_SHARDS))
def test_the_sharding_check_fails_on_broken_sharding(tmp_path, monkeypatch, broken):
    monkeypatch.setattr(offline, "shard", BROKEN_SHARDS[broken])
    with pytest.raises(AssertionError):
        check_each_file_done_by_exactly_one_rank(tmp_path)


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
    code = main(
        [
            "augment",
            "translate-dataset",
            "--checkpoint",
            str(tmp_path / "nope.safetensors"),
            "--input",
            str(tmp_path / "src"),
            "--output",
            str(tmp_path / "out"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "exported network not found" in err and "Traceback" not in err
    tiny = tmp_path / "tiny"
    write_png(tiny / "a.png", np.zeros((3, 3, 3), np.uint8))
    write_png(tiny / "b.png", np.zeros((8, 8, 3), np.uint8))
    code = main(
        [
            "augment",
            "translate-dataset",
            "--checkpoint",
            str(export_tiny(tmp_path / "g.safetensors")),
            "--input",
            str(tiny),
            "--output",
            str(tmp_path / "tiny_out"),
            "--no-progress",
        ]
    )
    captured = capsys.readouterr()
    assert code == 1 and "smaller than the generator takes" in captured.err and "failed 1" in captured.out
    assert files_under(tmp_path / "tiny_out") == {"b.png"}


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "translate.cli", "augment", "translate-dataset", *args]


def environment() -> dict[str, str]:
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }


@pytest.mark.slow
def test_killed_run_resumes_without_redoing_finished_files(tmp_path):
    source, out = tmp_path / "src", tmp_path / "out"
    make_tree(source, 300, size=64)
    checkpoint = export_tiny(tmp_path / "g.safetensors", ngf=8, n_blocks=2)
    args = cli(
        "--checkpoint",
        str(checkpoint),
        "--input",
        str(source),
        "--output",
        str(out),
        "--labels-glob",
        "labels/*",
        "--device",
        "cpu",
        "--batch-size",
        "1",
        "--no-progress",
    )
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
    finished = {
        p: p.stat().st_mtime_ns
        for p in out.rglob("*")
        if p.is_file() and not p.name.endswith(".tmp") and p.name not in (STAMP_NAME, LOCK_NAME)
    }
    total = len(files_under(source))
    assert 40 <= len(finished) < total
    for path in finished:  # nothing half-written under a final name
        if path.suffix == ".png":
            assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED) is not None
    rerun = subprocess.run(args, env=environment(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    takeover = f"the lock {out / LOCK_NAME} left by a run that ended without releasing it (pid {process.pid} "
    assert takeover in rerun.stderr
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
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={free_port()}",
        "-m",
        "translate.cli",
        "augment",
        "translate-dataset",
        "--checkpoint",
        str(checkpoint),
        "--input",
        str(source),
        "--output",
        str(out),
        "--labels-glob",
        "labels/*",
        "--device",
        "cpu",
    ]
    result = subprocess.run(command, env=environment(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    ranks = {
        int(m[0]): (int(m[1]), int(m[2]), int(m[3]))
        for m in re.findall(r"rank (\d): translated (\d+), copied (\d+), skipped (\d+)", result.stdout)
    }
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
    jobs = {
        job.source.relative_to(root).as_posix(): job.translate
        for job in plan_jobs(root, tmp_path / "out", ("*_labelIds.png", "gtFine/*"))
    }
    assert jobs == {
        "leftImg8bit/train/aachen/a_leftImg8bit.png": True,
        "gtFine/train/aachen/a_gtFine_labelIds.png": False,
        "gtFine/train/aachen/a_gtFine_color.png": False,
    }


def test_sixteen_bit_gray_and_rgba_inputs_become_translated_8_bit_rgb(tmp_path):
    source, out = tmp_path / "src", tmp_path / "out"
    image = smooth_images(1, 16, seed=2)[0]
    source.mkdir()
    cv2.imwrite(str(source / "deep.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR).astype(np.uint16) * 257)
    cv2.imwrite(str(source / "gray.png"), image[..., 1])
    cv2.imwrite(
        str(source / "rgba.png"), np.dstack([cv2.cvtColor(image, cv2.COLOR_RGB2BGR), np.full((16, 16), 128, np.uint8)])
    )
    checkpoint = export_tiny(tmp_path / "g.safetensors")
    report = translate_dataset(checkpoint, source, out, device="cpu", progress=False)
    assert report.translated == 3 and report.failed == 0
    net = load_generator(checkpoint)
    on_white = np.rint(image * (128 / 255) + 255 * (127 / 255)).astype(
        np.uint8
    )  # half transparent, as a viewer shows it
    for name, as_rgb in [
        ("deep.png", image),
        ("gray.png", np.repeat(image[..., 1:2], 3, axis=2)),
        ("rgba.png", on_white),
    ]:
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


def test_a_failed_write_is_blamed_on_its_own_image_and_the_batch_goes_on(tmp_path, monkeypatch):
    source, out = tmp_path / "src", tmp_path / "out"
    to_translate, _ = make_tree(source, 4)
    # with batches of 2, the first two images (in listing order) are written when the third is
    # added: a write error there belongs to its image, not to the third
    _, second, third = sorted(to_translate)[:3]
    real_write = offline.write_encoded

    def write_encoded(target: Path, rgb: np.ndarray) -> None:
        if target == out / second:
            raise OSError(28, "No space left on device")
        real_write(target, rgb)

    monkeypatch.setattr(offline, "write_encoded", write_encoded)
    report = translate_dataset(
        export_tiny(tmp_path / "g.safetensors"),
        source,
        out,
        labels_glob=("labels/*",),
        device="cpu",
        batch_size=2,
        progress=False,
    )
    assert report.failed_sources == [source / second]
    assert len(report.failures) == 1 and report.failures[0].startswith(str(source / second))
    assert "No space left on device" in report.failures[0] and third not in report.failures[0]
    assert report.translated == len(to_translate) - 1
    assert files_under(out) == files_under(source) - {second}


def test_an_output_lost_during_the_run_is_named_at_the_end(tmp_path, monkeypatch):
    source, out = tmp_path / "src", tmp_path / "out"
    to_translate, _ = make_tree(source, 4)
    lost = sorted(to_translate)[1]
    real_write = offline.write_encoded
    # a write that reports success but leaves nothing (another process removed it, a lost write)
    monkeypatch.setattr(
        offline, "write_encoded", lambda target, rgb: None if target == out / lost else real_write(target, rgb)
    )
    with pytest.raises(DataError, match=rf"1 of \d+ inputs have no output .*no reported failure: .*{re.escape(lost)}"):
        translate_dataset(export_tiny(tmp_path / "g.safetensors"), source, out, device="cpu", progress=False)


def test_a_second_run_on_the_same_output_is_refused_naming_the_first(tmp_path):
    source, out = tmp_path / "src", tmp_path / "out"
    make_tree(source, 2)
    checkpoint = export_tiny(tmp_path / "g.safetensors")
    with FolderLock(out):  # a run in progress
        with pytest.raises(
            DataError,
            match=rf"{re.escape(str(out))} is being written by another run "
            rf"\(pid {os.getpid()} on host {re.escape(socket.gethostname())}",
        ):
            translate_dataset(checkpoint, source, out, device="cpu", progress=False)
        assert files_under(out) == set()  # nothing written, not even the stamp
    report = translate_dataset(checkpoint, source, out, device="cpu", progress=False)
    assert report.failed == 0 and files_under(out) == files_under(source)
    assert not (out / LOCK_NAME).exists()  # released at the end


def test_a_lock_left_by_a_dead_run_is_taken_over_with_a_warning(tmp_path):
    source, out = tmp_path / "src", tmp_path / "out"
    make_tree(source, 2)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    out.mkdir()
    (out / LOCK_NAME).write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(), "since": "then"}))
    with pytest.warns(UserWarning, match=rf"taking over the lock .* \(pid {int(dead.stdout)} on host"):
        report = translate_dataset(export_tiny(tmp_path / "g.safetensors"), source, out, device="cpu", progress=False)
    assert report.failed == 0 and files_under(out) == files_under(source) and not (out / LOCK_NAME).exists()


def test_cli_names_the_run_holding_the_output(tmp_path, capsys):
    make_tree(tmp_path / "src", 2)
    with FolderLock(tmp_path / "out"):
        code = main(
            [
                "augment",
                "translate-dataset",
                "--checkpoint",
                str(export_tiny(tmp_path / "g.safetensors")),
                "--input",
                str(tmp_path / "src"),
                "--output",
                str(tmp_path / "out"),
                "--no-progress",
            ]
        )
    err = capsys.readouterr().err
    assert code == 2 and f"being written by another run (pid {os.getpid()}" in err
    assert len(err.strip().splitlines()) == 1


#: ``i2i`` as one process of a two-process run
CLI_RUNNER = "import sys; from translate.cli import main; sys.exit(main(sys.argv[1:]))"

#: a process of a two-process run in which a file appears in the input right after process 0 has
#: listed it; process 1 lists (if it lists at all) only once the file is there
LATE_FILE_RUNNER = """
import os, shutil, sys, time
from pathlib import Path
import augment.offline as offline

real_plan_jobs = offline.plan_jobs

def plan_jobs(input_root, output_root, labels_glob=()):
    late = Path(input_root) / "images" / "aachen" / "0000-late.png"
    if os.environ["RANK"] == "1":
        deadline = time.monotonic() + 60
        while not late.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    jobs = real_plan_jobs(input_root, output_root, labels_glob)
    if os.environ["RANK"] == "0":
        shutil.copyfile(Path(input_root) / "images" / "aachen" / "0001.png", late)
    return jobs

offline.plan_jobs = plan_jobs
from translate.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_two_processes(script: str, args: list[str]) -> tuple[list[subprocess.Popen], list[tuple[str, str]]]:
    """``python -c script *args`` as ranks 0 and 1 of one gloo group; returns them and their (stdout, stderr)."""
    port = str(free_port())
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", script, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={
                **environment(),
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": port,
                "WORLD_SIZE": "2",
                "RANK": str(rank),
                "LOCAL_RANK": str(rank),
            },
        )
        for rank in range(2)
    ]
    return processes, [process.communicate(timeout=300) for process in processes]


@pytest.mark.slow
def test_processes_share_one_listing_when_files_appear_during_the_run(tmp_path):
    source, out = tmp_path / "src", tmp_path / "out"
    make_tree(source, 6)
    listed = files_under(source)
    args = [
        "augment",
        "translate-dataset",
        "--checkpoint",
        str(export_tiny(tmp_path / "g.safetensors")),
        "--input",
        str(source),
        "--output",
        str(out),
        "--labels-glob",
        "labels/*",
        "--device",
        "cpu",
        "--no-progress",
    ]
    processes, results = run_two_processes(LATE_FILE_RUNNER, args)
    assert [process.returncode for process in processes] == [0, 0], results
    assert "images/aachen/0000-late.png" in files_under(source)
    # the run did what process 0 listed, each file once; the late file waits for the next run
    assert files_under(out) == listed
    counts = [re.search(r"rank \d: translated (\d+), copied (\d+), skipped (\d+)", stdout) for stdout, _ in results]
    assert sum(int(m[1]) + int(m[2]) for m in counts) == len(listed) and all(m[3] == "0" for m in counts)


@pytest.mark.slow
def test_an_error_process_0_meets_before_the_run_ends_every_process(tmp_path):
    make_tree(tmp_path / "src", 2)
    args = [
        "augment",
        "translate-dataset",
        "--checkpoint",
        str(export_tiny(tmp_path / "g.safetensors")),
        "--input",
        str(tmp_path / "src"),
        "--output",
        str(tmp_path / "out"),
        "--device",
        "cpu",
        "--no-progress",
    ]
    with FolderLock(tmp_path / "out"):  # another run holds the output
        processes, results = run_two_processes(CLI_RUNNER, args)
    assert [process.returncode for process in processes] == [2, 2], results
    for _, stderr in results:
        assert f"is being written by another run (pid {os.getpid()}" in stderr and "Traceback" not in stderr
    assert files_under(tmp_path / "out") == set()
