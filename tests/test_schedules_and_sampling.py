"""Learning-rate schedules and the resumable, sharded epoch order."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
from helpers import tiny_cyclegan_overrides

from translate.config import load_config
from translate.data.base import EpochSampler
from translate.engine import lr_factor, train
from translate.errors import ConfigError


def reference_linear_rule(epoch: int, n_epochs: int, n_epochs_decay: int) -> float:
    """The CycleGAN/pix2pix reference's linear rule: the factor in effect during 0-based epoch
    ``epoch`` of ``n_epochs + n_epochs_decay`` (its scheduler steps at the end of each epoch)."""
    return 1.0 - max(0, epoch + 1 - n_epochs) / float(n_epochs_decay + 1)


def test_reference_rule_holds_then_decays_but_never_reaches_zero():
    # what our per-step schedule is compared with: n epochs at the full rate, then nd epochs at
    # nd/(nd+1), ..., 1/(nd+1); training ends before the rate reaches zero
    factors = [reference_linear_rule(e, 3, 4) for e in range(3 + 4)]
    assert factors == pytest.approx([1, 1, 1, 4 / 5, 3 / 5, 2 / 5, 1 / 5], abs=1e-12)


def test_linear_schedule_is_the_reference_rule_per_step():
    # ``lr_factor(s)`` is the factor in effect during 0-based step s (the engine steps its
    # schedulers after each optimiser step). It is the reference rule read with steps for epochs:
    # c = int(total * constant_fraction) steps at the full rate, then d = total - c steps each one
    # 1/(d+1) lower, the last one training at 1/(d+1). The rate never reaches zero while training.
    total, constant_fraction = 200, 0.5
    c, d = 100, 100
    factors = [lr_factor(s, total, "linear", constant_fraction) for s in range(total + 1)]
    assert factors == pytest.approx([reference_linear_rule(s, c, d) for s in range(total + 1)], abs=1e-12)
    assert factors[:c] == [1.0] * c  # constant part, exactly
    steps = [b - a for a, b in zip(factors[c - 1 :], factors[c:], strict=False)]
    assert steps == pytest.approx([-1 / (d + 1)] * (d + 1), abs=1e-12)  # then linear, one equal step at a time
    assert factors[total - 1] == pytest.approx(1 / (d + 1)) and factors[total - 1] > 0  # the last step that trains
    assert factors[total] == pytest.approx(0.0, abs=1e-12)  # after the last update: never used


def test_engine_changes_the_rate_every_step(tiny_unpaired, tmp_path):
    # the rate logged after step k (1-based) is the one step k + 1 trains with: lr_factor(k)
    a, b = tiny_unpaired
    overrides = [
        *tiny_cyclegan_overrides(a, b, tmp_path / "run", steps=6),
        "engine.log_every=1",
        "optim.lr_g=0.001",
        "optim.schedule=linear",
        "optim.epochs_constant=1",
        "optim.epochs_decay=1",
    ]
    train(load_config(Path(__file__).parents[1] / "configs" / "cyclegan_reference.yaml", overrides))
    with open(tmp_path / "run" / "metrics.csv", newline="") as fh:
        logged = [(int(float(row["step"])), float(row["lr_G"])) for row in csv.DictReader(fh)]
    assert logged == [
        (k, pytest.approx(0.001 * lr_factor(k, 6, "linear", 0.5), rel=1e-6, abs=1e-12)) for k in range(1, 7)
    ]
    # steps 1-3 train at the full rate, steps 4, 5 and 6 at 3/4, 2/4 and 1/4 of it
    assert [lr for _, lr in logged] == pytest.approx([0.001, 0.001, 0.00075, 0.0005, 0.00025, 0.0], rel=1e-6, abs=1e-12)


def test_linear_schedule_splits_steps_by_the_epoch_proportions():
    # with max_steps set, epochs_constant : epochs_decay only sets where the decay starts
    total = 90
    factors = [lr_factor(s, total, "linear", constant_fraction=1 / 3) for s in range(total)]
    assert factors[:30] == [1.0] * 30 and factors[30] == pytest.approx(1 - 1 / 61)
    assert factors[-1] == pytest.approx(1 / 61)


def test_cosine_schedule_endpoints_and_midpoint():
    total = 100
    factors = [lr_factor(s, total, "cosine", 0.5) for s in range(total + 1)]
    assert factors[0] == 1.0
    assert factors[total // 2] == pytest.approx(0.5, abs=1e-12)
    assert factors[total // 4] == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)), abs=1e-12)
    assert factors[total] == pytest.approx(0.0, abs=1e-12)
    assert 0 < factors[total - 1] < 1e-3  # the last step that trains, at a rate close to zero
    assert all(a > b for a, b in zip(factors, factors[1:], strict=False))
    assert all(factors[s] + factors[total - s] == pytest.approx(1.0, abs=1e-12) for s in range(total + 1))
    # cosine has no constant part: the epoch proportions do not change it
    assert factors == [lr_factor(s, total, "cosine", 0.9) for s in range(total + 1)]


def test_constant_schedule_and_unknown_names():
    assert {lr_factor(s, 100, "constant", 0.5) for s in range(101)} == {1.0}
    with pytest.raises(ConfigError, match="unknown optim.schedule 'step'"):
        lr_factor(0, 100, "step", 0.5)


def test_epoch_order_is_deterministic_and_changes_between_epochs():
    a, b = list(EpochSampler(10, seed=3, epoch=0)), list(EpochSampler(10, seed=3, epoch=0))
    assert a == b
    assert sorted(i for i, _ in a) == list(range(10))
    assert [i for i, _ in EpochSampler(10, seed=3, epoch=1)] != [i for i, _ in a]


def test_ranks_partition_the_epoch_and_skip_resumes_mid_epoch():
    full = list(EpochSampler(9, seed=1, epoch=2))
    shards = [list(EpochSampler(9, seed=1, epoch=2, rank=r, world=2)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 5  # padded so ranks stay in lockstep
    covered = {key for shard in shards for key in shard}
    assert {i for i, _ in covered} == set(range(9))
    # a rank resumed after 3 samples continues with exactly the keys it had not yet seen
    assert list(EpochSampler(9, seed=1, epoch=2, rank=1, world=2, skip=3)) == shards[1][3:]
    assert list(EpochSampler(9, seed=1, epoch=2, skip=4)) == full[4:]
