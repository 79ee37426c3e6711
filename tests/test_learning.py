"""The models learn: pix2pix reproduces a known paired mapping, CycleGAN moves images across domains."""

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
    cfg = load_config(CONFIGS / "pix2pix_reference.yaml", [
        f"out_dir={tmp_path / 'run'}",
        "data.dataset.root=null", f"data.dataset.root_a={tmp_path / 'A'}", f"data.dataset.root_b={tmp_path / 'B'}",
        # no random flips: flipping a pair would reverse the derivative's sign
        "data.preprocess=none", "data.flip=false", "data.batch_size=4",
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
