"""Measure the domain gap of the synthetic benchmark with a small segmenter.

Three segmenters with the same network and budget, all scored on held-out *target* scenes:

* ``source``      trained on source (game-like) scenes — the gap to close;
* ``source+aug``  the same with classic photometric augmentation (colour jitter, blur, noise);
* ``oracle``      trained on target scenes (the labels a real dataset would not give us).

The benchmark is useful when ``source`` reaches at most 60% of the oracle's mIoU and the
augmentation recovers less than half of the gap (then a translation model has room to show what
it adds). Run (a few minutes per training on one CPU core)::

    python -m apps.study.gap --out runs/gap --size 64x128 --n-train 400 --n-test 200 --steps 450

and read ``runs/gap/gap.md`` / ``gap.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from translate.segdata.classes import SYNTHETIC_TRAIN_IDS
from translate.synthetic import SceneGenerator, appearance_from, parse_size

from .config import SegmenterSection
from .segmenter import evaluate, train_segmenter, write_segmentation_folder


def render_set(
    seed: int, domain: str, n: int, size: tuple[int, int], target_preset: str = "real"
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` unpaired scenes of one domain as arrays (images N×H×W×3, labels N×H×W)."""
    gen = SceneGenerator(
        seed=seed, height=size[0], width=size[1], appearances={"target": appearance_from(target_preset)}
    )
    pairs = [gen.scene(i, domain) for i in range(n)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def run(args: argparse.Namespace) -> dict:
    import cv2
    import torch

    from translate.io import load_network

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)
    size = parse_size(args.size)
    t0 = time.time()
    src = render_set(args.seed, "source", args.n_train, size, args.preset)
    tgt = render_set(args.seed, "target", args.n_train, size, args.preset)
    test = render_set(args.seed + 1000, "target", args.n_test, size, args.preset)
    src_test = render_set(args.seed + 1000, "source", args.n_test, size, args.preset)
    print(
        f"rendered {2 * args.n_train} training and {2 * args.n_test} test scenes at {size[0]}x{size[1]} in {time.time() - t0:.0f}s",
        flush=True,
    )

    section = SegmenterSection(steps=args.steps, batch_size=args.batch, lr=args.lr, save_every=args.steps)
    out = Path(args.out)
    source_folder = write_segmentation_folder(*src, out / "data" / "source")
    runs = {
        "source": source_folder,
        "source+aug": {**source_folder, "photometric": 1.0},
        "oracle": write_segmentation_folder(*tgt, out / "data" / "target"),
    }
    results: dict = {
        "setup": {
            "size": list(size),
            "n_train": args.n_train,
            "n_test": args.n_test,
            "steps": args.steps,
            "batch": args.batch,
            "lr": args.lr,
            "seed": args.seed,
            "preset": args.preset,
            "threads": args.threads,
            "model": "smp.Unet(resnet18, encoder_depth=3, decoder (64,32,16), encoder_weights=None)",
        },
        "runs": {},
    }
    for name, dataset in runs.items():
        if args.only and name not in args.only:
            continue
        print(f"training '{name}'", flush=True)
        t = time.time()
        trained = train_segmenter(section, dataset, args.seed, out / "segmenters" / name, progress=True)
        model = load_network(trained["file"])[0]
        seconds = time.time() - t
        on_target = evaluate(model, *test, classes=SYNTHETIC_TRAIN_IDS)
        entry = {"target_test": on_target, "train_seconds": round(seconds, 1)}
        if name.startswith("source"):
            entry["source_test"] = evaluate(model, *src_test, classes=SYNTHETIC_TRAIN_IDS)
        results["runs"][name] = entry
        print(f"  {name}: target mIoU {on_target['miou']:.3f}  ({seconds:.0f}s)", flush=True)

    r = results["runs"]
    if {"source", "source+aug", "oracle"} <= r.keys():
        s, a, o = (r[k]["target_test"]["miou"] for k in ("source", "source+aug", "oracle"))
        results["criteria"] = {
            "source_over_oracle": s / o,
            "source_over_oracle_at_most_0.6": bool(s / o <= 0.6),
            "aug_recovered_fraction": (a - s) / (o - s) if o > s else float("nan"),
            "aug_recovers_less_than_half": bool(o > s and (a - s) / (o - s) < 0.5),
        }
    (out / "gap.json").write_text(json.dumps(results, indent=2))
    (out / "gap.md").write_text(markdown(results))
    print(markdown(results))
    return results


def markdown(results: dict) -> str:
    runs = results["runs"]
    names = list(runs)
    classes = list(next(iter(runs.values()))["target_test"]["per_class"]) if runs else []
    lines = [
        "| trained on | mIoU on target | " + " | ".join(classes) + " | mIoU on source | train s |",
        "|---|---|" + "---|" * len(classes) + "---|---|",
    ]
    for n in names:
        e = runs[n]
        t = e["target_test"]
        src = f"{e['source_test']['miou']:.3f}" if "source_test" in e else "—"
        lines.append(
            f"| {n} | **{t['miou']:.3f}** | "
            + " | ".join(f"{t['per_class'][c]:.2f}" for c in classes)
            + f" | {src} | {e['train_seconds']:.0f} |"
        )
    c = results.get("criteria")
    if c:
        lines += [
            "",
            f"- source / oracle = {c['source_over_oracle']:.2f} (criterion ≤ 0.60: {'holds' if c['source_over_oracle_at_most_0.6'] else 'fails'})",
            f"- photometric augmentation recovers {c['aug_recovered_fraction']:.2f} of the gap "
            f"(criterion < 0.50: {'holds' if c['aug_recovers_less_than_half'] else 'fails'})",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m apps.study.gap", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/gap")
    p.add_argument("--size", default="64x128", help="HxW of the rendered scenes")
    p.add_argument("--n-train", type=int, default=400)
    p.add_argument("--n-test", type=int, default=200)
    p.add_argument("--steps", type=int, default=450)
    p.add_argument("--batch", type=int, default=12)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", default="real", help="target-domain appearance preset")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--only", nargs="*", help="run only these of: source source+aug oracle")
    return run(p.parse_args(argv))


if __name__ == "__main__":
    main()
