"""`i2i bench augment`: images/s of the augmentation hooks, so a user sees what they cost.

Measured for each generator (randomly initialised: speed does not depend on the weights), and
for each exported generator named in ``--checkpoints`` (a teacher and its distilled student,
``i2i distill``), with its multiply-accumulates per image:

* ``GANTranslate`` inside an albumentations pipeline in a ``DataLoader`` with 0 and 2 workers
  (CPU, persistent workers; a warm-up epoch lets every worker load its model before timing);
* ``TranslateBatch`` on a uint8 batch on ``--device``;

each in every precision of ``--amp`` (default fp32 and bf16: on a CPU that computes bf16 natively
bf16 is the faster one, on others it is emulated and slower).

This module sits with the commands: it is the one place under ``translate`` that imports
``augment`` (the hook is built on the toolkit, never the other way round).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

GENERATORS = {
    "reference": {"name": "resnet", "ngf": 64, "n_blocks": 9},
    "small": {"name": "resnet", "ngf": 16, "n_blocks": 6},
}
MODES = ("loader0", "loader2", "batch")


def register(sub) -> None:
    parser = sub.add_parser("augment", help="images/s of GANTranslate in a DataLoader and of TranslateBatch")
    parser.add_argument(
        "--size", type=_size, default=(256, 256), help="image side, or HxW (e.g. 64x128), in pixels (default 256)"
    )
    parser.add_argument("--images", type=int, default=16, help="timed images per measurement")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument(
        "--generators",
        default=None,
        help=f"comma-separated subset of {','.join(GENERATORS)} (default all of them, none with --checkpoints)",
    )
    parser.add_argument(
        "--checkpoints",
        default="",
        metavar="PATH[,PATH]",
        help="exported generators to measure too, e.g. a teacher and its distilled student",
    )
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {','.join(MODES)}")
    parser.add_argument("--device", default="auto", help="device of TranslateBatch (GANTranslate runs on the CPU)")
    parser.add_argument(
        "--amp", default="off,bf16", help="comma-separated precisions to measure, each of auto, off, bf16, fp16"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads of the main process (default torch's; DataLoader workers use 1 each)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    parser.set_defaults(func=run)


def _size(text: str) -> tuple[int, int]:
    """``"256"`` or ``"64x128"`` -> (height, width)."""
    parts = text.lower().split("x")
    if len(parts) in (1, 2) and all(p.isdigit() and int(p) > 0 for p in parts):
        return (int(parts[0]), int(parts[-1]))
    raise argparse.ArgumentTypeError(f"expected a positive side or HxW (e.g. 256 or 64x128), got '{text}'")


class _Images:
    """A map-style dataset of photographs run through an albumentations pipeline."""

    def __init__(self, size: tuple[int, int], n: int, pipeline) -> None:
        import cv2
        from skimage import data

        base = cv2.resize(data.astronaut(), (size[1], size[0]), interpolation=cv2.INTER_AREA)
        rotated = cv2.resize(base.transpose(1, 0, 2), (size[1], size[0]), interpolation=cv2.INTER_AREA)
        self.images = [base, base[:, ::-1].copy(), base[::-1].copy(), rotated]
        self.n, self.pipeline = n, pipeline

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int):
        return self.pipeline(image=self.images[index % len(self.images)])["image"]


class _Indices:
    """A sampler whose indices the main process changes between epochs (warm-up, then timed)."""

    def __init__(self) -> None:
        self.indices: list[int] = []

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def _loader_rate(
    checkpoint: Path, size: tuple[int, int], n: int, batch_size: int, workers: int, amp: str = "off"
) -> float:
    import albumentations as A
    from torch.utils.data import DataLoader

    from augment import GANTranslate

    pipeline = A.Compose([A.HorizontalFlip(p=0.5), GANTranslate(checkpoint, p=1.0, device="cpu", amp=amp)], seed=0)
    sampler = _Indices()
    loader = DataLoader(
        _Images(size, n, pipeline),
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        persistent_workers=workers > 0,
    )
    sampler.indices = list(range(batch_size * max(1, workers)))  # each worker loads its model here
    for _ in loader:
        pass
    sampler.indices = list(range(n))
    start = time.perf_counter()
    for _ in loader:
        pass
    return n / (time.perf_counter() - start)


def _batch_rate(
    checkpoint: Path, size: tuple[int, int], n: int, batch_size: int, device: str, amp: str = "auto"
) -> tuple[float, str]:
    import torch

    from augment import TranslateBatch
    from augment._runtime import resolve_amp, resolve_device

    dev = resolve_device(device)
    hook = TranslateBatch(checkpoint, p=1.0, amp=amp).train()
    batch = torch.randint(0, 256, (batch_size, 3, *size), dtype=torch.uint8, device=dev)
    hook(batch)  # moves the generator, warms kernels
    calls = max(1, -(-n // batch_size))
    if dev.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        hook(batch)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return calls * batch_size / (time.perf_counter() - start), f"{dev}, amp {resolve_amp(amp, dev)}"


def _measure(checkpoint: Path, mode: str, amp: str, args: argparse.Namespace) -> dict:
    """images/s of one hook (``mode``) in one precision, and a label saying where it ran and in what."""
    import torch

    from augment._runtime import resolve_amp

    if mode == "batch":
        rate, where = _batch_rate(checkpoint, args.size, args.images, args.batch_size, args.device, amp)
        return {"hook": f"TranslateBatch ({where})", "images_per_s": rate}
    workers = int(mode[len("loader") :])
    rate = _loader_rate(checkpoint, args.size, args.images, args.batch_size, workers, amp)
    where = f"cpu, amp {resolve_amp(amp, torch.device('cpu'))}"
    return {"hook": f"GANTranslate, DataLoader {workers} workers ({where})", "images_per_s": rate}


def run(args: argparse.Namespace) -> int:
    import torch

    from ..errors import ConfigError
    from ..io import export_network, load_network, read_metadata
    from ..nets import build_generator
    from ..nets.macs import count_macs

    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    from augment._runtime import AMP_NAMES

    checkpoints = [Path(c) for c in args.checkpoints.split(",") if c]
    generators = args.generators if args.generators is not None else "" if checkpoints else ",".join(GENERATORS)
    names = [g for g in generators.split(",") if g]
    modes = [m for m in args.modes.split(",") if m]
    amps = [a for a in args.amp.split(",") if a]
    for value, known, what in [(names, GENERATORS, "generator"), (modes, MODES, "mode"), (amps, AMP_NAMES, "amp")]:
        unknown = [v for v in value if v not in known]
        if unknown:
            raise ConfigError(f"unknown {what} {', '.join(unknown)}; known: {', '.join(known)}")
    for checkpoint in checkpoints:
        if read_metadata(checkpoint)["family"] != "generator":  # a missing or foreign file fails here, first
            raise ConfigError(f"--checkpoints: {checkpoint} is not an exported image-to-image generator")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        measured = []
        for name in names:
            torch.manual_seed(0)
            net = build_generator(GENERATORS[name])
            path = export_network(Path(tmp) / f"{name}.safetensors", net, GENERATORS[name], "generator", {})
            measured.append((name, path))
        measured += [(checkpoint.stem, checkpoint) for checkpoint in checkpoints]
        for name, checkpoint in measured:
            net, meta = load_network(checkpoint)
            spec = meta["architecture"]
            params = sum(p.numel() for p in net.parameters())
            gmacs = count_macs(net, (spec.get("in_channels", 3), *args.size)) / 1e9
            for mode in modes:
                for amp in amps:
                    result = _measure(checkpoint, mode, amp, args)
                    results.append(
                        {
                            "generator": name,
                            "spec": spec,
                            "params_m": params / 1e6,
                            "gmacs": gmacs,
                            "amp": amp,
                            **result,
                        }
                    )
                    print(f"{name:9s} {result['hook']:55s} {result['images_per_s']:8.2f} images/s", flush=True)
    print(
        f"\n{args.size[0]}×{args.size[1]} uint8 RGB, batch {args.batch_size}, {args.images} timed images each, torch threads {torch.get_num_threads()} (workers 1 each)"
    )
    print(f"{'generator':28s} {'hook':55s} {'images/s':>9s} {'s/image':>8s}")
    for r in results:
        label = f"{r['generator']} ({r['params_m']:.1f} M)"
        print(f"{label:28s} {r['hook']:55s} {r['images_per_s']:9.2f} {1 / r['images_per_s']:8.3f}")
    for name, r in {r["generator"]: r for r in results}.items():
        print(f"{name}: {r['params_m'] * 1e6:,.0f} parameters, {r['gmacs']:.4f} GMACs per image")
    if args.json:
        print(json.dumps({"settings": vars(args) | {"func": None}, "results": results}, indent=2))
    return 0
