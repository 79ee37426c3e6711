"""The tree keeps one style: ruff's formatter and linter (settings in pyproject.toml) pass on it,
and they do catch a badly formatted or wrong file, so the CI step that runs them can fail."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ruff = shutil.which("ruff")
pytestmark = pytest.mark.skipif(ruff is None, reason="ruff is not installed (pip install -e '.[dev]')")


def run_ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([ruff, *args], cwd=ROOT, capture_output=True, text=True, check=False)


def test_the_tree_is_formatted_and_lint_free():
    formatted = run_ruff("format", "--check", ".")
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr
    linted = run_ruff("check", ".")
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_ruff_catches_a_misformatted_file_and_an_unused_import(tmp_path):
    bad = tmp_path / "probe.py"
    bad.write_text("import os\nx = {  'a':1 }\n")
    settings = ("--config", str(ROOT / "pyproject.toml"))
    assert run_ruff("format", *settings, "--check", str(bad)).returncode == 1
    linted = run_ruff("check", *settings, str(bad))
    assert linted.returncode == 1 and "F401" in linted.stdout
