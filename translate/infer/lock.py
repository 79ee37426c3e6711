"""An output folder's lock: one run writes into a folder at a time.

Two runs writing the same folder at once would each take the other's fresh outputs for finished
work, delete the other's temporary files as leftovers of a killed run, or mix the outputs of two
generators. ``FolderLock`` holds an exclusive ``flock`` on a file in the folder for the whole run;
the file names its holder (process id, host, start time), so a refused run says who holds it.

The kernel drops a ``flock`` when its holder dies, however it dies, so a lock file left by a killed
run never blocks the next one: that run takes the lock over and warns, naming the dead holder.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
import warnings
from pathlib import Path

from ..errors import DataError

LOCK_NAME = ".i2i-output.lock"


class FolderLock:
    """An exclusive lock on ``folder`` for one run, as a context manager (created if missing)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock, or raise ``DataError`` naming the run that holds it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise DataError(
                    f"{self.folder} is being written by another run ({describe(holder)}); wait for it to end "
                    "or choose another output folder"
                ) from None
            except OSError as exc:
                os.close(fd)
                raise DataError(f"cannot lock {self.path}: {exc.strerror}") from None
            # its previous holder may have removed the file between our open and our lock: then we
            # locked an orphan that no one else can see, and must lock the file now at that path
            if _same_file(fd, self.path):
                break
            os.close(fd)
        previous = _read_holder(fd)
        if previous:
            warnings.warn(
                f"taking over the lock {self.path} left by a run that ended without releasing it "
                f"({describe(previous)})",
                stacklevel=2,
            )
        since = time.strftime("%Y-%m-%d %H:%M:%S")
        _write_holder(fd, {"pid": os.getpid(), "host": socket.gethostname(), "since": since})
        self._fd = fd

    def release(self) -> None:
        """Remove the lock file and drop the lock; a no-op when not held."""
        if self._fd is None:
            return
        # removed while still locked, so a run waiting on this file sees it is an orphan (above)
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None


def describe(holder: dict[str, object]) -> str:
    if not holder:
        return "holder not yet recorded"
    return f"pid {holder.get('pid')} on host {holder.get('host')}, since {holder.get('since')}"


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = path.stat()
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def _read_holder(fd: int) -> dict[str, object]:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 4096).decode("utf-8", errors="replace")
    try:
        holder = json.loads(text)
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


def _write_holder(fd: int, holder: dict[str, object]) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, json.dumps(holder).encode())
    os.fsync(fd)
