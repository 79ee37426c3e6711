"""A fast check that the synthetic domain gap is class-dependent, not a global colour change.

The full measurement trains small smp segmenters (``python -m apps.study.gap``, minutes; numbers in
docs/synthetic_data.md). Here a per-pixel colour classifier (one Gaussian per class, seconds) stands in
for the segmenter: fitted on source it fails on target, and even the *best possible* global affine
colour transform — fitted by least squares on paired pixels, an oracle no adaptation method has —
recovers less than half of the gap to a classifier fitted on target.
"""

from __future__ import annotations

import numpy as np

from apps.study.metrics import score
from translate.segdata.classes import IGNORE, SYNTHETIC_TRAIN_IDS
from translate.synthetic import SceneGenerator

CLASSES = np.array(SYNTHETIC_TRAIN_IDS)


def _pairs(seed: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    gen = SceneGenerator(seed=seed, height=32, width=64, paired=True)
    src, tgt, lab = zip(*(gen.pair(i) for i in range(n)), strict=False)
    return (
        np.stack(src).reshape(-1, 3).astype(np.float64),
        np.stack(tgt).reshape(-1, 3).astype(np.float64),
        np.stack(lab).reshape(-1),
    )


def _fit(pixels: np.ndarray, labels: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Mean, inverse covariance and log-determinant of each class's colours."""
    model = []
    for c in CLASSES:
        x = pixels[labels == c]
        cov = np.cov(x.T) + np.eye(3)
        model.append((x.mean(0), np.linalg.inv(cov), float(np.linalg.slogdet(cov)[1])))
    return model


def _predict(model: list, pixels: np.ndarray) -> np.ndarray:
    scores = [
        -0.5 * np.einsum("ni,ij,nj->n", pixels - mu, icov, pixels - mu) - 0.5 * logdet for mu, icov, logdet in model
    ]
    return CLASSES[np.argmax(scores, axis=0)]


def _miou(pred: np.ndarray, labels: np.ndarray) -> float:
    return score(pred, labels, SYNTHETIC_TRAIN_IDS)["miou"]


def test_gap_is_not_closed_by_a_global_colour_transform() -> None:
    src_train, tgt_train, lab_train = _pairs(seed=100, n=40)
    _, tgt_test, lab_test = _pairs(seed=200, n=20)
    keep = lab_train != IGNORE
    src_train, tgt_train, lab_train = src_train[keep], tgt_train[keep], lab_train[keep]

    source_model = _fit(src_train, lab_train)
    oracle_model = _fit(tgt_train, lab_train)
    source_only = _miou(_predict(source_model, tgt_test), lab_test)
    oracle = _miou(_predict(oracle_model, tgt_test), lab_test)

    # best global affine map target colour -> source colour, from paired pixels
    design = np.hstack([tgt_train, np.ones((len(tgt_train), 1))])
    affine, *_ = np.linalg.lstsq(design, src_train, rcond=None)
    mapped = np.hstack([tgt_test, np.ones((len(tgt_test), 1))]) @ affine
    global_colour = _miou(_predict(source_model, mapped), lab_test)

    assert oracle > 0.15, oracle
    assert source_only <= 0.6 * oracle, (source_only, oracle)
    assert (global_colour - source_only) / (oracle - source_only) < 0.5, (source_only, global_colour, oracle)
