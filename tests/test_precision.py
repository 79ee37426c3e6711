"""Mixed precision through the engine: bf16 and fp16 steps run, fp16 overflow skips both optimisers."""

from __future__ import annotations

import copy

import pytest
import torch

from translate.config import load_config
from translate.distributed import DistEnv
from translate.engine import build_runtime, train_step

TINY = ["model.generator={name: resnet, ngf: 4, n_blocks: 1}", "model.discriminator={name: patchgan, ndf: 4, n_layers: 2}",
        "optim.max_steps=10", "engine.device=cpu"]


def batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"A": torch.rand(1, 3, 16, 16, generator=g) * 2 - 1, "B": torch.rand(1, 3, 16, 16, generator=g) * 2 - 1}


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_steps_train(amp):
    rt = build_runtime(load_config(None, [*TINY, f"engine.amp={amp}"]), DistEnv(), 1)
    before = copy.deepcopy(rt.model.state_dict())
    # fp16 starts at a large loss scale, so the first steps may overflow and be skipped
    for _ in range(6):
        logs = train_step(rt, batch())
    assert all(torch.isfinite(v) and v.dtype == torch.float32 for v in logs.values())
    changed = [k for k, v in rt.model.state_dict().items() if isinstance(v, torch.Tensor) and not torch.equal(v, before[k])]
    assert any(k.startswith("G_AB") for k in changed) and any(k.startswith("D_B") for k in changed)
    assert (rt.scaler.is_enabled()) == (amp == "fp16")


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
    changed = {k.split(".")[0] for k, v in rt.model.state_dict().items()
               if isinstance(v, torch.Tensor) and not torch.equal(v, before[k])}
    assert {"G_AB", "G_BA", "D_A", "D_B"} <= changed
