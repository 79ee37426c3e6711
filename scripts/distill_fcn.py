"""FCN score (apps/study/quality.py) of a teacher and its distilled student on held-out labelled
source scenes: an oracle segmenter is trained on labelled target scenes with the study's own
``train_segmenter``, then ``translation_quality`` scores the untranslated scenes and both
translators' outputs (docs/augment.md, "Which generator for online augmentation").

    python scripts/distill_fcn.py --teacher apps/app/models/sim_to_real.safetensors \\
        --student runs/distill_quickstart/export/G_AB.safetensors \\
        --target data/quickstart/target --held-out data/quickstart/heldout
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch

from apps.study.config import SegmenterSection
from apps.study.quality import translation_quality
from apps.study.segmenter import train_segmenter
from augment import GANTranslate
from translate.data.images import list_images, read_image
from translate.io import load_network
from translate.segdata.classes import IGNORE


def scenes(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images N×H×W×3 uint8, trainId labels N×H×W) of a scene folder written by `i2i data synth`."""
    files = list_images(root / "images")
    images = np.stack([read_image(f) for f in files])
    labels = np.stack([cv2.imread(str(root / "labels" / f.name), cv2.IMREAD_UNCHANGED) for f in files])
    return images, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teacher", type=Path, required=True)
    parser.add_argument("--student", type=Path, required=True)
    parser.add_argument("--target", type=Path, required=True, help="labelled target scenes (oracle training)")
    parser.add_argument("--held-out", type=Path, required=True, help="labelled source scenes to translate")
    parser.add_argument("--steps", type=int, default=450, help="oracle training steps")
    args = parser.parse_args()
    torch.manual_seed(0)
    target = {"images": str(args.target / "images"), "labels": str(args.target / "labels"), "label_format": "trainId"}
    with tempfile.TemporaryDirectory() as work:
        trained = train_segmenter(SegmenterSection(steps=args.steps), target, seed=0, out_dir=Path(work))
        oracle = load_network(trained["file"])[0]
    source, labels = scenes(args.held_out)
    classes = sorted(set(np.unique(labels).tolist()) - {IGNORE})
    rows = {"none": source}
    for name, path in [("teacher", args.teacher), ("student", args.student)]:
        hook = GANTranslate(path, p=1.0, device="cpu")
        rows[name] = np.stack([hook(image=image)["image"] for image in source])
    report = {}
    for name, translated in rows.items():
        quality = translation_quality(source, labels, translated, None, oracle, oracle, classes)
        report[name] = {"fcn_miou": quality["fcn_miou"], "fcn_pixel_accuracy": quality["fcn_pixel_accuracy"]}
        print(f"{name}: FCN score {quality['fcn_miou']:.3f} (pixel accuracy {quality['fcn_pixel_accuracy']:.3f})")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
