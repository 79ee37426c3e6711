"""ProGAN and LAPGAN against a DCGAN on 64×64 synthetic street scenes, by FID/KID on features of
a small CNN trained here (not Inception): the tables of docs/samplers.md (ProGAN, LAPGAN).

  i2i data synth --out data/synth64/train --domain target --n 1000 --size 64x64 --seed 0
  i2i data synth --out data/synth64/test --domain target --n 500 --size 64x64 --seed 1000
  python3 scripts/progan_lapgan_fid.py train --out runs/samplers64 --seeds 0 1 \
      --configs configs/progan_synth64.yaml configs/dcgan_synth64.yaml configs/lapgan_synth64.yaml
  python3 scripts/progan_lapgan_fid.py timing --out runs/samplers64
  python3 scripts/progan_lapgan_fid.py report --out runs/samplers64 --pngs docs/samplers

The feature extractor is the project's digits CNN architecture (``translate.measures.DigitClassifier``)
trained on the real *training* scenes to tell by how much a scene was rotated (0, 90, 180, 270
degrees): a task that needs the scenes' layout (sky up, road down) and needs no labels. Its
128-d penultimate features feed torchmetrics' FID and KID: 1,000 samples of each exported
sampler against the 500 held-out test scenes. Each run appends one JSON line to
``OUT/results.jsonl``; a rerun skips what is there, and several processes started with the same
arguments share the runs out (each claims one before starting it).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from sampler_experiments import claim  # scripts/ is on the path when a script runs

FEATURES = "scenes-rotation-cnn (trained here on the real training scenes; not Inception)"
SAMPLES, SAMPLE_SEED = 1000, 10_000


def scenes(root: Path) -> torch.Tensor:
    from translate.data.label_folders import LabelFolders

    data = LabelFolders(str(root))
    return torch.stack([data[i]["image"] for i in range(len(data))])


def rotation_extractor(train_images: torch.Tensor, path: Path, steps: int = 800):
    """The feature CNN, trained once (seed 0) and kept at ``path``."""
    from translate.measures import DigitClassifier, train_classifier

    if path.is_file():
        net = DigitClassifier(classes=4, channels=3)
        net.load_state_dict(torch.load(path, weights_only=True))
        return net.eval()
    rotated = torch.cat([torch.rot90(train_images, k, (2, 3)) for k in range(4)])
    labels = torch.arange(4).repeat_interleave(len(train_images))
    net = train_classifier(rotated, labels, seed=0, steps=steps, classes=4, augment=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)
    return net


class ScaledFeatures(torch.nn.Module):
    """The extractor's features divided by their root mean square over the real training scenes,
    so that KID's cubic kernel sees values near 1 (raw ones reach the hundreds and make KID
    useless); FID scales by the same constant squared, the same for every row."""

    def __init__(self, net: torch.nn.Module, reference: torch.Tensor) -> None:
        super().__init__()
        self.net = net.eval()
        with torch.no_grad():
            self.scale = float(torch.cat([net.features(x) for x in reference.split(256)]).pow(2).mean().sqrt())

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features(x) / self.scale


def rotation_accuracy(net: torch.nn.Module, images: torch.Tensor) -> float:
    from translate.measures import accuracy

    rotated = torch.cat([torch.rot90(images, k, (2, 3)) for k in range(4)])
    return accuracy(net, rotated, torch.arange(4).repeat_interleave(len(images)))


def done_keys(results: Path) -> set[str]:
    if not results.is_file():
        return set()
    return {json.loads(line)["key"] for line in results.read_text().splitlines() if line.strip()}


def train_runs(args) -> None:
    from translate.config import load_config
    from translate.engine import train
    from translate.measures import fid_kid
    from translate.sampling import load_sampler

    torch.set_num_threads(1)
    results = args.out / "results.jsonl"
    train_images, test_images = scenes(args.data / "train"), scenes(args.data / "test")
    net = rotation_extractor(train_images, args.out / "rotation_cnn.pt")
    extractor = ScaledFeatures(net, train_images)
    if "real_train/s0" not in done_keys(results):
        scores = relabel(fid_kid(test_images, train_images, extractor))
        row = {"key": "real_train/s0", "config": "real training scenes", "seed": 0, **scores}
        append(results, {**row, "rotation_accuracy_test": rotation_accuracy(net, test_images)})
    for seed in args.seeds:
        for config in args.configs:
            key = f"{Path(config).stem}/s{seed}"
            if key in done_keys(results) or not claim(args.out, key):
                continue
            overrides = [
                f"out_dir={args.out / f'{Path(config).stem}_s{seed}'}",
                f"engine.seed={seed}",
                f"data.dataset.root={args.data / 'train'}",
                "engine.progress=false",
                *args.set,
            ]
            cfg = load_config(config, overrides)
            start = time.perf_counter()
            result = train(cfg)
            seconds = time.perf_counter() - start
            sampler = load_sampler(result.exports["G"])
            fake = sampler.sample(SAMPLES, seed=SAMPLE_SEED)
            model = result.model
            params = sum(p.numel() for name in ("G", "D") for p in getattr(model, name).parameters())
            append(
                results,
                {
                    "key": key,
                    "config": Path(config).stem,
                    "seed": seed,
                    "steps": result.step,
                    "batch": cfg.data.batch_size,
                    "params_g_d": params,
                    "train_s": round(seconds, 1),
                    **relabel(fid_kid(test_images, fake, extractor)),
                },
            )


def phase_of(model, step: int):
    """What decides a step's cost: ProGAN's level and whether it fades; one phase for the others."""

    if not hasattr(model, "growth_at"):
        return "all"
    growth = model.growth_at(step)
    return growth.level, growth.alpha < 1


def timing(args) -> None:
    """Seconds per training step of each config, measured side by side in this one process (one
    thread), at every level of ProGAN's schedule, and the whole schedule's cost from them: the
    compute comparison that wall-clock times on a shared, loaded machine cannot give."""
    from translate.config import load_config
    from translate.distributed import DistEnv
    from translate.engine import build_runtime, train_step

    torch.set_num_threads(1)
    images = scenes(args.data / "test")[:16]
    rows = []
    for config in args.configs:
        cfg = load_config(config, ["engine.progress=false", f"out_dir={args.out / 'timing'}"])
        rt = build_runtime(cfg, DistEnv(), 10)
        total = cfg.optim.max_steps
        phases = [phase_of(rt.model, s) for s in range(total)]
        starts = {p: phases.index(p) for p in dict.fromkeys(phases)}  # each phase's first step
        seconds = 0.0
        for key, first in starts.items():
            rt.step = first
            train_step(rt, {"image": images})  # warm-up
            start = time.perf_counter()
            for _ in range(args.timing_steps):
                rt.step = first
                train_step(rt, {"image": images})
            seconds += phases.count(key) * (time.perf_counter() - start) / args.timing_steps
        rows.append({"config": Path(config).stem, "steps": total, "schedule_s": round(seconds, 1)})
        print(json.dumps(rows[-1]), flush=True)
    (args.out / "timing.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def relabel(scores: dict) -> dict:
    """``fid_kid`` names its default extractor after digits; these features are the scenes CNN's."""
    return {**scores, "features": FEATURES}


def append(results: Path, row: dict) -> None:
    results.parent.mkdir(parents=True, exist_ok=True)
    with results.open("a") as fh:
        fh.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


def report(args) -> None:
    rows = [json.loads(line) for line in (args.out / "results.jsonl").read_text().splitlines() if line.strip()]
    print(f"FID / KID on {FEATURES}; {SAMPLES} samples vs 500 held-out test scenes\n")
    print("| run | seed | G+D params | steps × batch | FID | KID ×100 |")
    print("|---|---|---|---|---|---|")
    for row in sorted(rows, key=lambda r: (r["config"], r["seed"])):
        steps = f"{row['steps']:,} × {row['batch']}" if "steps" in row else "—"
        params = f"{row['params_g_d']:,}" if "params_g_d" in row else "—"
        kid = f"{100 * row['kid']:.2f} ± {100 * row['kid_std']:.2f}"
        print(f"| {row['config']} | {row['seed']} | {params} | {steps} | {row['fid']:.2f} | {kid} |")
    by_config: dict[str, list[float]] = {}
    for row in rows:
        by_config.setdefault(row["config"], []).append(row["fid"])
    timing_file = args.out / "timing.jsonl"
    timed = {}
    if timing_file.is_file():
        timed = {r["config"]: r["schedule_s"] for r in map(json.loads, timing_file.read_text().splitlines())}
    print("\n| run | seeds | FID mean ± std | schedule's CPU seconds, side by side |\n|---|---|---|---|")
    for config, fids in sorted(by_config.items()):
        t = torch.tensor(fids)
        std = float(t.std()) if len(fids) > 1 else 0.0
        print(f"| {config} | {len(fids)} | {float(t.mean()):.2f} ± {std:.2f} | {timed.get(config, '—')} |")
    if args.pngs:
        draw_pngs(args)


def draw_pngs(args) -> None:
    """Sample grids (16 each) of seed 0's samplers (and ProGAN's seed 1) and LAPGAN's pyramid (each level enlarged to 64², side by side)."""
    import torch.nn.functional as F
    from torchvision.utils import save_image

    from translate.sampling import load_sampler

    args.pngs.mkdir(parents=True, exist_ok=True)
    # ProGAN's seed 0 diverged (see docs/samplers.md): its seed 1 is drawn too
    for name, seed in (("progan_synth64", 0), ("progan_synth64", 1), ("dcgan_synth64", 0), ("lapgan_synth64", 0)):
        path = args.out / f"{name}_s{seed}/export/G.safetensors"
        if path.is_file():
            grid = load_sampler(path).sample(16, seed=0)
            suffix = "" if seed == 0 else f"_s{seed}"
            save_image((grid + 1) / 2, args.pngs / f"{name}{suffix}_grid.png", nrow=8)
    lap = args.out / "lapgan_synth64_s0/export/G.safetensors"
    if lap.is_file():
        sampler = load_sampler(lap)
        with torch.no_grad():
            levels = sampler.net.pyramid(sampler.noise(8, seed=0))
        size = levels[-1].shape[-1]
        columns = [F.interpolate(x.clamp(-1, 1), size=size, mode="nearest") for x in levels]
        rows = torch.stack(columns, 1).flatten(0, 1)  # per sample: coarse ... fine
        save_image((rows + 1) / 2, args.pngs / "lapgan_pyramid.png", nrow=len(levels), padding=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["train", "timing", "report"])
    parser.add_argument("--timing-steps", type=int, default=3, help="timed steps per phase (timing)")
    parser.add_argument("--out", type=Path, default=Path("runs/samplers64"))
    parser.add_argument("--data", type=Path, default=Path("data/synth64"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument(
        "--configs",
        nargs="+",
        default=["configs/progan_synth64.yaml", "configs/dcgan_synth64.yaml", "configs/lapgan_synth64.yaml"],
    )
    parser.add_argument("--set", nargs="*", default=[], help="config overrides for every run")
    parser.add_argument("--pngs", type=Path, default=None, help="folder for sample grids and LAPGAN's pyramid")
    args = parser.parse_args()
    {"train": train_runs, "timing": timing, "report": report}[args.part](args)


if __name__ == "__main__":
    main()
