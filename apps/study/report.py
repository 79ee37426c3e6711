"""The study's outputs: tables (Markdown, CSV), plots (bar chart with error bars, per-class IoU
heat map), the translator-quality table and sample grids, all in the run folder."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from translate.segdata.classes import colorize


def summarise(rows: dict[str, dict[int, dict]]) -> dict[str, dict]:
    """Per condition: mean and std over seeds of mIoU and pixel accuracy, mean per-class IoU, and
    the share of the source→oracle gap recovered, (x − source) / (oracle − source)."""
    out = {}
    for name, seeds in rows.items():
        scores = [r["target_test"] for r in seeds.values()]
        mious = np.array([s["miou"] for s in scores])
        accs = np.array([s["pixel_accuracy"] for s in scores])
        classes = list(scores[0]["per_class"])
        out[name] = {
            "miou_mean": float(mious.mean()),
            "miou_std": float(mious.std(ddof=1)) if len(mious) > 1 else 0.0,
            "pixel_accuracy_mean": float(accs.mean()),
            "pixel_accuracy_std": float(accs.std(ddof=1)) if len(accs) > 1 else 0.0,
            "per_seed_miou": {str(k): r["target_test"]["miou"] for k, r in seeds.items()},
            "per_class": {c: float(np.mean([s["per_class"][c] for s in scores])) for c in classes},
        }
    return out


def add_gap_shares(summary: dict[str, dict], source: str, oracle: str) -> None:
    lo, hi = summary[source]["miou_mean"], summary[oracle]["miou_mean"]
    for s in summary.values():
        s["gap_recovered"] = (s["miou_mean"] - lo) / (hi - lo) if hi > lo else float("nan")


def markdown(summary: dict, quality: dict, baseline: str, oracle: str, seeds: list[int]) -> str:
    names = list(summary)
    classes = list(next(iter(summary.values()))["per_class"])
    lines = [
        f"Target test mIoU over the classes present in the target test set (mean ± std over segmenter seeds {seeds}); "
        f"gap share = (x − {baseline}) / ({oracle} − {baseline}).",
        "",
        "| condition | mIoU | pixel accuracy | gap recovered | per seed |",
        "|---|---|---|---|---|",
    ]
    for n in names:
        s = summary[n]
        per_seed = ", ".join(f"{v:.3f}" for v in s["per_seed_miou"].values())
        lines.append(
            f"| {n} | **{s['miou_mean']:.3f}** ± {s['miou_std']:.3f} | {s['pixel_accuracy_mean']:.3f} ± {s['pixel_accuracy_std']:.3f} "
            f"| {s['gap_recovered']:.0%} | {per_seed} |"
        )
    lines += [
        "",
        "Per-class IoU (mean over seeds):",
        "",
        "| condition | " + " | ".join(classes) + " |",
        "|---|" + "---|" * len(classes),
    ]
    for n in names:
        lines.append(f"| {n} | " + " | ".join(f"{summary[n]['per_class'][c]:.2f}" for c in classes) + " |")
    lines += [
        "",
        "Translator quality on held-out scenes (translator `none` = the untranslated source):",
        "",
        "| translator | FCN score (oracle mIoU) | FCN pixel accuracy | class-flip rate | L1 to paired target |",
        "|---|---|---|---|---|",
    ]
    for n, q in quality.items():
        lines.append(
            f"| {n} | {q['fcn_miou']:.3f} | {q['fcn_pixel_accuracy']:.3f} | {q['class_flip_rate']:.3f} | {q['l1_to_paired_target']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def write_csv(path: Path, summary: dict) -> None:
    classes = list(next(iter(summary.values()))["per_class"])
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "condition",
                "miou_mean",
                "miou_std",
                "pixel_accuracy_mean",
                "pixel_accuracy_std",
                "gap_recovered",
                *classes,
            ]
        )
        for n, s in summary.items():
            w.writerow(
                [
                    n,
                    f"{s['miou_mean']:.4f}",
                    f"{s['miou_std']:.4f}",
                    f"{s['pixel_accuracy_mean']:.4f}",
                    f"{s['pixel_accuracy_std']:.4f}",
                    f"{s['gap_recovered']:.4f}",
                    *(f"{s['per_class'][c]:.4f}" for c in classes),
                ]
            )


def write_quality_csv(path: Path, quality: dict) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["translator", "fcn_miou", "fcn_pixel_accuracy", "class_flip_rate", "l1_to_paired_target"])
        for n, q in quality.items():
            w.writerow(
                [
                    n,
                    f"{q['fcn_miou']:.4f}",
                    f"{q['fcn_pixel_accuracy']:.4f}",
                    f"{q['class_flip_rate']:.4f}",
                    f"{q['l1_to_paired_target']:.4f}",
                ]
            )


def plots(summary: dict, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(summary)
    means = [summary[n]["miou_mean"] for n in names]
    stds = [summary[n]["miou_std"] for n in names]
    fig, ax = plt.subplots(figsize=(1.3 * len(names) + 2, 4))
    ax.bar(range(len(names)), means, yerr=stds, capsize=4, color="#4c72b0")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylabel("target test mIoU")
    ax.set_title("Segmenter trained on … scored on the target domain")
    fig.tight_layout()
    fig.savefig(folder / "miou_bars.png", dpi=110)
    plt.close(fig)

    classes = list(next(iter(summary.values()))["per_class"])
    grid = np.array([[summary[n]["per_class"][c] for c in classes] for n in names])
    fig, ax = plt.subplots(figsize=(0.7 * len(classes) + 3, 0.45 * len(names) + 1.5))
    im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    for i in range(len(names)):
        for j in range(len(classes)):
            ax.text(
                j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=7, color="w" if grid[i, j] < 0.5 else "k"
            )
    fig.colorbar(im, ax=ax, label="IoU")
    fig.tight_layout()
    fig.savefig(folder / "per_class_iou.png", dpi=110)
    plt.close(fig)


def _row(images: list[np.ndarray]) -> np.ndarray:
    sep = np.full((images[0].shape[0], 2, 3), 255, np.uint8)
    parts = []
    for im in images:
        parts += [im, sep]
    return np.hstack(parts[:-1])


def _stack(rows: list[np.ndarray]) -> np.ndarray:
    sep = np.full((2, rows[0].shape[1], 3), 255, np.uint8)
    parts = []
    for r in rows:
        parts += [r, sep]
    return np.vstack(parts[:-1])


def write_report(study, rows: dict, quality: dict, rounds: dict | None = None) -> dict:
    """``rounds``: the self-training rows' rounds (``Study.self_training``), shown in a table of their own."""
    from translate.data.images import write_image

    from .data import stack
    from .evaluation import predict_at
    from .self_training import rounds_summary, rounds_table

    cfg, root = study.cfg, study.root
    baseline = next(c.name for c in cfg.conditions if c.train_on == "source" and not c.photometric)
    oracle = next(c.name for c in cfg.conditions if c.train_on == "target")
    summary = summarise(rows)
    add_gap_shares(summary, baseline, oracle)
    translators = [name for name in quality if name != "none"]
    paired = study.data.quality_target is not None
    text = markdown(summary, quality, baseline, oracle, list(cfg.segmenter.seeds)) + (
        "\nImages: `miou_bars.png`, `per_class_iou.png`; `translator_samples.png` columns: source | "
        + " | ".join(translators)
        + (" | paired target" if paired else "")
        + "; `example_predictions.png` columns: target image | ground truth | "
        + " | ".join(rows)
        + ".\n"
    )
    text += ("\n" + rounds_table(rounds)) if rounds else ""
    (root / "results.md").write_text(text)
    write_csv(root / "results.csv", summary)
    write_quality_csv(root / "translator_quality.csv", quality)
    self_training = rounds_summary(rounds or {})
    (root / "results.json").write_text(
        json.dumps({"summary": summary, "quality": quality, "self_training": self_training}, indent=2)
    )
    plots(summary, root)

    # translator samples: source | translated by each translator | paired target (when there is one)
    n = min(cfg.n_examples, len(study.data.quality))
    source = stack(study.data.quality, n)[0]
    paired = stack(study.data.quality_target, n)[0] if study.data.quality_target is not None else None
    translations = {name: np.load(root / "quality" / f"{name}.npy") for name in translators}
    rows_img = []
    for i in range(n):
        row = [source[i], *(t[i] for t in translations.values())] + ([paired[i]] if paired is not None else [])
        rows_img.append(_row(row))
    write_image(root / "translator_samples.png", _stack(rows_img))

    # predictions on target test scenes: image | truth | each condition's first-seed segmenter
    # (at the images' size: a label kept at its file size is brought to it, nearest neighbour)
    n = min(cfg.n_examples, len(study.data.target_test))
    images, labels = _examples(study.data.target_test, n)
    seed = cfg.segmenter.seeds[0]
    preds = {name: predict_at(_row_model(study, seeds[seed]), images) for name, seeds in rows.items()}
    grid = [_row([images[i], colorize(labels[i]), *(colorize(p[i]) for p in preds.values())]) for i in range(n)]
    write_image(root / "example_predictions.png", _stack(grid))
    return {"summary": summary, "quality": quality, "self_training": self_training}


def _row_model(study, record: dict):
    """The segmenter of a row's record, or the segmenters of an ensemble row's members."""
    if "members" in record:
        return [study.load_segmenter(Path(f)) for f in record["members"]]
    return study.load_segmenter(Path(record["file"]))


def _examples(dataset, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` samples of ``dataset``, labels resized to their images."""
    import cv2

    samples = [dataset[i] for i in range(n)]
    labels = [
        label
        if label.shape == image.shape[:2]
        else cv2.resize(label, image.shape[1::-1], interpolation=cv2.INTER_NEAREST)
        for image, label in samples
    ]
    return np.stack([image for image, _ in samples]), np.stack(labels)
