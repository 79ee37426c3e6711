"""Scene sets on disk: ``n`` scenes in the GTA5 folder layout with a manifest describing them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..atomic import TEMPORARY_SUFFIX, atomic_write
from ..errors import ConfigError
from ..segdata.classes import CLASS_NAMES, SYNTHETIC_TRAIN_IDS, ClassTally
from ..segdata.datasets import read_label
from .appearance import DEFAULT_PRESET, Appearance, preset
from .scenes import DOMAINS, SceneGenerator, domain_index

MANIFEST_FORMAT = "i2i-synthetic-streets"
#: the settings of a scene set being written; it goes when the manifest is written
PROGRESS_FILE = "unfinished.json"


def _encode_png(array: np.ndarray) -> np.ndarray:
    ok, buf = cv2.imencode(".png", array)
    if not ok:  # pragma: no cover - cv2 cannot fail on uint8 arrays
        raise RuntimeError("PNG encoding failed")
    return buf


def write_scene_set(
    out: str | Path,
    n: int,
    seed: int = 0,
    size: tuple[int, int] = (128, 256),
    domain: str | None = "target",
    paired: bool = False,
    appearances: dict[str, Appearance] | None = None,
    presets: dict[str, str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Write ``n`` scenes in the GTA5 folder layout and return the manifest (also written).

    Unpaired: ``out/images/00000.png``, ``out/labels/00000.png`` for one ``domain``. Paired: the
    same layouts in both domains, ``out/source/{images,labels}`` and ``out/target/{images,labels}``
    with identical file names and labels (for pix2pix and for scoring translations). Labels are
    single-channel PNGs of trainIds (``label_format: trainId`` in the manifest). PNG output is a
    pure function of the arguments, so the same seed gives byte-identical files. The manifest's
    class shares are those of ``translate.segdata.ClassTally``.

    Every file is written atomically, and ``out/unfinished.json`` holds the settings until the
    manifest is written: the same call after a kill keeps the finished scenes and renders only the
    missing ones, with the same bytes as an uninterrupted run. A folder holding a scene set of other
    settings, or images without a manifest, is refused.
    """
    from tqdm import tqdm

    out = Path(out)
    if n < 1:
        raise ConfigError(f"n must be at least 1, got {n}")
    domains = list(DOMAINS) if paired else [domain or ""]
    for d in domains:
        domain_index(d)
    appearances = dict(appearances or {})
    presets = {d: (presets or {}).get(d, DEFAULT_PRESET[d]) for d in DOMAINS}
    for d in DOMAINS:
        if d not in appearances:
            appearances[d] = preset(presets[d])
    gen = SceneGenerator(seed=seed, height=size[0], width=size[1], paired=paired, appearances=appearances)
    folders = {d: (out / d if paired else out) for d in domains}
    settings = _settings(seed, n, size, paired, {d: (presets[d], appearances[d]) for d in domains})
    _start_or_resume(out, folders, settings)

    width = max(5, len(str(n - 1)))
    names = [f"{i:0{width}d}.png" for i in range(n)]
    finished = {i for i, name in enumerate(names) if _scene_finished(folders, name)}
    tally = ClassTally()
    bar = tqdm(
        total=n, initial=len(finished), desc=f"rendering {'/'.join(domains)} scenes", unit="scene", disable=not progress
    )
    for i, name in enumerate(names):
        if i in finished:
            tally.add(read_label(folders[domains[0]] / "labels" / name, "trainId"))
            continue
        tally.add(_write_scene(gen, i, folders, name))
        bar.update(1)
    bar.close()
    manifest = _write_manifests(out, tally, seed, n, size, paired, domains, presets, appearances)
    (out / PROGRESS_FILE).unlink()
    return manifest


def _settings(seed: int, n: int, size: tuple[int, int], paired: bool, looks: dict[str, tuple[str, Appearance]]) -> dict:
    """Everything that determines the files of a scene set, as plain JSON data."""
    domains = {d: {"preset": name, "appearance": app.to_dict()} for d, (name, app) in looks.items()}
    return json.loads(json.dumps({"seed": seed, "n": n, "size": list(size), "paired": paired, "domains": domains}))


def _settings_of_manifest(manifest: dict) -> dict:
    """The settings a finished scene set's manifest records (see ``_settings``)."""
    if manifest.get("paired"):
        domains = {
            d: {"preset": v.get("preset"), "appearance": v.get("appearance")} for d, v in manifest["domains"].items()
        }
    else:
        domains = {manifest.get("domain"): {"preset": manifest.get("preset"), "appearance": manifest.get("appearance")}}
    keys = ("seed", "n", "size", "paired")
    return {**{k: manifest.get(k) for k in keys}, "domains": domains}


def _differences(there: dict, now: dict) -> str:
    keys = ("seed", "n", "size", "paired")
    parts = [f"{k} {there.get(k)} there, {now[k]} now" for k in keys if there.get(k) != now[k]]
    if there.get("domains") != now["domains"] and not parts:
        parts.append(f"domains or appearances differ ({', '.join(now['domains'])} now)")
    return "; ".join(parts)


def _start_or_resume(out: Path, folders: dict[str, Path], settings: dict) -> None:
    """Check that ``out`` is new, or holds this very scene set (finished or killed part-way), then
    record the settings and clear temporary files a kill left."""
    progress, manifest = out / PROGRESS_FILE, out / "manifest.json"
    there = None
    if progress.is_file():
        there = _read_json(progress)
    elif manifest.is_file():
        there = _settings_of_manifest(_read_json(manifest))
    elif any(any((f / sub).glob("*.png")) for f in folders.values() for sub in ("images", "labels")):
        raise ConfigError(f"{out} holds images but no scene-set manifest; choose a new or empty --out folder")
    if there is not None and there != settings:
        raise ConfigError(
            f"{out} holds a scene set of other settings ({_differences(there, settings)}); "
            "choose another --out folder or delete this one"
        )
    for folder in folders.values():
        for sub in ("images", "labels"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
            for leftover in (folder / sub).glob(f"*{TEMPORARY_SUFFIX}"):
                leftover.unlink()
    atomic_write(progress, lambda tmp: tmp.write_text(json.dumps(settings, indent=2)))


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} cannot be read as JSON ({exc}); delete its folder to write anew") from None


def _scene_finished(folders: dict[str, Path], name: str) -> bool:
    return all((f / sub / name).is_file() for f in folders.values() for sub in ("images", "labels"))


def _write_scene(gen: SceneGenerator, index: int, folders: dict[str, Path], name: str) -> np.ndarray:
    """Render scene ``index`` in every domain, write its files atomically and return its label."""
    domains = list(folders)
    layout = gen.layout(index, domains[0])
    for d in domains:
        image = _encode_png(cv2.cvtColor(gen.render(layout, index, d), cv2.COLOR_RGB2BGR))
        atomic_write(folders[d] / "images" / name, image.tofile)
        atomic_write(folders[d] / "labels" / name, _encode_png(layout.label).tofile)
    return layout.label


def _write_manifests(
    out: Path,
    tally: ClassTally,
    seed: int,
    n: int,
    size: tuple[int, int],
    paired: bool,
    domains: list[str],
    presets: dict[str, str],
    appearances: dict[str, Appearance],
) -> dict[str, Any]:
    classes = {
        CLASS_NAMES[c]: {
            "train_id": c,
            "scene_share": round(tally.scene_share(c), 4),
            "pixel_share": round(tally.pixel_share(c), 5),
        }
        for c in SYNTHETIC_TRAIN_IDS
    }
    base = {
        "format": MANIFEST_FORMAT,
        "version": 1,
        "seed": seed,
        "n": n,
        "size": [size[0], size[1]],
        "paired": paired,
        "label_format": "trainId",
        "layout": "images/NNNNN.png (RGB) + labels/NNNNN.png (trainIds, 255 = ignore)",
        "classes": classes,
    }
    if paired:
        looks = {d: {"folder": d, "preset": presets[d], "appearance": appearances[d].to_dict()} for d in DOMAINS}
        manifest = {**base, "domains": looks}
        for d in DOMAINS:
            sub = {
                **base,
                "domain": d,
                "preset": presets[d],
                "paired_with": f"../{DOMAINS[1 - DOMAINS.index(d)]}",
                "appearance": appearances[d].to_dict(),
            }
            _write_json(out / d / "manifest.json", sub)
    else:
        d = domains[0]
        manifest = {**base, "domain": d, "preset": presets[d], "appearance": appearances[d].to_dict()}
    _write_json(out / "manifest.json", manifest)
    return manifest


def _write_json(path: Path, data: dict) -> None:
    text = json.dumps(data, indent=2)
    atomic_write(path, lambda tmp: tmp.write_text(text))
