"""Model-level behaviour through the real engine (Adam, grad scaler, gradient averaging): batched
calls change nothing, pix2pix needs pairs and composes its terms, WGAN clips its critic, the
history pool is replayable."""

from __future__ import annotations

import copy

import pytest
import torch

from translate.config import load_config
from translate.distributed import DistEnv
from translate.engine import build_runtime, train_step
from translate.models.pool import ImagePool

TINY_CYCLEGAN = [
    "model.name=cyclegan",
    "model.generator={name: resnet, ngf: 4, n_blocks: 1}",
    "model.discriminator={name: patchgan, ndf: 4, n_layers: 2}",
    "model.pool_size=0",
    "optim.max_steps=10",
    "engine.device=cpu",
]


def runtime(overrides: list[str]):
    return build_runtime(load_config(None, overrides), DistEnv(), steps_per_epoch=1)


def random_batch(seed: int, n: int = 2, size: int = 16) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.rand(n, 3, size, size, generator=g) * 2 - 1 for k in ("A", "B")}


@pytest.mark.parametrize("gan_loss", ["lsgan", "wgan-gp"])
def test_batched_calls_give_the_same_steps(gan_loss):
    batched = runtime([*TINY_CYCLEGAN, f"model.gan_loss={gan_loss}"])
    separate = runtime([*TINY_CYCLEGAN, f"model.gan_loss={gan_loss}"])
    separate.model.batch_generator_calls = separate.model.batch_discriminator_calls = False
    assert batched.model.batch_generator_calls and batched.model.batch_discriminator_calls
    for step in range(2):
        batch = random_batch(step)
        torch.manual_seed(step)
        logs_b = train_step(batched, batch)
        torch.manual_seed(step)
        logs_s = train_step(separate, batch)
        assert set(logs_b) == set(logs_s)
        for key in logs_s:
            torch.testing.assert_close(logs_b[key], logs_s[key], rtol=1e-4, atol=1e-5, msg=key)
    # Adam moves every weight by about lr whatever its gradient's size, so the near-zero (float
    # noise) gradients of conv biases before instance norm can differ in sign: those may differ
    # by up to 2·lr per step; everything else agrees closely.
    lr = batched.cfg.optim.lr_g
    for (name, p_b), p_s in zip(batched.model.named_parameters(), separate.model.parameters(), strict=True):
        assert (p_b - p_s).abs().max() <= 4 * lr + 1e-6, name
        if not name.endswith("bias"):
            torch.testing.assert_close(p_b, p_s, rtol=1e-3, atol=1e-5, msg=name)


def test_batch_norm_nets_are_not_batched():
    rt = runtime([*TINY_CYCLEGAN, "model.generator={name: resnet, ngf: 4, n_blocks: 1, norm: batch}"])
    assert not rt.model.batch_generator_calls


def test_wgan_clips_the_critic_after_each_step_and_not_the_generator():
    rt = runtime(
        [
            *TINY_CYCLEGAN,
            "model.gan_loss={name: wgan, clip_weights: 0.005}",
            "model.lambda_identity=0",
            "optim.lr_d=0.05",
            "optim.lr_g=0.05",
        ]
    )
    for step in range(2):
        logs = train_step(rt, random_batch(step))
        assert all(torch.isfinite(v) for v in logs.values())
    critic = [p for net in (rt.model.D_A, rt.model.D_B) for p in net.parameters()]
    assert max(p.abs().max().item() for p in critic) <= 0.005 + 1e-7
    # with a learning rate of 0.05 unclipped weights would leave ±0.005 at once: the bound is binding
    generator = [p for net in (rt.model.G_AB, rt.model.G_BA) for p in net.parameters()]
    assert max(p.abs().max().item() for p in generator) > 0.02


TINY_PIX2PIX = [
    "model.name=pix2pix",
    "model.generator={name: unet, ngf: 4, num_downs: 3}",
    "model.discriminator={name: multiscale, ndf: 4, n_layers: 2, num_scales: 2}",
    "optim.max_steps=10",
    "engine.device=cpu",
]


def test_pix2pix_feature_matching_and_gradient_penalty_run_through_the_engine():
    rt = runtime([*TINY_PIX2PIX, "model.gan_loss=wgan-gp", "model.lambda_feat=10", "model.lambda_l1=100"])
    before = {k: v.clone() for k, v in rt.model.state_dict().items()}
    logs = train_step(rt, random_batch(0, size=32))
    assert {"feat", "gp", "L1", "G_adv", "D", "G"} <= set(logs)
    assert logs["feat"] > 0 and logs["gp"] >= 0
    # G's loss is exactly the weighted sum of its terms
    torch.testing.assert_close(logs["G"], logs["G_adv"] + 100 * logs["L1"] + 10 * logs["feat"])
    after = rt.model.state_dict()
    assert all(not torch.equal(before[k], after[k]) for k in before if k.endswith("weight"))


@pytest.mark.filterwarnings("ignore:Full backward hook")
def test_feature_matching_pulls_the_generator():
    """With only the feature-matching term (no adversarial weight possible, so compare two runs
    that differ only in lambda_feat), G's gradient differs: the term reaches G."""
    grads = []
    for lam in (0.0, 50.0):
        rt = runtime([*TINY_PIX2PIX, f"model.lambda_feat={lam}", "optim.lr_g=0.0", "optim.lr_d=0.0"])
        rt.model.G.register_full_backward_hook(lambda m, gi, go: grads.append(go[0].abs().sum().item()))
        train_step(rt, random_batch(0, size=32))
    assert grads[1] > grads[0] * 1.01


def test_pix2pix_refuses_unpaired_data(tiny_unpaired, tmp_path):
    from translate.engine import train
    from translate.errors import ConfigError

    a, b = tiny_unpaired
    cfg = load_config(
        None,
        [
            "model.name=pix2pix",
            f"out_dir={tmp_path}",
            "optim.max_steps=1",
            f"data.dataset={{name: unpaired_folders, root_a: {a}, root_b: {b}}}",
        ],
    )
    with pytest.raises(ConfigError, match="needs a paired dataset"):
        train(cfg)


def test_image_pool_is_replayable_from_its_state():
    pool = ImagePool(3, seed=5)
    for i in range(4):
        pool.query(torch.full((1, 1, 2, 2), float(i)))
    clone = ImagePool(3, seed=0)
    clone.load_state_dict(pool.state_dict())
    for i in range(4, 12):
        x = torch.full((2, 1, 2, 2), float(i))
        assert torch.equal(pool.query(x), clone.query(x))
    assert ImagePool(0).query(x) is x
    assert copy.deepcopy(pool).state_dict()["images"].shape == pool.state_dict()["images"].shape
