"""Per-class precision and recall of one round's pseudo-labels against the target training labels.

    python scripts/pseudo_label_classes.py RUN/self_training/ROW/seed0-round1/labels RUN/data/target_train/labels

Precision: the share of the pixels given class c that truly are c; recall: the share of the pixels
of class c that were given c (the rest are ignored or wrong). Only classes that occur in either
are listed. Labels are trainId PNGs matched by file name; 255 is ignored.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from translate.segdata import CLASS_NAMES, IGNORE, NUM_CLASSES, read_label


def confusion(pseudo_dir: Path, truth_dir: Path) -> np.ndarray:
    """256×256 pixel counts [truth, pseudo] over every pseudo-label file and its truth."""
    counts = np.zeros((256, 256), np.int64)
    files = sorted(pseudo_dir.glob("*.png"))
    if not files:
        raise SystemExit(f"no label PNGs in {pseudo_dir}")
    for path in files:
        pseudo = read_label(path, "trainId").astype(np.int64)
        truth = read_label(truth_dir / path.name, "trainId").astype(np.int64)
        np.add.at(counts, (truth.ravel(), pseudo.ravel()), 1)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pseudo", type=Path, help="a round's labels folder")
    parser.add_argument("truth", type=Path, help="the target training labels folder")
    args = parser.parse_args()
    counts = confusion(args.pseudo, args.truth)
    print("| class | pixels | pseudo-labelled | precision | recall |\n|---|---|---|---|---|")
    for c in range(NUM_CLASSES):
        truth, given = counts[c, :].sum(), counts[:NUM_CLASSES, c].sum()
        if truth == 0 and given == 0:
            continue
        precision = counts[c, c] / given if given else float("nan")
        print(f"| {CLASS_NAMES[c]} | {truth} | {given} | {precision:.2f} | {counts[c, c] / max(truth, 1):.2f} |")
    valid = counts[:IGNORE]
    print(f"\ncoverage {valid[:, :NUM_CLASSES].sum() / valid.sum():.3f} of the labelled pixels")


if __name__ == "__main__":
    main()
