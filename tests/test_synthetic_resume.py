"""`i2i data synth` after a kill: finished scenes are kept, only missing ones are rendered, and
the folder ends byte-identical to an uninterrupted run; a folder of other settings is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from translate.cli import main
from translate.synthetic import SceneGenerator, write_scene_set

RENDER = SceneGenerator.render
ARGS = ["--paired", "--n", "5", "--seed", "4", "--size", "64x128", "--no-progress"]


def synth(out: Path, *args: str) -> int:
    return main(["data", "synth", "--out", str(out), *args])


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def rendered_scenes(monkeypatch: pytest.MonkeyPatch, kill_at: tuple[int, str] | None = None) -> list[tuple[int, str]]:
    """Record every (scene, domain) rendered from now on; raise KeyboardInterrupt at ``kill_at``."""
    calls: list[tuple[int, str]] = []

    def recording(self, layout, index, domain):
        if (index, domain) == kill_at:
            raise KeyboardInterrupt
        calls.append((index, domain))
        return RENDER(self, layout, index, domain)

    monkeypatch.setattr(SceneGenerator, "render", recording)
    return calls


def test_a_killed_synth_resumes_to_the_same_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert synth(whole, *ARGS) == 0

    rendered_scenes(monkeypatch, kill_at=(3, "target"))  # killed after scene 3's source image
    with pytest.raises(KeyboardInterrupt):
        write_scene_set(killed, n=5, seed=4, size=(64, 128), paired=True, progress=False)
    left = files(killed)
    assert "manifest.json" not in left and "unfinished.json" in left
    assert "source/images/00003.png" in left and "target/images/00003.png" not in left
    # more damage: a finished scene lost a file, and a kill mid-write left a temporary file
    (killed / "source" / "labels" / "00001.png").unlink()
    (killed / "target" / "images" / "00004.png.k1ll3d.tmp").write_bytes(b"\x89PNG half")

    calls = rendered_scenes(monkeypatch)
    assert synth(killed, *ARGS) == 0
    assert sorted({index for index, _ in calls}) == [1, 3, 4]  # scenes 0 and 2 are kept as they are
    assert files(killed) == files(whole)

    calls.clear()
    assert synth(killed, *ARGS) == 0  # a finished set: nothing to render, nothing changes
    assert calls == [] and files(killed) == files(whole)


def test_a_folder_of_other_settings_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "set"
    assert synth(out, *ARGS) == 0
    before = files(out)
    assert synth(out, "--paired", "--n", "5", "--seed", "5", "--size", "64x128", "--no-progress") == 2
    assert "holds a scene set of other settings (seed 4 there, 5 now)" in capsys.readouterr().err
    assert synth(out, "--paired", "--n", "5", "--seed", "4", "--size", "64x128", "--preset", "dusk") == 2
    assert "domains or appearances differ" in capsys.readouterr().err
    assert files(out) == before

    foreign = tmp_path / "foreign"
    (foreign / "images").mkdir(parents=True)
    (foreign / "images" / "holiday.png").write_bytes(b"not ours")
    assert synth(foreign, "--domain", "target", "--n", "2", "--size", "64x128", "--no-progress") == 2
    assert "holds images but no scene-set manifest" in capsys.readouterr().err
    assert files(foreign) == {"images/holiday.png": b"not ours"}


def test_an_unreadable_record_of_settings_is_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "set"
    out.mkdir()
    (out / "unfinished.json").write_text('{"seed": 4, "n"')  # cut short
    assert synth(out, *ARGS) == 2
    assert "unfinished.json cannot be read as JSON" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["unfinished.json"]
