"""docs/errors.md lists bad inputs and the tests that check their errors: every test it names
exists, so the table cannot silently outlive the behaviour it describes."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROW = re.compile(r"^\| \d+ \|.*\| `(?P<file>test_\w+\.py)::(?P<test>\w+)` \|$")


def named_tests() -> list[tuple[str, str]]:
    lines = (ROOT / "docs" / "errors.md").read_text().splitlines()
    return [(m["file"], m["test"]) for m in map(ROW.match, lines) if m]


def functions_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}


def test_every_named_test_exists_and_the_table_covers_at_least_30_inputs():
    rows = named_tests()
    assert len(rows) >= 30
    missing = [f"{file}::{test}" for file, test in rows if test not in functions_in(ROOT / "tests" / file)]
    assert not missing, f"docs/errors.md names tests that do not exist: {missing}"
