"""The one scoring code of the study: per-class IoU, mIoU and pixel accuracy through torchmetrics.

Every row of the results table (and the FCN score of a translator) is scored here, so no row can
be measured differently. The mean is over the classes present in the evaluated labels (a class
the test set never shows cannot be judged); 255 is ignored; per-class IoU is always returned so
no class can hide in the mean.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from translate.segdata.classes import CLASS_NAMES, IGNORE, NUM_CLASSES


class SegmentationScore:
    """Accumulates predictions and labels (N×H×W trainIds) batch by batch; ``report()`` at the end."""

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

        self.num_classes = num_classes
        self.iou = MulticlassJaccardIndex(num_classes, average="none", ignore_index=IGNORE)
        self.accuracy = MulticlassAccuracy(num_classes, average="micro", ignore_index=IGNORE)
        self.present = np.zeros(num_classes, dtype=bool)

    def update(self, pred: np.ndarray, label: np.ndarray) -> None:
        p = torch.from_numpy(np.ascontiguousarray(pred)).long()
        t = torch.from_numpy(np.ascontiguousarray(label)).long()
        self.iou.update(p, t)
        self.accuracy.update(p, t)
        valid = label[label != IGNORE]
        self.present[np.unique(valid)] = True

    def report(self, classes: Sequence[int] | None = None) -> dict:
        """{"miou", "pixel_accuracy", "per_class": {name: IoU}} over ``classes`` (default: present)."""
        per_class_all = self.iou.compute().numpy()
        if classes is None:
            classes = [int(c) for c in np.flatnonzero(self.present)]
        per_class = {CLASS_NAMES[c]: float(per_class_all[c]) for c in classes}
        return {
            "miou": float(np.mean(list(per_class.values()))) if per_class else 0.0,
            "pixel_accuracy": float(self.accuracy.compute()),
            "per_class": per_class,
        }


def score(pred: np.ndarray, label: np.ndarray, classes: Sequence[int] | None = None) -> dict:
    s = SegmentationScore()
    s.update(pred, label)
    return s.report(classes)


def present_classes(labels: np.ndarray) -> list[int]:
    """The trainIds that occur in ``labels`` (the classes a test set can judge)."""
    values = np.unique(labels)
    return [int(v) for v in values if v != IGNORE and v < NUM_CLASSES]
