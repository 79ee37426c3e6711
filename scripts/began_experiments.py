"""BEGAN on digits: train the runs of docs/samplers.md (BEGAN) and measure them.

    python3 scripts/began_experiments.py train --out runs/began --gammas 0.5 --seeds 0 1 2
    python3 scripts/began_experiments.py train --out runs/began --gammas 0.3 0.7 --seeds 0
    python3 scripts/began_experiments.py report --out runs/began --plots docs/samplers

``train`` runs ``configs/began_digits.yaml`` through the engine once per (γ, seed), in
``OUT/g{γ}_s{seed}`` (a killed run continues from its checkpoint; a finished one is skipped).
``report`` reads each run's ``metrics.csv`` (M_global at every step) and its exported sampler, and
prints the tables: M_global over the first and the last 10 % of the steps, the real-digit
classifier's confidence on 1,000 samples, their diversity and FID on the classifier's features.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from translate.config import load_config  # noqa: E402
from translate.engine import train  # noqa: E402

CONFIG = ROOT / "configs/began_digits.yaml"


def run_dir(out: Path, gamma: float, seed: int) -> Path:
    return out / f"g{gamma:g}_s{seed}"


def train_runs(out: Path, gammas: list[float], seeds: list[int], extra: list[str]) -> None:
    for gamma in gammas:
        for seed in seeds:
            folder = run_dir(out, gamma, seed)
            if (folder / "export/G.safetensors").is_file():
                print(f"{folder}: done, skipped")
                continue
            cfg = load_config(
                str(CONFIG),
                [f"out_dir={folder}", f"model.gamma={gamma}", f"engine.seed={seed}", "engine.progress=false", *extra],
            )
            result = train(cfg)
            print(f"{folder}: step {result.step}, last logs {result.last_logs}", flush=True)


def m_global_trend(folder: Path) -> tuple[float, float]:
    """Mean M_global over the first and over the last 10 % of the logged steps."""
    with open(folder / "metrics.csv") as f:
        values = [float(row["M_global"]) for row in csv.DictReader(f)]
    tenth = max(1, len(values) // 10)
    return sum(values[:tenth]) / tenth, sum(values[-tenth:]) / tenth


@torch.no_grad()
def sample_measures(folder: Path, judge, real_test: torch.Tensor, n: int = 1000) -> dict:
    from translate.measures import fid_kid
    from translate.sampling import load_sampler

    samples = load_sampler(folder / "export/G.safetensors").sample(n, seed=0)
    probs = torch.softmax(judge(samples), 1)
    confidence, predicted = probs.max(1)
    features = judge.features(samples)
    return {
        "mean_confidence": float(confidence.mean()),
        "share_confident": float((confidence >= 0.8).float().mean()),
        "classes_seen": int((torch.bincount(predicted, minlength=10) >= n * 0.02).sum()),
        "feature_diversity": float(torch.pdist(features).mean()),
        "pixel_diversity": float(torch.pdist(samples.flatten(1)).mean()),
        **fid_kid(real_test, samples, judge),
        "samples": samples,
    }


def report(out: Path, plots: Path | None) -> None:
    from translate.data.sampling_sets import Digits
    from translate.measures import real_digit_classifier

    judge = real_digit_classifier()
    real_test = Digits("test").images
    ref_feat = float(torch.pdist(judge.features(real_test)).mean())
    ref_pix = float(torch.pdist(real_test.flatten(1)).mean())
    rows = []
    for folder in sorted(out.glob("g*_s*")):
        if not (folder / "export/G.safetensors").is_file():
            continue
        gamma, seed = folder.name[1:].split("_s")
        first, last = m_global_trend(folder)
        measured = sample_measures(folder, judge, real_test)
        samples = measured.pop("samples")
        row = {"gamma": float(gamma), "seed": int(seed), "m_global_first10": first, "m_global_last10": last}
        rows.append({**row, **measured})
        if plots is not None:
            from torchvision.utils import save_image

            plots.mkdir(parents=True, exist_ok=True)
            save_image((samples[:64] + 1) / 2, plots / f"began_g{gamma}_s{seed}.png", nrow=8, padding=1)
    with open(out / "began.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    print("| γ | seed | M_global, first 10 % of steps | last 10 % | falls |")
    print("|---|---|---|---|---|")
    for r in rows:
        falls = "yes" if r["m_global_last10"] < r["m_global_first10"] else "no"
        print(f"| {r['gamma']:g} | {r['seed']} | {r['m_global_first10']:.4f} | {r['m_global_last10']:.4f} | {falls} |")
    print()
    print(f"real test digits: feature diversity {ref_feat:.2f}, pixel diversity {ref_pix:.2f}")
    print(
        "| γ | seed | mean confidence | share ≥ 0.8 | classes seen (≥ 2 %) | feature diversity | pixel diversity | FID (digits-cnn) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['gamma']:g} | {r['seed']} | {r['mean_confidence']:.1%} | {r['share_confident']:.1%} | "
            f"{r['classes_seen']} | {r['feature_diversity']:.2f} | {r['pixel_diversity']:.2f} | {r['fid']:.1f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["train", "report"])
    parser.add_argument("--out", type=Path, default=Path("runs/began"))
    parser.add_argument("--gammas", type=float, nargs="+", default=[0.5])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--plots", type=Path, default=None)
    parser.add_argument("--set", nargs="*", default=[], help="config overrides, key=value")
    args = parser.parse_args()
    if args.what == "train":
        train_runs(args.out, args.gammas, args.seeds, args.set)
    else:
        report(args.out, args.plots)


if __name__ == "__main__":
    main()
