"""`i2i bench synth`: scenes per second of the synthetic street-scene renderer, per domain.

Measured on one thread (OpenCV and torch limited to one), layout + rendering, no disk I/O.
Reports wall-clock rate and CPU-time rate: on a shared machine the second is the one that says
what the renderer costs.
"""

from __future__ import annotations

import argparse
import time


def register(sub) -> None:
    parser = sub.add_parser("synth", help="scenes/s of the synthetic street-scene renderer (one thread)")
    parser.add_argument("--size", default="128x256", help="HxW (default 128x256)")
    parser.add_argument("--n", type=int, default=200, help="scenes per domain")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preset", default="real", help="target-domain preset")
    parser.set_defaults(func=run)


def measure(size: tuple[int, int], n: int, seed: int = 0, target_preset: str = "real") -> dict[str, dict[str, float]]:
    import cv2
    import torch

    from ..synthetic import SceneGenerator, appearance_from

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    gen = SceneGenerator(
        seed=seed, height=size[0], width=size[1], appearances={"target": appearance_from(target_preset)}
    )
    results = {}
    for domain in ("source", "target"):
        gen.scene(0, domain)  # warm caches (textures, grids)
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(n):
            gen.scene(i, domain)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        results[domain] = {
            "scenes_per_s_wall": n / wall,
            "scenes_per_s_cpu": n / max(cpu, 1e-9),
            "ms_per_scene_cpu": 1000 * cpu / n,
        }
    return results


def run(args: argparse.Namespace) -> int:
    from ..synthetic import parse_size

    size = parse_size(args.size)
    results = measure(size, args.n, args.seed, args.preset)
    print(f"synthetic street scenes, {size[0]}x{size[1]}, {args.n} per domain, one thread")
    print(f"{'domain':<8}{'scenes/s (wall)':>17}{'scenes/s (CPU time)':>21}{'ms/scene (CPU)':>16}")
    for domain, r in results.items():
        print(f"{domain:<8}{r['scenes_per_s_wall']:>17.1f}{r['scenes_per_s_cpu']:>21.1f}{r['ms_per_scene_cpu']:>16.2f}")
    return 0
