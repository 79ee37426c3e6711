"""Networks: any input size, registry errors, gradient checkpointing, norms and init."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from translate.errors import ConfigError
from translate.models.base import normalises_per_sample
from translate.nets import (
    DISCRIMINATORS,
    GENERATORS,
    SAMPLER_CRITICS,
    SAMPLERS,
    SEGMENTERS,
    build_discriminator,
    build_generator,
)
from translate.nets.layers import init_weights
from translate.registry import Registry

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
    with pytest.raises(ConfigError, match="unknown generator 'resnett'; known: cut_resnet, resnet, unet"):
        build_generator({"name": "resnett"})
    with pytest.raises(ConfigError, match="'n_block'"):
        build_generator({"name": "resnet", "n_block": 3})
    with pytest.raises(ConfigError, match="unknown norm 'layer'"):
        build_generator({"name": "resnet", "norm": "layer"})
    with pytest.raises(ConfigError, match="unknown upsample"):
        build_generator({"name": "resnet", "upsample": "pixelshuffle"})
    with pytest.raises(ConfigError, match="unknown init"):
        build_generator({"name": "resnet", "ngf": 4, "n_blocks": 1}, init="uniform")


# --- whether a net normalises each sample alone: declared per network class ---------------------

PER_SAMPLE_CASES = [
    (GENERATORS, {"name": "resnet"}, True),  # instance norm
    (GENERATORS, {"name": "resnet", "norm": "batch"}, False),
    (GENERATORS, {"name": "resnet", "norm": "group"}, True),
    (GENERATORS, {"name": "unet"}, False),  # batch norm
    (GENERATORS, {"name": "unet", "norm": "instance"}, True),
    (GENERATORS, {"name": "unet", "norm": "none"}, True),
    (DISCRIMINATORS, {"name": "patchgan"}, True),
    (DISCRIMINATORS, {"name": "patchgan", "norm": "batch"}, False),
    # spectral norm leaves the norm layers out, whatever ``norm`` says
    (DISCRIMINATORS, {"name": "multiscale", "norm": "batch", "spectral_norm": True}, True),
    (SAMPLERS, {"name": "mlp"}, True),
    (SAMPLERS, {"name": "dcgan"}, False),  # batch norm
    (SAMPLERS, {"name": "spade"}, True),
    (SAMPLER_CRITICS, {"name": "dcgan", "norm": "layer"}, True),
    # no norm, but the minibatch spread is a statistic of the batch
    (SAMPLER_CRITICS, {"name": "mlp", "minibatch_stddev": True}, False),
    (SEGMENTERS, {"name": "smp_unet"}, False),  # batch norm throughout
]


@pytest.mark.parametrize(
    ("registry", "spec", "expected"),
    PER_SAMPLE_CASES,
    ids=lambda v: v if isinstance(v, bool) else getattr(v, "family", None) or str(v),
)
def test_each_network_declares_whether_it_normalises_per_sample(registry, spec, expected):
    assert normalises_per_sample(registry, spec) is expected


def test_a_network_without_the_declaration_is_refused_as_it_registers():
    class Undeclared(nn.Module):
        def __init__(self, norm: str = "instance") -> None:
            super().__init__()

    with pytest.raises(
        ConfigError,
        match=r"generator 'undeclared' \(.*Undeclared\) does not declare "
        r"normalises_per_sample: a static method normalises_per_sample\(spec\)",
    ):
        GENERATORS.register("undeclared")(Undeclared)
    assert "undeclared" not in GENERATORS


def test_an_undeclared_or_unclear_answer_is_an_error_not_a_guess():
    family: Registry[type[nn.Module]] = Registry("toy network")  # a registry that checks nothing itself

    @family.register("silent")
    class Silent(nn.Module):  # has a "norm" option, which the old guess read as an answer
        def __init__(self, norm: str = "instance") -> None:
            super().__init__()

    @family.register("vague")
    class Vague(nn.Module):
        @staticmethod
        def normalises_per_sample(spec):
            return "probably"

    with pytest.raises(ConfigError, match="toy network 'silent' does not declare normalises_per_sample"):
        normalises_per_sample(family, {"name": "silent"})
    with pytest.raises(ConfigError, match="toy network 'vague': normalises_per_sample returned 'probably'"):
        normalises_per_sample(family, {"name": "vague"})
    with pytest.raises(ConfigError, match="unknown norm 'weird'"):
        normalises_per_sample(GENERATORS, {"name": "resnet", "norm": "weird"})


# --- initialisation: each scheme's promised weight statistics ----------------------------------

SCHEMES = ["normal", "xavier", "kaiming", "orthogonal"]
GAIN = 0.5  # not 1, so a scheme that ignores its gain is caught


def raw_weight(layer: nn.Module) -> torch.Tensor:
    """The weight init writes to: under spectral norm, the raw (unnormalised) weight."""
    if hasattr(layer, "parametrizations"):
        return layer.parametrizations.weight.original
    return layer.weight


def fans(weight: torch.Tensor) -> tuple[int, int]:
    """Fan-in and fan-out as torch.nn.init counts them: dim 1 and dim 0 times the kernel size.
    For a transposed conv, whose weight is (in, out, k, k), this makes fan-in the *out* channels."""
    receptive = weight[0, 0].numel()
    return weight.shape[1] * receptive, weight.shape[0] * receptive


def expected_std(weight: torch.Tensor, scheme: str, gain: float) -> float:
    fan_in, fan_out = fans(weight)
    return {
        "normal": gain,  # N(0, gain), the reference default with gain 0.02
        "xavier": gain * math.sqrt(2.0 / (fan_in + fan_out)),
        "kaiming": math.sqrt(2.0 / fan_in),  # He et al. for ReLU, fan-in mode; takes no gain
    }[scheme]


def assert_scheme(weight: torch.Tensor, scheme: str, gain: float) -> None:
    """Check ``weight`` against what ``scheme`` promises; tolerances are 6 standard errors of the
    sample statistic, so a wrong formula (fan-out for fan-in, a missing gain, a uniform draw of the
    same spread) fails on layers of a few thousand weights while a correct one never does."""
    w = weight.detach().double()
    n = w.numel()
    if scheme == "orthogonal":
        # rows (or columns, for a tall matrix) of the flattened weight are orthogonal with norm gain
        flat = w.reshape(w.shape[0], -1)
        gram = flat @ flat.T if flat.shape[0] <= flat.shape[1] else flat.T @ flat
        torch.testing.assert_close(
            gram, gain**2 * torch.eye(gram.shape[0], dtype=gram.dtype), rtol=0, atol=1e-5 * gain**2
        )
        return
    std = expected_std(w, scheme, gain)
    assert abs(w.mean().item()) < 6 * std / math.sqrt(n), f"{scheme}: mean {w.mean().item():.3g} is not 0"
    assert w.std().item() == pytest.approx(std, rel=6 / math.sqrt(2 * n)), f"{scheme}: std of {tuple(w.shape)}"
    if n >= 10_000:  # a normal draw, not a uniform one of the same spread (excess kurtosis 0 vs -1.2)
        kurtosis = ((w - w.mean()) ** 4).mean() / w.var(unbiased=False) ** 2
        assert kurtosis.item() == pytest.approx(3.0, abs=6 * math.sqrt(24 / n)), (
            f"{scheme}: kurtosis {kurtosis.item():.2f}"
        )


def layer_zoo() -> dict[str, nn.Module]:
    """Every kind of layer init_weights touches, large enough for tight statistics, with fan-in
    different from fan-out so fan-in and fan-out formulas cannot be confused."""
    return {
        "conv": nn.Conv2d(32, 128, 3),
        "transposed conv": nn.ConvTranspose2d(128, 32, 4, 2, 1),
        "linear": nn.Linear(512, 128),
        "tall linear": nn.Linear(64, 1024),  # more rows than columns: orthogonal columns
        "spectral-norm conv": nn.utils.parametrizations.spectral_norm(nn.Conv2d(64, 32, 3)),
        "spectral-norm transposed conv": nn.utils.parametrizations.spectral_norm(nn.ConvTranspose2d(64, 32, 4, 2, 1)),
        "batch norm": nn.BatchNorm2d(20_000),
        "group norm": nn.GroupNorm(8, 20_000),
    }


@pytest.mark.parametrize("scheme", SCHEMES)
def test_init_schemes_give_their_promised_weight_statistics(scheme):
    torch.manual_seed(0)
    zoo = layer_zoo()
    init_weights(nn.ModuleDict(zoo), scheme, GAIN)
    for name, layer in zoo.items():
        if isinstance(layer, (nn.BatchNorm2d, nn.GroupNorm)):
            # norm layers start near the identity whatever the scheme: scale ~ N(1, gain), shift 0
            scale = layer.weight.detach().double()
            assert scale.mean().item() == pytest.approx(1.0, abs=6 * GAIN / math.sqrt(scale.numel())), name
            assert scale.std().item() == pytest.approx(GAIN, rel=6 / math.sqrt(2 * scale.numel())), name
        else:
            assert_scheme(raw_weight(layer), scheme, GAIN)
        assert layer.bias.abs().max().item() == 0, name


@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_layer_of_built_networks_is_initialised(scheme):
    # the builders must reach every conv, transposed conv and spectral-norm raw weight
    torch.manual_seed(0)
    generator = build_generator(
        {"name": "resnet", "ngf": 16, "n_blocks": 1, "norm": "batch", "spectral_norm": True},
        init=scheme,
        init_gain=GAIN,
    )
    discriminator = build_discriminator({"name": "patchgan", "ndf": 16, "n_layers": 2}, 3, init=scheme, init_gain=GAIN)
    checked = 0
    for layer in [*generator.modules(), *discriminator.modules()]:
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            assert_scheme(raw_weight(layer), scheme, GAIN)
            checked += 1
            if layer.bias is not None:
                assert layer.bias.abs().max().item() == 0
        elif isinstance(layer, nn.BatchNorm2d):
            assert layer.weight.detach().mean().item() == pytest.approx(
                1.0, abs=6 * GAIN / math.sqrt(layer.num_features)
            )
            assert layer.bias.abs().max().item() == 0
    assert checked == 8 + 4  # ResNet: stem, 2 down, 2 in the block, 2 up, head; PatchGAN: 4


def test_spectral_norm_holds_right_after_init():
    torch.manual_seed(0)
    layer = init_weights(nn.utils.parametrizations.spectral_norm(nn.Conv2d(64, 32, 3)), "normal", 0.02).eval()
    sigma = torch.linalg.matrix_norm(layer.weight.detach().flatten(1), ord=2).item()
    assert sigma == pytest.approx(1.0, abs=0.05)
