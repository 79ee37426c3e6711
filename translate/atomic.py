"""Atomic file writes: a file is either its old content or its complete new content, never half.

Used by everything that writes results a later run reads back (checkpoints, exports, metrics,
scene sets, translated images): a kill during a write leaves at most a temporary file named
``<name>.<random>.tmp`` beside the target, which readers ignore. Also the content hash that
records which file a result came from (a teacher, an imported or exported network).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

TEMPORARY_SUFFIX = ".tmp"


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path``; the old file survives any failure.

    The file gets the mode a plain ``open`` would give it (0o666 less the umask: 0o644 under umask
    022), not the 0o600 of ``mkstemp``, so other users of a shared machine can read outputs.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=TEMPORARY_SUFFIX, dir=path.parent)
    try:
        umask = os.umask(0o022)  # the umask can only be read by setting it: restore it at once
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
    finally:
        os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, read in chunks (checkpoints can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
