"""The model contract through the real engine: a model with three optimiser groups and non-image
inputs trains, checkpoints all its groups, resumes bit-identically and exports a net of its own
family that reloads by itself."""

from __future__ import annotations

import pytest
import torch
import toy_model  # noqa: F401  (registers the toy model, dataset and network family)

from translate import io
from translate.config import load_config
from translate.distributed import DistEnv
from translate.engine import build_runtime, train, train_step
from translate.errors import CheckpointError

TOY = [
    "model.name=toy_infogan",
    "data.dataset={name: toy_codes, size: 32}",
    "data.batch_size=8",
    "optim.lr_g=0.01",
    "optim.lr_d=0.002",
    "optim.schedule=constant",
    "engine.device=cpu",
    "engine.deterministic=true",
    "engine.ema_decay=0.9",
    "engine.log_every=5",
    "engine.sample_every=1000",
    "engine.save_every=1000",
    "engine.progress=false",
    "engine.tensorboard=false",
]


def toy(out_dir, steps: int, *extra: str):
    return load_config(None, [*TOY, f"out_dir={out_dir}", f"optim.max_steps={steps}", *extra])


def test_three_groups_get_an_optimiser_each_and_one_backward_steps_two():
    rt = build_runtime(toy("unused", 10), DistEnv(), steps_per_epoch=4)
    assert set(rt.optimizers) == {"G", "D", "Q"}
    assert rt.optimizers["Q"].param_groups[0]["lr"] == pytest.approx(0.01)  # Q reads lr_g
    assert set(rt.ema.copies) == {"G"}  # only the averaged group
    from torch.utils.data import default_collate
    from toy_model import ToyCodes

    batch = default_collate([ToyCodes()[i] for i in range(8)])
    before = {k: v.clone() for k, v in rt.model.state_dict().items()}
    train_step(rt, batch)
    after = rt.model.state_dict()
    for prefix in ("G.", "D.", "Q."):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(prefix)), prefix
    # every group's optimiser has taken exactly one step
    for name, opt in rt.optimizers.items():
        steps = {int(s["step"]) for s in opt.state.values()}
        assert steps == {1}, name


def test_undeclared_group_is_a_clear_error():
    rt = build_runtime(toy("unused", 10), DistEnv(), steps_per_epoch=4)
    from translate.engine.runtime import EngineStepContext

    loss = rt.model.G(torch.zeros(1, 3), torch.zeros(1, dtype=torch.int64)).sum()
    with pytest.raises(KeyError, match="not declared.*'D', 'G', 'Q'"):
        EngineStepContext(rt).optimize(["G", "E"], loss)


def test_toy_model_resumes_exactly_with_all_its_groups(tmp_path):
    train(toy(tmp_path / "straight", 12))
    first = train(toy(tmp_path / "split", 12, "engine.stop_at_step=5"))
    assert first.step == 5
    second = train(toy(tmp_path / "split", 12))
    assert second.step == 12
    ref = io.load_checkpoint(tmp_path / "straight/checkpoints/ckpt_00000012.pt")
    got = io.load_checkpoint(tmp_path / "split/checkpoints/ckpt_00000012.pt")
    assert set(ref["optimizers"]) == set(got["optimizers"]) == {"G", "D", "Q"}
    for key, value in ref["model"].items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, got["model"][key]), key
    for group in ("G", "D", "Q"):
        assert ref["optimizers"][group]["state"], group
        for pid, state in ref["optimizers"][group]["state"].items():
            assert torch.equal(state["exp_avg_sq"], got["optimizers"][group]["state"][pid]["exp_avg_sq"]), group
    for key, value in ref["ema"]["G"].items():
        assert torch.equal(value, got["ema"]["G"][key]), key


@pytest.mark.slow
def test_toy_model_learns_its_codes_and_exports_a_sampler_of_its_own_family(tmp_path):
    result = train(toy(tmp_path / "run", 200))
    # the mutual-information term falls from chance (log 4 = 1.39): G and Q are both stepped
    info = [
        float(line.split(",")[header_index(tmp_path / "run", "info")])
        for line in (tmp_path / "run/metrics.csv").read_text().splitlines()[1:]
    ]
    assert info[0] > 1.0 and info[-1] < 0.2 * info[0]

    # the export records its family and rebuilds without any training config
    net, meta = io.load_network(result.exports["G"])
    assert meta["family"] == "toy_sampler" and meta["info"]["ema"] is True
    ema_g = io.load_checkpoint(tmp_path / "run/checkpoints/ckpt_00000200.pt")["ema"]["G"]
    for key, value in net.state_dict().items():
        assert torch.equal(value, ema_g[key]), key
    # as in InfoGAN, each code (label) draws the band of its own row: a one-to-one mapping
    torch.manual_seed(0)
    label = torch.arange(200) % 4
    with torch.no_grad():
        rows = net(torch.randn(200, 3), label).mean(dim=3)[:, 0].argmax(dim=1)
    majority = [int(torch.mode(rows[label == k]).values) for k in range(4)]
    assert len(set(majority)) == 4
    assert sum(int((rows[label == k] == majority[k]).sum()) for k in range(4)) >= 0.9 * 200
    # a sampler is not an image-to-image generator
    with pytest.raises(CheckpointError, match="holds a toy_sampler .*not an image-to-image generator"):
        io.load_generator(result.exports["G"])


def header_index(run, column: str) -> int:
    return (run / "metrics.csv").read_text().splitlines()[0].split(",").index(column)
