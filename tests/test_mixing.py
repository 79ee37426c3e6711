"""SyntheticMix: the generated share, class plans, the wrapped dataset's item structure, and
reproducible generated items."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from augment.mixing import SyntheticMix, plan_labels, synthetic_count


class LabelPainter:
    """A stand-in sampler whose image for class k is filled with k/10 plus seeded noise, so a test
    can read back which class and which seed an item was drawn for."""

    classes = 4

    def __init__(self) -> None:
        self.calls = 0

    def sample(self, n, label=None, code=None, seed=0):
        self.calls += 1
        noise = torch.randn(n, 1, 1, 1, generator=torch.Generator().manual_seed(seed)) * 1e-3
        return torch.as_tensor(label).float().view(-1, 1, 1, 1).expand(n, 1, 4, 4) / 10 + noise


class Tuples(Dataset):
    def __init__(self, labels):
        self.labels = labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return torch.full((1, 4, 4), -1.0), self.labels[i]


class Dicts(Tuples):
    def __getitem__(self, i):
        return {"image": torch.full((1, 4, 4), -1.0), "label": torch.tensor(self.labels[i])}


def test_ratio_is_the_generated_share():
    assert synthetic_count(100, 0.5) == 100
    assert synthetic_count(90, 0.1) == 10
    assert synthetic_count(10, 0.0) == 0
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        synthetic_count(10, 1.0)
    mix = SyntheticMix(Tuples([0, 1, 2, 3] * 15), LabelPainter(), ratio=0.25)
    assert len(mix) == 80
    assert sum(mix.is_synthetic(i) for i in range(len(mix))) == 20


def test_balanced_plan_tops_up_the_rare_classes():
    real = [0] * 50 + [1] * 30 + [2] * 5 + [3] * 5
    plan = plan_labels(real, 4, 60, balance=True, seed=0)
    totals = np.bincount(real, minlength=4) + np.bincount(plan, minlength=4)
    # classes 2 and 3 are raised to 30 first, then 1, 2 and 3 rise together; class 0 gets nothing
    assert np.bincount(plan, minlength=4).tolist() == [0, 4, 28, 28]
    assert totals.tolist() == [50, 34, 33, 33]
    proportional = plan_labels(real, 4, 9000, balance=False, seed=0)
    assert np.bincount(proportional, minlength=4) / 9000 == pytest.approx(np.array([50, 30, 5, 5]) / 90, abs=0.02)


def test_tuple_structure_labels_match_images_and_are_reproducible():
    sampler = LabelPainter()
    mix = SyntheticMix(Tuples([0] * 40 + [3] * 2), sampler, ratio=0.5, balance=True, seed=5)
    image, label = mix[10]
    assert image.min() == -1 and label == 0  # a real item, untouched
    for i in range(42, len(mix)):
        image, label = mix[i]
        assert isinstance(label, int) and image.shape == (1, 4, 4) and image.dtype == torch.float32
        assert image.mean().item() == pytest.approx(label / 10, abs=0.01)
    labels = [mix[i][1] for i in range(42, len(mix))]
    assert labels.count(0) == 0 and set(labels) == {1, 2, 3}
    again = SyntheticMix(Tuples([0] * 40 + [3] * 2), LabelPainter(), ratio=0.5, balance=True, seed=5)
    assert torch.equal(again[len(mix) - 1][0], mix[len(mix) - 1][0])  # asked first, same item
    other_seed = SyntheticMix(Tuples([0] * 40 + [3] * 2), LabelPainter(), ratio=0.5, balance=True, seed=6)
    assert not torch.equal(other_seed[50][0], mix[50][0])


def test_dict_structure_collates_like_the_real_items():
    mix = SyntheticMix(Dicts([0, 1, 2, 3] * 4), LabelPainter(), ratio=0.5)
    batch = next(iter(DataLoader(mix, batch_size=len(mix))))
    assert batch["image"].shape == (32, 1, 4, 4) and batch["label"].dtype == torch.int64
    synthetic = batch["image"][16:].mean(dim=(1, 2, 3))
    assert torch.allclose(synthetic, batch["label"][16:].float() / 10, atol=0.01)


def test_samples_are_drawn_in_chunks_not_one_by_one():
    sampler = LabelPainter()
    mix = SyntheticMix(Tuples([0, 1] * 50), sampler, ratio=0.5)
    for i in range(100, 200):
        mix[i]
    assert sampler.calls == 1


def test_unconditional_samplers_and_unknown_labels_are_refused():
    class Unconditional(LabelPainter):
        classes = 0

    with pytest.raises(ValueError, match="class-conditional"):
        SyntheticMix(Tuples([0, 1]), Unconditional(), ratio=0.5)
    with pytest.raises(ValueError, match="up to 7"):
        SyntheticMix(Tuples([0, 7]), LabelPainter(), ratio=0.5)
