"""DCGAN's representation and latent-arithmetic experiments on digits (docs/samplers.md,
"DCGAN's representation"):

    python3 scripts/dcgan_representation.py --out runs/dcgan_repr --seeds 0 1 2 --plots docs/samplers

1. trains the DCGAN of ``configs/dcgan_digits.yaml`` through the engine (``--steps``; a finished
   run is reused, a killed one continues);
2. for each seed and 10 / 50 labels per class of the real training split: test accuracy on the real
   test split of a logistic regression on the trained discriminator's features (every conv layer
   max-pooled to 4×4, concatenated), on the features of the same discriminator untrained (random
   weights: what the architecture alone gives), on raw pixels, and of the same discriminator
   architecture trained supervised from scratch on those labels;
3. latent arithmetic with the trained generator: "thick 7 − thin 7 + thin 1", concepts picked among
   generated samples by the real-digit classifier (class) and ink mass (thickness), three samples
   averaged per concept; the result decoded with small latent jitter, classified and weighed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from translate.config import load_config  # noqa: E402
from translate.data.sampling_sets import Digits  # noqa: E402
from translate.engine import train  # noqa: E402
from translate.engine.state import model_from_checkpoint  # noqa: E402
from translate.measures import real_digit_classifier  # noqa: E402
from translate.nets.samplers import DCGANDiscriminator  # noqa: E402
from translate.representation import (  # noqa: E402
    classify,
    discriminator_features,
    few_labels,
    ink_mass,
    latent_arithmetic,
    linear_probe,
    pick_concept,
    summarise,
    train_supervised_discriminator,
)

CONFIG = ROOT / "configs/dcgan_digits.yaml"


def trained_dcgan(out: Path, steps: int):
    folder = out / "dcgan"
    cfg = load_config(str(CONFIG), [f"out_dir={folder}", f"optim.max_steps={steps}", "engine.progress=false"])
    if not (folder / "export/G.safetensors").is_file():
        train(cfg)
    model, ema, _ = model_from_checkpoint(folder / f"checkpoints/ckpt_{steps:08d}.pt")
    generator = ema.copies["G"] if ema is not None else model.G
    return model.D.eval(), generator.eval(), cfg


def representation_table(out: Path, discriminator, cfg, seeds: list[int], supervised_steps: int) -> list[dict]:
    train_set, test_set = Digits("train"), Digits("test")
    x_train, y_train, x_test, y_test = train_set.images, train_set.labels, test_set.images, test_set.labels
    spec = {k: v for k, v in cfg.model["discriminator"].items() if k != "name"}
    torch.manual_seed(0)
    untrained = DCGANDiscriminator(**spec).eval()
    features = {
        "D features (trained DCGAN)": (
            discriminator_features(discriminator, x_train),
            discriminator_features(discriminator, x_test),
        ),
        "D features (same D, untrained)": (
            discriminator_features(untrained, x_train),
            discriminator_features(untrained, x_test),
        ),
        "raw pixels": (x_train.flatten(1), x_test.flatten(1)),
    }
    print({name: tuple(f[0].shape) for name, f in features.items()}, flush=True)
    rows = []
    for per_class in (10, 50):
        for seed in seeds:
            idx = torch.from_numpy(few_labels(y_train.numpy(), per_class, seed))
            for name, (f_train, f_test) in features.items():
                acc = linear_probe(f_train[idx], y_train[idx], f_test, y_test, seed)
                rows.append({"representation": name, "per_class": per_class, "seed": seed, "accuracy": acc})
            net = train_supervised_discriminator(spec, x_train[idx], y_train[idx], supervised_steps, seed)
            acc = float((classify(net, x_test).argmax(1) == y_test).float().mean())
            rows.append(
                {"representation": "same D trained supervised", "per_class": per_class, "seed": seed, "accuracy": acc}
            )
            print(rows[-4:], flush=True)
    with open(out / "representation.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return rows


def print_representation(rows: list[dict], seeds: list[int]) -> None:
    print(f"| representation | 10 labels per class | 50 labels per class | (seeds {', '.join(map(str, seeds))}) |")
    print("|---|---|---|---|")
    for name in dict.fromkeys(r["representation"] for r in rows):
        cells = []
        for per_class in (10, 50):
            accs = [r["accuracy"] for r in rows if r["representation"] == name and r["per_class"] == per_class]
            mean, std = summarise(accs)
            cells.append(f"{100 * mean:.1f} ± {100 * std:.1f} %")
        per_seed = "; ".join(
            f"{pc}: "
            + ", ".join(
                f"{100 * r['accuracy']:.1f}" for r in rows if r["representation"] == name and r["per_class"] == pc
            )
            for pc in (10, 50)
        )
        print(f"| {name} | {cells[0]} | {cells[1]} | {per_seed} |")


@torch.no_grad()
def arithmetic(out: Path, generator, judge, plots: Path | None, n: int = 3000, jitter: float = 0.25) -> dict:
    z = torch.randn(n, generator.noise_dim, generator=torch.Generator().manual_seed(123))
    images = torch.cat([generator(z[i : i + 500]) for i in range(0, n, 500)])
    probs = torch.softmax(judge(images), 1)
    confidence, predicted = probs.max(1)
    mass = ink_mass(images)
    sure = confidence >= 0.9
    thick7 = pick_concept(mass, sure & (predicted == 7), 3, largest=True)
    thin7 = pick_concept(mass, sure & (predicted == 7), 3, largest=False)
    thin1 = pick_concept(mass, sure & (predicted == 1), 3, largest=False)
    target = latent_arithmetic(z[thick7], z[thin7], z[thin1])
    variants = target + jitter * torch.randn(8, z.shape[1], generator=torch.Generator().manual_seed(7))
    variants[0] = target
    result = generator(variants)
    result_class = judge(result).argmax(1)
    ones_mass = mass[sure & (predicted == 1)]
    percentile = lambda m: float((ones_mass < m).float().mean())  # noqa: E731
    summary = {
        "samples": n,
        "confident_ones": int(len(ones_mass)),
        "result_classified_as_1": float((result_class == 1).float().mean()),
        "result_classes": result_class.tolist(),
        "thin1_mass_percentile": [percentile(m) for m in mass[thin1]],
        "result_mass_percentile_mean": sum(percentile(m) for m in ink_mass(result)) / len(result),
        "thick7_mass": mass[thick7].tolist(),
        "thin7_mass": mass[thin7].tolist(),
        "thin1_mass": mass[thin1].tolist(),
        "result_mass": ink_mass(result).tolist(),
    }
    with open(out / "arithmetic.json", "w") as f:
        json.dump(summary, f, indent=1)
    if plots is not None:
        from torchvision.utils import make_grid, save_image

        blank = -torch.ones(1, *images.shape[1:])
        row = torch.cat([images[thick7], blank, images[thin7], blank, images[thin1], blank, result])
        plots.mkdir(parents=True, exist_ok=True)
        save_image(make_grid((row + 1) / 2, nrow=len(row), padding=1, pad_value=1.0), plots / "dcgan_arithmetic.png")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/dcgan_repr"))
    parser.add_argument("--steps", type=int, default=1200, help="DCGAN training steps")
    parser.add_argument("--supervised-steps", type=int, default=400)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--plots", type=Path, default=None)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    discriminator, generator, cfg = trained_dcgan(args.out, args.steps)
    rows = representation_table(args.out, discriminator, cfg, args.seeds, args.supervised_steps)
    print_representation(rows, args.seeds)
    summary = arithmetic(args.out, generator, real_digit_classifier(), args.plots)
    print(json.dumps({k: v for k, v in summary.items() if not k.endswith("_mass")}))


if __name__ == "__main__":
    main()
