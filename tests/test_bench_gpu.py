"""`i2i bench gpu`: the GPU check. Its dry run runs every part on the CPU at tiny sizes and writes
the report; without CUDA the real check stops with one line; a part that fails or runs out of
time is recorded in the report and the next part runs."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import bench_train_args

from translate.benchmarks import gpu

ROOT = Path(__file__).parents[1]
SECTIONS = ("reference", "large", "tiled", "augment", "cuda_tests", "study")


def sections_of(report: str) -> dict[str, str]:
    """The report's numbered sections by part (they come in the order of the parts)."""
    chunks = re.split(r"^## \d+\. ", report, flags=re.MULTILINE)[1:]
    assert len(chunks) == len(SECTIONS), report
    return dict(zip(SECTIONS, chunks, strict=True))


def first_table(section: str) -> list[list[str]]:
    block = section.split("\n\n|", 1)[1].split("\n\n", 1)[0]
    lines = ("|" + block).splitlines()
    return [[cell.strip() for cell in line.strip().strip("|").split(" | ")] for line in lines[2:]]


def as_number(cell: str) -> float:
    assert re.fullmatch(r"-?[0-9.]+", cell), f"not a number: {cell!r}"
    return float(cell)


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """The dry run as a user starts it: the script, with the report somewhere else than the default."""
    out = tmp_path_factory.mktemp("gpu_check") / "check" / "report.md"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--dry-run", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    return done, out


@pytest.mark.slow
def test_the_dry_run_writes_every_part_with_its_figures(dry_run):
    done, out = dry_run
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"report: {out}" in done.stdout
    report = out.read_text()
    assert "| mode | dry run on the CPU" in report and "| torch | " + torch.__version__ in report
    assert re.search(r"\| date \| \d{4}-\d\d-\d\d \d\d:\d\d UTC \|", report)
    parts = sections_of(report)
    for name in ("reference", "large", "tiled", "augment"):
        rows = first_table(parts[name])
        assert rows and all(row[-1] == "ok" for row in rows), (name, rows)
    reference = first_table(parts["reference"])
    assert [row[0] for row in reference] == ["fp32", "bf16", "bf16+checkpointing", "bf16+compile"]
    assert all(as_number(row[1]) > 0 and as_number(row[2]) > 0 for row in reference)  # s/iter, peak GiB
    large = first_table(parts["large"])
    assert [row[0] for row in large] == [
        "64×32 bf16",
        "64×32 bf16+checkpointing",
        "128×64 bf16",
        "128×64 bf16+checkpointing",
    ]
    assert all(as_number(row[1]) > 0 and as_number(row[2]) > 0 for row in large)
    untiled, *tiled = first_table(parts["tiled"])
    assert as_number(untiled[1]) > 0 and untiled[3] == "–"
    for row in tiled:  # seconds, peak MiB, mean and max difference to the untiled output
        assert as_number(row[1]) > 0 and as_number(row[2]) >= 0 and 0 <= as_number(row[3]) <= as_number(row[4])
    assert all(as_number(row[1]) > 0 and row[2].startswith("cpu") for row in first_table(parts["augment"]))
    [tests] = first_table(parts["cuda_tests"])
    selected, passed, failed, errors, skipped = (int(as_number(c)) for c in tests[1:6])
    assert selected >= 1 and selected == skipped and passed == failed == errors == 0, tests
    assert tests[-1] == "ok"
    [study] = first_table(parts["study"])
    assert study[0] == "study_synth_smoke" and as_number(study[1]) > 0 and study[2] == "ok"
    assert "| source-only |" in parts["study"] and "| oracle |" in parts["study"]
    assert (out.parent / "study" / "results.md").exists()  # the study's run folder sits beside the report


def test_without_cuda_the_check_stops_with_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    from translate.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "report.md"
    assert main(["bench", "gpu", "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        "i2i bench: error: no CUDA device; use --dry-run to check the parts on the CPU\n"
    )
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "options, message",
    [
        (["--budget", "0"], "--budget must be a positive number of seconds, got 0.0"),
        (["--budget", "-5"], "--budget must be a positive number of seconds, got -5.0"),
        (["--budget", "inf"], "--budget must be a positive number of seconds, got inf"),
        (["--parts", "reference,warp"], "--parts: unknown part(s) warp; known: reference, large, tiled"),
        (["--parts", ","], "--parts: unknown part(s) (none given)"),
        (["--device", "cuda:1"], "--dry-run runs on the CPU; drop --device cuda:1"),
        (["--out", "{tmp}"], "is a folder; give the report's file path"),
        (["--out", "{tmp}/file.txt/report.md"], "file.txt is a file, not a folder"),
    ],
)
def test_bad_options_are_one_line_errors_before_anything_runs(options, message, tmp_path, capsys):
    from translate.cli import main

    (tmp_path / "file.txt").write_text("not a folder")
    options = [o.replace("{tmp}", str(tmp_path)) for o in options]
    out = [] if "--out" in options else ["--out", str(tmp_path / "report.md")]
    assert main(["bench", "gpu", "--dry-run", *out, *options]) == 2
    err = capsys.readouterr().err
    assert err.startswith("i2i bench: error: ") and message in err and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]  # no report, no study folder


def python_job(rows: list[str], code: str) -> gpu.Job:
    """A child that runs ``code`` and reports rows through the same lines as the real children."""
    return gpu.Job([sys.executable, "-c", code], rows, gpu.read_row_lines)


def row_line(row: str, **figures) -> str:
    import json

    return f"print({gpu.RESULT_PREFIX!r} + {json.dumps(json.dumps({'row': row, **figures}))}, flush=True)"


def fake_part(key: str, jobs, budget_s: float | None, min_s: float = 0.1) -> gpu.Part:
    columns = (gpu.Column("value", "value (units)", "{:.1f}"),)
    return gpu.Part(key, f"part {key}", columns, f"What {key} does.", jobs, budget_s, min_s)


def test_a_failing_a_hanging_and_a_broken_part_are_recorded_and_the_next_parts_run(tmp_path):
    def broken() -> list[gpu.Job]:
        raise RuntimeError("the part's own code failed")

    parts = [
        fake_part(
            "fails",
            lambda: [
                python_job(["one", "two"], f"{row_line('one', value=1.5)}; raise SystemExit('two: out of memory')")
            ],
            30,
        ),
        fake_part(
            "hangs",
            lambda: [python_job(["first", "second"], f"{row_line('first', value=2.0)}; import time; time.sleep(60)")],
            1.5,
        ),
        fake_part("broken", broken, 30),
        fake_part("errs", lambda: [python_job(["row"], row_line("row", error="ValueError: bad size"))], 30),
        fake_part("after", lambda: [python_job(["fine"], row_line("fine", value=3.25))], 30),
        fake_part("unselected", lambda: [python_job(["x"], "")], 30),
        fake_part("study", lambda: [python_job(["x"], "")], None, min_s=1000),
    ]
    out = tmp_path / "report.md"
    header = {"date": "today", "device": "a test"}
    sections = gpu.run_check(parts, {"unselected": "not selected (--parts)"}, gpu.DRY_RUN, 60, out, header)
    rows = {s.part.key: s.rows for s in sections}
    assert rows["fails"]["one"] == {"value": 1.5, "status": "ok"}
    assert rows["fails"]["two"] == {"status": "failed (exit code 1): two: out of memory"}
    assert rows["hangs"]["first"] == {"value": 2.0, "status": "ok"}  # printed before the hang: kept
    assert rows["hangs"]["second"] == {"status": "timed out: the part's budget of 2 s ran out"}
    assert rows["errs"]["row"] == {"status": "failed: ValueError: bad size"}
    assert rows["after"]["fine"] == {"value": 3.25, "status": "ok"}
    assert gpu.failures(sections) == ["fails: two", "hangs: second", "errs: row"]
    report = out.read_text()
    assert "| one | 1.5 | ok |" in report and "| two | – | failed (exit code 1): two: out of memory |" in report
    assert "| second | – | timed out: the part's budget of 2 s ran out |" in report
    assert "The part stopped: RuntimeError: the part's own code failed" in report
    assert "| fine | 3.2 | ok |" in report
    assert "## 6. part unselected\n\nWhat unselected does.\n\nSkipped: not selected (--parts)." in report
    assert re.search(r"## 7\. part study\n\nWhat study does\.\n\nSkipped: less than 1000 s left \(\d+ s", report)
    assert re.search(r"\| wall time \| \d+ s \|", report)  # finished: no "so far"


def test_the_gpu_plan_is_the_one_the_check_promises(tmp_path):
    """The full-size check, as planned on a machine without a GPU: sizes, variants, one process per
    row, the quick study on the device, and part budgets that leave the study time in 10 minutes."""
    import json

    parts = {p.key: p for p in gpu.build_parts(gpu.GPU, "cuda", tmp_path, tmp_path / "study")}
    assert list(parts) == list(SECTIONS)

    def rows(key: str) -> list[dict]:
        jobs = parts[key].jobs()
        assert all(len(job.rows) == 1 for job in jobs)  # each row in its own process
        return [json.loads(job.command[job.command.index("--child") + 1])["rows"][0] for job in jobs]

    assert [(r["variant"], r["hw"]) for r in rows("reference")] == [
        (v, [256, 256]) for v in ("fp32", "bf16", "bf16+checkpointing", "bf16+compile")
    ]
    assert [(r["label"], r["hw"]) for r in rows("large")] == [
        ("1024×512 bf16", [512, 1024]),
        ("1024×512 bf16+checkpointing", [512, 1024]),
        ("2048×1024 bf16", [1024, 2048]),
        ("2048×1024 bf16+checkpointing", [1024, 2048]),
    ]
    assert gpu.GPU.tiled["size"] == 4096 and [r["size"] for r in rows("augment")] == [256, 512]
    [tests] = parts["cuda_tests"].jobs()
    assert tests.command[tests.command.index("-m", 2) + 1] == "cuda" and "tests/test_augment_batch.py" in tests.command
    [study] = parts["study"].jobs()
    assert study.command[4:] == [
        str(ROOT / "configs" / "study_synth_quick.yaml"),
        f"out_dir={tmp_path / 'study'}",
        "device=cuda",
        "progress=false",
    ]
    assert sum(gpu.GPU.part_budgets_s.values()) + gpu.GPU.study_min_s <= gpu.GPU.budget_s == 600


def test_every_test_that_skips_without_cuda_is_marked_cuda():
    """`pytest -m cuda` (what the GPU check runs) must find every test that needs a GPU."""
    unmarked = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            decorators = [ast.unparse(d) for d in node.decorator_list]
            if any("cuda.is_available" in d for d in decorators) and "pytest.mark.cuda" not in decorators:
                unmarked.append(f"{path.name}::{node.name}")
    assert not unmarked, f"add @pytest.mark.cuda to {unmarked}"
    assert ROOT / "tests" / "test_augment_batch.py" in gpu.cuda_test_files()
    assert Path(__file__) not in gpu.cuda_test_files()  # it only names the marker


def test_the_check_finds_a_cuda_mark_on_a_test_a_class_or_the_module():
    assert gpu.marks_cuda("import pytest\n@pytest.mark.cuda\ndef test_a(): pass\n")
    assert gpu.marks_cuda("import pytest\n@pytest.mark.cuda\nclass TestA:\n    def test_a(self): pass\n")
    assert gpu.marks_cuda("import pytest\npytestmark = [pytest.mark.slow, pytest.mark.cuda]\n")
    assert not gpu.marks_cuda("import pytest\n@pytest.mark.slow\ndef test_a(): assert 'pytest.mark.cuda'\n")


def test_bench_train_measures_a_step_of_the_height_and_width_asked(monkeypatch):
    """`bench train --width` (the check's 1024×512 and 2048×1024 steps): the batch is H×W, not square."""
    import translate.engine
    from translate.benchmarks import train

    shapes = []
    monkeypatch.setattr(translate.engine, "train_step", lambda rt, batch: shapes.append(tuple(batch["A"].shape)))
    args = bench_train_args(
        f"--config={ROOT / 'configs' / 'cyclegan_reference.yaml'}",
        "--size=16",
        "--width=40",
        "--batch=1",
        "--steps=1",
        "--warmup=1",
        "--device=cpu",
        "model.generator.ngf=2",
        "model.generator.n_blocks=1",
        "model.discriminator.ndf=2",
    )
    train.measure(args, [])
    assert shapes == [(1, 3, 16, 40)] * 2
