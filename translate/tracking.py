"""What a run leaves for people to look at: scalar logs (CSV and TensorBoard) and sample grids."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image

from .atomic import atomic_write


class MetricsLog:
    """Appends scalar rows to ``metrics.csv`` and, if enabled and installed, TensorBoard events.

    The CSV's columns are fixed by its first row; a resumed run appends to the same file and
    writes later-appearing keys only to TensorBoard. ``resumed_at``: the step a run resumes from;
    rows a killed run logged after its last checkpoint are dropped (CSV) or purged (TensorBoard),
    since the resumed run logs those steps again.
    """

    def __init__(self, folder: Path, tensorboard: bool, resumed_at: int | None = None) -> None:
        self.path = folder / "metrics.csv"
        self.columns: list[str] | None = None
        if self.path.exists():
            with open(self.path, newline="") as fh:
                rows = list(csv.reader(fh))
            self.columns = rows[0] if rows and rows[0] else None
            if resumed_at is not None and self.columns:
                # a row cut short by a kill during its append is dropped with the unsaved steps
                kept = [r for r in rows[1:] if len(r) == len(self.columns) and _step_of(r) <= resumed_at]
                if len(kept) < len(rows) - 1:
                    _rewrite_csv(self.path, [self.columns, *kept])
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional at run time
                SummaryWriter = None
            if SummaryWriter is not None:
                purge = None if resumed_at is None else resumed_at + 1
                self.writer = SummaryWriter(str(folder / "tb"), purge_step=purge)

    def log(self, step: int, values: Mapping[str, float]) -> None:
        row = {"step": step, **values}
        new_file = self.columns is None
        if new_file:
            self.columns = list(row)
        with open(self.path, "a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=self.columns, extrasaction="ignore")
            if new_file:
                writer.writeheader()
            writer.writerow(row)
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(key, value, step)

    def log_image(self, tag: str, image: torch.Tensor, step: int) -> None:
        if self.writer is not None:
            self.writer.add_image(tag, image, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _step_of(row: list[str]) -> float:
    """The step a CSV row logs; rows without one sort after every step."""
    try:
        return int(row[0])
    except ValueError:
        return float("inf")


def _rewrite_csv(path: Path, rows: list[list[str]]) -> None:
    """Replace ``path`` by ``rows`` atomically: a kill or a full disk leaves the old log whole."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as fh:
            csv.writer(fh).writerows(rows)

    atomic_write(path, write)


def visuals_grid(visuals: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """One row per sample, one column per named visual, values mapped from [-1, 1] to [0, 1]."""
    columns = list(visuals.values())
    tiles = [col[i].float().cpu() for i in range(columns[0].shape[0]) for col in columns]
    # visuals of different channel counts (e.g. grayscale) are shown as RGB
    tiles = [t.expand(3, -1, -1) if t.shape[0] == 1 else t[:3] for t in tiles]
    grid = make_grid(torch.stack(tiles), nrow=len(columns), padding=2, pad_value=1.0)
    return grid.add(1).div(2).clamp(0, 1)


def save_grid(path: Path, grid: torch.Tensor) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid, str(path))
    return path
