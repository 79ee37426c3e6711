"""A resume compares the checkpoint's config with its own: keys that change the training trajectory
must match unless ``resume=force``; the others may change; the run's record of its configs is kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import tiny_cyclegan_overrides

from translate import io
from translate.config import load_config
from translate.engine import lr_factor, train
from translate.errors import CheckpointError

REFERENCE = Path(__file__).parents[1] / "configs" / "cyclegan_reference.yaml"


def run(a, b, out, steps, *extra):
    return train(load_config(REFERENCE, [*tiny_cyclegan_overrides(a, b, out, steps=steps), *extra]))


def test_trajectory_keys_are_everything_but_the_declared_free_ones():
    from translate.config import RESUME_FREE_KEYS, config_dict, flat_config, trajectory_changes

    base = config_dict(load_config(REFERENCE))
    changed = {
        "data.batch_size": 2,
        "optim.max_steps": 9,
        "optim.lr_g": 1e-3,
        "optim.schedule": "cosine",
        "engine.seed": 5,
        "engine.amp": "bf16",
        "engine.ema_decay": 0.9,
        "model.generator.ngf": 8,
        "data.dataset.root_a": "elsewhere",
        "data.crop_size": 128,
        "model.pool_size": 3,
    }
    for key, value in changed.items():
        other = load_config(REFERENCE, [f"{key}={value}"])
        assert trajectory_changes(base, config_dict(other)) == [f"{key}: {flat_config(base)[key]} -> {value}"], key
    free = [
        "engine.log_every=7",
        "engine.sample_every=7",
        "engine.save_every=7",
        "engine.progress=false",
        "engine.tensorboard=false",
        "data.num_workers=3",
        "engine.device=cpu",
        "out_dir=x",
        "name=y",
    ]
    assert trajectory_changes(base, config_dict(load_config(REFERENCE, free))) == []
    # every free key exists: a renamed option cannot silently become free or stay listed
    assert RESUME_FREE_KEYS <= set(flat_config(base))


def test_resume_with_another_batch_size_is_refused_naming_each_key(tiny_unpaired, tmp_path):
    a, b = tiny_unpaired
    out = tmp_path / "run"
    run(a, b, out, 6, "engine.stop_at_step=3")
    recorded = (out / "config.yaml").read_text()
    before = sorted(p.name for p in out.rglob("*"))
    with pytest.raises(CheckpointError) as caught:
        run(a, b, out, 8, "data.batch_size=2")
    lines = str(caught.value).splitlines()
    assert "ckpt_00000003.pt" in lines[0] and "resume=force" in lines[0]
    assert lines[1:] == ["  data.batch_size: 1 -> 2", "  optim.max_steps: 6 -> 8"]
    # nothing was trained or written: the record is the original run's
    assert (out / "config.yaml").read_text() == recorded
    assert sorted(p.name for p in out.rglob("*")) == before


def test_free_keys_change_on_resume_and_config_yaml_keeps_the_original(tiny_unpaired, tmp_path):
    a, b = tiny_unpaired
    out = tmp_path / "run"
    run(a, b, out, 6, "engine.stop_at_step=3")
    recorded = (out / "config.yaml").read_text()
    result = run(a, b, out, 6, "engine.log_every=1", "engine.save_every=2", "engine.sample_every=5")
    assert result.step == 6
    assert (out / "config.yaml").read_text() == recorded
    assert not list(out.glob("config_resume_*.yaml"))


def test_forced_resume_continues_the_state_with_the_new_schedule_and_keeps_both_configs(tiny_unpaired, tmp_path):
    a, b = tiny_unpaired
    out = tmp_path / "run"
    run(a, b, out, 6, "engine.stop_at_step=3")
    recorded = (out / "config.yaml").read_text()
    result = run(a, b, out, 8, "resume=force", "optim.lr_g=0.001", "data.batch_size=2")
    assert result.step == 8
    state = io.load_checkpoint(out / "checkpoints/ckpt_00000008.pt")
    # the optimiser moments continued from step 3 rather than starting over
    assert {int(s["step"]) for s in state["optimizers"]["G"]["state"].values()} == {8}
    # the learning rate follows the new base rate on the new 8-step schedule
    constant_fraction = 100 / 200  # the reference's epochs_constant / (epochs_constant + epochs_decay)
    group = state["optimizers"]["G"]["param_groups"][0]
    assert group["lr"] == pytest.approx(0.001 * lr_factor(8, 8, "linear", constant_fraction))
    assert state["config"]["optim"]["max_steps"] == 8
    # both configs are on record: the original untouched, the forced one beside it, saying what changed
    assert (out / "config.yaml").read_text() == recorded
    forced = (out / "config_resume_00000003.yaml").read_text()
    assert "#   data.batch_size: 1 -> 2" in forced and "#   optim.max_steps: 6 -> 8" in forced
    assert load_config(out / "config_resume_00000003.yaml").data.batch_size == 2


def test_a_forced_resume_from_a_named_checkpoint_is_spelled_force_path(tiny_unpaired, tmp_path):
    a, b = tiny_unpaired
    run(a, b, tmp_path / "first", 6, "engine.stop_at_step=3")
    ckpt = tmp_path / "first/checkpoints/ckpt_00000003.pt"
    with pytest.raises(CheckpointError, match=rf"resume=force:{ckpt}"):
        run(a, b, tmp_path / "second", 6, f"resume={ckpt}", "engine.seed=1", "engine.stop_at_step=4")
    result = run(a, b, tmp_path / "second", 6, f"resume=force:{ckpt}", "engine.seed=1", "engine.stop_at_step=4")
    assert result.step == 4
    assert "#   engine.seed: 0 -> 1" in (tmp_path / "second/config_resume_00000003.yaml").read_text()


def test_the_command_line_names_each_changed_key_and_writes_nothing(tiny_unpaired, tmp_path, capsys):
    from translate.cli import main

    a, b = tiny_unpaired
    out = tmp_path / "run"
    overrides = tiny_cyclegan_overrides(a, b, out, steps=6)
    assert main(["train", str(REFERENCE), *overrides, "engine.stop_at_step=3"]) == 0
    capsys.readouterr()
    assert main(["train", str(REFERENCE), *overrides, "engine.seed=4", "model.lambda_cycle=5"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"i2i train: error: {out / 'checkpoints/ckpt_00000003.pt'} was trained with other")
    assert err[1:] == ["  engine.seed: 0 -> 4", "  model.lambda_cycle: 10.0 -> 5.0"]
    assert not list(out.glob("config_resume_*.yaml"))


def test_a_missing_resume_checkpoint_is_named(tiny_unpaired, tmp_path):
    a, b = tiny_unpaired
    missing = tmp_path / "nowhere/ckpt_00000003.pt"
    for resume in (str(missing), f"force:{missing}"):
        with pytest.raises(CheckpointError, match=rf"^resume checkpoint not found: {missing}$"):
            run(a, b, tmp_path / "run", 6, f"resume={resume}")
    assert not (tmp_path / "run").exists()
