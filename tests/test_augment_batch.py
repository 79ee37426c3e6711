"""TranslateBatch: translates about p of a batch, leaves the rest bit-identical, keeps dtype and
range, and stays out of the optimiser's view."""

from __future__ import annotations

import pytest
import torch
from helpers import smooth_images
from torch import nn

from augment import TranslateBatch
from translate.errors import ConfigError, DataError
from translate.io import export_network, load_generator
from translate.nets import build_generator

SPEC = {"name": "resnet", "ngf": 4, "n_blocks": 1}


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(0)
    return export_network(tmp_path / "g.safetensors", build_generator(SPEC), SPEC, "generator", {})


def batch_uint8(n: int, size: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(smooth_images(n, size, seed)).permute(0, 3, 1, 2).contiguous()


def changed(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a != b).flatten(1).any(1)


def test_translates_about_p_of_the_samples_and_leaves_the_rest_bit_identical(checkpoint):
    torch.manual_seed(1)
    hook = TranslateBatch(checkpoint, p=0.3, amp="off")  # fp32, also on a CPU where "auto" would be bf16
    x = torch.rand(400, 3, 8, 8)
    y = hook(x)
    hit = changed(x, y)
    # binomial(400, 0.3): mean 120, sd 9.2; 4.5 sd either side fails about once in 10^5 runs
    assert abs(int(hit.sum()) - 120) < 42
    assert torch.equal(y[~hit], x[~hit])
    with torch.no_grad():
        direct = (load_generator(checkpoint)(x[hit] * 2 - 1) + 1) / 2
    assert torch.allclose(y[hit], direct, atol=1e-5)


def test_p_zero_and_one_and_eval_mode(checkpoint):
    x = batch_uint8(6)
    assert torch.equal(TranslateBatch(checkpoint, p=0.0)(x), x)
    assert changed(x, TranslateBatch(checkpoint, p=1.0)(x)).all()
    hook = TranslateBatch(checkpoint, p=1.0).eval()  # like dropout: off outside training
    assert torch.equal(hook(x), x)


def test_dtype_and_range_are_the_inputs(checkpoint):
    torch.manual_seed(0)
    u8 = batch_uint8(4)
    out = TranslateBatch(checkpoint, p=1.0, amp="off")(u8)  # fp32, also on a CPU where "auto" would be bf16
    assert out.dtype == torch.uint8 and out.shape == u8.shape
    unit = u8.float() / 255
    out_unit = TranslateBatch(checkpoint, p=1.0, amp="off")(unit)
    assert out_unit.dtype == torch.float32 and 0 <= out_unit.min() and out_unit.max() <= 1
    assert (out.float() / 255 - out_unit).abs().max() <= 0.5 / 255 + 1e-6  # same translation, rounded
    signed = unit * 2 - 1
    out_signed = TranslateBatch(checkpoint, p=1.0, value_range=(-1, 1), amp="off")(signed)
    assert torch.allclose(out_signed, out_unit * 2 - 1, atol=1e-5)
    half = TranslateBatch(checkpoint, p=1.0, amp="off")(unit.half())
    assert half.dtype == torch.float16 and (half.float() - out_unit).abs().max() < 2e-3


def test_blend_mixes_per_sample(checkpoint):
    x = torch.rand(4, 3, 8, 8)
    full = TranslateBatch(checkpoint, p=1.0)(x)
    mixed = TranslateBatch(checkpoint, p=1.0, blend=0.25)(x)
    assert torch.allclose(mixed, 0.25 * full + 0.75 * x, atol=1e-5)


def test_no_parameters_in_the_optimisers_view_and_no_gradient_to_the_generator(checkpoint):
    hook = TranslateBatch(checkpoint, p=1.0)
    model = nn.Sequential(hook, nn.Conv2d(3, 2, 1))
    assert [p.shape for p in model.parameters()] == [p.shape for p in model[1].parameters()]
    assert set(model.state_dict()) == {"1.weight", "1.bias"}
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    generator = hook._generator.net
    before = [p.clone() for p in generator.parameters()]
    loss = model(torch.rand(2, 3, 8, 8)).square().mean()
    loss.backward()
    optimiser.step()
    assert all(p.grad is None and not p.requires_grad for p in generator.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, generator.parameters(), strict=False))


def test_generator_module_and_channel_rules(checkpoint):
    hook = TranslateBatch(load_generator(checkpoint), p=1.0)
    x = torch.rand(3, 3, 8, 8)
    assert torch.allclose(hook(x), TranslateBatch(checkpoint, p=1.0)(x))
    rgba = torch.cat([x, torch.rand(3, 1, 8, 8)], dim=1)
    out = hook(rgba)
    assert torch.equal(out[:, 3], rgba[:, 3]) and torch.allclose(out[:, :3], hook(x))
    gray = x[:, :1]
    out_gray = hook(gray)
    luma = (hook(gray.expand(-1, 3, -1, -1)) * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(
        1, keepdim=True
    )
    assert out_gray.shape == gray.shape and torch.allclose(out_gray, luma, atol=1e-5)


def test_bad_input_is_refused(checkpoint):
    hook = TranslateBatch(checkpoint, p=1.0)
    with pytest.raises(DataError, match="outside value_range"):
        hook(torch.rand(2, 3, 8, 8) * 255)
    with pytest.raises(DataError, match="outside value_range"):
        hook(torch.full((2, 3, 8, 8), float("nan")))
    with pytest.raises(DataError, match="smaller than the generator takes"):
        hook(torch.rand(2, 3, 3, 3))
    with pytest.raises(DataError, match="2 channel"):
        hook(torch.rand(2, 2, 8, 8))
    with pytest.raises(DataError, match="N×C×H×W"):
        hook(torch.rand(3, 8, 8))
    with pytest.raises(DataError, match="int32"):
        hook(torch.zeros(2, 3, 8, 8, dtype=torch.int32))
    for bad in ({"p": 1.2}, {"p": -0.5}, {"blend": 1.5}, {"blend": (0.8, 0.2)}, {"value_range": (1, 0)}):
        with pytest.raises(ConfigError):
            TranslateBatch(checkpoint, **bad)
    with pytest.raises(ConfigError, match="amp"):
        TranslateBatch(checkpoint, p=1.0, amp="fp8")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_batch_stays_on_its_device_under_autocast(checkpoint):
    x = torch.rand(8, 3, 32, 32, device="cuda")
    out = TranslateBatch(checkpoint, p=1.0)(x)
    assert out.device == x.device and out.dtype == x.dtype
    reference = TranslateBatch(checkpoint, p=1.0, amp="off")(x)
    assert (out - reference).abs().max() < 0.05


class FailsWith(nn.Module):
    """A generator that fails every forward pass with ``error`` (one conv, so its channels are known)."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.error = error

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 79.15 GiB total capacity)"),
        RuntimeError("out of memory"),
        RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 4096 bytes"),
        RuntimeError("expected scalar type Half but found Float"),
    ],
    ids=["OutOfMemoryError", "cuda-message", "cpu-allocator", "unrelated"],
)
def test_smallest_side_lets_errors_other_than_size_through(error):
    from augment.generator import smallest_side

    with pytest.raises(type(error), match=str(error)[:20]):
        smallest_side(FailsWith(error), 3, torch.device("cpu"))
    with pytest.raises(type(error), match=str(error)[:20]):  # not "accepts no image"
        TranslateBatch(FailsWith(error), p=1.0)(torch.rand(2, 3, 8, 8))


def test_smallest_side_still_finds_the_floor_set_by_sizes(checkpoint):
    from augment.generator import smallest_side

    # the ResNet's 7×7 reflection pad needs 4 pixels, its instance norms more than one value
    assert smallest_side(load_generator(checkpoint), 3, torch.device("cpu")) == 5
