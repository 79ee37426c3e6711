"""Mixed precision through the engine: bf16 and fp16 steps run in their precision (the convolutions'
outputs have its dtype), and fp16 overflow skips both optimisers."""

from __future__ import annotations

import contextlib
import copy

import pytest
import torch

from translate.config import load_config
from translate.distributed import DistEnv
from translate.engine import build_runtime, train_step
from translate.engine.runtime import EngineStepContext

TINY = [
    "model.generator={name: resnet, ngf: 4, n_blocks: 1}",
    "model.discriminator={name: patchgan, ndf: 4, n_layers: 2}",
    "optim.max_steps=10",
    "engine.device=cpu",
]


def batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"A": torch.rand(1, 3, 16, 16, generator=g) * 2 - 1, "B": torch.rand(1, 3, 16, 16, generator=g) * 2 - 1}


def conv_output_dtypes(model: torch.nn.Module) -> set[torch.dtype]:
    """Records the dtype of every convolution's output from now on (the set is filled in place)."""
    seen: set[torch.dtype] = set()
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_hook(lambda _m, _args, out: seen.add(out.dtype))
    return seen


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_steps_train(amp):
    rt = build_runtime(load_config(None, [*TINY, f"engine.amp={amp}"]), DistEnv(), 1)
    before = copy.deepcopy(rt.model.state_dict())
    dtypes = conv_output_dtypes(rt.model)
    # fp16 starts at a large loss scale, so the first steps may overflow and be skipped
    for _ in range(6):
        logs = train_step(rt, batch())
    # the forward passes ran under autocast: convolutions computed in the reduced precision
    assert dtypes == {torch.bfloat16 if amp == "bf16" else torch.float16}
    assert all(torch.isfinite(v) and v.dtype == torch.float32 for v in logs.values())
    changed = [
        k for k, v in rt.model.state_dict().items() if isinstance(v, torch.Tensor) and not torch.equal(v, before[k])
    ]
    assert any(k.startswith("G_AB") for k in changed) and any(k.startswith("D_B") for k in changed)
    assert (rt.scaler.is_enabled()) == (amp == "fp16")


def test_a_step_without_autocast_is_seen(monkeypatch):
    """The dtype check above fails when the engine's autocast is switched off (the broken variant)."""
    monkeypatch.setattr(EngineStepContext, "autocast", lambda self: contextlib.nullcontext())
    rt = build_runtime(load_config(None, [*TINY, "engine.amp=bf16"]), DistEnv(), 1)
    dtypes = conv_output_dtypes(rt.model)
    train_step(rt, batch())
    assert dtypes == {torch.float32}


def test_fp16_overflow_skips_both_optimisers():
    rt = build_runtime(load_config(None, [*TINY, "engine.amp=fp16"]), DistEnv(), 1)
    rt.scaler = torch.amp.GradScaler("cpu", init_scale=1e38)  # any loss times this overflows to inf
    before = copy.deepcopy(rt.model.state_dict())
    train_step(rt, batch())
    for key, value in rt.model.state_dict().items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, before[key]), f"{key} changed despite overflow"
    assert rt.scaler.get_scale() < 1e38  # the scale backs off
    rt.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    train_step(rt, batch())  # with a sane scale the next step updates both groups again
    changed = {
        k.split(".")[0]
        for k, v in rt.model.state_dict().items()
        if isinstance(v, torch.Tensor) and not torch.equal(v, before[k])
    }
    assert {"G_AB", "G_BA", "D_A", "D_B"} <= changed


@pytest.mark.parametrize(("native", "expected"), [(True, torch.bfloat16), (False, torch.float32)])
def test_engine_amp_auto_follows_the_cpu(monkeypatch, native, expected):
    """engine.amp=auto trains in bf16 on a CPU that computes it natively and in fp32 on one that does not."""
    from translate import devices

    monkeypatch.setattr(devices, "cpu_computes_bf16", lambda: native)
    rt = build_runtime(load_config(None, [*TINY, "engine.amp=auto"]), DistEnv(), 1)
    assert rt.amp == ("bf16" if native else "off") and not rt.scaler.is_enabled()
    dtypes = conv_output_dtypes(rt.model)
    logs = train_step(rt, batch())
    assert dtypes == {expected}
    assert all(torch.isfinite(v) for v in logs.values())


def test_engine_amp_must_be_a_known_name():
    from translate.errors import ConfigError

    with pytest.raises(ConfigError, match=r"engine.amp must be one of auto .*off, bf16 or fp16; got 'bf61'"):
        build_runtime(load_config(None, [*TINY, "engine.amp=bf61"]), DistEnv(), 1)


def test_engine_amp_off_unquoted_in_yaml_means_full_precision(tmp_path):
    """YAML reads `amp: off` as a boolean; the engine takes it as "off", as the docs spell it."""
    config = tmp_path / "c.yaml"
    config.write_text("engine:\n  amp: off\n")
    for cfg in (load_config(config, TINY), load_config(None, [*TINY, "engine.amp=off"])):
        rt = build_runtime(cfg, DistEnv(), 1)
        assert rt.amp == "off"


@pytest.mark.parametrize("kind", ["instance", "group"])
def test_norms_compute_in_float32_under_cpu_autocast_as_cuda_autocast_does(kind):
    from translate.infer.stats import normalise
    from translate.nets.layers import norm_layer

    norm = norm_layer(kind, 32)  # group norm of 32 channels: 32 groups, so both are per-channel
    x = (torch.randn(2, 32, 12, 12, generator=torch.Generator().manual_seed(0)) * 3 + 1).bfloat16()
    exact = torch.nn.functional.group_norm(x.double(), 32, eps=norm.eps)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = norm(x)
        # tiled inference's hook hands on the same dtype, given the whole map's statistics
        mean, var = x.double().mean(dim=(0, 2, 3)), x.double().var(dim=(0, 2, 3), unbiased=False)
        tiled = normalise(norm, x[:1], mean, var)
        conv = torch.nn.functional.conv2d(out, torch.randn(4, 32, 3, 3))
    assert out.dtype == torch.float32 and tiled.dtype == torch.float32
    assert conv.dtype == torch.bfloat16  # what follows the norm is still autocast's
    # float32 arithmetic on the bf16 input: far inside bf16's own rounding (2^-8 relative)
    assert (out.double() - exact).abs().max() < 1e-4
    # the same layer in bf16 arithmetic rounds its output to bf16
    bf16_rounded = torch.nn.functional.group_norm(x, 32, eps=norm.eps)
    assert (bf16_rounded.double() - exact).abs().max() > 1e-3
    assert norm(x.float()).dtype == torch.float32 and norm(x).dtype == torch.bfloat16  # outside autocast: as given
