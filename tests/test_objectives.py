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
    patch_nce,
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


REAL = [2.0, -1.0, 0.5, 3.0, 0.0, -2.5, 1.0, 4.0]  # discriminator logits on real images
FAKE = [-2.0, 1.5, 0.0, -0.5, 3.0, -4.0, 0.25, -1.0]  # ... and on generated ones


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


def log_one_minus_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(x))


def nsgan_d(real_label: float) -> float:
    # binary cross-entropy with target real_label on real logits and 0 on fake ones
    return mean(-(real_label * log_sigmoid(r) + (1 - real_label) * log_one_minus_sigmoid(r)) for r in REAL) + mean(
        -log_one_minus_sigmoid(f) for f in FAKE
    )


# the losses written out by hand from their papers, on plain floats
EXPECTED = {
    "nsgan": (nsgan_d(1.0), mean(-log_sigmoid(f) for f in FAKE)),
    "minimax": (nsgan_d(1.0), mean(log_one_minus_sigmoid(f) for f in FAKE)),
    "lsgan": (mean((r - 1) ** 2 for r in REAL) + mean(f**2 for f in FAKE), mean((f - 1) ** 2 for f in FAKE)),
    "wgan": (mean(FAKE) - mean(REAL), -mean(FAKE)),
    "wgan-gp": (mean(FAKE) - mean(REAL), -mean(FAKE)),
    "hinge": (mean(max(0.0, 1 - r) for r in REAL) + mean(max(0.0, 1 + f) for f in FAKE), -mean(FAKE)),
}


def patch_logits(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64).reshape(2, 1, 2, 2)  # a batch of two 2x2 patch maps


@pytest.mark.parametrize("name", ALL)
def test_losses_equal_their_formulas_on_known_logits(name):
    obj = build_objective(name)
    expected_d, expected_g = EXPECTED[name]
    assert obj.d_loss(patch_logits(REAL), patch_logits(FAKE)).item() == pytest.approx(expected_d, rel=1e-6)
    assert obj.g_loss(patch_logits(FAKE)).item() == pytest.approx(expected_g, rel=1e-6)


def test_a_few_values_worked_by_hand():
    zeros = torch.zeros(5)
    assert build_objective("nsgan").d_loss(zeros, zeros).item() == pytest.approx(2 * math.log(2))
    assert build_objective("nsgan").g_loss(zeros).item() == pytest.approx(math.log(2))
    assert build_objective("minimax").g_loss(zeros).item() == pytest.approx(-math.log(2))
    assert build_objective("lsgan").d_loss(torch.ones(3), torch.zeros(3)).item() == 0.0
    assert build_objective("lsgan").g_loss(torch.zeros(3)).item() == 1.0
    assert build_objective("hinge").d_loss(torch.full((2,), 2.0), torch.full((2,), -2.0)).item() == 0.0
    assert build_objective("hinge").d_loss(torch.tensor([0.5]), torch.tensor([0.5])).item() == 0.5 + 1.5
    assert build_objective("wgan").d_loss(torch.tensor([2.0]), torch.tensor([-1.0])).item() == -3.0


def test_non_saturating_gradient_does_not_vanish_where_minimax_does():
    # early in training D rejects fakes confidently; minimax's G gradient then nearly vanishes
    fake = torch.tensor([-8.0], requires_grad=True)
    (ns,) = torch.autograd.grad(build_objective("nsgan").g_loss(fake), fake)
    (mm,) = torch.autograd.grad(build_objective("minimax").g_loss(fake), fake)
    assert ns.abs() > 100 * mm.abs()


@pytest.mark.parametrize("name", ["nsgan", "minimax", "lsgan"])
def test_one_sided_label_smoothing_only_softens_real_targets(name):
    smooth, plain = build_objective({"name": name, "real_label": 0.9}), build_objective(name)
    real, fake = patch_logits(REAL), patch_logits(FAKE)
    if name == "lsgan":
        expected = mean((r - 0.9) ** 2 for r in REAL) + mean(f**2 for f in FAKE)
    else:
        expected = nsgan_d(0.9)
    assert smooth.d_loss(real, fake).item() == pytest.approx(expected, rel=1e-6)
    assert smooth.d_loss(real, fake).item() != pytest.approx(plain.d_loss(real, fake).item(), rel=1e-3)
    # the generator's targets stay 1 (fake targets stay 0: in the formula above)
    assert torch.equal(smooth.g_loss(fake), plain.g_loss(fake))


@pytest.mark.parametrize("label", [0.5, 0.3, 1.1])
def test_label_smoothing_outside_its_range_is_refused(label):
    with pytest.raises(ConfigError, match="real_label"):
        build_objective({"name": "nsgan", "real_label": label})


def test_smoothed_real_loss_is_smallest_at_the_smoothed_target():
    # with target 0.9 the real-logit loss is minimised where sigmoid(logit) = 0.9, not at +infinity
    smooth = build_objective({"name": "nsgan", "real_label": 0.9})
    best = math.log(0.9 / 0.1)
    fake = torch.zeros(1)
    at_best = smooth.d_loss(torch.tensor([best]), fake)
    assert at_best < smooth.d_loss(torch.tensor([best + 1]), fake)
    assert at_best < smooth.d_loss(torch.tensor([best - 1]), fake)


def test_wgan_variants_declare_their_lipschitz_device():
    assert build_objective("wgan").clip_weights == 0.01 and build_objective("wgan").gp_weight == 0
    gp = build_objective({"name": "wgan-gp", "gp_weight": 5.0})
    assert gp.clip_weights is None and gp.gp_weight == 5.0


class LinearCritic(nn.Module):
    """D(x)_i = <w_i, x_i>: its input gradient is w_i whatever x is, so the penalty is known exactly."""

    def __init__(self, weights: list[torch.Tensor]) -> None:
        super().__init__()
        self.weights = weights  # one weight per scale; their gradients add up

    def forward(self, x):
        return [[(x * w).flatten(1).sum(1)] for w in self.weights]


def test_gradient_penalty_of_a_linear_critic_is_its_gradient_norm_minus_one_squared():
    torch.manual_seed(0)
    direction = torch.randn(1, 3, 4, 4)
    direction = direction / direction.norm()
    real, fake = torch.rand(3, 3, 4, 4), torch.rand(3, 3, 4, 4)
    assert gradient_penalty(LinearCritic([direction]), real, fake).item() == pytest.approx(0.0, abs=1e-10)
    assert gradient_penalty(LinearCritic([3 * direction]), real, fake).item() == pytest.approx(4.0, rel=1e-5)
    assert gradient_penalty(LinearCritic([0.25 * direction]), real, fake).item() == pytest.approx(0.5625, rel=1e-5)
    # the norm is taken per sample, then the squared gaps are averaged: norms 0.5, 2, 3 -> (0.25 + 1 + 4) / 3
    per_sample = direction.repeat(3, 1, 1, 1) * torch.tensor([0.5, 2.0, 3.0]).view(3, 1, 1, 1)
    assert gradient_penalty(LinearCritic([per_sample]), real, fake).item() == pytest.approx(1.75, rel=1e-5)
    # with several scales the critic's score is their sum: gradient 0.75 + 0.75 -> (1.5 - 1)^2
    two_scales = LinearCritic([0.75 * direction, 0.75 * direction])
    assert gradient_penalty(two_scales, real, fake).item() == pytest.approx(0.25, rel=1e-5)


def test_gradient_penalty_is_taken_between_real_and_fake_and_reaches_the_critic():
    # D(x) = |x|^2 / 2 has gradient x, so the penalty depends on where it is evaluated; at
    # real == fake every interpolate is that one point
    weight = torch.tensor(1.0, requires_grad=True)

    class Quadratic(nn.Module):
        def forward(self, x):
            return [[weight * 0.5 * x.flatten(1).pow(2).sum(1)]]

    x = torch.full((2, 3, 2, 2), 0.5)  # |x| = sqrt(12) / 2 per sample
    penalty = gradient_penalty(Quadratic(), x, x)
    assert penalty.item() == pytest.approx((math.sqrt(12) / 2 - 1) ** 2, rel=1e-6)
    # interpolates lie strictly inside the segment: between real 0.5 and fake 0.4 every gradient
    # norm exceeds 1, so the penalty lies strictly between the penalties at the two ends
    torch.manual_seed(0)  # the interpolation weights are random; these are not within 1e-3 of an end
    between = gradient_penalty(Quadratic(), x, torch.full_like(x, 0.4)).item()
    assert (math.sqrt(12) * 0.4 - 1) ** 2 + 1e-3 < between < (math.sqrt(12) * 0.5 - 1) ** 2 - 1e-3
    # the penalty is differentiable with respect to the critic's weights (create_graph)
    (grad,) = torch.autograd.grad(penalty, weight)
    assert grad.item() == pytest.approx(2 * (math.sqrt(12) / 2 - 1) * math.sqrt(12) / 2, rel=1e-5)


def test_multiscale_helpers_average_scales_and_match_features():
    obj = build_objective("lsgan")
    real = [[torch.ones(1, 2, 4, 4), torch.ones(1, 1, 2, 2)], [torch.ones(1, 2, 2, 2), torch.ones(1, 1, 1, 1)]]
    fake = [[torch.zeros(1, 2, 4, 4), torch.zeros(1, 1, 2, 2)], [torch.zeros(1, 2, 2, 2), torch.zeros(1, 1, 1, 1)]]
    assert d_loss(obj, real, fake).item() == 0.0
    assert g_loss(obj, fake).item() == 1.0
    # different values per scale: the helpers take the mean over scales of each scale's loss
    two = [[torch.full((1, 1, 2, 2), 0.0)], [torch.full((1, 1, 1, 1), 3.0)]]
    assert g_loss(obj, two).item() == pytest.approx((1.0 + 4.0) / 2)
    ones = [[torch.full((1, 1, 2, 2), 1.0)], [torch.full((1, 1, 1, 1), 1.0)]]
    assert d_loss(build_objective("wgan"), two, ones).item() == pytest.approx(((1 - 0) + (1 - 3)) / 2)
    assert reconstruction(torch.zeros(3), torch.ones(3)).item() == 1.0
    assert reconstruction(torch.tensor([0.0, 2.0, -1.0]), torch.tensor([1.0, 1.0, 1.0])).item() == pytest.approx(4 / 3)


def test_feature_matching_is_the_mean_l1_over_intermediate_features_only():
    # two scales, two feature maps each, then logits; every feature map differs by a known constant
    def scale(offsets: list[float], logits: float, size: int) -> list[torch.Tensor]:
        return [torch.full((2, 3, size, size), o) for o in offsets] + [torch.full((2, 1, 2, 2), logits)]

    real = [scale([0.0, 0.0], 0.0, 4), scale([0.0, 0.0], 0.0, 2)]
    fake = [scale([1.0, -3.0], 100.0, 4), scale([0.5, 2.0], -100.0, 2)]
    for features in real:
        for f in features:
            f.requires_grad_(True)
    assert feature_matching(real, fake).item() == pytest.approx((1.0 + 3.0 + 0.5 + 2.0) / 4)  # logits left out
    assert feature_matching(real, real).item() == 0.0
    # only the generator's side gets a gradient: real features are targets
    fake_leaf = [[f.clone().requires_grad_(True) for f in s] for s in fake]
    feature_matching(real, fake_leaf).backward()
    assert all(f.grad is None for s in real for f in s)
    assert fake_leaf[0][0].grad is not None and fake_leaf[0][0].grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="intermediate features"):
        feature_matching([[torch.zeros(1)]], [[torch.zeros(1)]])


@pytest.mark.parametrize("name", ALL)
def test_losses_are_computed_in_float32_under_half_precision_logits(name):
    obj = build_objective(name)
    real = torch.tensor(REAL, dtype=torch.bfloat16)
    fake = torch.tensor(FAKE, dtype=torch.bfloat16)
    d, g = obj.d_loss(real, fake), obj.g_loss(fake)
    assert d.dtype == g.dtype == torch.float32
    # the same numbers as float32 arithmetic on the (exactly representable) logits, not bfloat16 arithmetic
    assert torch.equal(d, obj.d_loss(real.float(), fake.float()))
    assert torch.equal(g, obj.g_loss(fake.float()))


# --- PatchNCE (CUT) ---------------------------------------------------------------------------


def unit_features(batch: int, patches: int, dim: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(batch, patches, dim, generator=generator), dim=-1)


def patch_nce_lower_bound(patches: int, tau: float) -> float:
    """The least PatchNCE can be for unit vectors: positive similarity 1, every other patch at -1
    and the masked diagonal at -10, so each patch's loss is log(1 + (P-1) e^(-2/τ) + e^(-11/τ))."""
    return math.log(1 + (patches - 1) * math.exp(-2 / tau) + math.exp(-11 / tau))


def test_patch_nce_of_two_orthogonal_patches_worked_by_hand():
    eye = torch.eye(2)[None]  # one image, two patches: e1 and e2
    tau = 0.5
    # patch 1: logits (q1·k1, masked -10, q1·k2) / τ = (1, -10, 0) / τ; patch 2 the same by symmetry
    expected = -math.log(math.exp(1 / tau) / (math.exp(1 / tau) + math.exp(-10 / tau) + math.exp(0)))
    assert patch_nce(eye, eye, temperature=tau).item() == pytest.approx(expected, rel=1e-6)


def test_patch_nce_is_at_its_minimum_for_identical_features_and_higher_when_shuffled():
    keys = unit_features(2, 64, 128, seed=0)
    tau = 0.07
    identical = patch_nce(keys, keys, tau).item()
    # close to the bound (log 1 ≈ 0 for P=64 and τ=0.07): the random negatives are nearly orthogonal
    assert identical - patch_nce_lower_bound(64, tau) < 1e-3
    shuffled = patch_nce(keys[:, torch.randperm(64, generator=torch.Generator().manual_seed(1))], keys, tau).item()
    assert shuffled > 5.0 > identical, (identical, shuffled)
    # every small move of the queries away from the keys costs
    for seed in range(3):
        moved = torch.nn.functional.normalize(keys + 0.2 * unit_features(2, 64, 128, seed=10 + seed), dim=-1)
        assert patch_nce(moved, keys, tau).item() > identical
    # the negatives are the other patches of the same image only: another image's patches do not count
    other_image = keys.clone()
    other_image[1] = keys[0]
    assert patch_nce(other_image, other_image, tau).item() == pytest.approx(identical, abs=1e-3)


def test_patch_nce_gradients_reach_the_queries_only_and_are_right():
    query = unit_features(2, 5, 3, seed=2).double().requires_grad_(True)
    key = unit_features(2, 5, 3, seed=3).double()
    assert torch.autograd.gradcheck(lambda q: patch_nce(q, key, temperature=0.2), (query,))
    key.requires_grad_(True)
    patch_nce(query, key, temperature=0.2).backward()
    assert key.grad is None and query.grad.abs().sum() > 0  # the input's projections are fixed targets


def test_patch_nce_computes_in_float32_and_names_bad_shapes():
    keys = unit_features(1, 8, 16, seed=4)
    half = patch_nce(keys.bfloat16(), keys.bfloat16())
    assert half.dtype == torch.float32
    with pytest.raises(ValueError, match=r"one B×P×D shape, got \(1, 8, 16\), \(1, 7, 16\)"):
        patch_nce(keys, keys[:, :7])
