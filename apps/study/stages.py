"""Cached stages in a run folder, keyed by what determined them.

A stage is named (``segmenter:source-seed0``) and described by its *inputs*: the config values it
reads (by dotted key), the fingerprint of every stage it reads (``stage NAME``) and the package
version. Its fingerprint is a hash of those inputs. ``stages/NAME.json`` is written atomically when
the stage finishes and holds the result, the fingerprint and the inputs; a rerun reuses it only
when the fingerprint matches. Otherwise the stage is redone, and the log names what changed —
since a stage's inputs hold the fingerprints of the stages it reads, everything downstream of a
redone stage is redone too.

A record names the files of its run folder relative to that folder (``<run>/segmenters/...``), so a
run folder moved or copied elsewhere keeps its stages and reads its own files.

While a stage runs, ``stages/NAME.pending`` holds the fingerprint it runs under, so a killed stage
continues from its own checkpoints only when its inputs are the same; work left by other inputs
(the stage's work folders) is removed first, never resumed. Every run, start, rerun, skip,
interruption, failure and finish is appended to ``stages.log`` (JSON lines) so a rerun can be
audited.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: the inputs key holding the version of this package (every stage has it)
VERSION_KEY = "i2i version"
#: inputs keys naming a stage that is read start with this
STAGE_PREFIX = "stage "
#: at most this many changes are named in one log line
NAMED_CHANGES = 6


class Interrupted(Exception):
    """A stage stopped early on purpose (the config's ``interrupt``), as if the run had been killed."""


@dataclass(frozen=True)
class Stage:
    """One stage: its name and everything that determines its result (plain JSON data)."""

    name: str
    inputs: dict[str, Any]

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.inputs)


def fingerprint(inputs: Mapping[str, Any]) -> str:
    text = json.dumps(inputs, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def package_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("i2i-translate")
    except metadata.PackageNotFoundError:
        return "unknown"


def flatten(value: Any, prefix: str) -> dict[str, Any]:
    """A nested mapping as {dotted key: leaf value}, so a change can be named by its key."""
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}"))
        return out
    return {prefix: value}


def explain(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> tuple[str, list[str]]:
    """Why a stage recorded with inputs ``old`` must be redone under ``new``: (one line, changed keys)."""
    if old is None:
        return "its record has no fingerprint (written by an older version)", []
    missing = object()
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k, missing) != new.get(k, missing))
    config = [
        _change(k, old.get(k, missing), new.get(k, missing), missing)
        for k in changed
        if not k.startswith(STAGE_PREFIX) and k != VERSION_KEY
    ]
    stages = [k[len(STAGE_PREFIX) :] for k in changed if k.startswith(STAGE_PREFIX)]
    parts = []
    if config:
        parts.append(f"config changed ({_named(config)})")
    if stages:
        parts.append(f"inputs changed ({_named(stages)})")
    if VERSION_KEY in changed:
        parts.append(_change(VERSION_KEY, old.get(VERSION_KEY, missing), new.get(VERSION_KEY, missing), missing))
    return "; ".join(parts) or "fingerprint differs", changed


def _change(key: str, old: Any, new: Any, missing: object) -> str:
    if old is missing:
        return f"{key} {_short(new)} (new)"
    if new is missing:
        return f"{key} (removed, was {_short(old)})"
    return f"{key} {_short(old)} -> {_short(new)}"


def _short(value: Any, limit: int = 40) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _named(items: list[str]) -> str:
    more = len(items) - NAMED_CHANGES
    return ", ".join(items[:NAMED_CHANGES]) + (f" and {more} more" if more > 0 else "")


class StageRunner:
    def __init__(self, root: Path, echo: Callable[[str], None] = print) -> None:
        self.root = root
        self.records = root / "stages"
        self.records.mkdir(parents=True, exist_ok=True)  # the run folder too
        self.echo = echo
        self._reported: set[str] = set()  # a cached stage is announced once, however often it is asked for

    def record(self, name: str) -> dict | None:
        """The stage's record, its paths inside the run folder resolved against this run folder."""
        path = self._record_path(name)
        if not path.is_file():
            return None
        record = json.loads(path.read_text())
        return {k: v if k == "inputs" else from_record(v, self.root) for k, v in record.items()}

    def log(self, event: str, stage: str | None = None, **fields: Any) -> None:
        entry = {"stage": stage, "event": event, **fields, "time": round(time.time(), 3)}
        with open(self.root / "stages.log", "a") as fh:
            fh.write(json.dumps(entry) + "\n")

    def run(self, stage: Stage, work: Callable[[], dict[str, Any]], work_paths: Iterable[Path] = ()) -> dict[str, Any]:
        """The record of ``stage``: the cached one when its fingerprint matches, else ``work()``'s
        result, recorded. ``work_paths``: what the stage writes besides its record (folders, files),
        removed before it starts unless they hold a killed run of the same inputs."""
        name, key = stage.name, stage.fingerprint
        done = self.record(name)
        if done is not None and done.get("fingerprint") == key:
            if name not in self._reported:
                self._reported.add(name)
                self.log("cached", name)
                self.echo(f"[study] {name}: done")
            return done
        self._start(stage, done, list(work_paths))
        start = time.time()
        try:
            result = work()
        except Interrupted:
            self.log("interrupted", name)
            raise
        except Exception as exc:
            self.log("failed", name, error=str(exc))
            raise
        about = {"seconds": round(time.time() - start, 1), "fingerprint": key, "inputs": stage.inputs}
        self._write(self._record_path(name), json.dumps({**to_record(result, self.root), **about}, indent=2))
        result = {**result, **about}
        self._pending_path(name).unlink(missing_ok=True)
        self.log("finished", name)
        self._reported.add(name)
        return result

    def _start(self, stage: Stage, stale: dict | None, work_paths: list[Path]) -> None:
        """Announce the (re)run, drop a stale record and any work of other inputs, mark the stage pending."""
        name, key = stage.name, stage.fingerprint
        if stale is not None:
            reason, changed = explain(stale.get("inputs") if "fingerprint" in stale else None, stage.inputs)
            self.log("rerun", name, reason=reason, changed=changed)
            self.echo(f"[study] {name} reruns: {reason}")
            self._record_path(name).unlink()  # an unfinished rerun must not leave the old numbers behind
        else:
            self.log("started", name)
            self.echo(f"[study] {name}")
        pending = self._pending_path(name)
        if pending.is_file() and pending.read_text() == key:
            self.log("continues", name)
            return
        removed = [_shown(p, self.root) for p in work_paths if _remove(p)]
        if removed:
            self.log("cleared", name, paths=removed)
            self.echo(f"[study] {name}: removed work of other inputs ({', '.join(removed)})")
        self._write(pending, key)

    def _record_path(self, name: str) -> Path:
        return self.records / f"{slug(name)}.json"

    def _pending_path(self, name: str) -> Path:
        return self.records / f"{slug(name)}.pending"

    @staticmethod
    def _write(path: Path, text: str) -> None:
        from translate.io import atomic_write

        atomic_write(path, lambda tmp: tmp.write_text(text))

    def events(self) -> list[dict]:
        path = self.root / "stages.log"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


#: how a record writes a path inside its run folder: relative to that folder, after this prefix.
#: A run folder moved or copied elsewhere then reads its own files, never those of the folder it was
#: copied from (which may since hold other results, or be gone)
RUN_PREFIX = "<run>/"


def to_record(value: Any, root: Path) -> Any:
    """``value`` with every string naming an existing file or folder inside ``root`` written as
    ``RUN_PREFIX`` + its path relative to ``root``."""
    if isinstance(value, dict):
        return {k: to_record(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [to_record(v, root) for v in value]
    if isinstance(value, str) and "/" in value and os.path.lexists(value):
        # absolute but not resolved: a link inside the run folder (to a dataset) stays inside it
        inside, within = Path(os.path.abspath(value)), Path(os.path.abspath(root))
        if inside.is_relative_to(within):
            return RUN_PREFIX + inside.relative_to(within).as_posix()
    return value


def from_record(value: Any, root: Path) -> Any:
    """``value`` read from a record, its ``RUN_PREFIX`` paths resolved against ``root``."""
    if isinstance(value, dict):
        return {k: from_record(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [from_record(v, root) for v in value]
    if isinstance(value, str) and value.startswith(RUN_PREFIX):
        return str(Path(root) / value.removeprefix(RUN_PREFIX))
    return value


def _remove(path: Path) -> bool:
    if path.is_dir():
        shutil.rmtree(path)
        return True
    if path.exists():
        path.unlink()
        return True
    return False


def _shown(path: Path, root: Path) -> str:
    """``path`` relative to the run folder when it lies inside it."""
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


#: the longest file-name stem a stage gets: file systems allow 255 bytes, and an ensemble of many
#: rows is named after all of them
MAX_SLUG = 160


def slug(name: str) -> str:
    """``name`` as a file-name stem: characters other than letters, digits and ``-_.@`` become
    ``_``; a longer stem than ``MAX_SLUG`` keeps its start and ends in a hash of the whole name, so
    two long names that share a start still get files of their own."""
    import hashlib

    stem = "".join(c if c.isalnum() or c in "-_.@" else "_" for c in name)
    if len(stem.encode()) <= MAX_SLUG:
        return stem
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    start = stem.encode()[: MAX_SLUG - len(digest) - 1].decode(errors="ignore")
    return f"{start}-{digest}"
