"""DCGAN's representation and latent-arithmetic measures (translate/representation.py): feature
shapes, label subsets, a linear probe that beats chance, and the arithmetic on known vectors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from translate.data.sampling_sets import Digits
from translate.errors import ConfigError
from translate.nets.samplers import DCGANDiscriminator
from translate.representation import (
    concept_latent,
    discriminator_features,
    few_labels,
    ink_mass,
    latent_arithmetic,
    linear_probe,
    pick_concept,
)


@pytest.mark.parametrize("size,grid", [(32, 4), (64, 4), (32, 2)])
def test_discriminator_features_pool_every_conv_layer_to_the_grid(size, grid):
    torch.manual_seed(0)
    d = DCGANDiscriminator(image_size=size, channels=1, width=4).train()
    x = torch.randn(5, 1, size, size)
    feats = discriminator_features(d, x, grid=grid, batch=2)  # batched in pieces, batch norm in eval
    layers = 3 if size == 32 else 4
    assert feats.shape == (5, sum(4 * 2**i for i in range(layers)) * grid * grid)
    assert torch.allclose(feats[3:4], discriminator_features(d, x[3:4], grid=grid), atol=1e-6)
    assert d.training  # the discriminator's mode is left as it was
    # the first layer's 4×4 max-pool of a 16×16 map: each value is the maximum of a 4×4 block
    first, block = torch.nn.functional.leaky_relu(d.body[0](x), 0.2), size // 2 // grid
    assert torch.allclose(
        feats[:, : 4 * grid * grid].view(5, 4, grid, grid)[0, 0, 0, 0], first[0, 0, :block, :block].max()
    )
    with pytest.raises(ConfigError, match="feature grid must be >= 1, got 0"):
        discriminator_features(d, x, grid=0)


def test_few_labels_draws_per_class_by_seed():
    labels = np.repeat(np.arange(3), [5, 7, 4])
    idx = few_labels(labels, 3, seed=1)
    assert np.bincount(labels[idx]).tolist() == [3, 3, 3] and len(set(idx)) == 9
    assert np.array_equal(idx, few_labels(labels, 3, seed=1)) and not np.array_equal(idx, few_labels(labels, 3, seed=2))
    with pytest.raises(ConfigError, match="class 2 has 4 items, fewer than the 5 labels asked for"):
        few_labels(labels, 5, seed=0)


def test_linear_probe_on_discriminator_features_beats_chance_by_a_margin():
    """10 labels per class of the real test digits; a logistic regression on the features of a
    small DCGAN discriminator classifies the other digits far above chance (10 %; measured 91 %),
    and cannot when the labels it is trained on are shuffled."""
    digits = Digits("test")
    torch.manual_seed(0)
    feats = discriminator_features(DCGANDiscriminator(width=4), digits.images, grid=2)
    idx = few_labels(digits.labels.numpy(), 10, seed=0)
    rest = np.setdiff1d(np.arange(len(digits)), idx)
    acc = linear_probe(feats[idx], digits.labels[idx], feats[rest], digits.labels[rest])
    assert acc > 0.6, acc
    shuffled = digits.labels[idx][torch.randperm(len(idx), generator=torch.Generator().manual_seed(0))]
    assert linear_probe(feats[idx], shuffled, feats[rest], digits.labels[rest]) < 0.3


def test_latent_arithmetic_averages_each_concept_first():
    plus = torch.tensor([[1.0, 0.0], [3.0, 0.0]])  # mean [2, 0]
    minus = torch.tensor([[0.0, 2.0]])
    add = torch.tensor([[1.0, 1.0], [1.0, 3.0], [1.0, 2.0]])  # mean [1, 2]
    assert concept_latent(add).tolist() == [1.0, 2.0]
    assert latent_arithmetic(plus, minus, add).tolist() == [3.0, 0.0]
    with pytest.raises(ConfigError, match="k×D stack of latents, got shape \\(0, 2\\)"):
        concept_latent(torch.zeros(0, 2))


def test_ink_mass_and_concept_picking():
    images = torch.stack([torch.full((1, 4, 4), v) for v in (-1.0, 0.0, 1.0, -0.5)])
    assert ink_mass(images).tolist() == [0.0, 0.5, 1.0, 0.25]
    scores = torch.tensor([0.3, 0.9, 0.1, 0.5, 0.7])
    eligible = torch.tensor([True, True, False, True, True])
    assert pick_concept(scores, eligible, 2, largest=True).tolist() == [1, 4]
    assert pick_concept(scores, eligible, 2, largest=False).tolist() == [0, 3]
    with pytest.raises(ConfigError, match="only 4 samples show the concept, 5 needed"):
        pick_concept(scores, eligible, 5, largest=True)
