"""Learning-rate schedules and the resumable, sharded epoch order."""

from __future__ import annotations

import pytest

from translate.data.base import EpochSampler
from translate.engine import lr_factor


def test_linear_schedule_is_constant_then_decays_to_zero():
    total = 200
    factors = [lr_factor(s, total, "linear", constant_fraction=0.5) for s in range(total + 1)]
    assert factors[:101] == [1.0] * 101
    assert all(a > b for a, b in zip(factors[100:], factors[101:]))
    assert factors[-1] == pytest.approx(1 / 101)  # the last step still trains, at a tiny rate


def test_cosine_and_constant_schedules():
    assert lr_factor(0, 100, "cosine", 0.5) == 1.0
    assert lr_factor(50, 100, "cosine", 0.5) == pytest.approx(0.5)
    assert lr_factor(100, 100, "cosine", 0.5) == pytest.approx(0.0)
    assert lr_factor(77, 100, "constant", 0.5) == 1.0


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
