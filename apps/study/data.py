"""The study's data stage: every set as arrays (images N×H×W×3 uint8, trainId labels N×H×W), cached
in the run folder, plus the two training folders the translators read.

Sets: ``source_train`` (labelled source), ``target_train`` (target images; its labels serve only
the oracle row), ``target_test`` (labelled target: every row is scored here) and ``quality``
(source images with labels, and where the domain allows it the *paired* target image of the same
layout, to score translators).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from translate.errors import ConfigError

from .config import StudyConfig

SETS = ("source_train", "target_train", "target_test", "quality")


@dataclass
class StudyData:
    source_train: tuple[np.ndarray, np.ndarray]
    target_train: tuple[np.ndarray, np.ndarray]
    target_test: tuple[np.ndarray, np.ndarray]
    quality: tuple[np.ndarray, np.ndarray, np.ndarray | None]  # source, labels, paired target


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
    parse_size(real.size)
    folder_pairs(real.gta5_root, "GTA5")
    cityscapes_pairs(real.cityscapes_root, real.target_train_split)
    cityscapes_pairs(real.cityscapes_root, real.target_test_split)


def _synthetic(cfg: StudyConfig, progress: bool) -> StudyData:
    from tqdm.auto import tqdm

    from translate.synthetic import SceneGenerator, parse_size

    syn = cfg.data.synthetic
    h, w = parse_size(syn.size)
    appearances = {"source": appearance_of(syn.source, "game"), "target": appearance_of(syn.target, "real")}

    def unpaired(seed: int, domain: str, n: int, what: str):
        gen = SceneGenerator(seed=seed, height=h, width=w, appearances=dict(appearances))
        scenes = [
            gen.scene(i, domain) for i in tqdm(range(n), desc=f"data: {what}", unit="scene", disable=not progress)
        ]
        return np.stack([s[0] for s in scenes]), np.stack([s[1] for s in scenes])

    source_train = unpaired(syn.seed, "source", syn.n_train, "source train")
    target_train = unpaired(syn.seed, "target", syn.n_train, "target train")
    target_test = unpaired(syn.seed + 1000, "target", syn.n_test, "target test")
    paired = SceneGenerator(seed=syn.seed + 2000, height=h, width=w, paired=True, appearances=dict(appearances))
    pairs = [
        paired.pair(i)
        for i in tqdm(range(syn.n_quality), desc="data: paired quality scenes", unit="scene", disable=not progress)
    ]
    quality = (np.stack([p[0] for p in pairs]), np.stack([p[2] for p in pairs]), np.stack([p[1] for p in pairs]))
    return StudyData(source_train, target_train, target_test, quality)


def _real(cfg: StudyConfig, progress: bool) -> StudyData:
    import albumentations as A
    import cv2
    from tqdm.auto import tqdm

    from translate.segdata import CityscapesDataset, GTA5Dataset
    from translate.synthetic import parse_size

    real = cfg.data.real
    h, w = parse_size(real.size)
    resize = A.Resize(h, w, interpolation=cv2.INTER_AREA, mask_interpolation=cv2.INTER_NEAREST)

    def arrays(dataset, limit, what):
        n = len(dataset) if limit is None else min(limit, len(dataset))
        samples = [dataset[i] for i in tqdm(range(n), desc=f"data: {what}", unit="image", disable=not progress)]
        return np.stack([s[0] for s in samples]), np.stack([s[1] for s in samples])

    source_train = arrays(
        GTA5Dataset(real.gta5_root, transform=resize, mismatched=real.mismatched), real.n_train, "GTA5"
    )
    target_train = arrays(
        CityscapesDataset(real.cityscapes_root, real.target_train_split, transform=resize),
        real.n_train,
        "Cityscapes train",
    )
    target_test = arrays(
        CityscapesDataset(real.cityscapes_root, real.target_test_split, transform=resize),
        real.n_test,
        "Cityscapes test",
    )
    n = min(real.n_quality, len(source_train[0]))
    quality = (source_train[0][:n], source_train[1][:n], None)
    return StudyData(source_train, target_train, target_test, quality)


def build_data(cfg: StudyConfig, progress: bool = True) -> StudyData:
    return _synthetic(cfg, progress) if cfg.data.kind == "synthetic" else _real(cfg, progress)


def label_folder(folder: Path, name: str) -> Path:
    """Where the trainId labels of training set ``name`` lie as PNGs (beside ``folder/name``'s
    images; the segmenters' datasets read both)."""
    return folder / "labels" / name


def save_data(data: StudyData, folder: Path) -> None:
    """Arrays to ``folder/*.npz``, the training images to ``folder/{source,target}_train/`` (read by
    the translators and segmenters) and their labels to ``folder/labels/{source,target}_train/``."""
    from translate.data.images import write_image
    from translate.io import atomic_write

    from .segmenter import write_label

    folder.mkdir(parents=True, exist_ok=True)
    for domain, (images, labels) in (("source_train", data.source_train), ("target_train", data.target_train)):
        out, label_out = folder / domain, label_folder(folder, domain)
        out.mkdir(exist_ok=True)
        label_out.mkdir(parents=True, exist_ok=True)
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            write_image(out / f"{i:06d}.png", image)
            write_label(label_out / f"{i:06d}.png", label)
    for name in SETS:
        arrays = getattr(data, name)
        payload = {f"a{i}": a for i, a in enumerate(arrays) if a is not None}
        atomic_write(folder / f"{name}.npz", lambda tmp, p=payload: _savez(tmp, p))


def _savez(path: Path, arrays: dict) -> None:
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def load_data(folder: Path) -> StudyData:
    sets = {}
    for name in SETS:
        with np.load(folder / f"{name}.npz") as z:
            arrays = [z[f"a{i}"] for i in range(len(z.files))]
        if name == "quality" and len(arrays) == 2:
            arrays.append(None)
        sets[name] = tuple(arrays)
    return StudyData(**sets)
