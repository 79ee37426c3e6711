"""The text-to-image measurements of docs/samplers.md: GAN-INT-CLS vs plain conditioning on captioned
digits, caption accuracy on seen and held-out (digit, thickness) combinations, and the grids.

  python3 scripts/text2image_digits.py train --out runs/text2image --seeds 0 1 [--models GAN-INT-CLS]
  python3 scripts/text2image_digits.py evaluate --out runs/text2image --seeds 0 1 --grids docs/samplers

``train`` runs configs/text2image_digits.yaml (GAN-CLS) and text2image_digits_plain.yaml (no
mismatched-text term) once per seed, skipping runs whose export exists. ``evaluate`` draws
``--per-caption`` samples for each caption "a thin/thick <digit>" and each "a thin/thick <digit>
slanted left/right", and judges them with measures fitted on real training digits only: the real
digit classifier (translate.measures) for the digit, and the ink mass and slant against the real
class medians (translate.data.captions.AttributeThresholds) for thickness and slant.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

CONFIGS = {"GAN-INT-CLS": "configs/text2image_digits.yaml", "GAN-INT (plain)": "configs/text2image_digits_plain.yaml"}


def run_dir(out: Path, config: str, seed: int) -> Path:
    return out / f"{Path(config).stem}_s{seed}"


def train(args) -> None:
    from translate.config import load_config
    from translate.engine import train as train_run

    for seed in args.seeds:
        for name, config in CONFIGS.items():
            folder = run_dir(args.out, config, seed)
            if args.models and name not in args.models:
                continue
            if (folder / "export/G.safetensors").is_file():
                continue
            cfg = load_config(config, [f"out_dir={folder}", f"engine.seed={seed}", "engine.progress=false", *args.set])
            start = time.perf_counter()
            train_run(cfg)
            print(json.dumps({"run": str(folder), "train_s": round(time.perf_counter() - start, 1)}), flush=True)


def judge_captions(sampler, classifier, thresholds, combos, per_caption: int, seed: int) -> dict[str, float]:
    """Agreement of the measures with each stated attribute, over the captions of ``combos``
    ((digit, thickness, slant or None) tuples); 'all' = every stated attribute at once."""
    from translate.data.captions import UNSTATED, caption_for

    hits = {"digit": [], "thickness": [], "slant": [], "all": []}
    for i, (digit, thickness, slant) in enumerate(combos):
        caption = caption_for(digit, thickness, UNSTATED if slant is None else slant)
        images = sampler.sample(per_caption, text=caption, seed=seed + i)
        labels = torch.full((per_caption,), digit)
        with torch.no_grad():
            digit_ok = classifier(images).argmax(1) == labels
        thick, right = thresholds.judge(images, labels)
        thick_ok = thick == thickness
        ok = digit_ok & thick_ok
        hits["digit"].append(digit_ok)
        hits["thickness"].append(thick_ok)
        if slant is not None:
            slant_ok = right == slant
            hits["slant"].append(slant_ok)
            ok = ok & slant_ok
        hits["all"].append(ok)
    return {k: round(100 * float(torch.cat(v).float().mean()), 1) for k, v in hits.items() if v}


def read_as(sampler, classifier, combos, per_caption: int, seed: int) -> dict[str, list[int]]:
    """What the digit classifier reads in the samples of each caption: a count per digit 0..9."""
    from translate.data.captions import caption_for

    counts = {}
    for i, (digit, thickness, _) in enumerate(combos):
        caption = caption_for(digit, thickness)
        with torch.no_grad():
            read = classifier(sampler.sample(per_caption, text=caption, seed=seed + i)).argmax(1)
        counts[caption] = torch.bincount(read, minlength=10).tolist()
    return counts


def held_out_pairs(config: str) -> set[tuple[int, int]]:
    from translate.config import load_config
    from translate.data.captions import parse_combination

    pairs = set()
    for text in load_config(config, []).data.dataset.get("hold_out", []):
        digit, kind, value = parse_combination(text)
        if kind == "thickness":
            pairs.add((digit, value))
    return pairs


def evaluate(args) -> None:
    from translate.data.captions import real_thresholds
    from translate.measures import real_digit_classifier
    from translate.sampling import load_sampler

    torch.manual_seed(0)
    classifier, thresholds = real_digit_classifier(), real_thresholds()
    held = held_out_pairs(CONFIGS["GAN-INT-CLS"])
    pairs = [(d, t) for d in range(10) for t in (0, 1)]
    seen = [(d, t, None) for d, t in pairs if (d, t) not in held]
    unseen = [(d, t, None) for d, t in pairs if (d, t) in held]
    with_slant = [(d, t, s) for d, t in pairs if (d, t) not in held for s in (0, 1)]
    rows = []
    for seed in args.seeds:
        for name, config in CONFIGS.items():
            path = run_dir(args.out, config, seed) / "export/G.safetensors"
            if not path.is_file():
                continue
            sampler = load_sampler(path)
            row = {"model": name, "seed": seed}
            row["seen"] = judge_captions(sampler, classifier, thresholds, seen, args.per_caption, 1000)
            row["held_out"] = judge_captions(sampler, classifier, thresholds, unseen, args.per_caption, 2000)
            row["slant"] = judge_captions(sampler, classifier, thresholds, with_slant, args.per_caption // 2, 3000)
            row["held_out_read_as"] = read_as(sampler, classifier, unseen, args.per_caption, 2000)
            rows.append(row)
            print(json.dumps(row), flush=True)
    (args.out / "caption_accuracy.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(markdown(rows, held))
    if args.grids:
        draw_grids(args, args.grids)


def markdown(rows: list[dict], held: set[tuple[int, int]]) -> str:
    from translate.data.captions import THICKNESS

    unseen = ", ".join(f"{THICKNESS[t]} {d}" for d, t in sorted(held))
    lines = [
        f"| model | seed | seen: digit | seen: thickness | seen: both | held out ({unseen}): digit | thickness | both "
        "| with slant: slant | with slant: all three |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s, h, sl = r["seen"], r["held_out"], r["slant"]
        lines.append(
            f"| {r['model']} | {r['seed']} | {s['digit']} % | {s['thickness']} % | {s['all']} % | {h['digit']} % "
            f"| {h['thickness']} % | {h['all']} % | {sl['slant']} % | {sl['all']} % |"
        )
    return "\n".join(lines)


def draw_grids(args, folder: Path) -> None:
    """Side by side (same noise): rows 'a thin <d>' / 'a thick <d>' for every digit, GAN-CLS left,
    plain right; and GAN-INT walks between captions."""
    from torchvision.utils import make_grid, save_image

    from translate.data.captions import caption_for
    from translate.sampling import load_sampler

    folder.mkdir(parents=True, exist_ok=True)
    seed = args.seeds[0]
    unit = lambda x: x.add(1).div(2).clamp(0, 1)  # noqa: E731
    halves = []
    for config in CONFIGS.values():
        sampler = load_sampler(run_dir(args.out, config, seed) / "export/G.safetensors")
        captions = [caption_for(d, t) for d in range(10) for t in (0, 1) for _ in range(4)]
        images = sampler.sample(len(captions), text=captions, seed=7)
        halves.append(make_grid(unit(images), nrow=8, padding=2, pad_value=1.0))
    gap = torch.ones(3, halves[0].shape[1], 12)
    save_image(torch.cat([halves[0], gap, halves[1]], 2), str(folder / "text2image_cls_vs_plain.png"))
    sampler = load_sampler(run_dir(args.out, CONFIGS["GAN-INT-CLS"], seed) / "export/G.safetensors")
    walks = [
        ("a thin two", "a thick two"),
        ("a one slanted left", "a one slanted right"),
        ("a thick zero", "a thick six"),
    ]
    grid = torch.cat([sampler.interpolate(rows=2, steps=8, seed=3, text=a, text_to=b) for a, b in walks])
    save_image(make_grid(unit(grid), nrow=8, padding=2, pad_value=1.0), str(folder / "text2image_interpolation.png"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["train", "evaluate"])
    parser.add_argument("--out", type=Path, default=Path("runs/text2image"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--per-caption", type=int, default=50)
    parser.add_argument("--grids", type=Path, help="write the PNG grids into this folder")
    parser.add_argument("--set", nargs="*", default=[], help="config overrides, key=value")
    parser.add_argument("--models", nargs="*", choices=list(CONFIGS), help="train only these (default: both)")
    args = parser.parse_args()
    {"train": train, "evaluate": evaluate}[args.part](args)


if __name__ == "__main__":
    main()
