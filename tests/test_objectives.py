"""Adversarial objectives and reconstruction terms behave as their papers define them."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from translate.errors import ConfigError
from translate.objectives import (
    OBJECTIVES,
    build_objective,
    d_loss,
    feature_matching,
    g_loss,
    gradient_penalty,
    reconstruction,
)

ALL = ["nsgan", "minimax", "lsgan", "wgan", "wgan-gp", "hinge"]


def test_registry_lists_every_objective():
    assert OBJECTIVES.names() == sorted(ALL)


@pytest.mark.parametrize("name", ALL)
def test_discriminator_loss_rewards_separating_real_from_fake(name):
    obj = build_objective(name)
    good = obj.d_loss(torch.full((4,), 3.0), torch.full((4,), -3.0))
    bad = obj.d_loss(torch.full((4,), -3.0), torch.full((4,), 3.0))
    assert good < bad


@pytest.mark.parametrize("name", ALL)
def test_generator_loss_rewards_fooling_the_discriminator(name):
    obj = build_objective(name)
    assert obj.g_loss(torch.full((4,), 3.0)) < obj.g_loss(torch.full((4,), -3.0))


def test_known_values():
    zeros = torch.zeros(5)
    assert build_objective("nsgan").d_loss(zeros, zeros).item() == pytest.approx(2 * math.log(2))
    assert build_objective("nsgan").g_loss(zeros).item() == pytest.approx(math.log(2))
    assert build_objective("minimax").g_loss(zeros).item() == pytest.approx(-math.log(2))
    assert build_objective("lsgan").d_loss(torch.ones(3), torch.zeros(3)).item() == 0.0
    assert build_objective("lsgan").g_loss(torch.zeros(3)).item() == 1.0
    assert build_objective("hinge").d_loss(torch.full((2,), 2.0), torch.full((2,), -2.0)).item() == 0.0
    assert build_objective("wgan").d_loss(torch.tensor([2.0]), torch.tensor([-1.0])).item() == -3.0


def test_non_saturating_gradient_does_not_vanish_where_minimax_does():
    # early in training D rejects fakes confidently; minimax's G gradient then nearly vanishes
    fake = torch.tensor([-8.0], requires_grad=True)
    (ns,) = torch.autograd.grad(build_objective("nsgan").g_loss(fake), fake)
    (mm,) = torch.autograd.grad(build_objective("minimax").g_loss(fake), fake)
    assert ns.abs() > 100 * mm.abs()


def test_one_sided_label_smoothing_only_softens_real_targets():
    smooth, plain = build_objective({"name": "nsgan", "real_label": 0.9}), build_objective("nsgan")
    confident = torch.full((4,), 6.0)
    assert smooth.d_loss(confident, -confident) > plain.d_loss(confident, -confident)
    assert smooth.g_loss(confident) == plain.g_loss(confident)  # generator targets untouched
    with pytest.raises(ConfigError, match="real_label"):
        build_objective({"name": "lsgan", "real_label": 0.3})


def test_wgan_variants_declare_their_lipschitz_device():
    assert build_objective("wgan").clip_weights == 0.01 and build_objective("wgan").gp_weight == 0
    gp = build_objective({"name": "wgan-gp", "gp_weight": 5.0})
    assert gp.clip_weights is None and gp.gp_weight == 5.0


def test_gradient_penalty_is_zero_for_a_unit_gradient_critic():
    class Linear(nn.Module):
        def __init__(self, weight: torch.Tensor) -> None:
            super().__init__()
            self.weight = weight

        def forward(self, x):
            return [[(x * self.weight).flatten(1).sum(1)]]

    w = torch.randn(1, 3, 4, 4)
    unit = Linear(w / w.norm())
    real, fake = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4)
    assert gradient_penalty(unit, real, fake).item() == pytest.approx(0.0, abs=1e-10)
    steep = Linear(3 * w / w.norm())
    assert gradient_penalty(steep, real, fake).item() == pytest.approx(4.0, rel=1e-5)


def test_multiscale_helpers_average_scales_and_match_features():
    obj = build_objective("lsgan")
    real = [[torch.ones(1, 2, 4, 4), torch.ones(1, 1, 2, 2)], [torch.ones(1, 2, 2, 2), torch.ones(1, 1, 1, 1)]]
    fake = [[torch.zeros(1, 2, 4, 4), torch.zeros(1, 1, 2, 2)], [torch.zeros(1, 2, 2, 2), torch.zeros(1, 1, 1, 1)]]
    assert d_loss(obj, real, fake).item() == 0.0
    assert g_loss(obj, fake).item() == 1.0
    assert feature_matching(real, fake).item() == 1.0
    assert feature_matching(real, real).item() == 0.0
    assert reconstruction(torch.zeros(3), torch.ones(3)).item() == 1.0


def test_losses_are_float32_under_half_precision_logits():
    logits = torch.randn(8, dtype=torch.bfloat16)
    for name in ALL:
        assert build_objective(name).d_loss(logits, logits).dtype == torch.float32
