"""The experiments behind docs/samplers.md. Each part appends one JSON line per run to a results
file, so an interrupted sweep keeps what it finished and a rerun skips it.

  python3 scripts/sampler_experiments.py ring  --out runs/samplers   # 12 ring configs × 3 seeds
  python3 scripts/sampler_experiments.py digits --out runs/samplers --configs configs/cgan_digits.yaml ...
  python3 scripts/sampler_experiments.py downstream --out runs/samplers   # a cGAN per seed on that seed's subset
  python3 scripts/sampler_experiments.py label-maps --out runs/samplers   # SPADE pairs vs real pairs
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import time
from pathlib import Path

import torch


def done_keys(results: Path) -> set[str]:
    if not results.is_file():
        return set()
    return {json.loads(line)["key"] for line in results.read_text().splitlines() if line.strip()}


def claim(out: Path, key: str) -> bool:
    """True for the one process that may run ``key``: several sweep processes can share a folder."""
    path = out / "claims" / key.replace("/", "__")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL))
        return True
    except FileExistsError:
        return False


def append(results: Path, row: dict) -> None:
    results.parent.mkdir(parents=True, exist_ok=True)
    with results.open("a") as fh:
        fh.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


def train_config(config: str, out: Path, seed: int, extra: list[str]):
    from translate.config import load_config
    from translate.engine import train

    name = Path(config).stem
    cfg = load_config(
        config,
        [f"out_dir={out / f'{name}_s{seed}'}", f"engine.seed={seed}", "engine.progress=false", "resume=never", *extra],
    )
    start = time.perf_counter()
    result = train(cfg)
    return result, time.perf_counter() - start


def ring(args) -> None:
    from translate.measures import ring_coverage
    from translate.sampling import load_sampler

    results = args.out / "ring.jsonl"
    done = done_keys(results)
    configs = args.configs or sorted(glob.glob("configs/gan_ring8_*.yaml"))
    for seed in args.seeds:
        for config in configs:
            key = f"{Path(config).stem}/s{seed}"
            if key in done or not claim(args.out, key):
                continue
            result, seconds = train_config(config, args.out, seed, [])
            points = load_sampler(result.exports["G"]).sample(2500, seed=1234)
            cov = ring_coverage(points)
            append(
                results,
                {
                    "key": key,
                    "config": Path(config).stem,
                    "seed": seed,
                    "modes": cov.modes_covered,
                    "high_quality": round(cov.high_quality, 4),
                    "seconds": round(seconds, 1),
                },
            )


def digits(args) -> None:
    from translate.data.sampling_sets import digits_split, digits_tensor
    from translate.measures import best_code_accuracy, conditional_accuracy, fid_kid, real_digit_classifier
    from translate.sampling import load_sampler

    results = args.out / "digits.jsonl"
    done = done_keys(results)
    clf_path = args.out / "digit_classifier.pt"
    if clf_path.is_file():
        from translate.measures import DigitClassifier

        clf = DigitClassifier()
        clf.load_state_dict(torch.load(clf_path, weights_only=True))
        clf.eval()
    else:
        clf = real_digit_classifier()
        clf_path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(clf.state_dict(), clf_path)
    test_x, _ = digits_split("test")
    real = digits_tensor(test_x, 32)
    for seed in args.seeds:
        for config in args.configs:
            key = f"{Path(config).stem}/s{seed}"
            if key in done or not claim(args.out, key):
                continue
            result, seconds = train_config(config, args.out, seed, args.set)
            sampler = load_sampler(result.exports["G"])
            row = {"key": key, "config": Path(config).stem, "seed": seed, "seconds": round(seconds, 1)}
            if sampler.classes:
                labels = torch.arange(10).repeat_interleave(100)
                fake = sampler.sample(len(labels), labels, seed=99)
                row["label_accuracy"] = round(conditional_accuracy(clf, fake, labels), 4)
            else:
                fake = sampler.sample(1000, seed=99)
            if sampler.code_dim:
                k = sampler.info["cat_codes"][0]
                cats = torch.arange(k).repeat_interleave(100)
                codes = sampler.random_codes(len(cats), 7)
                codes[:, :k] = torch.nn.functional.one_hot(cats, k).float()
                with torch.no_grad():
                    predicted = clf(sampler.sample(len(cats), code=codes, seed=98)).argmax(1)
                acc, mapping = best_code_accuracy(cats, predicted)
                row.update(code_accuracy=round(acc, 4), code_to_class=mapping)
            scores = fid_kid(real, fake, clf)
            row.update(fid=round(scores["fid"], 2), kid=round(scores["kid"], 4), features="digits-cnn")
            append(results, row)


def downstream(args) -> None:
    """A classifier trained on a small real subset, alone and mixed with cGAN samples through
    SyntheticMix, both for the same number of optimiser steps, tested on the real test split."""
    from augment.mixing import SyntheticMix
    from translate.data.sampling_sets import Digits
    from translate.measures import accuracy, train_classifier
    from translate.sampling import load_sampler

    results = args.out / "downstream.jsonl"
    done = done_keys(results)
    fixed = load_sampler(args.sampler) if args.sampler else None
    test = Digits("test")
    for seed in args.seeds:
        real = Digits("train", fraction=args.fraction, seed=seed)
        if fixed is None and f"real + cGAN (ratio {args.ratio})/s{seed}" not in done:
            # the honest low-data check: the cGAN sees the same real subset as the classifier
            subset = [f"data.dataset.fraction={args.fraction}", f"data.dataset.seed={seed}", *args.set]
            result, _ = train_config(args.sampler_config, args.out / f"subset{args.fraction:g}", seed, subset)
            sampler = load_sampler(result.exports["G"])
        else:
            sampler = fixed
        for mode in ("real only", f"real + cGAN (ratio {args.ratio})"):
            key = f"{mode}/s{seed}"
            if key in done:
                continue
            data = (
                real
                if mode == "real only"
                else SyntheticMix(real, sampler, ratio=args.ratio, seed=seed, labels=real.labels.tolist())
            )
            images = torch.stack([data[i]["image"] for i in range(len(data))])
            labels = torch.stack([torch.as_tensor(data[i]["label"]) for i in range(len(data))])
            clf = train_classifier(images, labels, seed=seed, steps=args.classifier_steps)
            append(
                results,
                {
                    "key": key,
                    "mode": mode,
                    "seed": seed,
                    "train_items": len(data),
                    "real_items": len(real),
                    "test_accuracy": round(accuracy(clf, test.images, test.labels), 4),
                },
            )


def label_maps(args) -> None:
    """The label map -> image sampler as a data source: a SPADE sampler trained on the real
    training pairs draws an image for each of a set of new layouts (label maps of other scenes,
    their images unused); one segmenter is trained on those sampled pairs only and one on the real
    pairs, with the same budget, and both are scored on held-out real pairs."""
    import numpy as np
    from PIL import Image

    from apps.study.config import SegmenterSection
    from apps.study.metrics import present_classes
    from apps.study.segmenter import evaluate, train_segmenter, write_segmentation_folder
    from translate.data.images import read_image, to_images
    from translate.io import load_network
    from translate.sampling import load_sampler

    results = args.out / "label_maps.jsonl"
    done = done_keys(results)
    root = Path(args.label_maps)

    def pairs(folder: Path) -> tuple[np.ndarray, np.ndarray]:
        names = sorted((folder / "labels").glob("*.png"))
        images = np.stack([read_image(folder / "images" / n.name) for n in names])
        return images, np.stack([np.asarray(Image.open(n)) for n in names])

    train, test, (_, layouts) = pairs(root / "train"), pairs(root / "test"), pairs(root / "layouts")
    export = args.out / "spade_synth_s0" / "export" / "G.safetensors"
    if not export.is_file():
        result, seconds = train_config(
            args.sampler_config, args.out, 0, [f"data.dataset.root={root / 'train'}", *args.set]
        )
        export = Path(result.exports["G"])
        print(f"sampler trained in {seconds:.0f} s", flush=True)
    sampler = load_sampler(export)
    sampled = np.concatenate(
        [
            to_images(sampler.from_label_maps(torch.from_numpy(layouts[i : i + 50].astype(np.int64)), seed=i))
            for i in range(0, len(layouts), 50)
        ]
    )
    Image.fromarray(np.concatenate([np.concatenate(list(sampled[r * 4 : r * 4 + 4]), 1) for r in range(4)], 0)).save(
        args.out / "label_map_samples.png"
    )
    classes = present_classes(test[1])
    for seed in args.seeds:
        for mode, (images, labels) in (("real pairs", train), ("sampled pairs", (sampled, layouts))):
            key = f"{mode}/s{seed}"
            if key in done:
                continue
            run = args.out / "segmenters" / f"{mode.replace(' ', '_')}_s{seed}"
            dataset = write_segmentation_folder(images, labels, run / "data")
            section = SegmenterSection(steps=args.segmenter_steps, save_every=args.segmenter_steps)
            model = load_network(train_segmenter(section, dataset, seed, run / "train")["file"])[0]
            report = evaluate(model, *test, classes=classes)
            append(
                results,
                {
                    "key": key,
                    "mode": mode,
                    "seed": seed,
                    "train_pairs": len(images),
                    "test_pairs": len(test[0]),
                    "miou": round(report["miou"], 4),
                    "pixel_accuracy": round(report["pixel_accuracy"], 4),
                    "per_class": {k: round(v, 3) for k, v in report["per_class"].items()},
                },
            )


def main() -> None:
    torch.set_num_threads(1)  # the sweep shares a small machine; one thread is also the fastest here
    parser = argparse.ArgumentParser()
    parser.add_argument("part", choices=["ring", "digits", "downstream", "label-maps"])
    parser.add_argument("--out", type=Path, default=Path("runs/samplers"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--configs", nargs="*", default=[])
    parser.add_argument("--set", nargs="*", default=[], help="config overrides key=value")
    parser.add_argument(
        "--sampler",
        help="downstream: one exported cGAN for every seed (default: train one per "
        "seed on that seed's real subset with --sampler-config)",
    )
    parser.add_argument(
        "--sampler-config",
        default=None,
        help="downstream: configs/cgan_digits.yaml; label-maps: configs/spade_synth.yaml",
    )
    parser.add_argument(
        "--label-maps",
        default="data/labelmaps",
        help="label-maps: a folder with train/, test/ and layouts/ as `i2i data synth` writes them",
    )
    parser.add_argument("--segmenter-steps", type=int, default=400)
    parser.add_argument("--fraction", type=float, default=0.1, help="downstream: share of the real training split")
    parser.add_argument("--ratio", type=float, default=0.5, help="downstream: generated share of the mix")
    parser.add_argument("--classifier-steps", type=int, default=600)
    args = parser.parse_args()
    if args.sampler_config is None:
        args.sampler_config = "configs/spade_synth.yaml" if args.part == "label-maps" else "configs/cgan_digits.yaml"
    parts = {"ring": ring, "digits": digits, "downstream": downstream, "label-maps": label_maps}
    parts[args.part](args)


if __name__ == "__main__":
    main()
