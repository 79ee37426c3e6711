"""The import-linter layers contract in pyproject.toml catches an import that points up a layer."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WRONG_WAY = "translate.data is not allowed to import translate.models"


def _lint(tree: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tree)}  # analyse the copy, not an installed package
    cmd = [
        sys.executable,
        "-c",
        "from importlinter.cli import lint_imports_command; lint_imports_command()",
        "--no-cache",
    ]
    return subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=300)


def _copy_project(dest: Path) -> Path:
    for package in ("translate", "augment", "apps"):
        shutil.copytree(ROOT / package, dest / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")
    return dest


def test_a_wrong_way_import_breaks_the_layers_contract(tmp_path: Path) -> None:
    clean = _copy_project(tmp_path / "clean")
    baseline = _lint(clean)
    assert "Analyzed" in baseline.stdout, baseline.stdout + baseline.stderr  # the linter ran on the copy
    assert WRONG_WAY not in baseline.stdout

    wrong = _copy_project(tmp_path / "wrong")
    base = wrong / "translate" / "data" / "base.py"
    # even an import hidden inside a function counts: data sits below models
    base.write_text(base.read_text() + "\n\ndef _models():\n    from ..models import MODELS\n\n    return MODELS\n")
    result = _lint(wrong)
    assert result.returncode != 0
    assert WRONG_WAY in result.stdout and "translate.data.base -> translate.models" in result.stdout, result.stdout
