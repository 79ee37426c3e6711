"""Offline translation of a dataset tree: every image translated once, everything else copied.

The output mirrors the input: same folders, same file names (an image keeps its format; JPEG is
written at quality 95). Files matching a label glob, and all files that are not images, are
copied byte for byte. Every file is written to a temporary name and renamed, so a killed run
leaves no half-written file, and a rerun skips what is already there. Under ``torchrun`` process 0
lists the tree once and sends the sorted list to the others, which deal it round-robin, so each file
is done by exactly one process even when files appear during the run. One run writes into an output
folder at a time (``translate.infer.FolderLock``), and the run ends by checking that every input has
its output or a reported failure. Images are read with the toolkit's ``read_image``: 16-bit,
grayscale and RGBA inputs become 8-bit RGB outputs.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np
import torch

from translate.atomic import TEMPORARY_SUFFIX
from translate.data.images import IMAGE_EXTENSIONS, read_image, to_image, to_tensor
from translate.errors import CheckpointError, ConfigError, DataError, I2IError
from translate.infer import FolderLock, check_outputs
from translate.io import atomic_write, load_generator

from ._runtime import resolve_amp, resolve_device
from .generator import MIN_TILE, GeneratorFacts, check_image_size, run_generator, smallest_side

JPEG_QUALITY = 95
#: written into the output root: which generator (and settings) produced the tree, so a rerun
#: that would mix outputs of two different generators is refused instead of silently resumed
STAMP_NAME = ".i2i-translate.json"

T = TypeVar("T")


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
    #: one message per failed file, naming it
    failures: list[str] = field(default_factory=list)
    #: the source of each failed file, in the order of ``failures``
    failed_sources: list[Path] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        return self.translated / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        return (
            f"translated {self.translated} images in {self.seconds:.1f} s ({self.images_per_second:.2f} images/s, "
            f"{self.processes} process{'es' if self.processes > 1 else ''}); copied {self.copied} files; "
            f"skipped {self.skipped} already done; failed {self.failed}"
        )

    def fail(self, source: Path, reason: str) -> None:
        """Count ``source`` as failed; ``reason`` is prefixed with its path unless it names it already."""
        message = reason if str(source) in reason else f"{source}: {reason}"
        self.failed += 1
        self.failures.append(message)
        self.failed_sources.append(source)
        from tqdm import tqdm

        tqdm.write(f"skipping: {message}", file=sys.stderr)


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
    files = sorted(
        (p for p in input_root.rglob("*") if p.is_file()), key=lambda p: p.relative_to(input_root).as_posix()
    )
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


def provenance(checkpoint: str | Path, tile: int, amp: str) -> dict[str, object]:
    digest = hashlib.sha256(Path(checkpoint).read_bytes()).hexdigest()
    return {"checkpoint_sha256": digest, "checkpoint": str(checkpoint), "tile": tile, "amp": amp}


def check_provenance(output_root: Path, stamp: dict[str, object]) -> None:
    """Record ``stamp`` in a fresh output tree; refuse a tree made by another generator or settings."""
    path = output_root / STAMP_NAME
    if path.is_file():
        found = json.loads(path.read_text())
        differing = [k for k in ("checkpoint_sha256", "tile", "amp") if found.get(k) != stamp[k]]
        if differing:
            raise ConfigError(
                f"{output_root} holds translations made with {found.get('checkpoint')} "
                f"({', '.join(f'{k}={found.get(k)}' for k in differing)}), not with {stamp['checkpoint']} "
                f"({', '.join(f'{k}={stamp[k]}' for k in differing)}); resuming would mix the two: "
                "choose another --output or delete that folder"
            )
        return
    text = json.dumps(stamp, indent=1, sort_keys=True)
    atomic_write(path, lambda tmp: tmp.write_text(text))


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
            if (
                entry.name.endswith(TEMPORARY_SUFFIX)
                and entry.name[: -len(TEMPORARY_SUFFIX)].rpartition(".")[0] in names
            ):
                entry.unlink(missing_ok=True)
                removed += 1
    return removed


def write_encoded(target: Path, rgb: np.ndarray) -> None:
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if target.suffix.lower() in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(target.suffix.lower(), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise DataError(f"cannot encode {target.suffix} for {target}")
    atomic_write(target, lambda tmp: tmp.write_bytes(buf.tobytes()))


#: what became of one queued image: its job and None when it was written, else why it was not
Outcome = tuple[Job, "str | None"]


class _Translator:
    """Batches consecutive images of one size through the generator and writes them.

    Images wait in ``pending`` until a batch is full or an image of another size comes, so an
    image's fate is known only at a later ``add`` or at ``flush``: both return one ``Outcome``
    per image they finished, so each error is blamed on its own image, not on the one whose
    ``add`` happened to run the batch.
    """

    def __init__(self, checkpoint: str | Path, device: torch.device, tile: int, amp: str, batch_size: int) -> None:
        self.net = load_generator(checkpoint, device).eval().requires_grad_(False)
        self.min_side = smallest_side(self.net, 3, device)
        self.device, self.tile, self.amp, self.batch_size = device, tile, amp, batch_size
        self.pending: list[tuple[Job, np.ndarray]] = []

    def add(self, job: Job, rgb: np.ndarray) -> list[Outcome]:
        """Queue one image (a ``DataError`` if it is too small); returns the outcomes of a batch it ran."""
        check_image_size(rgb.shape[0], rgb.shape[1], self.min_side)
        done = []
        if self.pending and (self.pending[0][1].shape != rgb.shape or len(self.pending) >= self.batch_size):
            done = self.flush()
        self.pending.append((job, rgb))
        return done

    def flush(self) -> list[Outcome]:
        """Translate and write the queued images; never raises for one image's fault."""
        batch, self.pending = self.pending, []
        if not batch:
            return []
        stack = torch.stack([to_tensor(rgb) for _, rgb in batch])
        try:
            out = run_generator(self.net, stack, self.device, self.amp, self.tile).cpu()
        except torch.OutOfMemoryError:
            reason = f"out of memory translating a batch of {len(batch)}; use a smaller --batch-size or --tile"
            return [(job, reason) for job, _ in batch]
        except DataError as exc:
            return [(job, str(exc)) for job, _ in batch]
        return [(job, write_translated(job.target, image)) for (job, _), image in zip(batch, out, strict=False)]


def write_translated(target: Path, image: torch.Tensor) -> str | None:
    """Write one translated image; returns why it could not be written, or None."""
    try:
        write_encoded(target, to_image(image))
    except (DataError, OSError) as exc:
        return f"cannot write {target}: {exc}"
    return None


def record(report: DatasetReport, outcomes: list[Outcome]) -> None:
    for job, reason in outcomes:
        if reason is None:
            report.translated += 1
        else:
            report.fail(job.source, reason)


def check_options(checkpoint: str | Path, tile: int, batch_size: int) -> None:
    if batch_size < 1:
        raise ConfigError(f"batch size must be >= 1, got {batch_size}")
    if tile < MIN_TILE:
        raise ConfigError(f"tile must be >= {MIN_TILE}, got {tile}")
    facts = GeneratorFacts.read(checkpoint)
    if facts.in_channels != 3:
        raise CheckpointError(
            f"{checkpoint}: offline translation needs an RGB generator, this one takes {facts.in_channels} channels"
        )


def plan_run(
    checkpoint: str | Path,
    input_root: str | Path,
    output_root: str | Path,
    labels_glob: tuple[str, ...],
    tile: int,
    batch_size: int,
) -> list[Job]:
    """What a run checks and lists once, before it writes anything (process 0 under ``torchrun``)."""
    check_options(checkpoint, tile, batch_size)
    return plan_jobs(input_root, output_root, tuple(labels_glob))


def claim_output(lock: FolderLock, checkpoint: str | Path, output_root: str | Path, tile: int, amp: str) -> None:
    """Take the output folder's lock, then stamp it (or check its stamp); the lock is held on success."""
    lock.acquire()
    try:
        check_provenance(Path(output_root), provenance(checkpoint, tile, amp))
    except BaseException:
        lock.release()
        raise


def translate_jobs(
    checkpoint: str | Path,
    jobs: list[Job],
    device: str,
    tile: int,
    amp: str,
    batch_size: int,
    progress: bool,
) -> DatasetReport:
    """Do ``jobs`` (one process's share), skipping those whose target exists."""
    from tqdm import tqdm

    start = time.perf_counter()
    remove_stale_temporaries(jobs)
    todo = [job for job in jobs if not job.target.exists()]
    report = DatasetReport(skipped=len(jobs) - len(todo))
    dev = resolve_device(device)
    translator = (
        _Translator(checkpoint, dev, tile, resolve_amp(amp, dev), batch_size)
        if any(j.translate for j in todo)
        else None
    )
    bar = tqdm(total=len(jobs), initial=report.skipped, desc="augment", unit="file", disable=not progress)
    for job in todo:
        try:
            if job.translate:
                record(report, translator.add(job, read_image(job.source)))
            else:
                atomic_write(job.target, lambda tmp, src=job.source: shutil.copyfile(src, tmp))
                report.copied += 1
        except (DataError, OSError) as exc:
            report.fail(job.source, str(exc))
        bar.update(1)
    if translator is not None:
        record(report, translator.flush())
    bar.close()
    report.seconds = time.perf_counter() - start
    return report


def check_complete(jobs: list[Job], failed_sources: list[Path]) -> None:
    """Every job has its target, or failed with a reported reason (``translate.infer.check_outputs``)."""
    check_outputs([(job.source, job.target) for job in jobs], set(failed_sources))


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
    """Translate a dataset tree, or share ``rank`` of ``world`` of it (see the module docstring).

    Holds the output folder's lock for the run and ends by checking that each file of the share
    has its output (``check_complete``). The processes of one ``torchrun`` use
    ``translate_dataset_distributed`` instead, which lists the tree once for all of them.
    """
    jobs = shard(plan_run(checkpoint, input_root, output_root, labels_glob, tile, batch_size), rank, world)
    lock = FolderLock(output_root)
    claim_output(lock, checkpoint, output_root, tile, amp)
    try:
        report = translate_jobs(checkpoint, jobs, device, tile, amp, batch_size, progress)
        check_complete(jobs, report.failed_sources)
    finally:
        lock.release()
    return report


def from_rank_zero(rank: int, compute: Callable[[], T]) -> T:
    """``compute()`` run by process 0 alone and its result sent to every process. An error it raises
    is raised in every process (the others would otherwise wait for a result forever): process 0
    raises its own, the others the same user error (``I2IError``) or a ``RuntimeError`` naming it."""
    import torch.distributed as dist

    box: list[object] = [None]
    error: Exception | None = None
    if rank == 0:
        try:
            box[0] = ("result", compute())
        except Exception as exc:  # noqa: BLE001 - any error, user's or not, must reach every process
            error = exc
            # type and text only: an exception object need not survive pickling
            user_error = type(exc) if isinstance(exc, I2IError) else None
            box[0] = ("error", user_error, f"{type(exc).__name__}: {exc}", str(exc))
    dist.broadcast_object_list(box, src=0)
    if box[0][0] == "result":
        return box[0][1]
    if error is not None:
        raise error
    _, user_error, described, message = box[0]
    raise user_error(message) if user_error is not None else RuntimeError(f"process 0 failed: {described}")


def translate_dataset_distributed(
    checkpoint: str | Path,
    input_root: str | Path,
    output_root: str | Path,
    labels_glob: tuple[str, ...] = (),
    device: str = "auto",
    tile: int = 512,
    amp: str = "off",
    batch_size: int = 8,
    progress: bool = True,
) -> tuple[DatasetReport, DatasetReport, int]:
    """``translate_dataset`` in every process ``torchrun`` started (or alone without it).

    Process 0 checks the options, lists the tree, and takes and stamps the output folder; every
    process does its share of that one list (a file added during the run is left for the next);
    the run ends once all are done, with ``check_complete`` over the whole tree. Returns (this
    process's report, the totals over all processes, this process's rank). The totals take the
    slowest process's time, so their images/s is the whole run's.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        report = translate_dataset(
            checkpoint, input_root, output_root, labels_glob, device, tile, amp, batch_size, progress
        )
        return report, report, 0
    import torch.distributed as dist

    def plan_and_claim() -> list[Job]:
        jobs = plan_run(checkpoint, input_root, output_root, labels_glob, tile, batch_size)
        claim_output(lock, checkpoint, output_root, tile, amp)
        return jobs

    # gloo only sends lists and counts, so it serves CPU and GPU runs alike
    dist.init_process_group(backend="gloo")
    lock = FolderLock(output_root)  # taken by process 0 only
    try:
        rank = dist.get_rank()
        jobs = from_rank_zero(rank, plan_and_claim)
        if resolve_device(device).type == "cuda" and device in ("auto", "cuda"):
            device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        mine = shard(jobs, rank, world)
        report = translate_jobs(checkpoint, mine, device, tile, amp, batch_size, progress and rank == 0)
        total = combine(report, world)
        failed_sources: list[list[Path]] = [[] for _ in range(world)]
        dist.all_gather_object(failed_sources, report.failed_sources)
        check_complete(jobs, [source for part in failed_sources for source in part])
        return report, total, rank
    finally:
        lock.release()
        dist.destroy_process_group()


def combine(report: DatasetReport, world: int) -> DatasetReport:
    """The totals of every process's report (a collective: every process calls it)."""
    import torch.distributed as dist

    counts = torch.tensor([report.translated, report.copied, report.skipped, report.failed], dtype=torch.float64)
    seconds = torch.tensor([report.seconds], dtype=torch.float64)
    dist.all_reduce(counts)
    dist.all_reduce(seconds, op=dist.ReduceOp.MAX)
    translated, copied, skipped, failed = (int(v) for v in counts.tolist())
    return DatasetReport(translated, copied, skipped, failed, float(seconds.item()), world)
