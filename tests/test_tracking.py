"""metrics.csv on resume: rows after the checkpoint are dropped by an atomic rewrite."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from translate.tracking import MetricsLog

LOG = "step,loss,lr\n1,0.5,0.1\n2,0.4,0.1\n3,0.3,0.1\n4,0.2,0.1\n"


def test_resume_keeps_the_rows_up_to_the_checkpoint_and_drops_a_row_cut_by_a_kill(tmp_path: Path) -> None:
    # the kill came while step 12's row was appended: only "1" of "12,..." reached the disk
    (tmp_path / "metrics.csv").write_text(LOG + "1")
    log = MetricsLog(tmp_path, tensorboard=False, resumed_at=2)
    log.log(3, {"loss": 0.25, "lr": 0.1})
    log.close()
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert rows == ["step,loss,lr", "1,0.5,0.1", "2,0.4,0.1", "3,0.25,0.1"]


def test_a_failed_rewrite_leaves_the_old_log_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "metrics.csv").write_text(LOG)

    class FullDisk:
        def __init__(self, fh) -> None:
            self.fh = fh

        def writerows(self, rows) -> None:
            self.fh.write(",".join(rows[0]) + "\r\n")  # the header goes out, then the disk is full
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(csv, "writer", FullDisk)
    with pytest.raises(OSError, match="No space"):
        MetricsLog(tmp_path, tensorboard=False, resumed_at=2)
    assert (tmp_path / "metrics.csv").read_text() == LOG
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]  # no temporary file left either
