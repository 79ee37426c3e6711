"""Teacher against its distilled student, side by side in one process (docs/augment.md,
docs/benchmarks.md): MACs per image, images/s of ``GANTranslate`` on the CPU (the two hooks
alternate, round after round, so a shared machine's load hits both alike; the best round of each
counts), in fp32 and bf16, and how closely the student's translations of held-out scenes follow
the teacher's (PSNR and mean L1 on uint8 images).

    python scripts/distill_compare.py --teacher apps/app/models/sim_to_real.safetensors \\
        --student runs/distill_quickstart/export/G.safetensors --held-out data/quickstart/heldout/images
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from augment import GANTranslate
from translate.data.images import list_images, read_image
from translate.io import load_network
from translate.nets.macs import count_macs


def rate(hook: GANTranslate, images: list[np.ndarray]) -> float:
    start = time.perf_counter()
    for image in images:
        hook(image=image)
    return len(images) / (time.perf_counter() - start)


def side_by_side(paths: dict[str, Path], size: tuple[int, int], amp: str, n: int, rounds: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(n)]
    hooks = {name: GANTranslate(path, p=1.0, device="cpu", amp=amp) for name, path in paths.items()}
    for hook in hooks.values():
        rate(hook, images[:2])  # loads the generator, warms kernels
    best = dict.fromkeys(hooks, 0.0)
    for _ in range(rounds):
        for name, hook in hooks.items():
            best[name] = max(best[name], rate(hook, images))
    return best


def agreement(paths: dict[str, Path], folder: Path) -> dict[str, float]:
    hooks = {name: GANTranslate(path, p=1.0, device="cpu") for name, path in paths.items()}
    squared, absolute = [], []
    for file in list_images(folder):
        image = read_image(file)
        teacher = hooks["teacher"](image=image)["image"].astype(np.float64)
        student = hooks["student"](image=image)["image"].astype(np.float64)
        squared.append(((teacher - student) ** 2).mean())
        absolute.append(np.abs(teacher - student).mean() / 255)
    mse = float(np.mean(squared))
    return {"images": len(squared), "psnr_db": 10 * np.log10(255**2 / mse), "l1": float(np.mean(absolute))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teacher", type=Path, required=True)
    parser.add_argument("--student", type=Path, required=True)
    parser.add_argument("--held-out", type=Path, required=True, help="folder of held-out source images")
    parser.add_argument("--sizes", default="64x128,256x256")
    parser.add_argument("--amps", default="off,bf16")
    parser.add_argument("--images", type=int, default=20, help="timed images per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    paths = {"teacher": args.teacher, "student": args.student}
    report: dict = {"threads": args.threads, "agreement": agreement(paths, args.held_out), "speed": []}
    print(f"student vs teacher on {args.held_out}: {json.dumps(report['agreement'])}", flush=True)
    for text in args.sizes.split(","):
        size = tuple(int(s) for s in text.split("x"))
        macs = {name: count_macs(load_network(path)[0], (3, *size)) for name, path in paths.items()}
        for amp in args.amps.split(","):
            rates = side_by_side(paths, size, amp, args.images, args.rounds)
            row = {"size": text, "amp": amp, "macs": macs, "images_per_s": rates}
            row["speedup"] = rates["student"] / rates["teacher"]
            report["speed"].append(row)
            print(
                f"{text} amp={amp}: teacher {macs['teacher'] / 1e6:.1f} MMACs {rates['teacher']:.1f} images/s, "
                f"student {macs['student'] / 1e6:.1f} MMACs {rates['student']:.1f} images/s "
                f"(MACs /{macs['teacher'] / macs['student']:.1f}, speed ×{row['speedup']:.2f})",
                flush=True,
            )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
