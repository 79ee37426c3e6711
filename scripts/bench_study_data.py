"""Data loading throughput of the study's training draws: frames per second, decoded from PNG,
resized (aspect kept) and randomly cropped by DataLoader workers, for several worker counts.

    python3 scripts/bench_study_data.py --gta5 DIR [--frames 96] [--workers 0 2 4]
        [--short-side 720] [--crop 512x1024] [--batch-size 4]

DIR is a GTA5 tree (real, or a stand-in: `i2i data synth --layout gta5 --n 100 --out DIR`).
Figures on a shared machine are only comparable with each other, within one run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from torch.utils.data import DataLoader, Dataset

from translate.segdata import GTA5Dataset, SegmentationSet
from translate.synthetic import parse_size


class TrainingDraws(Dataset):
    """Sample ``index`` of ``samples`` with its random crop drawn from (index, seed), as a keyed
    training draw is: any worker can make any sample."""

    def __init__(self, samples: SegmentationSet, seed: int = 0) -> None:
        self.samples, self.seed = samples, seed

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        image, label = self.samples.sample(index, np.random.default_rng([self.seed, index]))
        return np.ascontiguousarray(image), np.ascontiguousarray(label)


def frames_per_second(samples: SegmentationSet, frames: int, workers: int, batch_size: int) -> float:
    draws = TrainingDraws(samples)
    loader = DataLoader(draws, batch_size=batch_size, num_workers=workers, shuffle=False)
    start, seen = time.perf_counter(), 0
    while seen < frames:
        for images, _ in loader:
            seen += len(images)
            if seen >= frames:
                break
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gta5", required=True, help="GTA5 tree (images/, labels/)")
    parser.add_argument("--frames", type=int, default=96)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2, 4])
    parser.add_argument("--short-side", type=int, default=720)
    parser.add_argument("--crop", default="512x1024", help="HxW")
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()
    pairs = GTA5Dataset(args.gta5).pairs
    samples = SegmentationSet(pairs, "id", short_side=args.short_side, crop=parse_size(args.crop))
    h, w = samples[0][0].shape[:2]
    print(f"{len(pairs)} frames, resized to {w}×{h}, crops {args.crop}, batch {args.batch_size}")
    print("| workers | frames/s |\n|---|---|")
    for workers in args.workers:
        print(f"| {workers} | {frames_per_second(samples, args.frames, workers, args.batch_size):.1f} |", flush=True)


if __name__ == "__main__":
    main()
