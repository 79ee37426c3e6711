"""What a run keeps and restores beyond the weights: EMA, pruning, the metrics log, data order with
workers, exact-match checks on resume, and the engine's memory-format and compile paths."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from helpers import tiny_cyclegan_overrides

from translate import io
from translate.config import load_config
from translate.distributed import DistEnv
from translate.engine import build_runtime, train, train_step

REFERENCE = Path(__file__).parents[1] / "configs" / "cyclegan_reference.yaml"


def run(a, b, out, steps, *extra):
    return train(load_config(REFERENCE, [*tiny_cyclegan_overrides(a, b, out, steps=steps), *extra]))


def checkpoint(out: Path, step: int) -> dict:
    return io.load_checkpoint(out / "checkpoints" / f"ckpt_{step:08d}.pt")


def assert_same_tensors(ref: dict, got: dict) -> None:
    assert ref.keys() == got.keys()
    for key, value in ref.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, got[key]), key


def test_resume_with_ema_is_exact_and_exports_the_average(tiny_unpaired, tmp_path):
    a, b = tiny_unpaired
    straight = run(a, b, tmp_path / "straight", 6, "engine.ema_decay=0.5")
    run(a, b, tmp_path / "split", 6, "engine.ema_decay=0.5", "engine.stop_at_step=3")
    run(a, b, tmp_path / "split", 6, "engine.ema_decay=0.5")
    ref, got = checkpoint(tmp_path / "straight", 6), checkpoint(tmp_path / "split", 6)
    for net in ("G_AB", "G_BA"):
        assert_same_tensors(ref["ema"][net], got["ema"][net])
        # with decay 0.5 the average really lags the live weights
        assert any(not torch.equal(v, ref["model"][f"{net}.{k}"]) for k, v in ref["ema"][net].items())
    from safetensors.torch import load_file

    exported = load_file(str(straight.exports["G_AB"]))
    assert_same_tensors(ref["ema"]["G_AB"], exported)


def test_only_the_last_two_checkpoints_are_kept(tiny_unpaired, tmp_path):
    a, b = tiny_unpaired
    run(a, b, tmp_path / "run", 5, "engine.save_every=1")
    assert sorted(p.name for p in (tmp_path / "run/checkpoints").iterdir()) == ["ckpt_00000004.pt", "ckpt_00000005.pt"]
    assert io.latest_checkpoint(tmp_path / "run/checkpoints").name == "ckpt_00000005.pt"


def metrics(out: Path) -> list[dict[str, str]]:
    with open(out / "metrics.csv", newline="") as fh:
        return [{k: v for k, v in row.items() if k != "s_per_iter"} for row in csv.DictReader(fh)]


def test_metrics_after_a_kill_and_resume_match_an_uninterrupted_run(tiny_unpaired, tmp_path):
    a, b = tiny_unpaired
    logs = ["engine.log_every=1", "engine.save_every=3", "engine.tensorboard=true"]
    run(a, b, tmp_path / "straight", 6, *logs)
    # a run killed after logging step 4 but before saving it: its last checkpoint is step 3
    run(a, b, tmp_path / "killed", 6, *logs, "engine.stop_at_step=4")
    (tmp_path / "killed/checkpoints/ckpt_00000004.pt").unlink()
    run(a, b, tmp_path / "killed", 6, *logs)
    got, ref = metrics(tmp_path / "killed"), metrics(tmp_path / "straight")
    assert [r["step"] for r in got] == ["1", "2", "3", "4", "5", "6"]
    assert got == ref


def test_data_loader_workers_do_not_change_the_run(tiny_unpaired, tmp_path):
    a, b = tiny_unpaired
    run(a, b, tmp_path / "w0", 4, "data.num_workers=0")
    run(a, b, tmp_path / "w2", 4, "data.num_workers=2", "engine.stop_at_step=2")
    run(a, b, tmp_path / "w2", 4, "data.num_workers=2")
    assert_same_tensors(checkpoint(tmp_path / "w0", 4)["model"], checkpoint(tmp_path / "w2", 4)["model"])


def resume_with(tmp_path, a, b, edit) -> None:
    run(a, b, tmp_path / "run", 6, "engine.stop_at_step=3")
    path = tmp_path / "run/checkpoints/ckpt_00000003.pt"
    state = io.load_checkpoint(path)
    edit(state)
    io.save_checkpoint(path, state)
    run(a, b, tmp_path / "run", 6)


def test_checkpoint_missing_model_extra_state_is_named(tiny_unpaired, tmp_path):
    a, b = tiny_unpaired

    def drop_pool(state):
        del state["per_rank"][0]["extra"]["_extra_state"]

    with pytest.raises(io.CheckpointError, match=r"extra-state entries .*missing \['_extra_state'\]"):
        resume_with(tmp_path, a, b, drop_pool)


def test_checkpoint_missing_an_optimiser_group_is_named(tiny_unpaired, tmp_path):
    a, b = tiny_unpaired
    with pytest.raises(io.CheckpointError, match=r"optimiser groups .*missing \['D'\]"):
        resume_with(tmp_path, a, b, lambda state: state["optimizers"].pop("D"))


def test_resume_with_another_process_count_is_a_clear_error(tiny_unpaired, tmp_path):
    a, b = tiny_unpaired

    def two_ranks(state):
        state["per_rank"] = state["per_rank"] * 2

    # the number of processes sets the effective batch: a trajectory change like any config key
    with pytest.raises(io.CheckpointError, match=r"(?s)resume=force to continue.*\n  processes: 2 -> 1$"):
        resume_with(tmp_path, a, b, two_ranks)


TINY = [
    "model.generator={name: resnet, ngf: 4, n_blocks: 1}",
    "model.discriminator={name: patchgan, ndf: 4, n_layers: 2}",
    "model.pool_size=0",
    "optim.max_steps=10",
    "engine.device=cpu",
]


def two_steps(*extra: str) -> tuple[dict, torch.nn.Module]:
    rt = build_runtime(load_config(None, [*TINY, *extra]), DistEnv(), 1)
    g = torch.Generator().manual_seed(0)
    logs = {}
    for _ in range(2):
        batch = {k: torch.rand(1, 3, 16, 16, generator=g) * 2 - 1 for k in ("A", "B")}
        logs = train_step(rt, batch)
    return logs, rt.model


def test_channels_last_trains_like_the_default_layout():
    ref_logs, ref = two_steps()
    logs, model = two_steps("engine.channels_last=true")
    assert model.G_AB.encoder[1].weight.is_contiguous(memory_format=torch.channels_last)
    for key in ref_logs:
        torch.testing.assert_close(logs[key], ref_logs[key], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_compiled_nets_train_like_eager_ones():
    ref_logs, _ = two_steps()
    logs, model = two_steps("engine.compile=true")
    assert model.G_AB._compiled_call_impl is not None
    for key in ref_logs:
        torch.testing.assert_close(logs[key], ref_logs[key], rtol=1e-3, atol=1e-4)


def test_negative_ema_decay_is_refused_not_silently_off():
    from translate.errors import ConfigError

    with pytest.raises(ConfigError, match=r"engine.ema_decay must be in \(0, 1\), or 0 for no EMA; got -0.5"):
        build_runtime(load_config(None, [*TINY, "engine.ema_decay=-0.5"]), DistEnv(), 1)


def test_crops_too_small_for_the_discriminator_are_a_one_line_error(tiny_unpaired, tmp_path, capsys):
    from translate.cli import main

    a, b = tiny_unpaired
    overrides = [
        f"out_dir={tmp_path}",
        f"data.dataset.root_a={a}",
        f"data.dataset.root_b={b}",
        "data.load_size=20",
        "data.crop_size=16",
        "optim.max_steps=2",
        "engine.progress=false",
        "engine.tensorboard=false",
        "model.generator.ngf=4",
        "model.generator.n_blocks=1",
    ]
    assert main(["train", str(REFERENCE), *overrides]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "i2i train: error: patchgan discriminator (n_layers=3) needs images of at least 24×24 pixels, "
        "got 16×16; use a larger data.crop_size or fewer discriminator n_layers"
    ]


PIX2PIX = Path(__file__).parents[1] / "configs" / "pix2pix_reference.yaml"


def test_pix2pix_resume_is_exact(tmp_path):
    """Dropout, batch norm and the conditional D all resume exactly (RNG and running statistics)."""
    from helpers import smooth_images, write_folder

    images = smooth_images(12, 24, seed=3)
    a, b = write_folder(tmp_path / "A", images[:6]), write_folder(tmp_path / "B", images[6:])

    def pix2pix(out, *extra):
        return train(
            load_config(
                PIX2PIX,
                [
                    f"out_dir={out}",
                    "data.dataset.root=null",
                    f"data.dataset.root_a={a}",
                    f"data.dataset.root_b={b}",
                    "data.load_size=20",
                    "data.crop_size=16",
                    "model.generator={name: unet, ngf: 4, num_downs: 6, dropout: 0.5}",  # dropout at level 4
                    "model.discriminator={name: patchgan, ndf: 4, n_layers: 2, norm: batch}",
                    "optim.max_steps=6",
                    "engine.save_every=100",
                    "engine.sample_every=100",
                    "engine.progress=false",
                    "engine.tensorboard=false",
                    "engine.deterministic=true",
                    *extra,
                ],
            )
        )

    pix2pix(tmp_path / "straight")
    pix2pix(tmp_path / "split", "engine.stop_at_step=3")
    pix2pix(tmp_path / "split")
    ref, got = checkpoint(tmp_path / "straight", 6), checkpoint(tmp_path / "split", 6)
    assert_same_tensors(ref["model"], got["model"])
    assert any("running_mean" in k for k in ref["model"])  # batch-norm statistics are compared too
    for group in ("G", "D"):
        for pid, state in ref["optimizers"][group]["state"].items():
            assert torch.equal(state["exp_avg_sq"], got["optimizers"][group]["state"][pid]["exp_avg_sq"]), group


def _net_weights(state: dict, net: str) -> dict:
    return {k: v for k, v in state["model"].items() if k.startswith(net + ".")}


def test_init_from_starts_the_nets_from_another_run_and_the_rest_fresh(tiny_unpaired, tmp_path):
    a, b = tiny_unpaired
    run(a, b, tmp_path / "first", 3, "engine.ema_decay=0.5")
    start = tmp_path / "first/checkpoints/ckpt_00000003.pt"
    # learning rates of 0 leave the weights where they started
    run(a, b, tmp_path / "tuned", 2, f"init_from={start}", "optim.lr_g=0", "optim.lr_d=0", "engine.ema_decay=0.5")
    run(a, b, tmp_path / "fresh", 2, "optim.lr_g=0", "optim.lr_d=0")
    first, tuned, fresh = (
        checkpoint(tmp_path / "first", 3),
        checkpoint(tmp_path / "tuned", 2),
        checkpoint(tmp_path / "fresh", 2),
    )
    assert tuned["step"] == 2  # step and schedule start fresh
    for net in ("G_AB", "G_BA", "D_A", "D_B"):
        assert_same_tensors(_net_weights(first, net), _net_weights(tuned, net))
        # without init_from the same seed starts elsewhere, so the match above is not an accident
        assert any(not torch.equal(v, first["model"][k]) for k, v in _net_weights(fresh, net).items()), net
    # the EMA copies start from the first run's averages, then take two steps of decay 0.5 towards
    # the (unchanged) weights; buffers are copied
    for k, v in tuned["ema"]["G_AB"].items():
        live = first["model"][f"G_AB.{k}"]
        buffer = "running_" in k or "num_batches" in k
        expected = live if buffer else first["ema"]["G_AB"][k].lerp(live, 0.5).lerp(live, 0.5)
        assert torch.allclose(v, expected), k


def test_init_from_another_architecture_or_a_missing_file_is_an_error(tiny_unpaired, tmp_path):
    from translate.errors import CheckpointError

    a, b = tiny_unpaired
    run(a, b, tmp_path / "first", 3)
    start = tmp_path / "first/checkpoints/ckpt_00000003.pt"
    with pytest.raises(CheckpointError, match=r"init_from .*\(G_AB\).*of another shape"):
        run(a, b, tmp_path / "wider", 2, f"init_from={start}", "model.generator.ngf=8")
    with pytest.raises(CheckpointError, match="init_from checkpoint not found"):
        run(a, b, tmp_path / "missing", 2, f"init_from={tmp_path / 'nope.pt'}")
