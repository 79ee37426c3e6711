"""Offline translation of a dataset tree: every image translated once, everything else copied.

The output mirrors the input: same folders, same file names (an image keeps its format; JPEG is
written at quality 95). Files matching a label glob, and all files that are not images, are
copied byte for byte. Every file is written to a temporary name and renamed, so a killed run
leaves no half-written file, and a rerun skips what is already there. Under ``torchrun`` the
sorted file list is dealt round-robin over the processes, so each file is done by exactly one.
Images are read with the toolkit's ``read_image``: 16-bit, grayscale and RGBA inputs become 8-bit
RGB outputs.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from translate.data.images import IMAGE_EXTENSIONS, read_image, to_image, to_tensor
from translate.errors import CheckpointError, ConfigError, DataError
from translate.io import atomic_write, load_generator

from ._runtime import resolve_amp, resolve_device
from .generator import MIN_TILE, GeneratorFacts, check_image_size, run_generator, smallest_side

JPEG_QUALITY = 95
TEMPORARY_SUFFIX = ".tmp"  # what translate.io.atomic_write names its temporary files with


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path
    translate: bool  # False: copy byte for byte


@dataclass
class DatasetReport:
    """What one process (or, after ``combine``, all of them) did."""

    translated: int = 0
    copied: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    processes: int = 1
    failures: list[str] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        return self.translated / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        return (
            f"translated {self.translated} images in {self.seconds:.1f} s ({self.images_per_second:.2f} images/s, "
            f"{self.processes} process{'es' if self.processes > 1 else ''}); copied {self.copied} files; "
            f"skipped {self.skipped} already done; failed {self.failed}"
        )


def plan_jobs(input_root: str | Path, output_root: str | Path, labels_glob: tuple[str, ...] = ()) -> list[Job]:
    """Every file under ``input_root``, sorted by relative path, with its target and what to do.

    ``labels_glob`` patterns match the path relative to ``input_root`` (``*`` also crosses
    folders, so ``labels/*`` and ``*_labelIds.png`` both work).
    """
    input_root, output_root = Path(input_root), Path(output_root)
    if not input_root.is_dir():
        raise DataError(f"input folder not found: {input_root}")
    src, dst = input_root.resolve(), output_root.resolve()
    if src == dst or src in dst.parents or dst in src.parents:
        raise DataError(f"input {input_root} and output {output_root} overlap; choose separate folders")
    files = sorted((p for p in input_root.rglob("*") if p.is_file()), key=lambda p: p.relative_to(input_root).as_posix())
    if not files:
        raise DataError(f"no files under {input_root}")
    jobs = []
    for path in files:
        relative = path.relative_to(input_root)
        is_label = any(fnmatch.fnmatch(relative.as_posix(), pattern) for pattern in labels_glob)
        jobs.append(Job(path, output_root / relative, path.suffix.lower() in IMAGE_EXTENSIONS and not is_label))
    return jobs


def shard(jobs: list[Job], rank: int, world: int) -> list[Job]:
    """This process's share: every ``world``-th job from ``rank`` (disjoint, together complete)."""
    return jobs[rank::world]


def remove_stale_temporaries(jobs: list[Job]) -> int:
    """Delete temporary files a killed run left beside these jobs' targets; returns how many."""
    by_folder: dict[Path, set[str]] = defaultdict(set)
    for job in jobs:
        by_folder[job.target.parent].add(job.target.name)
    removed = 0
    for folder, names in by_folder.items():
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            # atomic_write names them "<target name>.<random>.tmp"
            if entry.name.endswith(TEMPORARY_SUFFIX) and entry.name[: -len(TEMPORARY_SUFFIX)].rpartition(".")[0] in names:
                entry.unlink(missing_ok=True)
                removed += 1
    return removed


def write_encoded(target: Path, rgb: np.ndarray) -> None:
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if target.suffix.lower() in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(target.suffix.lower(), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise DataError(f"cannot encode {target.suffix} for {target}")
    atomic_write(target, lambda tmp: tmp.write_bytes(buf.tobytes()))


class _Translator:
    """Batches consecutive images of one size through the generator and writes them."""

    def __init__(self, checkpoint: str | Path, device: torch.device, tile: int, amp: str, batch_size: int) -> None:
        self.net = load_generator(checkpoint, device).eval().requires_grad_(False)
        self.min_side = smallest_side(self.net, 3, device)
        self.device, self.tile, self.amp, self.batch_size = device, tile, amp, batch_size
        self.pending: list[tuple[Job, np.ndarray]] = []

    def add(self, job: Job, rgb: np.ndarray) -> int:
        """Queue one image; returns how many images were written by a flush it caused."""
        check_image_size(rgb.shape[0], rgb.shape[1], self.min_side)
        written = 0
        if self.pending and (self.pending[0][1].shape != rgb.shape or len(self.pending) >= self.batch_size):
            written = self.flush()
        self.pending.append((job, rgb))
        return written

    def flush(self) -> int:
        if not self.pending:
            return 0
        stack = torch.stack([to_tensor(rgb) for _, rgb in self.pending])
        out = run_generator(self.net, stack, self.device, self.amp, self.tile).cpu()
        for (job, _), image in zip(self.pending, out):
            write_encoded(job.target, to_image(image))
        written, self.pending = len(self.pending), []
        return written


def translate_dataset(
    checkpoint: str | Path,
    input_root: str | Path,
    output_root: str | Path,
    labels_glob: tuple[str, ...] = (),
    device: str = "auto",
    tile: int = 512,
    amp: str = "off",
    batch_size: int = 8,
    progress: bool = True,
    rank: int = 0,
    world: int = 1,
) -> DatasetReport:
    """Translate this process's share of a dataset tree (see the module docstring)."""
    from tqdm import tqdm

    start = time.perf_counter()
    if batch_size < 1:
        raise ConfigError(f"batch size must be >= 1, got {batch_size}")
    if tile < MIN_TILE:
        raise ConfigError(f"tile must be >= {MIN_TILE}, got {tile}")
    facts = GeneratorFacts.read(checkpoint)
    if facts.in_channels != 3:
        raise CheckpointError(f"{checkpoint}: offline translation needs an RGB generator, this one takes {facts.in_channels} channels")
    jobs = shard(plan_jobs(input_root, output_root, tuple(labels_glob)), rank, world)
    remove_stale_temporaries(jobs)
    todo = [job for job in jobs if not job.target.exists()]
    report = DatasetReport(skipped=len(jobs) - len(todo))
    dev = resolve_device(device)
    translator = _Translator(checkpoint, dev, tile, resolve_amp(amp, dev), batch_size) if any(j.translate for j in todo) else None
    bar = tqdm(total=len(jobs), initial=report.skipped, desc="augment", unit="file", disable=not progress)
    for job in todo:
        try:
            if job.translate:
                report.translated += translator.add(job, read_image(job.source))
            else:
                atomic_write(job.target, lambda tmp, src=job.source: shutil.copyfile(src, tmp))
                report.copied += 1
        except DataError as exc:
            tqdm.write(f"skipping: {exc}", file=sys.stderr)
            report.failed += 1
            report.failures.append(str(exc))
        bar.update(1)
    if translator is not None:
        report.translated += translator.flush()
    bar.close()
    report.seconds = time.perf_counter() - start
    return report


def translate_dataset_distributed(**kwargs) -> tuple[DatasetReport, DatasetReport, int]:
    """``translate_dataset`` in every process ``torchrun`` started (or alone without it).

    Returns (this process's report, the totals over all processes, this process's rank). The
    totals take the slowest process's time, so their images/s is the whole run's.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        report = translate_dataset(**kwargs)
        return report, report, 0
    import torch.distributed as dist

    # gloo only counts results at the end, so it serves CPU and GPU runs alike
    dist.init_process_group(backend="gloo")
    try:
        rank = dist.get_rank()
        device = kwargs.get("device", "auto")
        if resolve_device(device).type == "cuda" and device in ("auto", "cuda"):
            kwargs["device"] = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        kwargs["progress"] = kwargs.get("progress", True) and rank == 0
        report = translate_dataset(**kwargs, rank=rank, world=world)
        counts = torch.tensor([report.translated, report.copied, report.skipped, report.failed], dtype=torch.float64)
        seconds = torch.tensor([report.seconds], dtype=torch.float64)
        dist.all_reduce(counts)
        dist.all_reduce(seconds, op=dist.ReduceOp.MAX)
        translated, copied, skipped, failed = (int(v) for v in counts.tolist())
        total = DatasetReport(translated, copied, skipped, failed, float(seconds.item()), world)
        return report, total, rank
    finally:
        dist.destroy_process_group()
