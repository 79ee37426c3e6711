"""Several studies from one config (its ``variants``: e.g. every target preset with the translator
settings untouched), each run as a study of its own — with its own cached stages, so a rerun
continues where it stopped — and compared in ``summary.md`` / ``summary.csv`` / ``summary.json`` /
``summary_gap.png`` in the config's run folder."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from pathlib import Path

from .config import StudyConfig, load_study_config


def variant_configs(path: str | Path, overrides: list[str], cfg: StudyConfig) -> dict[str, StudyConfig]:
    """Each variant's config: this config and its overrides, the run folder out_dir/NAME (a
    variant may set its own, e.g. to share the run folder of the study it repeats), then the
    variant's overrides. All are resolved and checked before any of them runs."""
    configs = {}
    for name, extra in cfg.variants.items():
        defaults = [f"name={cfg.name}_{name}", f"out_dir={cfg.out_dir}/{name}"]
        variant = load_study_config(path, [*overrides, *defaults, *extra])
        variant.variants = {}
        configs[name] = variant
    return configs


def run_variants(
    path: str | Path, overrides: list[str], cfg: StudyConfig, run_one: Callable[[StudyConfig], dict]
) -> dict:
    """Run every variant with ``run_one`` (the study runner), then write the comparison."""
    configs = variant_configs(path, overrides, cfg)
    results = {}
    for name, variant in configs.items():
        print(f"[study] variant {name}: {variant.out_dir}")
        results[name] = run_one(variant)
    out_dirs = {name: v.out_dir for name, v in configs.items()}
    summary = compare(results, out_dirs, {name: reference_rows(v) for name, v in configs.items()})
    write_summary(Path(cfg.out_dir), summary)
    return summary


def reference_rows(cfg: StudyConfig) -> set[str]:
    """The two rows that define the gap: source-only (its share is 0) and the oracle (1)."""
    baseline = next(c.name for c in cfg.conditions if c.train_on == "source" and not c.photometric)
    return {baseline, *(c.name for c in cfg.conditions if c.train_on == "target")}


def compare(results: dict[str, dict], out_dirs: dict[str, str], references: dict[str, set[str]]) -> dict:
    """Per condition and variant: mIoU mean ± std and gap share; per variant, its best row other
    than source-only and the oracle."""
    variants = list(results)
    conditions: list[str] = []
    for r in results.values():
        conditions += [c for c in r["summary"] if c not in conditions]
    table = {
        c: {v: _cell(results[v]["summary"].get(c)) for v in variants if c in results[v]["summary"]} for c in conditions
    }
    best = {}
    for v in variants:
        rows = {c: s for c, s in results[v]["summary"].items() if c not in references[v]}
        if rows:
            name = max(rows, key=lambda c: rows[c]["miou_mean"])
            best[v] = {"condition": name, **_cell(rows[name])}
    return {"variants": variants, "out_dirs": out_dirs, "conditions": conditions, "table": table, "best": best}


def _cell(s: dict | None) -> dict:
    return {"miou_mean": s["miou_mean"], "miou_std": s["miou_std"], "gap_recovered": s["gap_recovered"]}


def markdown(summary: dict) -> str:
    variants = summary["variants"]
    folders = ", ".join(f"`{summary['out_dirs'][v]}`" for v in variants)
    lines = [
        "Target test mIoU (mean ± std over segmenter seeds) and share of the source→oracle gap recovered, "
        "one column per variant; each variant's own tables are in its run folder "
        f"({folders}).",
        "",
        "| condition | " + " | ".join(variants) + " |",
        "|---|" + "---|" * len(variants),
    ]
    for c in summary["conditions"]:
        cells = [summary["table"][c].get(v) for v in variants]
        lines.append(f"| {c} | " + " | ".join(_shown(cell) for cell in cells) + " |")
    lines += ["", "Best row of each variant (source-only and oracle excluded):", ""]
    lines += ["| variant | condition | mIoU | gap recovered |", "|---|---|---|---|"]
    for v, b in summary["best"].items():
        lines.append(
            f"| {v} | {b['condition']} | {b['miou_mean']:.3f} ± {b['miou_std']:.3f} | {b['gap_recovered']:.0%} |"
        )
    return "\n".join(lines) + "\n\nPlot: `summary_gap.png`.\n"


def _shown(cell: dict | None) -> str:
    if cell is None:
        return "—"
    share = f"{cell['gap_recovered']:.0%}" if math.isfinite(cell["gap_recovered"]) else "n/a"
    return f"{cell['miou_mean']:.3f} ± {cell['miou_std']:.3f} ({share})"


def write_summary(root: Path, summary: dict) -> None:
    from translate.atomic import atomic_write

    root.mkdir(parents=True, exist_ok=True)
    atomic_write(root / "summary.md", lambda tmp: tmp.write_text(markdown(summary)))
    atomic_write(root / "summary.json", lambda tmp: tmp.write_text(json.dumps(summary, indent=2)))

    def write_csv(tmp: Path) -> None:
        with tmp.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["condition", "variant", "miou_mean", "miou_std", "gap_recovered"])
            for c, cells in summary["table"].items():
                for v, cell in cells.items():
                    w.writerow(
                        [c, v, f"{cell['miou_mean']:.4f}", f"{cell['miou_std']:.4f}", f"{cell['gap_recovered']:.4f}"]
                    )

    atomic_write(root / "summary.csv", write_csv)
    atomic_write(root / "summary_gap.png", lambda tmp: plot_gap(summary, tmp))


def plot_gap(summary: dict, path: Path) -> None:
    """Grouped bars: the gap share of every condition, one bar per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    conditions, variants = summary["conditions"], summary["variants"]
    width = 0.8 / max(len(variants), 1)
    # the condition names stand slanted under the bars: the figure grows with the longest, so the
    # bars keep their height (and the axis label its room) whatever the rows are called
    longest = max((len(c) for c in conditions), default=0)
    fig, ax = plt.subplots(figsize=(1.2 * len(conditions) + 2, 3 + 0.05 * longest))
    for i, v in enumerate(variants):
        shares = [summary["table"][c].get(v, {}).get("gap_recovered", float("nan")) for c in conditions]
        ax.bar(np.arange(len(conditions)) + (i - (len(variants) - 1) / 2) * width, shares, width, label=v)
    ax.axhline(1.0, color="k", lw=0.6, ls=":")
    ax.set_xticks(range(len(conditions)), conditions, rotation=30, ha="right")
    ax.set_ylabel("share of the source→oracle gap")
    ax.legend(title="variant")
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
