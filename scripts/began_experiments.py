"""BEGAN on digits: train the runs of docs/samplers.md (BEGAN) and measure them.

    python3 scripts/began_experiments.py train --out runs/began --gammas 1.0 --seeds 0 1 2
    python3 scripts/began_experiments.py train --out runs/began --gammas 0.5 0.7 --seeds 0
    python3 scripts/began_experiments.py report --out runs/began --plots runs/began/plots [--step 800]

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


def m_global_trend(folder: Path, step: int | None) -> tuple[float, float]:
    """Mean M_global over the first and over the last 10 % of the logged steps (up to ``step``)."""
    with open(folder / "metrics.csv") as f:
        values = [float(row["M_global"]) for row in csv.DictReader(f) if step is None or int(row["step"]) <= step]
    tenth = max(1, len(values) // 10)
    return sum(values[:tenth]) / tenth, sum(values[-tenth:]) / tenth


@torch.no_grad()
def draw(folder: Path, step: int | None, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``n`` samples of the exported sampler, or of the (EMA) generator of the checkpoint at ``step``,
    from the same noise as ``Sampler.sample(n, seed=seed)``; a conditional model draws every class
    equally often (labels 0, 1, …, 9, 0, …), returned with the samples (None: unconditional)."""
    from translate.engine.state import model_from_checkpoint
    from translate.sampling import load_sampler

    if step is None:
        sampler = load_sampler(folder / "export/G.safetensors")
        labels = torch.arange(n) % sampler.classes if sampler.classes else None
        return sampler.sample(n, label=labels, seed=seed), labels
    model, ema, _ = model_from_checkpoint(folder / f"checkpoints/ckpt_{step:08d}.pt")
    generator = (ema.copies["G"] if ema is not None else model.G).eval()
    labels = torch.arange(n) % model.cfg.classes if model.cfg.classes else None
    noise = torch.randn(n, generator.noise_dim, generator=torch.Generator().manual_seed(seed))
    return generator(noise, labels).float(), labels


@torch.no_grad()
def sample_measures(samples: torch.Tensor, judge, real_test: torch.Tensor, labels: torch.Tensor | None = None) -> dict:
    """The judge's confidence and the classes it sees, diversity of features and pixels, FID/KID;
    for conditional samples also how often the judge names the class asked for, and the
    diversity within each class (mean over classes of the mean pairwise feature distance)."""
    from translate.measures import fid_kid

    n = len(samples)
    probs = torch.softmax(judge(samples), 1)
    confidence, predicted = probs.max(1)
    features = judge.features(samples)
    conditional = {}
    if labels is not None:
        within = [float(torch.pdist(features[labels == c]).mean()) for c in labels.unique()]
        conditional = {
            "label_agreement": float((predicted == labels).float().mean()),
            "within_class_feature_diversity": sum(within) / len(within),
        }
    return {
        **conditional,
        "mean_confidence": float(confidence.mean()),
        "share_confident": float((confidence >= 0.8).float().mean()),
        "classes_seen": int((torch.bincount(predicted, minlength=10) >= n * 0.02).sum()),
        "feature_diversity": float(torch.pdist(features).mean()),
        "pixel_diversity": float(torch.pdist(samples.flatten(1)).mean()),
        **fid_kid(real_test, samples, judge),
    }


def cached_judge(path: Path):
    """The real-digit classifier of translate.measures (seed 0), trained once and kept in ``path``."""
    from translate.measures import DigitClassifier, real_digit_classifier

    if path.is_file():
        judge = DigitClassifier()
        judge.load_state_dict(torch.load(path))
        return judge.eval()
    judge = real_digit_classifier()
    torch.save(judge.state_dict(), path)
    return judge


def report(out: Path, plots: Path | None, step: int | None) -> None:
    from translate.data.sampling_sets import Digits

    judge = cached_judge(out / "judge.pt")
    test = Digits("test")
    real_test = test.images
    with torch.no_grad():
        real_features = judge.features(real_test)
        ref_feat = float(torch.pdist(real_features).mean())
        ref_pix = float(torch.pdist(real_test.flatten(1)).mean())
        ref_within = [float(torch.pdist(real_features[test.labels == c]).mean()) for c in range(10)]
    rows = []
    for folder in sorted(out.glob("g*_s*")):
        needed = folder / ("export/G.safetensors" if step is None else f"checkpoints/ckpt_{step:08d}.pt")
        if not needed.is_file():
            print(f"{folder}: no {needed.name}, skipped")
            continue
        gamma, seed = folder.name[1:].split("_s")
        first, last = m_global_trend(folder, step)
        samples, labels = draw(folder, step, 1000)
        measured = sample_measures(samples, judge, real_test, labels)
        row = {
            "gamma": float(gamma),
            "seed": int(seed),
            "step": step,
            "m_global_first10": first,
            "m_global_last10": last,
        }
        rows.append({**row, **measured})
        if plots is not None:
            from torchvision.utils import save_image

            plots.mkdir(parents=True, exist_ok=True)
            save_image(
                (samples[:64] + 1) / 2, plots / f"began_g{gamma}_s{seed}_{step or 'final'}.png", nrow=8, padding=1
            )
    with open(out / f"began_{step or 'final'}.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    print("| γ | seed | M_global, first 10 % of steps | last 10 % | falls |")
    print("|---|---|---|---|---|")
    for r in rows:
        falls = "yes" if r["m_global_last10"] < r["m_global_first10"] else "no"
        print(f"| {r['gamma']:g} | {r['seed']} | {r['m_global_first10']:.4f} | {r['m_global_last10']:.4f} | {falls} |")
    print()
    print(
        f"real test digits: feature diversity {ref_feat:.2f} (within a class {sum(ref_within) / 10:.2f}), "
        f"pixel diversity {ref_pix:.2f}"
    )
    print(
        "| γ | seed | mean confidence | share ≥ 0.8 | classes seen (≥ 2 %) | judge agrees with the label | "
        "feature diversity (within a class) | pixel diversity | FID (digits-cnn) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        agreement = f"{r['label_agreement']:.1%}" if "label_agreement" in r else "–"
        within = f" ({r['within_class_feature_diversity']:.2f})" if "label_agreement" in r else ""
        print(
            f"| {r['gamma']:g} | {r['seed']} | {r['mean_confidence']:.1%} | {r['share_confident']:.1%} | "
            f"{r['classes_seen']} | {agreement} | {r['feature_diversity']:.2f}{within} | {r['pixel_diversity']:.2f} | "
            f"{r['fid']:.1f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["train", "report"])
    parser.add_argument("--out", type=Path, default=Path("runs/began"))
    parser.add_argument("--gammas", type=float, nargs="+", default=[0.5])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--plots", type=Path, default=None)
    parser.add_argument("--set", nargs="*", default=[], help="config overrides, key=value")
    parser.add_argument("--step", type=int, default=None, help="report: measure every run at this checkpoint")
    args = parser.parse_args()
    if args.what == "train":
        train_runs(args.out, args.gammas, args.seeds, args.set)
    else:
        report(args.out, args.plots, args.step)


if __name__ == "__main__":
    main()
