"""Scoring a segmenter on a set read from disk, batch by batch: memory is bounded by the batch,
never by the set. Predictions are made at the images' (resized) size and, where a label is kept at
its file size (Cityscapes val at 2048×1024), upsampled to it (bilinear logits, then the arg max),
as the literature scores GTA5 → Cityscapes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from translate.data.images import to_tensor
from translate.nets.layers import crop_to, pad_to_multiple

from .metrics import SegmentationScore


def _one(sample):
    return sample


def batches(dataset, batch_size: int, num_workers: int = 0) -> Iterator[tuple[np.ndarray, list[np.ndarray]]]:
    """(images N×H×W×3, [labels]) of consecutive samples of one image size, decoded by
    ``num_workers`` DataLoader processes (0: in this process)."""
    from torch.utils.data import DataLoader

    loader = DataLoader(dataset, batch_size=None, num_workers=num_workers, collate_fn=_one)
    images: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for image, label in loader:
        if images and (len(images) == batch_size or image.shape != images[0].shape):
            yield np.stack(images), labels
            images, labels = [], []
        images.append(image)
        labels.append(label)
    if images:
        yield np.stack(images), labels


def _scores(model: torch.nn.Module, images: np.ndarray) -> torch.Tensor:
    """N×classes×H×W logits of ``images``, padded to the model's input multiple and cropped back."""
    from .segmenter import input_multiple

    model.eval()
    device = next(model.parameters()).device
    padded, size = pad_to_multiple(to_tensor(images).to(device), input_multiple(model))
    return crop_to(model(padded), size)


@torch.no_grad()
def class_probabilities(
    model: torch.nn.Module | Sequence[torch.nn.Module], images: np.ndarray, flip: bool = False
) -> torch.Tensor:
    """N×classes×H×W softmax of ``images``; several models: an ensemble, their softmax averaged;
    ``flip``: each model's softmax also averaged with that of the mirrored image, mirrored back."""
    models = [model] if isinstance(model, torch.nn.Module) else list(model)
    mirrored = np.ascontiguousarray(images[:, :, ::-1]) if flip else None
    probabilities = []
    for m in models:
        probabilities.append(_scores(m, images).float().softmax(1))
        if mirrored is not None:
            probabilities.append(_scores(m, mirrored).float().softmax(1).flip(-1))
    return torch.stack(probabilities).mean(0)


@torch.no_grad()
def predict_at(
    model: torch.nn.Module | Sequence[torch.nn.Module], images: np.ndarray, label_size: tuple[int, int] | None = None
) -> np.ndarray:
    """TrainId predictions (N×H×W uint8) of ``images``, at ``label_size`` (upsampled scores) if given.
    Several models: an ensemble, scored by their averaged softmax."""
    if isinstance(model, torch.nn.Module):
        logits = _scores(model, images)
    else:
        logits = class_probabilities(model, images)
    if label_size is None or tuple(label_size) == tuple(logits.shape[-2:]):
        return logits.argmax(1).to(torch.uint8).cpu().numpy()
    # one image at a time: 19 upsampled 2048×1024 logit maps are 160 MB per image
    return np.stack([_upsampled_argmax(one, tuple(label_size)) for one in logits])


def _upsampled_argmax(logits: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    up = F.interpolate(logits[None].float(), size=size, mode="bilinear", align_corners=False)
    return up[0].argmax(0).to(torch.uint8).cpu().numpy()


def evaluate_set(
    model: torch.nn.Module | Sequence[torch.nn.Module],
    dataset,
    classes: Sequence[int] | None = None,
    batch_size: int = 8,
    num_workers: int = 0,
) -> dict:
    """Per-class IoU, mIoU over ``classes`` and pixel accuracy of ``model`` (or an ensemble of
    models, see ``predict_at``) on ``dataset``."""
    score = SegmentationScore()
    for images, labels in batches(dataset, batch_size, num_workers):
        for label_size in dict.fromkeys(label.shape for label in labels):
            chosen = [i for i, label in enumerate(labels) if label.shape == label_size]
            pred = predict_at(model, images[chosen], label_size)
            score.update(pred, np.stack([labels[i] for i in chosen]))
    return score.report(classes)
