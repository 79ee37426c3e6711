"""Scene sets on disk: ``n`` scenes in the GTA5 folder layout with a manifest describing them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import ConfigError
from ..segdata.classes import CLASS_NAMES, SYNTHETIC_TRAIN_IDS, ClassTally
from .appearance import DEFAULT_PRESET, Appearance, preset
from .scenes import DOMAINS, SceneGenerator, domain_index

MANIFEST_FORMAT = "i2i-synthetic-streets"


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
    for folder in folders.values():
        (folder / "images").mkdir(parents=True, exist_ok=True)
        (folder / "labels").mkdir(parents=True, exist_ok=True)
    width = max(5, len(str(n - 1)))
    tally = ClassTally()
    for i in tqdm(range(n), desc=f"rendering {'/'.join(domains)} scenes", unit="scene", disable=not progress):
        name = f"{i:0{width}d}.png"
        layout = gen.layout(i, domains[0])
        label = layout.label
        for d in domains:
            image = gen.render(layout, i, d)
            _encode_png(cv2.cvtColor(image, cv2.COLOR_RGB2BGR)).tofile(folders[d] / "images" / name)
            _encode_png(label).tofile(folders[d] / "labels" / name)
        tally.add(label)

    classes = {
        CLASS_NAMES[c]: {"train_id": c, "scene_share": round(tally.scene_share(c), 4), "pixel_share": round(tally.pixel_share(c), 5)}
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
        manifest = {**base, "domains": {d: {"folder": d, "preset": presets[d], "appearance": appearances[d].to_dict()} for d in DOMAINS}}
        for d in DOMAINS:
            sub = {**base, "domain": d, "preset": presets[d], "paired_with": f"../{DOMAINS[1 - DOMAINS.index(d)]}",
                   "appearance": appearances[d].to_dict()}
            (out / d / "manifest.json").write_text(json.dumps(sub, indent=2))
    else:
        d = domains[0]
        manifest = {**base, "domain": d, "preset": presets[d], "appearance": appearances[d].to_dict()}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest
