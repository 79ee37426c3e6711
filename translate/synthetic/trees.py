"""Stand-in trees for the real datasets: procedural scenes written in the GTA5 or Cityscapes folder
layout at any resolution, with Cityscapes label ids, so that code written for the real datasets
(``translate.segdata``, the study's real config) runs end to end without them.

* ``gta5``: ``ROOT/images/00001.png`` (RGB) + ``ROOT/labels/00001.png`` (palette PNG whose indices
  are label ids), numbered from 1 as the release is; source appearance.
* ``cityscapes``: ``ROOT/leftImg8bit/SPLIT/CITY/CITY_000000_NNNNNN_leftImg8bit.png`` +
  ``ROOT/gtFine/SPLIT/CITY/CITY_000000_NNNNNN_gtFine_labelIds.png`` (8-bit grey ids); target
  appearance.

Scenes are rendered at ``render_size`` and upscaled to ``size`` (images bilinear, labels nearest):
the renderer draws shapes, not detail, so a full-size render costs time and adds nothing. Files
are written atomically and a file already there is kept, so a killed run continues.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from ..atomic import atomic_write
from ..errors import ConfigError
from ..segdata.classes import CLASSES, IGNORE
from .appearance import Appearance
from .scenes import SceneGenerator

LAYOUTS = ("gta5", "cityscapes")
#: the domain each layout stands in for
LAYOUT_DOMAIN = {"gta5": "source", "cityscapes": "target"}
#: the real datasets' resolutions (H, W)
REAL_SIZES = {"gta5": (1052, 1914), "cityscapes": (1024, 2048)}
CITIES = ("aachen", "bremen", "hamburg")
#: seeds of the Cityscapes splits are apart, so train and val scenes differ
SPLIT_SEED = {"train": 0, "val": 1000, "test": 2000}


def _train_id_to_label_id() -> np.ndarray:
    lut = np.zeros(256, dtype=np.uint8)  # 0 = unlabeled, which reads back as ignore
    for c in CLASSES:
        lut[c.train_id] = c.label_id
    lut[IGNORE] = 0
    return lut


TRAINID_TO_ID = _train_id_to_label_id()


def _png(array: np.ndarray) -> Callable[[Path], None]:
    pixels = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array
    ok, buf = cv2.imencode(".png", pixels)
    if not ok:  # pragma: no cover - cv2 cannot fail on uint8 arrays
        raise RuntimeError("PNG encoding failed")
    return buf.tofile


def _palette_png(ids: np.ndarray) -> Callable[[Path], None]:
    """A palette PNG whose indices are the ids (as GTA5 stores labels)."""
    from PIL import Image

    image = Image.fromarray(ids, mode="P")
    image.putpalette([v for c in range(256) for v in ((c * 37) % 256, (c * 91) % 256, (c * 53) % 256)])
    return lambda path: image.save(path, format="PNG")


def _paths(layout: str, root: Path, index: int, split: str) -> tuple[Path, Path]:
    if layout == "gta5":
        name = f"{index + 1:05d}.png"
        return root / "images" / name, root / "labels" / name
    city = CITIES[index % len(CITIES)]
    stem = f"{city}_000000_{index:06d}"
    return (
        root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png",
        root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png",
    )


def write_tree(
    out: str | Path,
    layout: str,
    n: int,
    size: tuple[int, int] | None = None,
    render_size: tuple[int, int] | None = None,
    split: str = "train",
    seed: int = 0,
    appearance: Appearance | None = None,
    progress: bool = True,
) -> int:
    """Write ``n`` scenes of ``layout`` under ``out`` (see the module); returns the files written.

    ``size`` (H, W) defaults to the real dataset's; ``render_size`` to half of it.
    """
    from tqdm import tqdm

    if layout not in LAYOUTS:
        raise ConfigError(f"unknown layout '{layout}'; known: {', '.join(LAYOUTS)}")
    if n < 1:
        raise ConfigError(f"n must be at least 1, got {n}")
    if layout == "cityscapes" and split not in SPLIT_SEED:
        raise ConfigError(f"unknown Cityscapes split '{split}'; known: {', '.join(SPLIT_SEED)}")
    h, w = size or REAL_SIZES[layout]
    rh, rw = render_size or (max(16, h // 2), max(16, w // 2))
    domain = LAYOUT_DOMAIN[layout]
    gen = SceneGenerator(
        seed=seed + (SPLIT_SEED[split] if layout == "cityscapes" else 0),
        height=rh,
        width=rw,
        appearances={domain: appearance} if appearance is not None else {},
    )
    written = 0
    for i in tqdm(range(n), desc=f"{layout} stand-in ({w}×{h})", unit="frame", disable=not progress):
        image_path, label_path = _paths(layout, Path(out), i, split)
        if image_path.is_file() and label_path.is_file():
            continue
        image, train_ids = gen.scene(i, domain)
        if (rh, rw) != (h, w):
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
            train_ids = cv2.resize(train_ids, (w, h), interpolation=cv2.INTER_NEAREST)
        ids = TRAINID_TO_ID[train_ids]
        for path in (image_path, label_path):
            path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(label_path, _palette_png(ids) if layout == "gta5" else _png(ids))
        atomic_write(image_path, _png(image))
        written += 1
    return written
