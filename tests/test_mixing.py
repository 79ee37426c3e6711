"""SyntheticMix: the generated share, class plans, the wrapped dataset's item structure, images in
the real images' dtype, range and layout, nothing inherited from real items, reproducible generated
items and a bounded cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from augment.mixing import CHUNK, SyntheticMix, plan_labels, synthetic_count
from translate.errors import ConfigError, DataError


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


class ColourPainter:
    """A 3-channel sampler drawing 4×6 images whose channels hold -1, label / 10 and 0.5."""

    classes = 4

    def __init__(self) -> None:
        self.calls = 0

    def sample(self, n, label=None, code=None, seed=0):
        self.calls += 1
        labels = torch.as_tensor(label).float().view(-1, 1, 1)
        return torch.stack([torch.full((n, 4, 6), -1.0), labels.expand(n, 4, 6) / 10, torch.full((n, 4, 6), 0.5)], 1)


class Items(Dataset):
    """Real items built by ``make(label)``, labels 0..3."""

    def __init__(self, make, n: int = 8) -> None:
        self.make, self.n = make, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return self.make(i % 4)


def colour(label: int) -> np.ndarray:
    """ColourPainter's channel values for ``label``, in [-1, 1]."""
    return np.array([-1.0, label / 10, 0.5])


def test_uint8_hwc_arrays_get_real_pixels_and_collate_with_the_real_items():
    real = Items(lambda k: (np.full((4, 6, 3), 200, np.uint8), k))
    mix = SyntheticMix(real, ColourPainter(), ratio=0.5)
    for i in range(8, 16):
        image, label = mix[i]
        assert isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.shape == (4, 6, 3)
        expected = np.rint((colour(label) + 1) * 127.5).astype(np.uint8)
        assert (image == expected).all()  # e.g. -1 -> 0, 0.5 -> 191: pixels, not [-1, 1] floats
    images, _ = next(iter(DataLoader(mix, batch_size=len(mix))))
    assert images.shape == (16, 4, 6, 3) and images.dtype == torch.uint8


@pytest.mark.parametrize(
    "make, kind, dtype, shape, low, high",
    [
        (lambda k: (np.full((4, 6, 3), 0.5, np.float32), k), np.ndarray, np.float32, (4, 6, 3), 0.0, 1.0),
        (lambda k: (np.full((4, 6, 3), 0.5, np.float64), k), np.ndarray, np.float64, (4, 6, 3), 0.0, 1.0),
        (lambda k: (torch.full((3, 4, 6), 0.5), k), torch.Tensor, torch.float32, (3, 4, 6), 0.0, 1.0),
        (lambda k: (torch.full((3, 4, 6), 9, dtype=torch.uint8), k), torch.Tensor, torch.uint8, (3, 4, 6), 0.0, 255.0),
        (lambda k: (torch.full((3, 4, 6), -0.5), k), torch.Tensor, torch.float32, (3, 4, 6), -1.0, 1.0),
        (lambda k: (np.full((4, 6, 3), 30.0, np.float32), k), np.ndarray, np.float32, (4, 6, 3), 0.0, 255.0),
    ],
    ids=["float32-unit-hwc", "float64-unit-hwc", "tensor-unit-chw", "tensor-uint8-chw", "tensor-signed", "float-0-255"],
)
def test_generated_images_take_the_real_images_type_dtype_range_and_layout(make, kind, dtype, shape, low, high):
    mix = SyntheticMix(Items(make), ColourPainter(), ratio=0.5)
    assert mix.value_range == (low, high)
    image, label = mix[12]
    assert isinstance(image, kind) and image.dtype == dtype and tuple(image.shape) == shape
    channels = np.asarray(image if kind is np.ndarray else image.numpy(), np.float64)
    channels = channels.reshape(-1, 3) if kind is np.ndarray else channels.reshape(3, -1).T
    expected = low + (colour(label) + 1) / 2 * (high - low)
    tolerance = 0.5 if dtype == torch.uint8 else 1e-5
    assert np.abs(channels - expected).max() <= tolerance


def test_one_channel_images_keep_their_two_dimensional_layout():
    class Gray(LabelPainter):
        def sample(self, n, label=None, code=None, seed=0):
            return super().sample(n, label, code, seed) * 0  # all zeros: mid-grey

    mix = SyntheticMix(Items(lambda k: (np.zeros((4, 4), np.uint8), k)), Gray(), ratio=0.5)
    image, _ = mix[9]
    assert image.shape == (4, 4) and image.dtype == np.uint8 and (image == 128).all()


def test_mismatched_or_unreadable_real_images_are_named():
    mix = SyntheticMix(Items(lambda k: (np.zeros((8, 8, 3), np.uint8), k)), ColourPainter(), ratio=0.5)
    with pytest.raises(DataError, match=r"3×4×6 \(C×H×W\) images, the real images are shaped \(8, 8, 3\)"):
        mix[10]
    with pytest.raises(DataError, match=r"values in \[-3, 4\].*value_range"):
        SyntheticMix(Items(lambda k: (torch.linspace(-3, 4, 72).view(3, 4, 6), k)), ColourPainter(), ratio=0.5)
    explicit = SyntheticMix(
        Items(lambda k: (torch.linspace(-3, 4, 72).view(3, 4, 6), k)), ColourPainter(), ratio=0.5, value_range=(-3, 4)
    )
    assert explicit[10][0].min() == -3
    with pytest.raises(DataError, match="numpy arrays or torch tensors, got str"):
        SyntheticMix(Items(lambda k: ("a.png", k)), ColourPainter(), ratio=0.5)[10]
    with pytest.raises(DataError, match="int32"):
        SyntheticMix(Items(lambda k: (np.zeros((4, 6, 3), np.int32), k)), ColourPainter(), ratio=0.5)
    for bad in ({"value_range": (1, 1)}, {"max_cached_chunks": 0}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            SyntheticMix(Tuples([0, 1]), LabelPainter(), ratio=0.5, **bad)


def test_generated_items_inherit_no_mask_path_or_other_entry():
    def with_extras(k):
        image, mask = torch.zeros(1, 4, 4), torch.ones(4, 4)
        return {"image": image, "label": torch.tensor(k), "mask": mask, "path": f"real{k}.png"}

    mix = SyntheticMix(Items(with_extras), LabelPainter(), ratio=0.5)
    assert set(mix[3]) == {"image", "label", "mask", "path"}  # real items untouched
    for i in range(8, 16):
        assert set(mix[i]) == {"image", "label"} and mix.is_synthetic(i)
    triples = SyntheticMix(Items(lambda k: (torch.zeros(1, 4, 4), k, torch.ones(4, 4))), LabelPainter(), ratio=0.5)
    assert len(triples[2]) == 3 and len(triples[9]) == 2  # (image, label): no real mask


def test_the_sample_cache_is_bounded_and_items_stay_the_same():
    real = Tuples([0, 1, 2, 3] * (CHUNK + 1))  # 4 chunks and a bit of generated items
    sampler = LabelPainter()
    mix = SyntheticMix(real, sampler, ratio=0.5, max_cached_chunks=2)
    unbounded = SyntheticMix(real, LabelPainter(), ratio=0.5, max_cached_chunks=100)
    first = mix[len(real)][0].clone()
    sizes = []
    for i in range(len(real), len(mix), 3):
        assert torch.equal(mix[i][0], unbounded[i][0]) and mix[i][1] == unbounded[i][1]
        sizes.append(len(mix._chunks))
    assert max(sizes) == 2 and sampler.calls == 5
    assert torch.equal(mix[len(real)][0], first) and sampler.calls == 6  # evicted, drawn again, the same
    mix[len(real)][0].add_(1.0)  # a caller changing its item in place leaves the cache alone
    assert torch.equal(mix[len(real)][0], first)
