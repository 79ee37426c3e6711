"""Translator quality, measured before any downstream row is trusted.

* FCN score (CycleGAN paper): mIoU of the *oracle* (target-trained) segmenter on translated source
  images against the source labels — high only when translations look like the target and keep
  their content.
* class-flip rate: share of labelled pixels whose prediction by the frozen *source* segmenter
  changes under translation (what semantic consistency is meant to lower).
* L1 distance to the paired target image (same layout rendered in the target domain), in [0, 1].

The untranslated source is scored the same way as a reference row.
"""

from __future__ import annotations

import numpy as np

from translate.segdata.classes import IGNORE

from .metrics import score
from .segmenter import predict


def translation_quality(
    source: np.ndarray,
    labels: np.ndarray,
    translated: np.ndarray,
    paired_target: np.ndarray | None,
    oracle,
    source_segmenter,
    classes,
) -> dict:
    fcn = score(predict(oracle, translated), labels, classes)
    valid = labels != IGNORE
    before = predict(source_segmenter, source)
    after = predict(source_segmenter, translated)
    flip = float((before != after)[valid].mean()) if valid.any() else float("nan")
    distance = (
        float(np.abs(translated.astype(np.float32) - paired_target.astype(np.float32)).mean() / 255.0)
        if paired_target is not None
        else float("nan")
    )
    return {
        "fcn_miou": fcn["miou"],
        "fcn_pixel_accuracy": fcn["pixel_accuracy"],
        "fcn_per_class": fcn["per_class"],
        "class_flip_rate": flip,
        "l1_to_paired_target": distance,
    }
