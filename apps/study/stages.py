"""Cached stages in a run folder: a finished stage leaves a JSON record and is never redone.

``stages/NAME.json`` is written atomically when a stage finishes, so a stage killed half-way has
no record and runs again on the next call — continuing from its own checkpoints. Every start,
skip, interruption and finish is appended to ``stages.log`` (JSON lines) so a rerun can be
audited.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


class Interrupted(Exception):
    """A stage stopped early on purpose (the config's ``interrupt``), as if the run had been killed."""


class StageRunner:
    def __init__(self, root: Path, echo: Callable[[str], None] = print) -> None:
        self.root = root
        self.records = root / "stages"
        self.records.mkdir(parents=True, exist_ok=True)  # the run folder too
        self.echo = echo
        self._reported: set[str] = set()  # a cached stage is announced once, however often it is asked for

    def record(self, name: str) -> dict | None:
        path = self.records / f"{_slug(name)}.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def _log(self, name: str, event: str) -> None:
        with open(self.root / "stages.log", "a") as fh:
            fh.write(json.dumps({"stage": name, "event": event, "time": round(time.time(), 3)}) + "\n")

    def run(self, name: str, work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        from translate.io import atomic_write

        done = self.record(name)
        if done is not None:
            if name not in self._reported:
                self._reported.add(name)
                self._log(name, "cached")
                self.echo(f"[study] {name}: done")
            return done
        self._log(name, "started")
        self.echo(f"[study] {name}")
        start = time.time()
        try:
            result = work()
        except Interrupted:
            self._log(name, "interrupted")
            raise
        result = {**result, "seconds": round(time.time() - start, 1)}
        text = json.dumps(result, indent=2)
        atomic_write(self.records / f"{_slug(name)}.json", lambda tmp: tmp.write_text(text))
        self._log(name, "finished")
        self._reported.add(name)
        return result

    def events(self) -> list[dict]:
        path = self.root / "stages.log"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.@" else "_" for c in name)
