"""Batch-norm statistics re-estimated on the target (AdaBN, ``norm_stats: target``): the re-estimate
itself on known inputs, a shifted domain it repairs, and the study rows and stages that use it."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn

from apps.study.config import Condition, load_study_config
from apps.study.norm_stats import batch_norms, reestimate_batch_norm
from apps.study.plan import Plan
from translate.errors import ConfigError

SMOKE = "configs/study_synth_smoke.yaml"


def _net() -> nn.Module:
    return nn.Sequential(nn.BatchNorm1d(2), nn.Linear(2, 2), nn.Dropout(0.5))


def test_reestimated_statistics_are_those_of_the_inputs_and_nothing_else_changes() -> None:
    torch.manual_seed(0)
    net = _net().eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    inputs = [torch.randn(256, 2) * torch.tensor([2.0, 0.5]) + torch.tensor([5.0, -3.0]) for _ in range(8)]
    adapted = reestimate_batch_norm(net, inputs)
    norm = adapted[0]
    everything = torch.cat(inputs)
    assert torch.allclose(norm.running_mean, everything.mean(0), atol=1e-5)
    # the average of the batches' unbiased variances: close to the whole set's
    assert torch.allclose(norm.running_var, everything.var(0), rtol=0.02)
    assert not adapted.training and not any(m.training for m in adapted.modules())  # dropout too
    for key, value in net.state_dict().items():  # the original is untouched
        assert torch.equal(value, before[key]), key
    assert torch.equal(adapted[1].weight, net[1].weight)
    # a second re-estimate on the same inputs gives the same statistics
    again = reestimate_batch_norm(adapted, inputs)
    assert torch.allclose(again[0].running_mean, norm.running_mean) and torch.allclose(
        again[0].running_var, norm.running_var
    )


def test_target_statistics_repair_a_per_channel_shift_of_the_domain() -> None:
    """A classifier learnt on one domain fails where each feature is scaled and shifted; with its
    batch-norm statistics re-estimated on unlabelled target inputs it is right again."""
    torch.manual_seed(0)

    def domain(n: int, scale: torch.Tensor, shift: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.randint(0, 2, (n,))
        x = torch.randn(n, 2) * 0.4 + (labels[:, None] * 2 - 1).float()
        return x * scale + shift, labels

    source_x, source_y = domain(512, torch.ones(2), torch.zeros(2))
    target_x, target_y = domain(512, torch.tensor([3.0, 0.5]), torch.tensor([5.0, 5.0]))
    net = _net()
    optimiser = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(100):
        optimiser.zero_grad()
        nn.functional.cross_entropy(net(source_x), source_y).backward()
        optimiser.step()
    net.eval()

    def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
        with torch.no_grad():
            return (model(x).argmax(1) == y).float().mean().item()

    assert accuracy(net, source_x, source_y) > 0.95
    assert accuracy(net, target_x, target_y) < 0.6
    adapted = reestimate_batch_norm(net, target_x.split(64))
    assert accuracy(adapted, target_x, target_y) > 0.95


def test_a_network_without_batch_norm_or_inputs_is_refused() -> None:
    with pytest.raises(ValueError, match="no batch-norm layers"):
        reestimate_batch_norm(nn.Sequential(nn.GroupNorm(1, 2), nn.Linear(2, 2)), [torch.zeros(4, 2)])
    with pytest.raises(ValueError, match="no input batches"):
        reestimate_batch_norm(_net(), [])
    assert batch_norms(nn.Sequential(nn.BatchNorm2d(3, track_running_stats=False))) == []


def _config(*conditions: Condition):
    cfg = load_study_config(SMOKE)
    cfg.conditions = [*cfg.conditions, *conditions]
    return cfg


def test_config_checks_norm_stats() -> None:
    from apps.study.config import check_config

    with pytest.raises(ConfigError, match="norm_stats must be one of training, target"):
        check_config(_config(Condition("x", "source", norm_stats="test")))
    cfg = load_study_config(SMOKE)
    cfg.conditions = [replace(c, norm_stats="target") if c.train_on == "target" else c for c in cfg.conditions]
    with pytest.raises(ConfigError, match="oracle row changes nothing"):
        check_config(cfg)


def test_rows_with_target_statistics_are_their_own_stages() -> None:
    cfg = _config(
        Condition("source-only + AdaBN", "source", norm_stats="target"),
        Condition(
            "CycleGAN ensemble + AdaBN",
            "ensemble",
            ensemble=["CycleGAN", "CycleGAN + photometric"],
            norm_stats="target",
        ),
    )
    plan = Plan(cfg)
    row = plan.row_stages(plan.condition("source-only + AdaBN"), 0)
    assert [s.name for s in row] == ["segmenter:source-seed0", "normstats:source-seed0"]
    assert row[-1].inputs["stage segmenter:source-seed0"] == row[0].fingerprint  # reads the trained one
    # the plain row is the same segmenter, scored as trained
    assert [s.name for s in plan.row_stages(plan.condition("source-only"), 0)] == ["segmenter:source-seed0"]
    adapted = plan.row_stages(plan.condition("CycleGAN ensemble + AdaBN"), 1)
    assert [s.name for s in adapted] == [
        "normstats:translated-cyclegan-seed1",
        "normstats:translated-cyclegan-photometric-seed1",
        "ensemble:targetnorm-translated-cyclegan+targetnorm-translated-cyclegan-photometric-seed1",
    ]
    plain = plan.ensemble(plan.condition("CycleGAN ensemble"), 1)
    assert plain.name == "ensemble:translated-cyclegan+translated-cyclegan-photometric-seed1"
    # every stage is listed once for the whole run, and a report reads the new rows
    names = [s.name for s in plan.all_stages()]
    assert len(names) == len(set(names)) and "normstats:translated-cyclegan-photometric-seed1" in names
    # rows at the default leave the report's inputs as they were before the option existed
    report = plan.report().inputs
    assert "conditions.source-only.norm_stats" not in report
    assert report["conditions.source-only + AdaBN.norm_stats"] == "target"


def test_a_teacher_with_target_statistics_labels_with_the_adapted_segmenter() -> None:
    from apps.study.config import SelfTraining

    teacher = Condition("CycleGAN + AdaBN", "translated", "cyclegan", norm_stats="target")
    student = Condition(
        "taught by AdaBN",
        "translated",
        "cyclegan",
        self_training=SelfTraining(rounds=1, init="previous", teacher="CycleGAN + AdaBN"),
    )
    plan = Plan(_config(teacher, student))
    labels = plan.pseudo_labels(student, 0, 1)
    assert "stage normstats:translated-cyclegan-seed0" in labels.inputs


def test_a_second_generation_is_taught_by_the_adapted_first_generation() -> None:
    """Students of an ensemble of students with target statistics (the preset study's gen2 rows):
    their labels come from the first generation's last rounds, each adapted, and from nothing
    else; the chain is checked as a whole and lists every stage once."""
    from apps.study.config import SelfTraining, check_config

    first = SelfTraining(rounds=1, init="previous", teacher="CycleGAN ensemble")
    second = SelfTraining(rounds=1, init="previous", teacher="first generation + AdaBN")
    students = ["CycleGAN + ST", "CycleGAN + photometric + ST"]
    cfg = _config(
        Condition(students[0], "translated", "cyclegan", self_training=first),
        Condition(students[1], "translated", "cyclegan", photometric=True, self_training=first),
        Condition("first generation + AdaBN", "ensemble", ensemble=students, norm_stats="target"),
        Condition("CycleGAN + gen2 ST", "translated", "cyclegan", self_training=second),
    )
    check_config(cfg)
    plan = Plan(cfg)
    labels = plan.pseudo_labels(plan.condition("CycleGAN + gen2 ST"), 1, 1)
    teacher = [name for name in labels.inputs if name.startswith("stage ")]
    assert teacher == [
        "stage data",
        "stage ensemble:targetnorm-CycleGAN + ST-round1+targetnorm-CycleGAN + photometric + ST-round1-seed1",
    ]
    ensemble = plan.ensemble(plan.condition("first generation + AdaBN"), 1)
    assert sorted(n for n in ensemble.inputs if n.startswith("stage normstats")) == [
        "stage normstats:CycleGAN + ST-seed1-round1",
        "stage normstats:CycleGAN + photometric + ST-seed1-round1",
    ]
    # the second generation fine-tunes its own plain segmenter, not a first-generation student
    segmenter = plan.round_segmenter(plan.condition("CycleGAN + gen2 ST"), 1, 1)
    assert "stage segmenter:translated-cyclegan-seed1" in segmenter.inputs
    names = [s.name for s in plan.all_stages()]
    assert len(names) == len(set(names)) and "segmenter:CycleGAN + gen2 ST-seed1-round1" in names
    # a teacher chain leading back to the row is refused
    cfg.conditions.append(Condition("loop", "translated", "cyclegan", self_training=replace(second, teacher="loop")))
    with pytest.raises(ConfigError, match="loop"):
        check_config(cfg)
