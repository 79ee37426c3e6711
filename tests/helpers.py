"""Helpers shared by tests: tiny synthetic image folders and small-model config overrides."""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np


def smooth_images(n: int, size: int, seed: int) -> np.ndarray:
    """``n`` smooth random RGB images (uint8, n×size×size×3): low-frequency noise, learnable by
    tiny networks in a few hundred steps, yet different enough from each other to need a mapping."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, size=(n, 4, 4, 3)).astype(np.float32)
    return (
        np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_CUBIC) for c in coarse])
        .clip(0, 255)
        .astype(np.uint8)
    )


def write_folder(folder: Path, images: np.ndarray, prefix: str = "img") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        cv2.imwrite(str(folder / f"{prefix}_{i:03d}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return folder


def tiny_cyclegan_overrides(root_a: Path, root_b: Path, out_dir: Path, steps: int = 6) -> list[str]:
    """Overrides that make configs/cyclegan_reference.yaml small enough for a CPU test."""
    return [
        f"out_dir={out_dir}",
        f"data.dataset.root_a={root_a}",
        f"data.dataset.root_b={root_b}",
        "data.load_size=20",
        "data.crop_size=16",
        "model.generator.ngf=4",
        "model.generator.n_blocks=1",
        "model.discriminator.ndf=4",
        "model.discriminator.n_layers=2",
        "model.pool_size=3",
        f"optim.max_steps={steps}",
        "engine.log_every=2",
        "engine.sample_every=3",
        "engine.save_every=3",
        "engine.progress=false",
        "engine.tensorboard=false",
        "engine.deterministic=true",
    ]


def bench_train_args(*argv: str) -> argparse.Namespace:
    """The arguments ``i2i bench train ARGV`` hands to ``translate.benchmarks.train.measure``, read
    by the command's own parser (so its defaults, e.g. ``threads``, are the real ones)."""
    from translate.benchmarks import train

    parser = argparse.ArgumentParser()
    train.register(parser.add_subparsers())
    return parser.parse_args(["train", *argv])
