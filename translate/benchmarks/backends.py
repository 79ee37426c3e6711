"""`i2i bench infer --backends ...`: seconds per image of every inference backend × precision, and
how far each output is from torch fp32, for a reference-size ResNet generator at several sizes.

All paths run in this one process, one after the other within each repeat (alternating), so a
machine shared with other work slows them alike and the ratios stay meaningful; each figure is
the median of ``--repeats`` runs after a warm-up run. ``auto`` is what
``translate.infer.open_generator(..., "auto", "auto")`` chooses here (logged once); its row is the
measured row of the path it chose. ``--tiled-size`` adds one tiled translation of a larger image
(whole-image statistics, the toolkit's exactness guarantee) on every path and with ``auto``.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

import torch

from ..errors import ConfigError

#: the value range of the generator's output, whose width is the peak-to-peak of the PSNR
PEAK_TO_PEAK = 2.0


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def psnr(got: torch.Tensor, reference: torch.Tensor) -> float:
    mse = float((got - reference).double().square().mean())
    return math.inf if mse == 0.0 else 10.0 * math.log10(PEAK_TO_PEAK**2 / mse)


def _export_reference_generator(args: argparse.Namespace, folder: Path) -> Path:
    from ..io import export_network
    from ..nets import build_generator

    torch.manual_seed(0)
    spec = {"name": "resnet", "ngf": args.ngf, "n_blocks": args.n_blocks, "norm": args.norm}
    net = build_generator(spec).eval()
    return export_network(folder / "generator.safetensors", net, spec, info={"value_range": [-1, 1]})


def _open_paths(source: Path, backends: list[str], precisions: list[str]) -> dict[str, object]:
    """``"backend precision"`` -> runner for every pair the backend supports (others are left out)."""
    from ..deploy import open_runners
    from ..deploy.backends import SUPPORTED

    unknown = set(backends) - set(SUPPORTED)
    if unknown:
        raise ConfigError(f"unknown backends {sorted(unknown)}; known: {', '.join(SUPPORTED)}")
    bad = set(precisions) - {"fp32", "bf16"}
    if bad:
        raise ConfigError(f"unknown precisions {sorted(bad)}; known: fp32, bf16")
    if "torch" not in backends or "fp32" not in precisions:
        raise ConfigError("--backends needs torch and --precisions fp32: every row is compared with torch fp32")
    return {f"{b} {p}": open_runners(source, b, p, "cpu")[0] for b in backends for p in precisions if p in SUPPORTED[b]}


def _time_paths(runners: dict[str, object], image: torch.Tensor, repeats: int) -> tuple[dict, dict]:
    """Median seconds per path and each path's output; the paths alternate within every repeat."""
    outputs = {name: runner(image) for name, runner in runners.items()}  # warm-up, and the output
    seconds: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(repeats):
        for name, runner in runners.items():
            start = time.perf_counter()
            runner(image)
            seconds[name].append(time.perf_counter() - start)
    return {name: statistics.median(times) for name, times in seconds.items()}, outputs


def _size_rows(size: int, runners: dict, repeats: int) -> list[dict]:
    from .infer import test_image

    medians, outputs = _time_paths(runners, test_image(size), repeats)
    base, reference = medians["torch fp32"], outputs["torch fp32"]
    return [
        {
            "size": size,
            "path": name,
            "seconds": medians[name],
            "speedup": base / medians[name],
            "max_abs_diff": float((outputs[name] - reference).abs().max()),
            "psnr_db": psnr(outputs[name], reference),
        }
        for name in runners
    ]


def _tiled_rows(args: argparse.Namespace, source: Path, paths: list[str], auto) -> list[dict]:
    """One tiled translation of a ``--tiled-size`` image on every path and with ``auto``, after a
    warm-up on a small tiled image (a graph engine cuts and compiles its segments there)."""
    from ..infer import open_generator, translate_image
    from ..io import load_generator
    from .infer import test_image

    generators = {"torch fp32": load_generator(source, "cpu")}
    generators.update({name: open_generator(source, *name.split(), "cpu") for name in paths if name != "torch fp32"})
    generators["auto"] = auto
    image, small = test_image(args.tiled_size), test_image(args.tile + args.overlap)
    rows, outputs = [], {}
    for name, generator in generators.items():
        translate_image(generator, small, tile=args.tile, overlap=args.overlap, device="cpu")
        start = time.perf_counter()
        outputs[name] = translate_image(generator, image, tile=args.tile, overlap=args.overlap, device="cpu")
        seconds = time.perf_counter() - start
        tiles_on = f" ({generator.tiles_path})" if name == "auto" else ""
        rows.append({"size": args.tiled_size, "path": f"tiled {name}{tiles_on}", "seconds": seconds})
        print(f"  tiled {args.tiled_size}² {name}{tiles_on}: {seconds:.1f} s")
    for row, name in zip(rows, outputs, strict=True):
        row["speedup"] = rows[0]["seconds"] / row["seconds"]
        row["max_abs_diff"] = float((outputs[name] - outputs["torch fp32"]).abs().max())
        row["psnr_db"] = psnr(outputs[name], outputs["torch fp32"])
    return rows


def _print_table(rows: list[dict], auto_path: str, args: argparse.Namespace) -> None:
    print(
        f"\nResNet ngf={args.ngf} n_blocks={args.n_blocks} norm={args.norm}, one image, median of {args.repeats} "
        f"after a warm-up, paths alternating in one process; auto = {auto_path}"
    )
    print("| size | path | s/image | × torch fp32 | max abs diff | PSNR dB |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        mark = " (auto)" if row["path"] == auto_path else ""
        shown_psnr = "exact" if math.isinf(row["psnr_db"]) else f"{row['psnr_db']:.1f}"
        print(
            f"| {row['size']}² | {row['path']}{mark} | {row['seconds']:.3f} | {row['speedup']:.2f}× | "
            f"{row['max_abs_diff']:.2e} | {shown_psnr} |"
        )


def backend_table(args: argparse.Namespace) -> int:
    """Measure and print the backend table; see the module's docstring."""
    from ..infer import open_generator

    sizes = [int(size) for size in _names(args.sizes)]
    if args.repeats < 1 or not sizes or min(sizes) < 1:
        raise ConfigError(f"--repeats must be >= 1 and --sizes positive, got {args.repeats} and {args.sizes}")
    with tempfile.TemporaryDirectory(prefix="i2i-bench-backends-") as scratch:
        source = _export_reference_generator(args, Path(scratch))
        runners = _open_paths(source, _names(args.backends), _names(args.precisions))
        auto = open_generator(source, "auto", "auto", "cpu")
        auto_path = f"{auto.backend} {auto.precision}"
        print(f"  auto: {auto_path} for whole images, {auto.tiles_path} for tiles")
        rows = []
        for size in sizes:
            rows += _size_rows(size, runners, args.repeats)
            print(f"  {size}²: " + ", ".join(f"{r['path']} {r['seconds']:.3f} s" for r in rows[-len(runners) :]))
        if args.tiled_size:
            rows += _tiled_rows(args, source, list(runners), auto)
    _print_table(rows, auto_path, args)
    if args.json:
        print(json.dumps({"auto": auto_path, "rows": rows}, indent=2, default=str))
    return 0
