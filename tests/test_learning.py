"""The models learn: pix2pix a paired spatial mapping no per-pixel colour map can fake, CycleGAN moves
images across domains."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import smooth_images, tiny_cyclegan_overrides, write_folder

import translate
from translate.config import load_config
from translate.data.images import to_image, to_tensor
from translate.engine import train

CONFIGS = Path(__file__).parents[1] / "configs"
PSNR_BOUND = 20.0  # dB on held-out images; the U-Net reaches about 24, the best per-pixel colour map about 11


def spatial_mapping(images: np.ndarray) -> np.ndarray:
    """B(x) = 128 + 2 (A(x+1) - A(x-1)) per channel: a horizontal derivative (edges replicated).

    B at a pixel does not depend on A at that pixel, so no per-pixel colour map (a bias, a 1x1
    conv, any affine or channel-mixing map) can produce it; a network must look at neighbours.
    """
    padded = np.pad(images.astype(np.float32), ((0, 0), (0, 0), (1, 1), (0, 0)), mode="edge")
    return (128 + 2 * (padded[:, :, 2:] - padded[:, :, :-2])).round().clip(0, 255).astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / mse)


def mean_psnr(outputs, targets) -> float:
    return float(np.mean([psnr(o, t) for o, t in zip(outputs, targets, strict=True)]))


def best_per_pixel_affine_map(inputs: np.ndarray, targets: np.ndarray):
    """The least-squares colour map B = M [A, 1] fitted on the training pairs: the best that a bias
    or a 1x1 convolution (any per-pixel affine colour map) can do on them."""
    design = np.c_[inputs.reshape(-1, 3), np.ones(inputs.size // 3)].astype(np.float64)
    matrix, *_ = np.linalg.lstsq(design, targets.reshape(-1, 3).astype(np.float64), rcond=None)

    def apply(images: np.ndarray) -> np.ndarray:
        flat = np.c_[images.reshape(-1, 3), np.ones(images.size // 3)] @ matrix
        return flat.round().clip(0, 255).astype(np.uint8).reshape(images.shape)

    return apply


@pytest.mark.slow
def test_pix2pix_learns_a_spatial_mapping_no_per_pixel_colour_map_can(tmp_path):
    train_a = smooth_images(32, 16, seed=1)
    write_folder(tmp_path / "A", train_a)
    write_folder(tmp_path / "B", spatial_mapping(train_a))
    cfg = load_config(
        CONFIGS / "pix2pix_reference.yaml",
        [
            f"out_dir={tmp_path / 'run'}",
            "data.dataset.root=null",
            f"data.dataset.root_a={tmp_path / 'A'}",
            f"data.dataset.root_b={tmp_path / 'B'}",
            # no random flips: flipping a pair would reverse the derivative's sign
            "data.preprocess=none",
            "data.flip=false",
            "data.batch_size=4",
            "model.generator.ngf=16",
            "model.generator.num_downs=4",
            "model.generator.dropout=0.0",
            "model.discriminator.ndf=8",
            "model.discriminator.n_layers=2",
            "optim.lr_g=0.002",
            "optim.max_steps=240",
            "optim.schedule=linear",
            "optim.epochs_constant=1",
            "optim.epochs_decay=1",
            "engine.log_every=40",
            "engine.sample_every=1000",
            "engine.save_every=1000",
            "engine.progress=false",
            "engine.tensorboard=false",
        ],
    )
    result = train(cfg)
    generator = translate.load_generator(result.exports["G"])
    test_a = smooth_images(8, 16, seed=99)  # held-out inputs
    targets = spatial_mapping(test_a)
    with torch.no_grad():
        outputs = [to_image(generator(to_tensor(img)[None])) for img in test_a]
    score = mean_psnr(outputs, targets)
    # the naive learners fail the same bound: copying the input, and the best per-pixel colour map
    identity_score = mean_psnr(test_a, targets)
    affine_score = mean_psnr(best_per_pixel_affine_map(train_a, spatial_mapping(train_a))(test_a), targets)
    assert identity_score < 12, f"identity {identity_score:.1f} dB"
    assert affine_score < PSNR_BOUND - 5, f"best per-pixel affine colour map {affine_score:.1f} dB"
    assert score > PSNR_BOUND, f"held-out PSNR {score:.1f} dB (best per-pixel colour map {affine_score:.1f} dB)"


def read_metrics(path: Path) -> list[dict[str, float]]:
    with open(path, newline="") as fh:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(fh)]


def colour_and_contrast(images: list[np.ndarray]) -> tuple[np.ndarray, float]:
    """Mean colour and mean per-image spatial spread (standard deviation per channel) of ``images``."""
    pixels = [img.reshape(-1, 3).astype(np.float64) for img in images]
    return np.mean([p.mean(0) for p in pixels], axis=0), float(np.mean([p.std(0).mean() for p in pixels]))


@pytest.fixture
def flat_and_contrasty(tmp_path: Path) -> tuple[Path, Path]:
    """Unpaired domains that differ in colour *and* contrast: A dark, bluish and flat; B warm with
    about 3.5 times the spread. Adding a bias can match B's colour but leaves A's contrast."""
    base = smooth_images(16, 24, seed=0).astype(np.float32) - 127.5
    a = base[:8] * 0.25 + np.array([60, 70, 110])
    b = base[8:] * 0.9 + np.array([150, 110, 80])
    return (
        write_folder(tmp_path / "A", a.clip(0, 255).astype(np.uint8)),
        write_folder(tmp_path / "B", b.clip(0, 255).astype(np.uint8)),
    )


@pytest.mark.slow
def test_cyclegan_cycle_loss_falls_and_outputs_move_to_target(flat_and_contrasty, tmp_path):
    from translate.data.images import list_images, read_image

    a, b = flat_and_contrasty
    overrides = tiny_cyclegan_overrides(a, b, tmp_path / "run", steps=120)
    overrides += [
        "model.generator.ngf=8",
        "model.generator.n_blocks=2",
        "engine.log_every=10",
        "engine.save_every=1000",
        "engine.sample_every=60",
        "engine.deterministic=false",
        "optim.lr_g=0.002",
        "optim.lr_d=0.002",
        "engine.tensorboard=true",
    ]
    result = train(load_config(CONFIGS / "cyclegan_reference.yaml", overrides))
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    assert rows[-1]["cycle"] < 0.75 * rows[0]["cycle"], [r["cycle"] for r in rows]
    assert sorted(p.name for p in (tmp_path / "run" / "samples").iterdir()) == [
        "step_00000060.png",
        "step_00000120.png",
    ]
    assert list((tmp_path / "run" / "tb").glob("events.out.tfevents.*"))  # TensorBoard scalars and grids

    real_a = [read_image(p) for p in list_images(a)]
    colour_a, spread_a = colour_and_contrast(real_a)
    colour_b, spread_b = colour_and_contrast([read_image(p) for p in list_images(b)])
    g_ab = translate.load_generator(result.exports["G_AB"])
    with torch.no_grad():
        fakes = [to_image(g_ab(to_tensor(img)[None])) for img in real_a]
    colour_fake, spread_fake = colour_and_contrast(fakes)
    before, after = np.linalg.norm(colour_a - colour_b), np.linalg.norm(colour_fake - colour_b)
    assert after < 0.35 * before, f"colour distance to B: {before:.1f} -> {after:.1f}"
    # the naive translator, A plus the colour difference, moves the colour but not the contrast
    shifted = [(img + (colour_b - colour_a)).clip(0, 255) for img in real_a]
    assert colour_and_contrast(shifted)[1] <= spread_a + 1e-6
    # G_AB also raised the contrast, a quarter of the way or more (about 40 % in 120 steps)
    gained = (spread_fake - spread_a) / (spread_b - spread_a)
    assert gained > 0.25, f"contrast A {spread_a:.1f}, B {spread_b:.1f}, translated {spread_fake:.1f}"
