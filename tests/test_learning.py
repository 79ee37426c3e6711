"""The models learn: pix2pix reproduces a known paired mapping, CycleGAN moves images across domains."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from helpers import smooth_images, tiny_cyclegan_overrides, write_folder

import translate
from translate.config import load_config
from translate.data.images import to_image, to_tensor
from translate.engine import train

CONFIGS = Path(__file__).parents[1] / "configs"


def known_mapping(images: np.ndarray) -> np.ndarray:
    """A colour mapping no global gain can fake: channels rotated and inverted."""
    return 255 - images[..., [2, 0, 1]]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / mse)


def test_pix2pix_learns_a_paired_mapping(tmp_path):
    train_a = smooth_images(32, 16, seed=1)
    write_folder(tmp_path / "A", train_a)
    write_folder(tmp_path / "B", known_mapping(train_a))
    cfg = load_config(CONFIGS / "pix2pix_reference.yaml", [
        f"out_dir={tmp_path / 'run'}",
        "data.dataset.root=null", f"data.dataset.root_a={tmp_path / 'A'}", f"data.dataset.root_b={tmp_path / 'B'}",
        "data.preprocess=none", "data.batch_size=4",
        "model.generator.ngf=16", "model.generator.num_downs=4", "model.generator.dropout=0.0",
        "model.discriminator.ndf=8", "model.discriminator.n_layers=2",
        "optim.lr_g=0.002", "optim.max_steps=240", "optim.schedule=linear",
        "optim.epochs_constant=1", "optim.epochs_decay=1",
        "engine.log_every=40", "engine.sample_every=1000", "engine.save_every=1000",
        "engine.progress=false", "engine.tensorboard=false",
    ])
    result = train(cfg)
    generator = translate.load_generator(result.exports["G"])
    test_a = smooth_images(8, 16, seed=99)  # held-out inputs
    with torch.no_grad():
        out = [to_image(generator(to_tensor(img)[None])) for img in test_a]
    score = np.mean([psnr(o, t) for o, t in zip(out, known_mapping(test_a))])
    identity_score = np.mean([psnr(a, t) for a, t in zip(test_a, known_mapping(test_a))])
    assert identity_score < 12  # the mapping is far from the identity
    assert score > 24, f"held-out PSNR {score:.1f} dB"


def read_metrics(path: Path) -> list[dict[str, float]]:
    with open(path, newline="") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def test_cyclegan_cycle_loss_falls_and_outputs_move_to_target(tiny_unpaired, tmp_path):
    a, b = tiny_unpaired
    overrides = tiny_cyclegan_overrides(a, b, tmp_path / "run", steps=120)
    overrides += ["model.generator.ngf=8", "model.generator.n_blocks=2", "engine.log_every=10",
                  "engine.save_every=1000", "engine.sample_every=60", "engine.deterministic=false", "optim.lr_g=0.001",
                  "optim.lr_d=0.001", "engine.tensorboard=true"]
    result = train(load_config(CONFIGS / "cyclegan_reference.yaml", overrides))
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    assert rows[-1]["cycle"] < 0.75 * rows[0]["cycle"], [r["cycle"] for r in rows]
    assert sorted(p.name for p in (tmp_path / "run" / "samples").iterdir()) == ["step_00000060.png", "step_00000120.png"]
    assert list((tmp_path / "run" / "tb").glob("events.out.tfevents.*"))  # TensorBoard scalars and grids

    def mean_colour(folder: Path) -> np.ndarray:
        from translate.data.images import list_images, read_image

        return np.mean([read_image(p).reshape(-1, 3).mean(0) for p in list_images(folder)], axis=0)

    mean_a, mean_b = mean_colour(a), mean_colour(b)
    g_ab = translate.load_generator(result.exports["G_AB"])
    from translate.data.images import list_images, read_image

    with torch.no_grad():
        fakes = [to_image(g_ab(to_tensor(read_image(p))[None])) for p in list_images(a)]
    mean_fake = np.mean([f.reshape(-1, 3).mean(0) for f in fakes], axis=0)
    before = np.linalg.norm(mean_a - mean_b)
    after = np.linalg.norm(mean_fake - mean_b)
    assert after < 0.35 * before, f"colour distance to B: {before:.1f} -> {after:.1f}"
