"""Networks: any input size, registry errors, gradient checkpointing, norms and init."""

from __future__ import annotations

import pytest
import torch

from translate.errors import ConfigError
from translate.nets import build_discriminator, build_generator

GENERATOR_SPECS = [
    {"name": "resnet", "ngf": 4, "n_blocks": 2},
    {"name": "resnet", "ngf": 4, "n_blocks": 2, "upsample": "resize", "norm": "group", "spectral_norm": True},
    {"name": "unet", "ngf": 4, "num_downs": 4, "norm": "instance", "dropout": 0.0},
    {"name": "unet", "ngf": 4, "num_downs": 5, "norm": "batch", "upsample": "resize"},
]


@pytest.mark.parametrize("spec", GENERATOR_SPECS, ids=lambda s: f"{s['name']}-{s.get('upsample', 'transpose')}")
@pytest.mark.parametrize("size", [(16, 16), (37, 50), (5, 71)])
def test_generators_take_any_size(spec, size):
    net = build_generator(spec).eval()
    x = torch.rand(2, 3, *size) * 2 - 1
    with torch.no_grad():
        y = net(x)
    assert y.shape == x.shape
    assert y.abs().max() <= 1.0  # tanh output range


def test_reference_parameter_counts():
    # the published reference networks: ResNet-9 G 11.378M, U-Net-256 G 54.414M, 70x70 PatchGAN 2.765M
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    assert count(build_generator({"name": "resnet"})) == 11_378_179
    assert count(build_generator({"name": "unet"})) == 54_413_955
    assert count(build_discriminator({"name": "patchgan"}, in_channels=3)) == 2_764_737


@pytest.mark.parametrize("spec", GENERATOR_SPECS[::2], ids=["resnet", "unet"])
def test_checkpointing_gives_the_same_gradients(spec):
    torch.manual_seed(0)
    net = build_generator(spec).train()
    x = torch.rand(2, 3, 32, 32) * 2 - 1

    def grads(checkpointing: bool) -> list[torch.Tensor]:
        net.zero_grad()
        net.set_grad_checkpointing(checkpointing)
        net(x).square().mean().backward()
        return [p.grad.clone() for p in net.parameters()]

    plain, ckpt = grads(False), grads(True)
    for g0, g1 in zip(plain, ckpt, strict=True):
        torch.testing.assert_close(g1, g0, rtol=1e-5, atol=1e-7)


def test_checkpointing_is_skipped_without_grad():
    net = build_generator(GENERATOR_SPECS[0]).train()
    net.set_grad_checkpointing(True)
    with torch.no_grad():
        assert net(torch.zeros(1, 3, 8, 8)).shape == (1, 3, 8, 8)


def test_multiscale_discriminator_outputs_per_scale():
    d = build_discriminator({"name": "multiscale", "ndf": 4, "num_scales": 3, "n_layers": 2}, in_channels=6)
    out = d(torch.rand(1, 6, 64, 64))
    assert len(out) == 3
    assert [scale[-1].shape[1] for scale in out] == [1, 1, 1]
    assert out[0][-1].shape[-1] > out[1][-1].shape[-1] > out[2][-1].shape[-1]
    assert len(out[0]) == 4  # features of every stage, logits last


def test_spectral_norm_bounds_the_discriminator():
    d = build_discriminator({"name": "patchgan", "ndf": 4, "n_layers": 2, "spectral_norm": True}, in_channels=3)
    for _ in range(5):  # power iterations converge during forward passes in training mode
        d(torch.rand(1, 3, 32, 32))
    conv = d.stages[0][0]
    sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2).item()
    assert sigma == pytest.approx(1.0, abs=0.1)


def test_bad_specs_are_named():
    with pytest.raises(ConfigError, match="unknown generator 'resnett'; known: resnet, unet"):
        build_generator({"name": "resnett"})
    with pytest.raises(ConfigError, match="'n_block'"):
        build_generator({"name": "resnet", "n_block": 3})
    with pytest.raises(ConfigError, match="unknown norm 'layer'"):
        build_generator({"name": "resnet", "norm": "layer"})
    with pytest.raises(ConfigError, match="unknown upsample"):
        build_generator({"name": "resnet", "upsample": "pixelshuffle"})
    with pytest.raises(ConfigError, match="unknown init"):
        build_generator({"name": "resnet", "ngf": 4, "n_blocks": 1}, init="uniform")


@pytest.mark.parametrize("scheme", ["normal", "xavier", "kaiming", "orthogonal"])
def test_init_schemes(scheme):
    torch.manual_seed(0)
    net = build_generator({"name": "resnet", "ngf": 8, "n_blocks": 1}, init=scheme, init_gain=0.02)
    first = net.encoder[1].weight
    if scheme == "normal":
        assert first.std().item() == pytest.approx(0.02, rel=0.1)
    assert net.encoder[1].bias.abs().max() == 0
