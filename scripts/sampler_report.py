"""Markdown tables (and ring scatter plots) from the results of scripts/sampler_experiments.py.

python3 scripts/sampler_report.py --out runs/samplers [--plots docs/samplers]
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def ring_table(results: list[dict]) -> str:
    by_config = defaultdict(dict)
    for r in results:
        by_config[r["config"]][r["seed"]] = r
    seeds = sorted({r["seed"] for r in results})
    head = "| config | " + " | ".join(f"seed {s}: modes / HQ" for s in seeds) + " | 8/8 and HQ ≥ 80 % on every seed |"
    lines = [head, "|" + "---|" * (len(seeds) + 2)]
    for config in sorted(by_config):
        cells, ok = [], len(by_config[config]) == len(seeds)
        for s in seeds:
            r = by_config[config].get(s)
            if r is None:
                cells.append("—")
                continue
            cells.append(f"{r['modes']}/8 / {100 * r['high_quality']:.0f} %")
            ok = ok and r["modes"] == 8 and r["high_quality"] >= 0.8
        lines.append(f"| {config.removeprefix('gan_ring8_')} | " + " | ".join(cells) + f" | {'yes' if ok else 'no'} |")
    return "\n".join(lines)


def digits_table(results: list[dict]) -> str:
    lines = [
        "| config | seed | label accuracy | code→class accuracy (best matching) | FID | KID | train s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(results, key=lambda r: (r["config"], r["seed"])):
        label = f"{100 * r['label_accuracy']:.1f} %" if "label_accuracy" in r else "—"
        code = f"{100 * r['code_accuracy']:.1f} %" if "code_accuracy" in r else "—"
        lines.append(
            f"| {r['config']} | {r['seed']} | {label} | {code} | {r['fid']:.1f} | {r['kid']:.3f} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines)


def by_mode(results: list[dict]) -> dict[str, list[dict]]:
    """Result rows grouped by their "mode" (in first-seen order), each group sorted by seed."""
    groups = defaultdict(list)
    for r in results:
        groups[r["mode"]].append(r)
    return {mode: sorted(rs, key=lambda r: r["seed"]) for mode, rs in groups.items()}


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def downstream_table(results: list[dict]) -> str:
    lines = ["| training data | items | test accuracy per seed | mean ± std |", "|---|---|---|---|"]
    for mode, rs in by_mode(results).items():
        accs = [r["test_accuracy"] for r in rs]
        mean, spread = mean_std(accs)
        lines.append(
            f"| {mode} | {rs[0]['train_items']} | "
            + ", ".join(f"{100 * a:.1f}" for a in accs)
            + f" | {100 * mean:.1f} ± {100 * spread:.1f} % |"
        )
    return "\n".join(lines)


def label_maps_table(results: list[dict]) -> str:
    groups = by_mode(results)
    if not groups:
        return "(no results)"
    classes = list(next(iter(groups.values()))[0]["per_class"])
    lines = [
        "| segmenter trained on | pairs | target-domain test mIoU per seed | mean ± std | pixel acc. | "
        + " | ".join(classes)
        + " |",
        "|---|---|---|---|---|" + "---|" * len(classes),
    ]
    for mode, rs in groups.items():
        mious = [r["miou"] for r in rs]
        mean, spread = mean_std(mious)
        per_class = [statistics.mean(r["per_class"][c] for r in rs) for c in classes]
        lines.append(
            f"| {mode} | {rs[0]['train_pairs']} | "
            + ", ".join(f"{m:.3f}" for m in mious)
            + f" | {mean:.3f} ± {spread:.3f} | {statistics.mean(r['pixel_accuracy'] for r in rs):.3f} | "
            + " | ".join(f"{v:.2f}" for v in per_class)
            + " |"
        )
    return "\n".join(lines)


def ring_plots(out: Path, plots: Path, configs: list[str], seed: int = 0) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from translate.data.sampling_sets import GaussianRing
    from translate.sampling import load_sampler

    plots.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, len(configs) + 1, figsize=(2.2 * (len(configs) + 1), 2.4))
    real = GaussianRing(size=2500).points
    panels = [("real", real)] + [
        (c.removeprefix("gan_ring8_"), load_sampler(out / f"{c}_s{seed}/export/G.safetensors").sample(2500, seed=1234))
        for c in configs
    ]
    for ax, (title, pts) in zip(axes, panels, strict=False):
        ax.scatter(pts[:, 0], pts[:, 1], s=1, alpha=0.3)
        ax.set_xlim(-3, 3), ax.set_ylim(-3, 3), ax.set_aspect("equal"), ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(plots / "ring_samples.png", dpi=110)


def code_grid(sampler_path: Path, plots: Path, per_code: int = 8) -> None:
    """InfoGAN: row k shows the first categorical code set to k (other codes random, seeded)."""
    import torch
    from torchvision.utils import make_grid, save_image

    from translate.sampling import load_sampler

    sampler = load_sampler(sampler_path)
    k = sampler.info["cat_codes"][0]
    codes = sampler.random_codes(k * per_code, seed=0)
    codes[:, :k] = torch.nn.functional.one_hot(torch.arange(k).repeat_interleave(per_code), k).float()
    images = sampler.sample(len(codes), code=codes, seed=0)
    plots.mkdir(parents=True, exist_ok=True)
    save_image(
        make_grid(images.add(1).div(2), nrow=per_code, padding=2, pad_value=1.0), str(plots / "infogan_codes.png")
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("runs/samplers"))
    parser.add_argument("--plots", type=Path)
    parser.add_argument("--ring-configs", nargs="*", default=[])
    parser.add_argument("--infogan", type=Path, help="an exported InfoGAN sampler to draw a code grid from")
    args = parser.parse_args()
    print("## ring\n\n" + ring_table(rows(args.out / "ring.jsonl")))
    print("\n## digits\n\n" + digits_table(rows(args.out / "digits.jsonl")))
    print("\n## downstream\n\n" + downstream_table(rows(args.out / "downstream.jsonl")))
    print("\n## label maps\n\n" + label_maps_table(rows(args.out / "label_maps.jsonl")))
    if args.plots and args.ring_configs:
        ring_plots(args.out, args.plots, args.ring_configs)
    if args.plots and args.infogan:
        code_grid(args.infogan, args.plots)


if __name__ == "__main__":
    main()
