"""The study's data stage: every set as files on disk, read lazily through ``SegmentationSet``.

Sets: ``source_train`` (labelled source), ``target_train`` (target images; its labels serve only
the oracle row), ``target_test`` (labelled target: every row is scored here) and ``quality``
(held-out source images with labels, and where the domain allows it the *paired* target image of
the same layout in ``quality_target``, to score translators).

Each set is a folder ``data/SET/images/NAME.png`` + ``data/SET/labels/NAME.png`` (the GTA5 layout):
the synthetic default renders its scenes there once, one at a time; real datasets are linked
there (symbolic links to the files of the GTA5 and Cityscapes trees, nothing copied). No stage
holds a whole set in memory: a set is its file list, and samples are decoded, resized and
cropped when drawn (by DataLoader workers where a stage has them). The translators read
``data/source_train/images`` and ``data/target_train/images`` themselves.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from translate.errors import ConfigError, DataError
from translate.segdata.datasets import SegmentationSet

from .config import StudyConfig

SETS = ("source_train", "target_train", "target_test", "quality")
#: the paired target images of the quality set (synthetic data only)
PAIRED = "quality_target"
#: what the data stage wrote: label format, counts, and the policy for labels of another size
INDEX_FILE = "sets.json"


@dataclass
class StudyData:
    source_train: SegmentationSet
    target_train: SegmentationSet
    target_test: SegmentationSet
    quality: SegmentationSet
    quality_target: SegmentationSet | None  # the same layouts in the target domain, when they exist


def appearance_of(spec: str, default_preset: str):
    """An appearance from a preset name or an appearance YAML path (a clear error for neither)."""
    from translate.synthetic import PRESETS, appearance_from, load_appearance

    if spec.endswith((".yaml", ".yml")) or "/" in spec:
        if not Path(spec).is_file():
            raise ConfigError(f"appearance YAML not found: {spec}")
        return load_appearance(spec, default_preset)[1]
    if spec not in PRESETS:
        raise ConfigError(
            f"unknown appearance preset '{spec}'; known: {', '.join(PRESETS)} (or give an appearance YAML path)"
        )
    return appearance_from(spec)


def check_sources(cfg: StudyConfig) -> None:
    """Fail before training when a preset, appearance file or dataset folder does not exist."""
    from translate.segdata.cityscapes import cityscapes_pairs
    from translate.segdata.datasets import folder_pairs
    from translate.synthetic import parse_size

    if cfg.data.kind == "synthetic":
        syn = cfg.data.synthetic
        parse_size(syn.size)
        appearance_of(syn.source, "game")
        appearance_of(syn.target, "real")
        return
    real = cfg.data.real
    folder_pairs(real.gta5_root, "GTA5")
    cityscapes_pairs(real.cityscapes_root, real.target_train_split)
    cityscapes_pairs(real.cityscapes_root, real.target_test_split)


# --- writing the sets (the data stage) -----------------------------------------------------------


def _write_png(path: Path, array: np.ndarray) -> None:
    """An RGB image or a single-channel label as PNG, atomically (a kill leaves no half file)."""
    import cv2

    from translate.atomic import atomic_write

    pixels = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array
    ok, buf = cv2.imencode(".png", pixels)
    if not ok:  # pragma: no cover - cv2 cannot fail on uint8 arrays
        raise DataError(f"cannot encode {path}")
    atomic_write(path, buf.tofile)


def _render_set(folders: Path | list[Path], n: int, scene, what: str, progress: bool) -> None:
    """Scenes ``scene(i) -> (image, label)`` for i < n into ``folders`` (several: ``scene`` returns
    one (image, label) per folder); files already written (a killed stage of the same inputs) are kept."""
    from tqdm.auto import tqdm

    folders = [folders] if isinstance(folders, Path) else folders
    for folder in folders:
        for sub in ("images", "labels"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
    for i in tqdm(range(n), desc=f"data: {what}", unit="scene", disable=not progress):
        name = f"{i:06d}.png"
        if all((f / "images" / name).is_file() and (f / "labels" / name).is_file() for f in folders):
            continue
        samples = scene(i) if len(folders) > 1 else [scene(i)]
        for folder, (image, label) in zip(folders, samples, strict=True):
            _write_png(folder / "labels" / name, label)
            _write_png(folder / "images" / name, image)


def _write_synthetic(cfg: StudyConfig, folder: Path, progress: bool) -> dict:
    from translate.synthetic import SceneGenerator, parse_size

    syn = cfg.data.synthetic
    h, w = parse_size(syn.size)
    appearances = {"source": appearance_of(syn.source, "game"), "target": appearance_of(syn.target, "real")}

    def unpaired(seed: int, domain: str):
        gen = SceneGenerator(seed=seed, height=h, width=w, appearances=dict(appearances))
        return lambda i: gen.scene(i, domain)

    _render_set(folder / "source_train", syn.n_train, unpaired(syn.seed, "source"), "source train", progress)
    _render_set(folder / "target_train", syn.n_train, unpaired(syn.seed, "target"), "target train", progress)
    _render_set(folder / "target_test", syn.n_test, unpaired(syn.seed + 1000, "target"), "target test", progress)
    paired = SceneGenerator(seed=syn.seed + 2000, height=h, width=w, paired=True, appearances=dict(appearances))
    # a pair is (source image, target image, label); both folders hold the same labels
    _render_set(
        [folder / "quality", folder / PAIRED], syn.n_quality, lambda i: _split(paired.pair(i)), "quality", progress
    )
    counts = {"source_train": syn.n_train, "target_train": syn.n_train, "target_test": syn.n_test}
    return {"label_format": "trainId", "mismatched": "error", **counts, "quality": syn.n_quality, PAIRED: syn.n_quality}


def _split(pair):
    source, target, label = pair
    return [(source, label), (target, label)]


def _link_set(folder: Path, pairs, what: str) -> int:
    """Symbolic links ``folder/images/NAME`` and ``folder/labels/STEM.png`` to the files of ``pairs``
    (the real datasets stay where they are; a set is only named here)."""
    images, labels = folder / "images", folder / "labels"
    for sub in (images, labels):
        sub.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    for image, label in pairs:
        if image.name in seen:
            raise DataError(f"{what}: two frames are named {image.name}; the study needs unique file names")
        seen.add(image.name)
        for link, target in ((images / image.name, image), (labels / f"{image.stem}.png", label)):
            if not link.is_symlink():
                os.symlink(target.resolve(), link)
    return len(pairs)


def _write_real(cfg: StudyConfig, folder: Path) -> dict:
    from translate.segdata import CityscapesDataset, GTA5Dataset

    real = cfg.data.real
    gta5 = GTA5Dataset(real.gta5_root, mismatched=real.mismatched).pairs
    if len(gta5) <= real.n_quality:
        raise DataError(
            f"GTA5 at {real.gta5_root} has {len(gta5)} usable frames; data.real.n_quality={real.n_quality} holds "
            "that many out of training to score translators, leaving none to train on"
        )
    quality, pool = gta5[len(gta5) - real.n_quality :], gta5[: len(gta5) - real.n_quality]
    target_train = CityscapesDataset(real.cityscapes_root, real.target_train_split).pairs
    target_test = CityscapesDataset(real.cityscapes_root, real.target_test_split).pairs
    return {
        "label_format": "id",
        "mismatched": "resize_label" if real.mismatched == "resize_label" else "error",
        "source_train": _link_set(folder / "source_train", pool[: real.n_train], "GTA5"),
        "target_train": _link_set(folder / "target_train", target_train[: real.n_train], "Cityscapes train"),
        "target_test": _link_set(folder / "target_test", target_test[: real.n_test], "Cityscapes test"),
        "quality": _link_set(folder / "quality", quality, "GTA5 held out"),
    }


def write_data(cfg: StudyConfig, folder: Path, progress: bool = True) -> dict:
    """Write (synthetic) or link (real) every set under ``folder``; returns the counts per set."""
    folder.mkdir(parents=True, exist_ok=True)
    index = _write_synthetic(cfg, folder, progress) if cfg.data.kind == "synthetic" else _write_real(cfg, folder)
    from translate.atomic import atomic_write

    atomic_write(folder / INDEX_FILE, lambda tmp: tmp.write_text(json.dumps(index, indent=2)))
    return {k: v for k, v in index.items() if k in (*SETS, PAIRED)}


# --- reading the sets (every later stage) --------------------------------------------------------


def _pairs(folder: Path):
    from translate.segdata.datasets import folder_pairs

    return folder_pairs(folder, "study set")


def load_data(cfg: StudyConfig, folder: Path) -> StudyData:
    """The sets written by ``write_data``, as lazily read datasets with the config's sizes."""
    from translate.synthetic import parse_size

    try:
        index = json.loads((folder / INDEX_FILE).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{folder / INDEX_FILE} cannot be read ({exc}); remove {folder} and rerun") from None
    fmt, mismatched = index["label_format"], index["mismatched"]

    def plain(name: str, **sizes) -> SegmentationSet:
        return SegmentationSet(_pairs(folder / name), fmt, mismatched=mismatched, **sizes)

    if cfg.data.kind == "synthetic":
        paired = plain(PAIRED)
        return StudyData(*(plain(name) for name in SETS), paired)
    real = cfg.data.real
    crop, target = parse_size(real.crop), parse_size(real.target_size)
    return StudyData(
        source_train=plain("source_train", short_side=real.source_short_side, crop=crop),
        target_train=plain("target_train", size=target, crop=crop),
        target_test=plain("target_test", size=target, full_size_labels=True),
        quality=plain("quality", short_side=target[0]),
        quality_target=None,
    )


def translated_set(data: StudyData, folder: Path) -> SegmentationSet:
    """The translated source training images in ``folder`` with the source labels (matched by name),
    sized and cropped as the source set is. Every source image needs its translation."""
    source = data.source_train
    pairs = []
    for image, label in source.pairs:
        translated = folder / f"{image.stem}.png"
        if not translated.is_file():
            raise DataError(
                f"{folder} has no translation of source training image {image.name} "
                f"({len(list(folder.glob('*.png')))} of {len(source)} there); remove {folder} and rerun"
            )
        pairs.append((translated, label))
    return SegmentationSet(
        pairs,
        source.label_format,
        size=source.size,
        short_side=source.short_side,
        crop=source.crop,
        mismatched=source.mismatched,
    )


def stack(dataset, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first ``limit`` samples of a (small, bounded) set as arrays N×H×W×3, N×H×W."""
    n = len(dataset) if limit is None else min(limit, len(dataset))
    samples = [dataset[i] for i in range(n)]
    shapes = {s[0].shape for s in samples}
    if len(shapes) > 1:
        raise DataError(f"samples have different sizes {sorted(shapes)[:3]}; give the set a size")
    return np.stack([s[0] for s in samples]), np.stack([s[1] for s in samples])


def present_classes(dataset) -> list[int]:
    """The trainIds the labels of ``dataset`` show (read one label at a time)."""
    from translate.segdata.classes import IGNORE, NUM_CLASSES

    present = np.zeros(256, dtype=bool)
    for i in range(len(dataset)):
        present[np.unique(dataset.label(i))] = True
    return [int(c) for c in np.flatnonzero(present) if c != IGNORE and c < NUM_CLASSES]
