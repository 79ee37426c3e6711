"""`i2i bench gpu`: one command that checks a CUDA machine end to end and writes one Markdown report.

Six parts, each a section of the report, each with its own time budget, so that the whole check
fits in ``--budget`` seconds (10 minutes by default, on one H100/H200):

1. ``reference``: the CycleGAN reference training step at 256² (``configs/cyclegan_reference.yaml``)
   in fp32, bf16, bf16 + gradient checkpointing and bf16 + ``torch.compile``;
2. ``large``: the same step at 1024×512 and 2048×1024 in bf16, without and with checkpointing;
3. ``tiled``: inference of a 4096² image with the ResNet-9 generator, untiled and tiled;
4. ``augment``: ``TranslateBatch`` throughput at 256² and 512²;
5. ``cuda_tests``: the tests marked ``cuda`` (``pytest -m cuda``), with their counts;
6. ``study``: the quick study on the GPU, its wall time and its table, in the time that is left.

The measurements are the other benchmarks' own functions (``bench train``'s ``measure``, ``bench
infer``'s variants, ``bench augment``'s batch rate), called in child processes: on a GPU each row
has its own (its peak memory is its own; a crash, an out-of-memory or a hang costs that row
only), on a dry run each part's rows share one (the figures mean nothing there, and a process
start costs seconds on a small CPU). A child that fails or outlives its budget is recorded in its
rows and the check goes on; the report is rewritten after every part, so it is always there.

``--dry-run`` runs every part on the CPU at tiny sizes (32² steps, tiny nets, a 128² image in 64²
tiles, a two-step smoke study, the CUDA tests run with no GPU visible, so skipped): it shows that
every part runs, not how fast.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: the source checkout this module belongs to (configs/ and tests/ are read from it)
ROOT = Path(__file__).resolve().parents[2]
REFERENCE_CONFIG = ROOT / "configs" / "cyclegan_reference.yaml"
DEFAULT_REPORT = "runs/gpu_check/report.md"
NO_CUDA = "no CUDA device; use --dry-run to check the parts on the CPU"
#: how a child marks the line that carries one row's figures (everything else it prints is log)
RESULT_PREFIX = "i2i-gpu-check-row "
#: a child given less time than this is not started: its rows are skipped with a note
MIN_JOB_S = 5.0


@dataclass(frozen=True)
class Scale:
    """The sizes and budgets of one check: the real one on a GPU, or a tiny dry run on the CPU."""

    name: str
    device: str
    process_per_row: bool  # each row in its own child process (else one per part)
    budget_s: float  # the whole check
    part_budgets_s: Mapping[str, float]  # each part but the study, which gets what is left
    study_min_s: float  # the study is skipped when less time than this is left
    reference_hw: tuple[int, int]
    large_hw: tuple[tuple[int, int], ...]
    net_overrides: tuple[str, ...]  # config overrides of the CycleGAN nets (tiny on a dry run)
    reference_steps: tuple[int, int]  # (warm-up, timed)
    large_steps: tuple[int, int]
    compile_backend: str | None  # None: torch.compile's default (inductor)
    tiled: Mapping[str, Any]  # bench infer's settings (size, tile, overlap, net)
    augment_sizes: tuple[int, ...]
    augment_generator: Mapping[str, Any]
    augment_images: int
    augment_batch: int
    study_config: str
    study_overrides: tuple[str, ...]
    child_env: Mapping[str, str]  # set in every child process


GPU = Scale(
    name="GPU",
    device="cuda",
    process_per_row=True,
    budget_s=600.0,
    part_budgets_s={"reference": 170.0, "large": 120.0, "tiled": 75.0, "augment": 45.0, "cuda_tests": 60.0},
    study_min_s=90.0,
    reference_hw=(256, 256),
    large_hw=((512, 1024), (1024, 2048)),
    net_overrides=(),
    reference_steps=(3, 10),
    large_steps=(2, 3),
    compile_backend=None,
    tiled={"size": 4096, "tile": 512, "overlap": 64, "ngf": 64, "n_blocks": 9, "norm": "instance"},
    augment_sizes=(256, 512),
    augment_generator={"name": "resnet", "ngf": 64, "n_blocks": 9},
    augment_images=256,
    augment_batch=16,
    study_config="configs/study_synth_quick.yaml",
    study_overrides=(),
    child_env={},
)
DRY_RUN = Scale(
    name="dry run",
    device="cpu",
    process_per_row=False,
    budget_s=1800.0,
    part_budgets_s={"reference": 300.0, "large": 300.0, "tiled": 300.0, "augment": 300.0, "cuda_tests": 300.0},
    study_min_s=0.0,
    reference_hw=(32, 32),
    large_hw=((32, 64), (64, 128)),
    net_overrides=("model.generator.ngf=4", "model.generator.n_blocks=1", "model.discriminator.ndf=4"),
    reference_steps=(1, 2),
    large_steps=(1, 2),
    # dynamo captures the graphs as on a GPU; inductor's C++ code generation would take minutes
    compile_backend="eager",
    tiled={"size": 128, "tile": 64, "overlap": 16, "ngf": 4, "n_blocks": 1, "norm": "instance"},
    augment_sizes=(32, 64),
    augment_generator={"name": "resnet", "ngf": 4, "n_blocks": 1},
    augment_images=4,
    augment_batch=2,
    study_config="configs/study_synth_smoke.yaml",
    study_overrides=(
        "data.synthetic.size=32x32",
        "data.synthetic.n_train=4",
        "data.synthetic.n_test=2",
        "data.synthetic.n_quality=2",
        "segmenter.steps=2",
        "segmenter.seeds=[0]",
        "segmenter.save_every=1",
        "translators.cyclegan.steps=2",
        "translators.cyclegan.save_every=1",
        "translators.cycada.steps=2",
        "translators.cycada.save_every=1",
        "n_examples=1",
    ),
    child_env={"CUDA_VISIBLE_DEVICES": ""},  # the CPU only, even on a machine with a GPU
)
SCALES = {"gpu": GPU, "dry": DRY_RUN}


# --- what the parent records --------------------------------------------------------------------


@dataclass
class Outcome:
    """How one child process ended."""

    returncode: int | None
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool


@dataclass
class Job:
    """One child process and the rows it measures; ``read`` turns its outcome into their figures
    (a row it leaves out is reported from the outcome: timed out, or failed with its last error)."""

    command: list[str]
    rows: list[str]
    read: Callable[[Outcome], dict[str, dict[str, Any]]]


@dataclass(frozen=True)
class Column:
    key: str
    header: str  # with the unit
    fmt: str = "{:.3g}"


@dataclass
class Part:
    key: str
    title: str
    columns: tuple[Column, ...]
    intro: str
    jobs: Callable[[], list[Job]]  # built when the part starts (the study takes the time left)
    budget_s: float | None  # None: whatever is left of the whole check
    min_s: float = MIN_JOB_S


@dataclass
class Section:
    """One part's results as the report shows them."""

    part: Part
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# --- the command --------------------------------------------------------------------------------


PART_KEYS = ("reference", "large", "tiled", "augment", "cuda_tests", "study")


def register(sub) -> None:
    parser = sub.add_parser(
        "gpu",
        help="the GPU check: training steps, large images, tiled inference, TranslateBatch, CUDA tests, "
        "the quick study; one Markdown report",
        description="Check a CUDA machine in one command (at most --budget seconds, 10 minutes by default) and "
        "write one Markdown report. --dry-run runs every part at tiny sizes on the CPU.",
    )
    parser.add_argument("--out", default=DEFAULT_REPORT, help=f"the report's path (default {DEFAULT_REPORT})")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU: shows that every part runs")
    parser.add_argument(
        "--budget", type=float, default=None, help="seconds for the whole check (default 600; 1800 on a dry run)"
    )
    parser.add_argument("--parts", default=",".join(PART_KEYS), help=f"comma-separated subset of {','.join(PART_KEYS)}")
    parser.add_argument("--device", default=None, help="cuda or cuda:N (default cuda; a dry run uses the CPU)")
    # internal: a child process measuring rows of one part
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.child is not None:
        return run_child(json.loads(args.child))
    scale, device, parts, budget, out = check_options(args)
    with tempfile.TemporaryDirectory(prefix="i2i-gpu-check-") as work:
        all_parts = build_parts(scale, device, Path(work), out.parent / "study")
        skipped = {p.key: "not selected (--parts)" for p in all_parts if p.key not in parts}
        sections = run_check(all_parts, skipped, scale, budget, out, environment(scale, device))
    print(f"report: {out}")
    failed = failures(sections)
    if failed:
        print(f"i2i bench gpu: {len(failed)} row(s) failed or timed out: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def failures(sections: list[Section]) -> list[str]:
    """The rows that failed or timed out, as ``part: row`` (skipped rows are not failures)."""
    return [
        f"{s.part.key}: {label}"
        for s in sections
        for label, row in s.rows.items()
        if row["status"].startswith(("failed", "timed out"))
    ]


def check_options(args: argparse.Namespace) -> tuple[Scale, str, list[str], float, Path]:
    """Every bad option as one clear error before anything runs or is written."""
    import torch

    from ..devices import resolve_device
    from ..errors import ConfigError

    scale = DRY_RUN if args.dry_run else GPU
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PART_KEYS]
    if unknown or not parts:
        raise ConfigError(
            f"--parts: unknown part(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(PART_KEYS)}"
        )
    budget = scale.budget_s if args.budget is None else args.budget
    if not (budget > 0 and math.isfinite(budget)):
        raise ConfigError(f"--budget must be a positive number of seconds, got {args.budget}")
    out = Path(args.out)
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; give the report's file path (e.g. {out / 'report.md'})")
    blocking = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise ConfigError(f"--out {out}: {blocking} is a file, not a folder")
    if args.dry_run:
        if args.device not in (None, "cpu"):
            raise ConfigError(f"--dry-run runs on the CPU; drop --device {args.device}")
        return scale, "cpu", parts, budget, out
    if not torch.cuda.is_available():
        raise ConfigError(NO_CUDA)
    device = resolve_device(args.device or "cuda")
    if device.type != "cuda":
        raise ConfigError(f"--device {args.device}: the GPU check needs a CUDA device; use --dry-run on the CPU")
    return scale, str(device), parts, budget, out


# --- the parts ----------------------------------------------------------------------------------


def build_parts(scale: Scale, device: str, work: Path, study_dir: Path) -> list[Part]:
    """The six parts of the check, in the order they run (the study last: it takes what is left)."""
    return [
        reference_part(scale, device, work),
        large_part(scale, device, work),
        tiled_part(scale, device, work),
        augment_part(scale, device, work),
        cuda_tests_part(scale, work),
        study_part(scale, device, study_dir),
    ]


def train_columns(scale: Scale) -> tuple[Column, ...]:
    memory = "peak RSS of the process, GiB" if scale is DRY_RUN else "GiB, torch.cuda.max_memory_allocated"
    return Column("s_per_iter", "s/iter", "{:.4f}"), Column("peak_gib", f"peak memory ({memory})", "{:.2f}")


def shrunk_nets(scale: Scale) -> str:
    return f" Nets shrunk for the dry run: {' '.join(scale.net_overrides)}." if scale.net_overrides else ""


def reference_part(scale: Scale, device: str, work: Path) -> Part:
    (height, width), (warmup, steps) = scale.reference_hw, scale.reference_steps
    variants = ("fp32", "bf16", "bf16+checkpointing", "bf16+compile")  # compile last: the slowest to start
    rows = [(v, {"kind": "train", "hw": [height, width], "variant": v, "steps": [warmup, steps]}) for v in variants]
    compiled = (
        f" `torch.compile` uses dynamo's `{scale.compile_backend}` backend here (graphs captured, no code generated)."
        if scale.compile_backend
        else ""
    )
    intro = (
        f"`{REFERENCE_CONFIG.relative_to(ROOT)}` (ResNet-9 generators, 70×70 PatchGANs, LSGAN), random images; one "
        f"iteration = one G and one D step; {steps} timed steps after {warmup} warm-up, each variant in "
        f"{'its own process' if scale.process_per_row else 'one process for all'}.{shrunk_nets(scale)}{compiled}"
    )
    title = f"CycleGAN reference training step, {width}×{height}, batch 1"
    jobs = functools.partial(bench_row_jobs, rows, scale, device, work)
    return Part("reference", title, train_columns(scale), intro, jobs, scale.part_budgets_s["reference"])


def large_part(scale: Scale, device: str, work: Path) -> Part:
    warmup, steps = scale.large_steps
    rows = [
        (f"{w}×{h} {v}", {"kind": "train", "hw": [h, w], "variant": v, "steps": [warmup, steps]})
        for h, w in scale.large_hw
        for v in ("bf16", "bf16+checkpointing")
    ]
    intro = (
        f"The reference step and nets at W×H, batch 1; {steps} timed steps after {warmup} warm-up. Checkpointing "
        f"recomputes the generators' residual blocks in the backward pass.{shrunk_nets(scale)}"
    )
    title = "CycleGAN training step on large images, bf16, without and with gradient checkpointing"
    jobs = functools.partial(bench_row_jobs, rows, scale, device, work)
    return Part("large", title, train_columns(scale), intro, jobs, scale.part_budgets_s["large"])


def tiled_part(scale: Scale, device: str, work: Path) -> Part:
    tiled = scale.tiled
    rows = [
        ("untiled (one pass), fp32", {"kind": "tiled", "variant": "untiled", "amp": "off"}),
        ("tiled, whole-image statistics, fp32", {"kind": "tiled", "variant": "image", "amp": "off"}),
        ("tiled, whole-image statistics, bf16", {"kind": "tiled", "variant": "image", "amp": "bf16"}),
    ]
    memory = "RSS growth" if scale is DRY_RUN else "CUDA allocated"
    columns = (
        Column("seconds", "seconds", "{:.2f}"),
        Column("peak_mib", f"peak memory ({memory}, MiB)", "{:.0f}"),
        Column("mean_diff", "mean diff vs untiled (/255)", "{:.3f}"),
        Column("max_diff", "max diff vs untiled (/255)", "{:.2f}"),
    )
    intro = (
        f"ResNet generator (ngf {tiled['ngf']}, residual blocks {tiled['n_blocks']}, {tiled['norm']} norm, random "
        f"weights), tile {tiled['tile']}, overlap {tiled['overlap']}; whole-image statistics (the default of "
        "`i2i translate`) take one recording pass per norm layer, each resuming the tiles from the previous one."
    )
    title = f"Inference of a {tiled['size']}×{tiled['size']} image (`translate.infer`)"
    jobs = functools.partial(bench_row_jobs, rows, scale, device, work)
    return Part("tiled", title, columns, intro, jobs, scale.part_budgets_s["tiled"])


def augment_part(scale: Scale, device: str, work: Path) -> Part:
    rows = [(f"{s}×{s}", {"kind": "augment", "size": s}) for s in scale.augment_sizes]
    columns = (Column("images_per_s", "images/s", "{:.1f}"), Column("where", "device, autocast", "{}"))
    intro = (
        f"Generator {dict(scale.augment_generator)} (random weights), uint8 batches of {scale.augment_batch}, "
        f"{scale.augment_images} timed images after one warm-up call, p = 1."
    )
    jobs = functools.partial(bench_row_jobs, rows, scale, device, work)
    return Part("augment", "`augment.TranslateBatch` throughput", columns, intro, jobs, scale.part_budgets_s["augment"])


def cuda_tests_part(scale: Scale, work: Path) -> Part:
    columns = tuple(Column(k, k, "{}") for k in ("selected", "passed", "failed", "errors", "skipped"))
    intro = "`pytest -m cuda` over the test files that mark a test `cuda`" + (
        " (dry run: no GPU visible, so they are collected and skipped)." if scale is DRY_RUN else "."
    )
    columns += (Column("seconds", "seconds", "{:.1f}"),)
    jobs = functools.partial(cuda_tests_jobs, work)
    return Part("cuda_tests", "CUDA-only tests", columns, intro, jobs, scale.part_budgets_s["cuda_tests"])


def study_part(scale: Scale, device: str, study_dir: Path) -> Part:
    command = f"i2i study {scale.study_config} {' '.join(study_overrides(scale, device, study_dir))}"
    intro = (
        f"`{command}`, in the time left of the budget. Its stages are cached in its run folder: running the "
        "check again continues a study the budget cut short."
    )
    title = "The smoke study (dry run)" if scale is DRY_RUN else "The quick study on the GPU"
    columns = (Column("wall_s", "wall time (s)", "{:.0f}"),)
    jobs = functools.partial(study_jobs, scale, device, study_dir)
    return Part("study", title, columns, intro, jobs, None, max(scale.study_min_s, MIN_JOB_S))


def bench_row_jobs(rows: list[tuple[str, dict]], scale: Scale, device: str, work: Path) -> list[Job]:
    """Children of ``bench gpu --child``: one per row on a GPU, one for all the part's rows on a dry run."""
    groups = [[row] for row in rows] if scale.process_per_row else [rows]
    jobs = []
    for group in groups:
        spec = {
            "scale": "dry" if scale is DRY_RUN else "gpu",
            "device": device,
            "work": str(work),
            "rows": [{"label": label, **params} for label, params in group],
        }
        command = [sys.executable, "-m", "translate.cli", "bench", "gpu", "--child", json.dumps(spec)]
        jobs.append(Job(command, [label for label, _ in group], read_row_lines))
    return jobs


def read_row_lines(outcome: Outcome) -> dict[str, dict[str, Any]]:
    rows = {}
    for line in outcome.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            figures = json.loads(line[len(RESULT_PREFIX) :])
            rows[figures.pop("row")] = figures
    return rows


def cuda_tests_jobs(work: Path) -> list[Job]:
    files = [str(p.relative_to(ROOT)) for p in cuda_test_files()]
    label = f"tests marked `cuda` in {len(files)} file(s)"
    junit = work / "cuda_tests.xml"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "cuda", f"--junitxml={junit}"]

    def read(outcome: Outcome) -> dict[str, dict[str, Any]]:
        if not files:
            return {label: {"selected": 0, "passed": 0, "failed": 0, "errors": 0, "skipped": 0, "seconds": 0.0}}
        if not junit.exists():
            return {}  # reported from the outcome (the error pytest ended with)
        return {label: {**junit_counts(junit), "seconds": outcome.seconds}}

    if not files:  # nothing to run: a child that does nothing reports the zero counts
        command = [sys.executable, "-c", "pass"]
    return [Job([*command, *files], [label], read)]


def cuda_test_files() -> list[Path]:
    """The test files that mark a test ``cuda`` (collecting only them keeps the run short)."""
    return [p for p in sorted((ROOT / "tests").glob("test_*.py")) if marks_cuda(p.read_text(encoding="utf-8"))]


def marks_cuda(source: str) -> bool:
    """Whether a test module applies ``pytest.mark.cuda`` (to a test, a class or the module), not
    merely mentions it."""
    import ast

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if any(ast.unparse(d) == "pytest.mark.cuda" for d in node.decorator_list):
                return True
        targets = node.targets if isinstance(node, ast.Assign) else []
        if any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in targets):
            if "pytest.mark.cuda" in ast.unparse(node.value):
                return True
    return False


def junit_counts(path: Path) -> dict[str, Any]:
    suite = ElementTree.parse(path).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    failed = [
        f"{case.get('classname')}::{case.get('name')}"
        for case in suite.iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    ]
    return {
        "selected": counts["tests"],
        "passed": counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"],
        "failed": counts["failures"],
        "errors": counts["errors"],
        "skipped": counts["skipped"],
        "failing": failed,
    }


def study_overrides(scale: Scale, device: str, study_dir: Path) -> list[str]:
    return [f"out_dir={study_dir}", f"device={device}", "progress=false", *scale.study_overrides]


def study_jobs(scale: Scale, device: str, study_dir: Path) -> list[Job]:
    label = Path(scale.study_config).stem
    continued = (study_dir / "stages").exists()
    command = [
        sys.executable,
        "-m",
        "translate.cli",
        "study",
        str(ROOT / scale.study_config),
        *study_overrides(scale, device, study_dir),
    ]

    def read(outcome: Outcome) -> dict[str, dict[str, Any]]:
        results = study_dir / "results.md"
        if outcome.returncode != 0 or not results.exists():
            return {}
        row = {"wall_s": outcome.seconds, "results": results.read_text(encoding="utf-8")}
        if continued:
            row["note"] = "continued from an earlier run's cached stages: the wall time is this run's share"
        return {label: row}

    return [Job(command, [label], read)]


# --- the parent: run the parts in their budgets, write the report ---------------------------------


def run_check(
    parts: list[Part],
    skipped: Mapping[str, str],
    scale: Scale,
    budget_s: float,
    out: Path,
    header: Mapping[str, str],
) -> list[Section]:
    """Run ``parts`` (but those ``skipped``, with the reason) in order, each within its own budget
    and what is left of ``budget_s``; rewrite the report after each part. A part that fails or runs
    out of time is recorded, and the next one runs."""
    start = time.perf_counter()
    sections = [Section(p) for p in parts]
    write_report(out, sections, header, scale, budget_s, 0.0, done=False)
    for section in sections:
        if section.part.key in skipped:
            section.notes.append(f"Skipped: {skipped[section.part.key]}.")
            continue
        left = budget_s - (time.perf_counter() - start)
        try:
            run_part(section, left, scale.child_env)
        except Exception as exc:  # a bug in one part must not cost the others their report
            section.notes.append(f"The part stopped: {type(exc).__name__}: {exc}")
        print_section(section)
        write_report(out, sections, header, scale, budget_s, time.perf_counter() - start, done=False)
    write_report(out, sections, header, scale, budget_s, time.perf_counter() - start, done=True)
    return sections


def run_part(section: Section, left_s: float, env: Mapping[str, str]) -> None:
    part = section.part
    budget = left_s if part.budget_s is None else min(part.budget_s, left_s)
    if budget < part.min_s:
        section.notes.append(
            f"Skipped: less than {part.min_s:.0f} s left ({max(left_s, 0):.0f} s of the whole check's budget)."
        )
        return
    start = time.perf_counter()
    for job in part.jobs():
        timeout = budget - (time.perf_counter() - start)
        if timeout < part.min_s:
            for row in job.rows:
                section.rows[row] = {"status": f"skipped: the part's budget of {budget:.0f} s is spent"}
            continue
        outcome = run_child_process(job, timeout, env)
        figures = job.read(outcome)
        for row in job.rows:
            section.rows[row] = row_result(figures.get(row), outcome, budget)
    section.notes.append(f"The part took {time.perf_counter() - start:.0f} s of its {budget:.0f} s.")


def row_result(figures: dict[str, Any] | None, outcome: Outcome, budget_s: float) -> dict[str, Any]:
    """A row's figures and status: ok, its own error, or how its process ended without it."""
    if figures is not None:
        error = figures.pop("error", None)
        return {**figures, "status": f"failed: {error}" if error else "ok"}
    if outcome.timed_out:
        return {"status": f"timed out: the part's budget of {budget_s:.0f} s ran out"}
    last = (outcome.stderr.strip() or outcome.stdout.strip()).splitlines()
    return {"status": f"failed (exit code {outcome.returncode}): {last[-1] if last else 'no output'}"}


def run_child_process(job: Job, timeout_s: float, extra_env: Mapping[str, str]) -> Outcome:
    """Run one child in its own process group, so a timeout stops it and every process it started."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    env.update(PYTHONUNBUFFERED="1", **extra_env)
    start = time.perf_counter()
    proc = subprocess.Popen(
        job.command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
        timed_out = False
    except subprocess.TimeoutExpired:
        stop_process_group(proc)
        stdout, stderr = proc.communicate()
        timed_out = True
    except BaseException:  # Ctrl-C: the child's own session does not get the terminal's signal
        stop_process_group(proc)
        raise
    return Outcome(proc.returncode, stdout, stderr, time.perf_counter() - start, timed_out)


def stop_process_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def print_section(section: Section) -> None:
    for note in section.notes:
        print(f"{section.part.key}: {note}", flush=True)
    for label, row in section.rows.items():
        figures = ", ".join(f"{c.header} {format_figure(c, row[c.key])}" for c in section.part.columns if c.key in row)
        print(f"{section.part.key}: {label}: {figures or '-'} [{row['status']}]", flush=True)


# --- the report -----------------------------------------------------------------------------------


def environment(scale: Scale, device: str) -> dict[str, str]:
    import torch

    info = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(torch.device(device))
        info["device"] = f"{props.name}, {props.total_memory / 2**30:.1f} GiB ({device})"
    else:
        info["device"] = f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    info["torch"] = torch.__version__
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    info["CUDA (torch build)"] = f"{torch.version.cuda or 'none (CPU build)'}" + (f", cuDNN {cudnn}" if cudnn else "")
    info["Python"] = platform.python_version()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if commit.returncode == 0:
        info["commit"] = commit.stdout.strip()
    return info


def format_figure(column: Column, value: Any) -> str:
    if value is None:
        return "–"
    try:
        return column.fmt.format(value)
    except (TypeError, ValueError):  # not the number the column expects: shown as it is
        return str(value)


def render_report(
    sections: list[Section], header: Mapping[str, str], scale: Scale, budget_s: float, elapsed_s: float, done: bool
) -> str:
    mode = (
        "dry run on the CPU: tiny sizes, the figures show only that every part runs"
        if scale is DRY_RUN
        else "GPU, full sizes"
    )
    lines = ["# GPU check", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in header.items()]
    lines += [f"| mode | {mode} |", f"| budget | {budget_s:.0f} s |"]
    state = f"{elapsed_s:.0f} s" if done else f"{elapsed_s:.0f} s so far (the check is still running or was stopped)"
    lines += [f"| wall time | {state} |", ""]
    lines += ["Produced by `i2i bench gpu` (`scripts/gpu_check.sh`).", ""]
    for number, section in enumerate(sections, 1):
        lines += render_section(number, section)
    return "\n".join(lines) + "\n"


def render_section(number: int, section: Section) -> list[str]:
    part = section.part
    lines = [f"## {number}. {part.title}", "", part.intro, ""]
    lines += [*section.notes, ""] if section.notes else []
    if section.rows:
        headers = ["", *(c.header for c in part.columns), "status"]
        lines += ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        for label, row in section.rows.items():
            cells = [label, *(format_figure(c, row.get(c.key)) for c in part.columns), row["status"]]
            lines.append("| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |")
        lines.append("")
    for label, row in section.rows.items():
        if row.get("note"):
            lines += [f"{label}: {row['note']}.", ""]
        if row.get("failing"):
            lines += [f"Failing: {', '.join(f'`{name}`' for name in row['failing'])}", ""]
        if row.get("results"):
            lines += [f"### {label}: results", "", row["results"].strip(), ""]
    return lines


def write_report(
    out: Path,
    sections: list[Section],
    header: Mapping[str, str],
    scale: Scale,
    budget_s: float,
    elapsed_s: float,
    done: bool,
) -> None:
    from ..atomic import atomic_write

    text = render_report(sections, header, scale, budget_s, elapsed_s, done)
    atomic_write(out, lambda tmp: tmp.write_text(text, encoding="utf-8"))


# --- the child: measure rows by calling the other benchmarks --------------------------------------


def run_child(spec: dict) -> int:
    scale = SCALES[spec["scale"]]
    for row in spec["rows"]:
        label = row.pop("label")
        try:
            figures = MEASURES[row.pop("kind")](scale, row, spec["device"], Path(spec["work"]))
        except Exception as exc:  # e.g. out of memory: that row's result; the next row still runs
            figures = {"error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"}
        print(RESULT_PREFIX + json.dumps({"row": label, **figures}), flush=True)
        release_memory()
    return 0


def release_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def measure_train(scale: Scale, row: dict, device: str, work: Path) -> dict[str, Any]:
    from . import train

    (height, width), (warmup, steps) = row["hw"], row["steps"]
    args = argparse.Namespace(
        config=str(REFERENCE_CONFIG),
        overrides=list(scale.net_overrides),
        size=height,
        width=width,
        batch=1,
        steps=steps,
        warmup=warmup,
        device=device,
        threads=None,
    )
    with compile_backend(scale.compile_backend):
        result = train.measure(args, train.GPU_VARIANTS[row["variant"]])
    return {"s_per_iter": result["s_per_iter"], "peak_gib": result["peak_gb"]}


@contextlib.contextmanager
def compile_backend(backend: str | None) -> Iterator[None]:
    """``torch.compile`` with ``backend`` while the block runs (the engine compiles with the default)."""
    if backend is None:
        yield
        return
    import torch

    original = torch.compile
    torch.compile = functools.partial(original, backend=backend)
    try:
        yield
    finally:
        torch.compile = original


def measure_tiled(scale: Scale, row: dict, device: str, work: Path) -> dict[str, Any]:
    import numpy as np

    from . import infer

    settings = {**scale.tiled, "device": device, "amp": row["amp"], "stat_passes": None, "cache": "auto"}
    settings["cache_mb"] = None
    out = work / f"tiled-{row['variant']}-{row['amp']}.npy"
    result = infer._variant(settings, row["variant"], str(out))
    figures = {"seconds": result["seconds"], "peak_mib": result.get("peak_cuda_mb", result["peak_rss_growth_mb"])}
    reference = work / "tiled-untiled-off.npy"
    if row["variant"] != "untiled" and reference.exists():
        diff = np.abs(np.load(out) - np.load(reference)) * 127.5  # outputs in [-1, 1]: diffs in 1/255 steps
        figures.update(mean_diff=float(diff.mean()), max_diff=float(diff.max()))
    return figures


def measure_augment(scale: Scale, row: dict, device: str, work: Path) -> dict[str, Any]:
    import torch

    from ..io import export_network
    from ..nets import build_generator
    from . import augment

    spec = dict(scale.augment_generator)
    checkpoint = work / "augment-generator.safetensors"
    if not checkpoint.exists():
        torch.manual_seed(0)
        export_network(checkpoint, build_generator(spec), spec, "generator", {})
    rate, where = augment._batch_rate(
        checkpoint, (row["size"], row["size"]), scale.augment_images, scale.augment_batch, device
    )
    return {"images_per_s": rate, "where": where}


MEASURES: dict[str, Callable[[Scale, dict, str, Path], dict[str, Any]]] = {
    "train": measure_train,
    "tiled": measure_tiled,
    "augment": measure_augment,
}
