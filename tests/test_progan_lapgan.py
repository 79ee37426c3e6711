"""Progressive growing (ProGAN) and LAPGAN: the growth schedule and fade-in, equalised learning
rate, pixel norm, the drift term, exact resume in the middle of a fade-in, the Laplacian pyramid,
that each model learns something measurable in a few dozen steps, export, `i2i sample` and
SyntheticMix."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from translate import io
from translate.cli import main
from translate.config import load_config
from translate.distributed import DistEnv
from translate.engine import build_runtime, train, train_step
from translate.errors import ConfigError
from translate.models.progan import drift_penalty, real_at
from translate.nets import SAMPLER_CRITICS, SAMPLERS
from translate.nets.laplacian import gaussian_pyramid, laplacian_pyramid, reconstruct
from translate.nets.progressive import (
    EqualizedConv2d,
    EqualizedLinear,
    Growth,
    PixelNorm,
    growth_at,
    steps_to_full_size,
)
from translate.nets.samplers import minibatch_stddev
from translate.sampling import load_sampler

ROOT = Path(__file__).parents[1]

# --- growth schedule and fade-in ----------------------------------------------------------------


def test_growth_schedule_and_alpha_are_a_function_of_the_step():
    # 3 levels (4, 8, 16), 2 steps stable, 3 steps of fade-in: α = 1/4, 2/4, 3/4 during a fade
    expected = [(0, 1.0), (0, 1.0), (1, 0.25), (1, 0.5), (1, 0.75), (1, 1.0), (1, 1.0)]
    expected += [(2, 0.25), (2, 0.5), (2, 0.75), (2, 1.0), (2, 1.0), (2, 1.0)]
    assert [tuple(growth_at(s, 3, 2, 3)) for s in range(len(expected))] == expected
    assert growth_at(10**6, 3, 2, 3) == Growth(2, 1.0) and Growth(2, 1.0).resolution == 16
    assert steps_to_full_size(3, 2, 3) == 10 and growth_at(9, 3, 2, 3).alpha < 1 == growth_at(10, 3, 2, 3).alpha


def tiny_progan(size=16, **extra):
    torch.manual_seed(0)
    g = SAMPLERS.build({"name": "progan", "noise_dim": 4, "image_size": size, "width": 4, "max_width": 8, **extra})
    d = SAMPLER_CRITICS.build({"name": "progan", "image_size": size, "width": 4, "max_width": 8})
    return g.eval(), d.eval()


def test_fade_in_blends_the_upsampled_old_output_with_the_new_one():
    g, d = tiny_progan()
    z = torch.randn(3, 4)
    with torch.no_grad():
        h = g.stem(g.latent_norm(z))  # the 4×4 features; level 1 (8×8) fades in
        old = F.interpolate(g.to_rgb[0](h), scale_factor=2, mode="nearest")
        new = g.to_rgb[1](g.blocks[1](h))
        assert torch.allclose(g.grow(z, 1, 0.3), 0.3 * new + 0.7 * old, atol=1e-6)
        assert torch.equal(g.grow(z, 1, 1.0), new)
        x = torch.randn(3, 3, 8, 8)  # D: the new level's block on 8×8, blended with the old fromRGB on 4×4
        h = 0.3 * d.blocks[1](d.from_rgb[1](x)) + 0.7 * d.from_rgb[0](F.avg_pool2d(x, 2))
        expected = d.judge(d.final_dense(d.final_conv(minibatch_stddev(h))))
        assert torch.allclose(d.grow(x, 1, 0.3).logit, expected, atol=1e-6)
    assert g(z).shape == (3, 3, 16, 16) and g(z).abs().max() <= 1  # the sampler: full size, α = 1, in range


def test_real_images_fade_like_the_generator():
    images = torch.randn(2, 3, 16, 16)
    at8 = F.avg_pool2d(images, 2)
    assert torch.allclose(real_at(images, Growth(1, 1.0)), at8)
    coarse = F.interpolate(F.avg_pool2d(at8, 2), scale_factor=2, mode="nearest")
    assert torch.allclose(real_at(images, Growth(1, 0.25)), 0.25 * at8 + 0.75 * coarse, atol=1e-6)


# --- layers -------------------------------------------------------------------------------------


def test_equalized_lr_stores_unit_normal_weights_and_scales_them_at_run_time():
    torch.manual_seed(0)
    layer = EqualizedConv2d(64, 32, 3, padding=1, gain=math.sqrt(2))
    assert layer.weight.std().item() == pytest.approx(1.0, abs=0.02)
    c = math.sqrt(2) / math.sqrt(64 * 9)
    assert layer.scale == pytest.approx(c)
    x = torch.randn(2, 64, 5, 5)
    assert torch.allclose(layer(x), F.conv2d(x, layer.weight * c, layer.bias, padding=1), atol=1e-5)
    # the stored weight's gradient is c times the effective weight's: Adam's step then moves the
    # effective weight by about c·lr, the same relative step in every layer
    w_eff = (layer.weight * c).detach().requires_grad_(True)
    F.conv2d(x, w_eff, layer.bias, padding=1).square().sum().backward()
    layer(x).square().sum().backward()
    assert torch.allclose(layer.weight.grad, c * w_eff.grad, rtol=1e-4, atol=1e-6)
    dense = EqualizedLinear(100, 7, gain=1.0)
    v = torch.randn(3, 100)
    assert torch.allclose(dense(v), v @ (dense.weight / 10).T + dense.bias, atol=1e-5)


def test_pixel_norm_gives_unit_mean_square_per_pixel():
    x = torch.randn(4, 16, 5, 5) * (torch.rand(4, 1, 5, 5) + 0.1) * 10
    out = PixelNorm()(x)
    assert torch.allclose(out.pow(2).mean(1), torch.ones(4, 5, 5), atol=1e-4)
    assert torch.allclose(out / out.norm(dim=1, keepdim=True), x / x.norm(dim=1, keepdim=True), atol=1e-5)


def test_drift_term_on_known_inputs():
    logits = torch.tensor([[1.0], [-2.0], [3.0]])
    assert drift_penalty(logits, 0.001).item() == pytest.approx(0.001 * (1 + 4 + 9) / 3)
    assert drift_penalty(logits, 0.0).item() == 0.0


def test_equalized_lr_and_pixel_norm_are_options():
    plain, _ = tiny_progan(equalized_lr=False, pixel_norm=False)
    assert not any(isinstance(m, (EqualizedConv2d, PixelNorm)) for m in plain.modules())
    fancy, _ = tiny_progan()
    assert any(isinstance(m, EqualizedConv2d) for m in fancy.modules())
    assert any(isinstance(m, PixelNorm) for m in fancy.modules())


# --- Laplacian pyramid --------------------------------------------------------------------------


def test_laplacian_pyramid_reconstructs_the_image():
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    pyramid = laplacian_pyramid(image, 3)
    assert [p.shape[-1] for p in pyramid] == [8, 16, 32]
    assert torch.allclose(reconstruct(pyramid), image, atol=1e-6)
    assert torch.equal(pyramid[0], gaussian_pyramid(image, 3)[0])
    flat = torch.full((1, 3, 32, 32), 0.25)  # a flat image has no detail: every residual is 0
    assert all(r.abs().max() < 1e-7 for r in laplacian_pyramid(flat, 3)[1:])


def test_lapgan_sampler_draws_coarse_to_fine():
    torch.manual_seed(0)
    g = SAMPLERS.build({"name": "lapgan", "noise_dim": 4, "image_size": 32, "base_size": 8, "width": 4}).eval()
    assert g.noise_dim == 4 + 16**2 + 32**2
    z = torch.randn(2, g.noise_dim)
    levels = g.pyramid(z)
    assert [x.shape[-1] for x in levels] == [8, 16, 32]
    _, planes = g.split_noise(z)
    with torch.no_grad():  # the fine image is the coarser one upsampled plus the residual drawn for it
        residual = g.residual(2, levels[1], planes[1])
        assert torch.allclose(levels[2], F.interpolate(levels[1], scale_factor=2, mode="bilinear") + residual)
        assert torch.equal(g(z), levels[2].clamp(-1, 1))


# --- through the engine -------------------------------------------------------------------------


def scene_like(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """Images with structure at every scale: a bright top half, a dark bottom half, a red square
    whose place varies, and a little noise."""
    g = torch.Generator().manual_seed(seed)
    images = torch.full((n, 3, size, size), -0.6)
    images[:, 2, : size // 2] = 0.8
    images[:, :2, : size // 2] = 0.3
    q = size // 4
    for i in range(n):
        x = int(torch.randint(0, size - q, (1,), generator=g))
        images[i, 0, size - q - 1 : size - 1, x : x + q] = 0.9
    return (images + 0.05 * torch.randn(images.shape, generator=g)).clamp(-1, 1)


def write_scenes(root: Path, n: int = 8, size: int = 16) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i, image in enumerate(scene_like(n, size)):
        pixels = ((image.permute(1, 2, 0).numpy() + 1) * 127.5).round().astype(np.uint8)
        Image.fromarray(pixels).save(root / f"images/{i:05d}.png")
        Image.fromarray(np.zeros((size, size), np.uint8)).save(root / f"labels/{i:05d}.png")
    return root


PROGAN = [
    "model.name=progan",
    "model.generator={name: progan, noise_dim: 8, image_size: 16, width: 4, max_width: 8}",
    "model.discriminator={name: progan, image_size: 16, width: 4, max_width: 8}",
    "model.stabilise_steps=2",
    "model.fade_steps=3",
    "optim.lr_g=0.001",
    "optim.lr_d=0.001",
    "optim.betas=[0.0, 0.99]",
    "optim.schedule=constant",
    "data.batch_size=4",
    "engine.device=cpu",
    "engine.deterministic=true",
    "engine.progress=false",
    "engine.tensorboard=false",
    "engine.sample_every=1000",
    "engine.save_every=1000",
    "engine.ema_decay=0.9",
]


def progan_cfg(data: Path, out: Path, steps: int, *extra: str):
    return load_config(
        None,
        [
            *PROGAN,
            f"data.dataset={{name: label_folders, root: {data}}}",
            f"out_dir={out}",
            f"optim.max_steps={steps}",
            *extra,
        ],
    )


def test_progan_resumes_bit_identically_in_the_middle_of_a_fade_in(tmp_path):
    data = write_scenes(tmp_path / "data")
    # steps 0-1 at 4×4, 2-4 fade in 8×8, 5-6 stable, 7-9 fade in 16×16: stop after step 3 (α = 1/2)
    assert growth_at(3, 3, 2, 3) == Growth(1, 0.5)
    train(progan_cfg(data, tmp_path / "straight", 8))
    first = train(progan_cfg(data, tmp_path / "split", 8, "engine.stop_at_step=4"))
    assert first.step == 4 and 0 < first.model.growth.alpha < 1  # the last step trained was inside a fade
    second = train(progan_cfg(data, tmp_path / "split", 8))
    assert second.step == 8 and second.model.growth == Growth(2, 0.25)
    ref = io.load_checkpoint(tmp_path / "straight/checkpoints/ckpt_00000008.pt")
    got = io.load_checkpoint(tmp_path / "split/checkpoints/ckpt_00000008.pt")
    assert ref["model"].keys() == got["model"].keys()
    for key, value in ref["model"].items():
        assert torch.equal(value, got["model"][key]), key
    for key, value in ref["ema"]["G"].items():
        assert torch.equal(value, got["ema"]["G"][key]), key


def mean_image_gap(fake: torch.Tensor, real: torch.Tensor) -> float:
    """How far the average generated image is from the average real one (mean squared difference
    per pixel): a moment-matching distance any GAN that learns the data's layout reduces."""
    return float((fake.mean(0) - real.mean(0)).pow(2).mean())


def test_progan_learns_the_mean_image_in_a_few_dozen_steps(tmp_path):
    cfg = load_config(
        None,
        [
            *PROGAN,
            "model.generator={name: progan, noise_dim: 8, image_size: 8, width: 8, max_width: 8}",
            "model.discriminator={name: progan, image_size: 8, width: 8, max_width: 8}",
            "model.stabilise_steps=20",
            "model.fade_steps=10",
            "optim.lr_g=0.005",
            "optim.lr_d=0.005",
            "optim.max_steps=100",
            "data.dataset={name: digits}",
            f"out_dir={tmp_path}",
        ],
    )
    rt = build_runtime(cfg, DistEnv(), steps_per_epoch=10)
    real = scene_like(32, 8)
    z = torch.randn(256, 8, generator=torch.Generator().manual_seed(1))
    before = mean_image_gap(rt.model.G.grow(z, 1).detach(), real)
    for step in range(100):
        logs = train_step(rt, {"image": real[(step * 16) % 32 :][:16]})
    after = mean_image_gap(rt.model.G.grow(z, 1).detach(), real)
    assert logs["level"] == 1 and logs["alpha"] == 1.0  # through a fade-in to the last level
    assert after < 0.3 * before, (before, after)  # measured: 0.58 -> 0.09 (seeds 1, 2: 0.41 -> 0.04, 0.75 -> 0.17)


def test_lapgan_learns_every_level_in_a_few_dozen_steps(tmp_path):
    cfg = load_config(
        None,
        [
            "model.name=lapgan",
            "model.generator={name: lapgan, noise_dim: 8, image_size: 16, base_size: 8, width: 8, residual_width: 8}",
            "model.d_width=8",
            "optim.lr_g=0.005",
            "optim.lr_d=0.005",
            "optim.betas=[0.5, 0.999]",
            "optim.schedule=constant",
            "optim.max_steps=100",
            "data.dataset={name: digits}",
            "engine.device=cpu",
            "engine.progress=false",
            "engine.tensorboard=false",
            f"out_dir={tmp_path}",
        ],
    )
    rt = build_runtime(cfg, DistEnv(), steps_per_epoch=10)
    model, real = rt.model, scene_like(32, 16)
    z = torch.randn(256, model.G.noise_dim, generator=torch.Generator().manual_seed(1))
    targets, conditions = model.real_levels(real)

    def measures() -> tuple[float, float, float]:
        """Mean-image gaps of the sampled coarse and fine images, and how far the residual drawn for
        real coarse images is from the real residuals in spread (std)."""
        model.G.eval()
        with torch.no_grad():
            coarse, fine = model.G.pyramid(z)
            _, planes = model.G.split_noise(z[:32])
            residual = model.G.residual(1, targets[0], planes[0])
        model.G.train()
        spread_gap = abs(float(residual.std()) - float(targets[1].std()))
        return mean_image_gap(coarse, targets[0]), mean_image_gap(fine, real), spread_gap

    before = measures()
    for step in range(100):
        logs = train_step(rt, {"image": real[(step * 16) % 32 :][:16]})
    after = measures()
    assert {"D0", "D1", "G0", "G1"} <= set(logs) and torch.equal(
        conditions[1], F.interpolate(targets[0], scale_factor=2, mode="bilinear")
    )
    # measured: coarse 0.31 -> 0.03, fine 0.33 -> 0.04, residual spread gap 0.11 -> 0.05
    assert after[0] < 0.3 * before[0] and after[1] < 0.3 * before[1] and after[2] < 0.6 * before[2], (before, after)


def test_progan_and_lapgan_export_samplers_that_i2i_sample_draws(tmp_path):
    data = write_scenes(tmp_path / "data")
    progan = train(progan_cfg(data, tmp_path / "progan", 3))
    lapgan = train(
        load_config(
            None,
            [
                "model.name=lapgan",
                "model.generator={name: lapgan, noise_dim: 4, image_size: 16, base_size: 8, width: 4, residual_width: 4}",
                "model.d_width=4",
                f"data.dataset={{name: label_folders, root: {data}}}",
                "data.batch_size=4",
                "optim.max_steps=2",
                "engine.device=cpu",
                "engine.progress=false",
                "engine.tensorboard=false",
                f"out_dir={tmp_path / 'lapgan'}",
            ],
        )
    )
    for result, model in ((progan, "progan"), (lapgan, "lapgan")):
        sampler = load_sampler(result.exports["G"])
        assert sampler.info["model"] == model
        a = sampler.sample(5, seed=3)
        assert a.shape == (5, 3, 16, 16) and a.abs().max() <= 1
        assert torch.equal(a, sampler.sample(5, seed=3)) and not torch.equal(a, sampler.sample(5, seed=4))
        out = tmp_path / f"drawn_{model}"
        assert (
            main(["sample", "--checkpoint", str(result.exports["G"]), "--n", "3", "--seed", "3", "--output", str(out)])
            == 0
        )
        drawn = np.asarray(Image.open(out / "sample_00000.png"), np.float32) / 127.5 - 1
        assert drawn.shape == (16, 16, 3)
        assert np.abs(drawn - a[0].permute(1, 2, 0).numpy()).max() <= 1 / 127.5 + 1e-6
    # the ProGAN export is the final-resolution generator, α = 1: its weights are the EMA's
    ema = io.load_checkpoint(tmp_path / "progan/checkpoints/ckpt_00000003.pt")["ema"]["G"]
    for key, value in load_sampler(progan.exports["G"]).net.state_dict().items():
        assert torch.equal(value, ema[key]), key


def test_unconditional_samplers_mix_into_datasets(tmp_path):
    from augment.mixing import SyntheticMix
    from translate.data.label_folders import LabelFolders

    data = write_scenes(tmp_path / "data")
    torch.manual_seed(0)
    spec = {"name": "progan", "noise_dim": 4, "image_size": 16, "width": 4, "max_width": 8}
    path = io.export_network(
        tmp_path / "G.safetensors", SAMPLERS.build(spec).eval(), spec, "sampler", {"model": "progan"}
    )
    real = LabelFolders(str(data))
    mix = SyntheticMix(real, load_sampler(path), ratio=0.5, seed=1)
    assert len(mix) == 16 and mix.is_synthetic(8) and not mix.is_synthetic(7)
    item = mix[9]
    assert set(item) == {"image"} and item["image"].shape == (3, 16, 16)
    assert item["image"].min() >= -1 and item["image"].max() <= 1
    assert torch.equal(item["image"], SyntheticMix(real, load_sampler(path), ratio=0.5, seed=1)[9]["image"])
    with pytest.raises(ValueError, match="balance needs a class-conditional sampler"):
        SyntheticMix(real, load_sampler(path), ratio=0.5, balance=True)


# --- bad inputs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides,message",
    [
        (
            ["model.generator={name: progan, image_size: 48}", "model.discriminator={name: progan, image_size: 48}"],
            "power-of-two image_size >= 8, got 48",
        ),
        (["model.discriminator={name: progan, image_size: 32}"], "image_size=16 and model.discriminator.image_size=32"),
        (["model.fade_steps=0"], "fade_steps must be >= 1"),
        (["model.drift=-1"], "drift must be >= 0"),
        (["model.generator={name: progan, image_size: 16, width: 32, max_width: 8}"], "1 <= width <= max_width"),
    ],
)
def test_bad_progan_options_are_one_line_errors(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        build_runtime(progan_cfg(tmp_path, tmp_path, 2, *overrides), DistEnv(), 4)


def test_data_of_the_wrong_size_is_named(tmp_path):
    rt = build_runtime(progan_cfg(tmp_path, tmp_path, 2), DistEnv(), 4)
    with pytest.raises(ConfigError, match=r"makes \(3, 16, 16\) images; the data gives \(3, 32, 32\)"):
        train_step(rt, {"image": torch.zeros(4, 3, 32, 32)})


@pytest.mark.parametrize(
    "spec,message",
    [
        ({"base_size": 12, "image_size": 48}, "powers of two 8 <= base_size < image_size"),
        ({"base_size": 32, "image_size": 32}, "powers of two 8 <= base_size < image_size"),
        ({"classes": 3}, "unconditional"),
    ],
)
def test_bad_lapgan_options_are_one_line_errors(spec, message):
    with pytest.raises(ConfigError, match=message):
        SAMPLERS.build({"name": "lapgan", **spec})


def test_lapgan_refuses_weight_clipping(tmp_path):
    cfg = load_config(None, ["model.name=lapgan", "model.gan_loss=wgan", "engine.device=cpu", f"out_dir={tmp_path}"])
    with pytest.raises(ConfigError, match="does not clip weights"):
        build_runtime(cfg, DistEnv(), 4)


def test_the_shipped_configs_build(tmp_path):
    for name in ("progan_synth64", "lapgan_synth64", "dcgan_synth64"):
        cfg = load_config(ROOT / f"configs/{name}.yaml", [f"out_dir={tmp_path}"])
        model = build_runtime(cfg, DistEnv(), 4).model
        assert model.G(torch.randn(2, model.G.noise_dim)).shape == (2, 3, 64, 64)


# --- engine options: AMP, gradient checkpointing, two processes ---------------------------------


@pytest.mark.parametrize("model", ["progan", "lapgan"])
def test_bf16_autocast_steps_stay_finite(tmp_path, model):
    data = write_scenes(tmp_path / "data")
    if model == "progan":
        cfg = progan_cfg(data, tmp_path / "run", 3, "engine.amp=bf16", "model.stabilise_steps=1", "model.fade_steps=1")
    else:
        cfg = load_config(
            None, [*LAPGAN_TINY, f"data.dataset={{name: label_folders, root: {data}}}", "engine.amp=bf16"]
        )
    rt = build_runtime(cfg, DistEnv(), steps_per_epoch=2)
    assert rt.amp == "bf16"
    images = scene_like(4, 16)
    for _ in range(3):
        logs = train_step(rt, {"image": images})
    assert all(torch.isfinite(v) for v in logs.values())


LAPGAN_TINY = [
    "model.name=lapgan",
    "model.generator={name: lapgan, noise_dim: 4, image_size: 16, base_size: 8, width: 4, residual_width: 4}",
    "model.d_width=4",
    "data.batch_size=4",
    "optim.max_steps=3",
    "engine.device=cpu",
    "engine.progress=false",
    "engine.tensorboard=false",
]


@pytest.mark.parametrize("name", ["progan", "lapgan"])
def test_gradient_checkpointing_gives_the_same_gradients(name):
    torch.manual_seed(0)
    spec = {"name": name, "noise_dim": 4, "image_size": 16, "width": 4}
    g = SAMPLERS.build({**spec, "max_width": 8} if name == "progan" else {**spec, "base_size": 8})
    z = torch.randn(3, g.noise_dim)
    grads = []
    for flag in (False, True):
        g.zero_grad()
        g.set_grad_checkpointing(flag)
        torch.manual_seed(1)
        (g.grow(z, 2, 0.5) if name == "progan" else g.pyramid(z)[-1]).square().sum().backward()
        grads.append([p.grad for p in g.parameters()])  # None for the levels not used
    for x, y in zip(*grads, strict=True):
        assert (x is None and y is None) or torch.allclose(x, y, atol=1e-6)
    assert sum(x is not None for x in grads[0]) > len(grads[0]) // 2


DDP_WORKER = """
import os, sys, torch
from translate.config import load_config
from translate.engine import train
result = train(load_config(None, sys.argv[2:]))
torch.save({k: v for k, v in result.model.state_dict().items()}, f"{sys.argv[1]}/weights_rank{os.environ['RANK']}.pt")
"""


@pytest.mark.slow
def test_two_processes_grow_in_step_and_resume_mid_fade(tmp_path):
    import socket
    import subprocess
    import sys

    data = write_scenes(tmp_path / "data")
    (tmp_path / "worker.py").write_text(DDP_WORKER)
    overrides = [*PROGAN, f"data.dataset={{name: label_folders, root: {data}}}", f"out_dir={tmp_path / 'run'}"]
    overrides += ["optim.max_steps=6", "engine.deterministic=false"]

    def torchrun(*extra: str) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}"]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        proc = subprocess.run(
            [*cmd, str(tmp_path / "worker.py"), str(tmp_path), *overrides, *extra],
            env=env,
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]

    torchrun("engine.stop_at_step=3")  # stops inside the 8×8 fade-in (steps 2-4)
    torchrun()
    ranks = [torch.load(tmp_path / f"weights_rank{r}.pt") for r in (0, 1)]
    for key, value in ranks[0].items():
        assert torch.equal(value, ranks[1][key]), key
    assert io.load_checkpoint(tmp_path / "run/checkpoints/ckpt_00000006.pt")["step"] == 6
