"""The study's segmenter: it learns, predicts as it was trained, and its augmentation keeps labels aligned."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from apps.study.segmenter import SegmenterConfig, build_segmenter, predict
from translate.nets.layers import crop_to, pad_to_multiple
from translate.segdata import ArraySet


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


# ----------------------------------------------------------------------------- training
def _scenes(n: int, seed: int = 0, domain: str = "source") -> tuple[np.ndarray, np.ndarray]:
    from translate.synthetic import SceneGenerator

    gen = SceneGenerator(seed=seed, height=32, width=64)
    pairs = [gen.scene(i, domain) for i in range(n)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def _mean_loss(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    import torch.nn.functional as F

    from apps.study.segmenter import input_multiple

    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    padded, size = pad_to_multiple(x, input_multiple(model))
    model.eval()
    with torch.no_grad():
        logits = crop_to(model(padded), size)
    return float(F.cross_entropy(logits, torch.from_numpy(labels).long(), ignore_index=255))


@pytest.mark.slow
def test_training_lowers_the_loss_and_beats_chance() -> None:
    from apps.study.metrics import score
    from apps.study.segmenter import TrainConfig, train_segmenter
    from translate.segdata.classes import SYNTHETIC_TRAIN_IDS

    images, labels = _scenes(8)
    cfg = TrainConfig(steps=40, batch_size=4, lr=3e-3, seed=0)
    model_cfg = SegmenterConfig(decoder_channels=(32, 16, 16))
    torch.manual_seed(cfg.seed)  # train_segmenter starts from exactly this initialisation
    before = _mean_loss(build_segmenter(model_cfg), images, labels)
    model = train_segmenter(images, labels, cfg, model_cfg, log=None)
    after = _mean_loss(model, images, labels)
    assert after < 0.5 * before, (before, after)

    held_out, held_out_labels = _scenes(8, seed=1)
    report = score(predict(model, held_out), held_out_labels, SYNTHETIC_TRAIN_IDS)
    majority = np.bincount(held_out_labels.ravel()).max() / held_out_labels.size  # always guessing the commonest class
    assert report["pixel_accuracy"] > majority + 0.15, (report["pixel_accuracy"], majority)
    assert report["miou"] > 2.0 / len(SYNTHETIC_TRAIN_IDS), report["miou"]


def test_a_stopped_and_resumed_training_ends_with_the_weights_of_an_uninterrupted_one(tmp_path: Path) -> None:
    from apps.study.segmenter import TrainConfig, photometric_augmentation, train_segmenter

    images, labels = _scenes(6)
    cfg = TrainConfig(steps=4, batch_size=2, seed=3)
    model_cfg = SegmenterConfig(decoder_channels=(8, 8, 8))
    augment = photometric_augmentation()  # draws from the loop's generator: its state must be resumed too

    def train(**kwargs):
        return train_segmenter(images, labels, cfg, model_cfg, augment=augment, log=None, **kwargs)

    straight = train()
    checkpoint, resumed_from = tmp_path / "state.pt", []
    assert train(checkpoint=checkpoint, save_every=1, stop_at=2, on_resume=resumed_from.append) is None
    assert resumed_from == []
    resumed = train(checkpoint=checkpoint, save_every=1, on_resume=resumed_from.append)
    assert resumed_from == [2]  # what the trainer loaded, not merely a file on disk
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=False):
        assert torch.equal(a, b), name


# ----------------------------------------------------------------------------- augmentation
def _grey_correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.astype(np.float64).mean(-1).ravel(), b.astype(np.float64).mean(-1).ravel())[0, 1])


def test_augmentation_changes_pixels_and_keeps_labels_aligned_with_geometry() -> None:
    from apps.study.segmenter import photometric_augmentation, training_batch

    images, labels = _scenes(6, seed=3)
    assert all(not np.array_equal(lab, lab[:, ::-1]) for lab in labels)  # flips are detectable
    batch, target = training_batch(
        ArraySet(images, labels), np.random.default_rng(0), 16, photometric_augmentation(), flip=True
    )
    assert batch.shape == (16, 32, 64, 3) and batch.dtype == np.uint8 and target.shape == (16, 32, 64)

    flips, changed = [], 0
    for image, label in zip(batch, target, strict=False):
        # the label is one source label, untouched or mirrored: photometric augmentation never edits labels
        matches = [
            (j, f)
            for j in range(len(labels))
            for f in (False, True)
            if np.array_equal(label, labels[j][:, ::-1] if f else labels[j])
        ]
        assert len(matches) == 1
        j, flipped = matches[0]
        flips.append(flipped)
        same_way = images[j][:, ::-1] if flipped else images[j]
        other_way = images[j] if flipped else images[j][:, ::-1]
        # the image is mirrored exactly when its label is: it matches the source the label's way far better
        assert _grey_correlation(image, same_way) > _grey_correlation(image, other_way) + 0.2
        changed += np.abs(image.astype(int) - same_way.astype(int)).mean() > 2.0
    assert 0 < sum(flips) < len(flips)  # both orientations occurred
    assert changed >= 12, changed  # colour jitter, blur and noise changed (nearly) every image
