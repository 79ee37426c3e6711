"""The study's segmenter: it learns, predicts as it was trained, and its augmentation keeps labels aligned."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from apps.study.segmenter import SegmenterConfig, build_segmenter, predict
from translate.nets.layers import crop_to, pad_to_multiple


def _as_training_sees_it(model: torch.nn.Module, images: np.ndarray, multiple: int) -> np.ndarray:
    """Reference: the network on inputs padded to ``multiple`` (2**encoder depth, as in training)."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    padded, size = pad_to_multiple(x, multiple)
    with torch.no_grad():
        return crop_to(model(padded), size).argmax(1).to(torch.uint8).numpy()


@pytest.mark.parametrize("depth", [3, 4])
def test_predict_pads_to_the_encoder_depth_used_in_training(depth: int) -> None:
    """24×40 is a multiple of 8 but not of 16: a depth-4 encoder is trained on inputs padded to 16."""
    torch.manual_seed(0)
    model = build_segmenter(SegmenterConfig(encoder_depth=depth, decoder_channels=(16, 8, 8, 8)[:depth])).eval()
    images = np.random.default_rng(0).integers(0, 256, (2, 24, 40, 3), dtype=np.uint8)
    pred = predict(model, images)
    assert pred.shape == (2, 24, 40) and pred.dtype == np.uint8
    np.testing.assert_array_equal(pred, _as_training_sees_it(model, images, 2**depth))
