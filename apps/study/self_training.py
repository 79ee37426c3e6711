"""Self-training rows: pseudo-labels of the target training images, round by round.

After a condition's segmenter is trained, it labels the (unlabelled) target training images.
Per class, only its most confident predictions become labels — class-balanced thresholds as in
CBST (Zou et al. 2018): the threshold of class c is the confidence at the top ``portion`` of the
pixels predicted as c, so a rare class the segmenter is unsure of still gets its share of pixels
instead of being drowned by a global threshold that only the easy classes pass (FDA's rule is the
same with portion 0.5 and every pixel above 0.9 kept: ``keep_above``). Every other pixel is
written as the ignore index (255), which the segmenter's loss skips. A new segmenter then trains
on the condition's own set (source or translated source) and the pseudo-labelled target images,
concatenated; the next round labels with that one, keeping a larger portion.

The target training labels never reach training: they only score each round's pseudo-labels
(accuracy over the labelled pixels, coverage) for the report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from translate.segdata.classes import IGNORE, NUM_CLASSES

from .config import SegmenterSection, SelfTraining

#: at most this many pixels per set are sampled (on a regular grid) to set the thresholds
THRESHOLD_SAMPLES = 1 << 24


def round_portion(st: SelfTraining, round_: int) -> float:
    """The share of each class's predicted pixels that round ``round_`` (1, 2, ...) keeps."""
    return round(min(st.portion + (round_ - 1) * st.portion_step, st.max_portion), 6)


def round_section(section: SegmenterSection, st: SelfTraining, previous: Path | None) -> SegmenterSection:
    """The segmenter settings of a self-training round: the study's, with the round's steps and
    learning rate, starting from the whole ``previous`` segmenter when it fine-tunes."""
    changes: dict = {"steps": st.steps or section.steps, "lr": st.lr or section.lr}
    if previous is not None:
        changes.update(weights=str(previous), weights_into="model")
    return replace(section, **changes)


# --- thresholds (pure) ---------------------------------------------------------------------------


def class_thresholds(
    confidence: np.ndarray,
    prediction: np.ndarray,
    portion: float,
    keep_above: float = 1.0,
    num_classes: int = NUM_CLASSES,
    min_threshold: float = 0.0,
) -> np.ndarray:
    """Per class, the confidence at the top ``portion`` of the pixels predicted as that class
    (``confidence`` and ``prediction``: arrays of one shape), raised to ``min_threshold`` and
    capped at ``keep_above``; a class predicted nowhere gets the cap."""
    thresholds = np.full(num_classes, np.inf)
    confidence, prediction = np.asarray(confidence).ravel(), np.asarray(prediction).ravel()
    for c in np.unique(prediction):
        if c >= num_classes:
            continue
        ranked = np.sort(confidence[prediction == c])[::-1]
        thresholds[c] = ranked[max(1, math.ceil(portion * len(ranked))) - 1]
    return np.minimum(np.maximum(thresholds, min_threshold), keep_above)


def pseudo_label(prediction: np.ndarray, confidence: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """``prediction`` (trainIds) where its confidence reaches its class's threshold, 255 elsewhere."""
    label = np.asarray(prediction, dtype=np.uint8).copy()
    label[confidence < thresholds[np.minimum(label, len(thresholds) - 1)]] = IGNORE
    return label


# --- labelling a set -----------------------------------------------------------------------------


@torch.no_grad()
def predict_confidence(
    model: torch.nn.Module | Sequence[torch.nn.Module], images: np.ndarray, flip: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(trainId predictions N×H×W uint8, their softmax probability N×H×W float32) of ``images``;
    several models: an ensemble, by their averaged softmax; ``flip``: averaged with the mirror's."""
    from .evaluation import class_probabilities

    confidence, prediction = class_probabilities(model, images, flip).max(1)
    return prediction.to(torch.uint8).cpu().numpy(), confidence.cpu().numpy()


def _grid_step(dataset) -> int:
    """The stride of the pixel grid sampled per image, so a set gives at most ``THRESHOLD_SAMPLES``."""
    if len(dataset) == 0:
        return 1
    h, w = dataset[0][0].shape[:2]
    return max(1, math.ceil(math.sqrt(len(dataset) * h * w / THRESHOLD_SAMPLES)))


def set_thresholds(
    model,
    dataset,
    portion: float,
    keep_above: float,
    batch_size: int = 8,
    min_threshold: float = 0.0,
    flip: bool = False,
) -> np.ndarray:
    """The class thresholds of ``model``'s predictions on ``dataset`` (a grid of pixels per image)."""
    from .evaluation import batches

    step = _grid_step(dataset)
    confidences, predictions = [], []
    for images, _ in batches(dataset, batch_size):
        prediction, confidence = predict_confidence(model, images, flip)
        predictions.append(prediction[:, ::step, ::step].ravel())
        confidences.append(confidence[:, ::step, ::step].ravel())
    return class_thresholds(
        np.concatenate(confidences), np.concatenate(predictions), portion, keep_above, min_threshold=min_threshold
    )


class PseudoLabelScore:
    """Pseudo-labels against the hidden target labels: accuracy over the pixels given a label,
    coverage (share of labelled pixels), the accuracy the unthresholded predictions would have, and
    the pseudo-labels' mIoU over the pixels they label."""

    def __init__(self) -> None:
        from .metrics import SegmentationScore

        self.kept_correct = self.kept = self.valid = self.predicted_correct = 0
        self.score = SegmentationScore()

    def update(self, prediction: np.ndarray, pseudo: np.ndarray, truth: np.ndarray) -> None:
        valid = truth != IGNORE
        kept = valid & (pseudo != IGNORE)
        self.valid += int(valid.sum())
        self.kept += int(kept.sum())
        self.kept_correct += int((kept & (pseudo == truth)).sum())
        self.predicted_correct += int((valid & (prediction == truth)).sum())
        self.score.update(pseudo, np.where(kept, truth, IGNORE))

    def report(self, classes: Sequence[int] | None = None) -> dict:
        return {
            "accuracy": self.kept_correct / self.kept if self.kept else float("nan"),
            "coverage": self.kept / self.valid if self.valid else 0.0,
            "prediction_accuracy": self.predicted_correct / self.valid if self.valid else float("nan"),
            "miou": self.score.report(classes)["miou"],
        }


def write_pseudo_labels(
    model: torch.nn.Module | Sequence[torch.nn.Module],
    dataset,
    folder: Path,
    portion: float,
    keep_above: float = 1.0,
    classes: Sequence[int] | None = None,
    batch_size: int = 8,
    min_threshold: float = 0.0,
    flip: bool = False,
) -> dict:
    """Label every image of ``dataset`` (a ``SegmentationSet``: its images at their resized size)
    with ``model`` (several: their averaged softmax; ``flip``: each also on the mirrored image,
    mirrored back, and averaged in): ``folder/STEM.png`` holds the pseudo-label
    (trainIds, 255 where a pixel stays below its class threshold) at the image file's own size.
    Returns the thresholds and the pseudo-labels' score against the set's labels."""
    import cv2

    from translate.data.images import image_size

    from .evaluation import batches
    from .segmenter import write_label

    thresholds = set_thresholds(model, dataset, portion, keep_above, batch_size, min_threshold, flip)
    folder.mkdir(parents=True, exist_ok=True)
    score = PseudoLabelScore()
    index = 0
    for images, truths in batches(dataset, batch_size):
        predictions, confidences = predict_confidence(model, images, flip)
        for prediction, confidence, truth in zip(predictions, confidences, truths, strict=True):
            pseudo = pseudo_label(prediction, confidence, thresholds)
            score.update(prediction, pseudo, truth)
            image_path = dataset.pairs[index][0]
            h, w = image_size(image_path)
            if (h, w) != pseudo.shape:  # the dataset resizes its images: the label goes with the file
                pseudo = cv2.resize(pseudo, (w, h), interpolation=cv2.INTER_NEAREST)
            write_label(folder / f"{image_path.stem}.png", pseudo)
            index += 1
    return {
        "folder": str(folder),
        "images": index,
        "portion": portion,
        "thresholds": [float(t) for t in thresholds],
        "score": score.report(classes),
    }


def pseudo_labelled_part(data_dir: Path, target_train, labels: Path) -> dict:
    """The ``segmentation_pairs`` options of the target training images with their pseudo-labels,
    sized and cropped as the target training set is."""
    return {
        "images": str(data_dir / "target_train" / "images"),
        "labels": str(labels),
        "label_format": "trainId",
        "mismatched": "error",
        "size": list(target_train.size) if target_train.size is not None else None,
        "short_side": target_train.short_side,
        "crop": list(target_train.crop) if target_train.crop is not None else None,
    }


# --- the report ----------------------------------------------------------------------------------

#: the pseudo-label scores the report shows per round
PSEUDO_KEYS = ("accuracy", "coverage", "miou", "prediction_accuracy")


def _mean_std(values: list[float]) -> dict:
    a = np.array(values, dtype=float)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0}


def rounds_summary(rounds: dict[str, dict[int, list[dict]]]) -> dict[str, list[dict]]:
    """Per self-training row, per round (0: the segmenter before self-training): the portion kept,
    the pseudo-labels' scores and the round segmenter's target test mIoU, each as mean and std
    over seeds. ``rounds``: row → seed → ``Study.self_training``'s list."""
    out = {}
    for row, seeds in rounds.items():
        per_seed = list(seeds.values())
        out[row] = []
        for r in range(len(per_seed[0])):
            entry = {
                "round": r,
                "target_test_miou": _mean_std([s[r]["segmenter"]["target_test"]["miou"] for s in per_seed]),
            }
            if r > 0:
                entry["portion"] = per_seed[0][r]["portion"]
                entry.update({f"pseudo_{k}": _mean_std([s[r]["pseudo"][k] for s in per_seed]) for k in PSEUDO_KEYS})
            out[row].append(entry)
    return out


def rounds_table(rounds: dict[str, dict[int, list[dict]]]) -> str:
    """Markdown: per self-training row and round, the portion kept, the pseudo-labels' accuracy,
    coverage and mIoU (against the hidden target training labels), the accuracy of the predictions
    before thresholds, and the round segmenter's target test mIoU, each mean ± std over seeds."""

    def shown(value: dict) -> str:
        return f"{value['mean']:.3f} ± {value['std']:.3f}"

    lines = [
        "Self-training rounds, mean ± std over seeds (pseudo-labels scored against the target training labels, "
        "which no segmenter trains on; accuracy and mIoU over the pixels given a label; prediction accuracy: "
        "the labelling segmenter's, every pixel, before thresholds; round 0: the segmenter before self-training):",
        "",
        "| row | round | portion | pseudo-label accuracy | coverage | pseudo-label mIoU | prediction accuracy "
        "| target test mIoU |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row, entries in rounds_summary(rounds).items():
        for e in entries:
            cells = (
                ["–"] * 5 if e["round"] == 0 else [f"{e['portion']:g}"] + [shown(e[f"pseudo_{k}"]) for k in PSEUDO_KEYS]
            )
            lines.append(f"| {row} | {e['round']} | " + " | ".join(cells) + f" | {shown(e['target_test_miou'])} |")
    return "\n".join(lines) + "\n"
