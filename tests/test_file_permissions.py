"""Files the toolkit writes through a temporary file get the permissions the user's umask asks for."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from translate.io import atomic_write


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_write_honours_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    previous = os.umask(umask)
    try:
        target = tmp_path / "out.png"
        atomic_write(target, lambda tmp: tmp.write_bytes(b"data"))
    finally:
        os.umask(previous)
    assert target.read_bytes() == b"data"
    assert stat.S_IMODE(target.stat().st_mode) == mode


def test_atomic_write_replacing_a_file_keeps_the_content_and_umask_mode(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    previous = os.umask(0o022)
    try:
        atomic_write(target, lambda tmp: tmp.write_bytes(b"new"))
    finally:
        os.umask(previous)
    assert target.read_bytes() == b"new" and stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]  # no temporary file left behind
