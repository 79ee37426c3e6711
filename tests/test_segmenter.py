"""The study's segmenter: trained by the engine it learns, resumes exactly, predicts as it was
trained, and its training samples keep labels aligned with their images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from apps.study.config import SegmenterSection
from apps.study.segmenter import build_segmenter, predict, train_segmenter, write_segmentation_folder
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
    model = build_segmenter(SegmenterSection(encoder_depth=depth, decoder_channels=[16, 8, 8, 8][:depth])).eval()
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


def _load(file: str) -> torch.nn.Module:
    from translate.io import load_network

    return load_network(file)[0]


@pytest.mark.slow
def test_training_lowers_the_loss_and_beats_chance(tmp_path: Path) -> None:
    from apps.study.metrics import score
    from translate.segdata.classes import SYNTHETIC_TRAIN_IDS

    images, labels = _scenes(8)
    section = SegmenterSection(decoder_channels=[32, 16, 16], steps=40, batch_size=4, lr=3e-3)
    torch.manual_seed(0)  # the engine starts from exactly this initialisation (engine.seed = the seed)
    before = _mean_loss(build_segmenter(section), images, labels)
    dataset = write_segmentation_folder(images, labels, tmp_path / "data")
    model = _load(train_segmenter(section, dataset, 0, tmp_path / "run")["file"])
    after = _mean_loss(model, images, labels)
    assert after < 0.5 * before, (before, after)

    held_out, held_out_labels = _scenes(8, seed=1)
    report = score(predict(model, held_out), held_out_labels, SYNTHETIC_TRAIN_IDS)
    majority = np.bincount(held_out_labels.ravel()).max() / held_out_labels.size  # always guessing the commonest class
    assert report["pixel_accuracy"] > majority + 0.15, (report["pixel_accuracy"], majority)
    assert report["miou"] > 2.0 / len(SYNTHETIC_TRAIN_IDS), report["miou"]


def test_a_stopped_and_resumed_training_ends_with_the_weights_of_an_uninterrupted_one(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    images, labels = _scenes(6)
    # a small encoder keeps the four checkpoints this writes small; the study default is resnet18
    section = SegmenterSection(encoder="mobilenet_v2", decoder_channels=[8, 8, 8], steps=4, batch_size=2, save_every=2)
    # photometric augmentation and flips draw from each sample's key: the engine must replay them
    dataset = {**write_segmentation_folder(images, labels, tmp_path / "data"), "photometric": 1.0}

    straight = train_segmenter(section, dataset, 3, tmp_path / "straight")
    stopped = train_segmenter(section, dataset, 3, tmp_path / "stopped", stop_at=2)
    assert stopped["file"] is None and stopped["step"] == 2 and stopped["resumed_at"] == 0
    resumed = train_segmenter(section, dataset, 3, tmp_path / "stopped")
    assert resumed["resumed_at"] == 2 and resumed["step"] == 4
    a, b = load_file(straight["file"]), load_file(resumed["file"])
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


# ----------------------------------------------------------------------------- augmentation
def _grey_correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.astype(np.float64).mean(-1).ravel(), b.astype(np.float64).mean(-1).ravel())[0, 1])


def test_augmentation_changes_pixels_and_keeps_labels_aligned_with_geometry(tmp_path: Path) -> None:
    from translate.data import DATASETS
    from translate.data.images import to_images

    images, labels = _scenes(6, seed=3)
    assert all(not np.array_equal(lab, lab[:, ::-1]) for lab in labels)  # flips are detectable
    options = write_segmentation_folder(images, labels, tmp_path / "data")
    dataset = DATASETS.build({"name": "segmentation_pairs", **options, "photometric": 1.0, "flip": True})
    samples = [dataset[(i % 6, 1000 + i)] for i in range(16)]
    assert samples[0]["image"].shape == (3, 32, 64) and samples[0]["label"].dtype == torch.int64
    assert torch.equal(dataset[(2, 7)]["image"], dataset[(2, 7)]["image"])  # a pure function of its key

    flips, changed = [], 0
    for i, sample in enumerate(samples):
        image, label, j = to_images(sample["image"][None])[0], sample["label"].numpy(), i % 6
        # the label is its source label, untouched or mirrored: photometric augmentation never edits labels
        flipped = np.array_equal(label, labels[j][:, ::-1])
        assert flipped or np.array_equal(label, labels[j])
        flips.append(flipped)
        same_way = images[j][:, ::-1] if flipped else images[j]
        other_way = images[j] if flipped else images[j][:, ::-1]
        # the image is mirrored exactly when its label is: it matches the source the label's way far better
        assert _grey_correlation(image, same_way) > _grey_correlation(image, other_way) + 0.2
        changed += np.abs(image.astype(int) - same_way.astype(int)).mean() > 2.0
    assert 0 < sum(flips) < len(flips)  # both orientations occurred
    assert changed >= 12, changed  # colour jitter, blur and noise changed (nearly) every image


def test_alternative_images_replace_the_originals_with_their_probability(tmp_path: Path) -> None:
    from translate.data import DATASETS

    images, labels = _scenes(4)
    options = write_segmentation_folder(images, labels, tmp_path / "data")
    inverted = write_segmentation_folder(255 - images, labels, tmp_path / "alt")["images"]

    def drawn(p: float) -> list[bool]:
        spec = {"name": "segmentation_pairs", **options, "alternative_images": inverted, "p_alternative": p}
        dataset = DATASETS.build({**spec, "flip": False})
        return [bool(dataset[(i % 4, i)]["image"].mean() < 0) != bool(images[i % 4].mean() < 127.5) for i in range(40)]

    assert all(drawn(1.0)) and not any(drawn(0.0))
    assert 10 < sum(drawn(0.5)) < 30


def test_alternative_images_are_resized_and_cropped_as_the_originals(tmp_path: Path) -> None:
    """A translated image (here: inverted, written at twice the size) is drawn with the original's
    resize and the very crop its label gets, so image and label stay aligned."""
    import cv2

    from translate.data import DATASETS

    images, labels = _scenes(4)
    options = write_segmentation_folder(images, labels, tmp_path / "data")
    big = np.stack([cv2.resize(255 - im, (128, 64), interpolation=cv2.INTER_NEAREST) for im in images])
    inverted = write_segmentation_folder(big, labels, tmp_path / "alt")["images"]
    spec = {"name": "segmentation_pairs", **options, "short_side": 16, "crop": [8, 16], "flip": False}
    original = DATASETS.build({**spec, "alternative_images": inverted, "p_alternative": 0.0})
    translated = DATASETS.build({**spec, "alternative_images": inverted, "p_alternative": 1.0})
    tops = set()
    for key in [(i % 4, 100 + i) for i in range(12)]:
        a, b = original[key], translated[key]
        assert a["image"].shape == b["image"].shape == (3, 8, 16) and a["label"].shape == (8, 16)
        assert torch.equal(a["label"], b["label"])
        assert (a["image"] + b["image"]).abs().max() <= 1.01 / 127.5  # the inverted image, the same crop
        tops.add(tuple(a["label"][0].tolist()))
    assert len(tops) > 1  # the crops move


def test_segmentation_pairs_size_must_be_height_and_width(tmp_path: Path) -> None:
    from translate.data import DATASETS
    from translate.errors import DataError

    images, labels = _scenes(2)
    options = write_segmentation_folder(images, labels, tmp_path / "data")
    with pytest.raises(DataError, match=r"segmentation_pairs crop must be \[height, width\], got \[8\]"):
        DATASETS.build({"name": "segmentation_pairs", **options, "crop": [8]})


def test_alternative_images_must_cover_every_image(tmp_path: Path) -> None:
    from translate.data import DATASETS
    from translate.errors import DataError

    images, labels = _scenes(3)
    options = write_segmentation_folder(images, labels, tmp_path / "data")
    partial = write_segmentation_folder(images[:2], labels[:2], tmp_path / "alt")["images"]
    with pytest.raises(DataError, match=r"alt/images lacks 1 of 3 images \(first 000002.png\)"):
        DATASETS.build({"name": "segmentation_pairs", **options, "alternative_images": partial})
