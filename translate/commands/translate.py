"""`i2i translate`: run an exported generator over one image or a folder of images, any size."""

from __future__ import annotations

import argparse
import sys

from ..data.images import DEFAULT_MAX_PIXELS
from ..devices import AMP_NAMES, DEVICE_HELP
from ..errors import ConfigError, DataError
from ..infer import CACHE_MODES, DEFAULT_CACHE_MB, NORM_STATS, TranslateOptions
from ..infer.backend import BACKEND_NAMES, PRECISION_NAMES


def register(sub) -> None:
    parser = sub.add_parser(
        "translate",
        help="translate images with an exported generator",
        description="Translate an image or every image under a folder with an exported generator. Images larger "
        "than --tile are translated in overlapping tiles that share the whole image's normalisation statistics, "
        "so memory stays bounded and no seams show. Outputs are PNG files with the input's relative name.",
    )
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="exported generator: .safetensors (`i2i export`, `i2i import`), .onnx or OpenVINO .xml",
    )
    parser.add_argument("--input", required=True, help="an image file or a folder (searched recursively)")
    parser.add_argument("--output", required=True, help="folder for the translated PNG files")
    parser.add_argument("--tile", type=int, default=512, help="largest tile side in pixels (default 512)")
    parser.add_argument("--overlap", type=int, default=64, help="overlap between neighbouring tiles (default 64)")
    parser.add_argument("--device", default="auto", help=f"{DEVICE_HELP} (default auto: a GPU if there is one)")
    parser.add_argument(
        "--amp",
        choices=AMP_NAMES,
        default="off",
        help="autocast precision (default off); auto: bf16 where the device computes it natively (a GPU with bf16, "
        "a CPU with AVX512-BF16 or AMX), fp16 on other GPUs, full precision on other CPUs",
    )
    parser.add_argument(
        "--backend",
        choices=BACKEND_NAMES,
        default="torch",
        help="inference engine (default torch); auto: the fastest measured here, logged once. Graph engines tile "
        "a generator with instance norm only through torch (auto does that), else they refuse --tile",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISION_NAMES,
        default="fp32",
        help="fp32 (default), bf16, or auto (the fastest measured; bf16 only where the device computes it natively)",
    )
    parser.add_argument(
        "--norm-stats",
        choices=NORM_STATS,
        default="image",
        help="where tiles take normalisation statistics from: the whole image (exact, default), a thumbnail "
        "(faster, approximate) or each tile (fastest, seams)",
    )
    parser.add_argument(
        "--stat-passes",
        type=int,
        default=None,
        help="cap on the statistics passes with --norm-stats image (default: one per norm layer, exact)",
    )
    parser.add_argument(
        "--cache-mb",
        type=float,
        default=DEFAULT_CACHE_MB,
        help=f"RAM for caching tile states between statistics passes (default {DEFAULT_CACHE_MB:.0f}); with "
        "--cache auto a larger cache is spilled to a temporary file instead",
    )
    parser.add_argument(
        "--cache",
        choices=CACHE_MODES,
        default="auto",
        help="where that cache lives: auto (RAM within --cache-mb, else a temporary file, else none; default), "
        "ram, disk, or off (recompute: same result, several times slower)",
    )
    parser.add_argument(
        "--cache-dir", default=None, help="folder for the spilled cache (default: the system's temporary folder)"
    )
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        help=f"refuse larger images (default {DEFAULT_MAX_PIXELS})",
    )
    parser.add_argument("--skip-existing", action="store_true", help="leave outputs that already exist untouched")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..cpu_memory import retain_freed_memory
    from ..devices import resolve_amp, resolve_device
    from ..infer import translate_path

    device = resolve_device(args.device)
    # this process is the command's: tiles reuse the freed buffers of the tile before them instead
    # of faulting in fresh pages (4096², ResNet-9, bf16: 106 s -> 83 s, docs/benchmarks.md)
    retain_freed_memory(device)
    options = TranslateOptions(
        tile=args.tile,
        overlap=args.overlap,
        device=args.device,
        amp=resolve_amp(args.amp, device, cuda_fallback="fp16"),  # inference needs no grad scaler for fp16
        norm_stats=args.norm_stats,
        stat_passes=args.stat_passes,
        cache_mb=args.cache_mb,
        cache=args.cache,
        cache_dir=args.cache_dir,
        max_pixels=args.max_pixels,
    )
    generator = _open(args)
    report = translate_path(
        generator, args.input, args.output, options, skip_existing=args.skip_existing, progress=not args.no_progress
    )
    print(
        f"i2i translate: {len(report.written)} written, {len(report.skipped)} skipped (existing), "
        f"{len(report.failed)} failed -> {args.output}",
        file=sys.stderr,
    )
    if report.failed:
        listing = "; ".join(message for _, message in report.failed)
        raise DataError(f"{len(report.failed)} image(s) could not be translated (the others were written): {listing}")
    return 0


def _open(args: argparse.Namespace):
    """The generator: the torch network itself for a plain fp32 run of a .safetensors file, else
    the file run by the chosen backend (``translate.infer.open_generator``)."""
    from ..devices import resolve_device
    from ..infer.backend import is_default_torch, open_generator
    from ..io import load_generator

    device = resolve_device(args.device)
    if is_default_torch(args.checkpoint, args.backend, args.precision):
        return load_generator(args.checkpoint, device=device)
    if args.amp not in ("off", "auto"):
        raise ConfigError(
            f"--amp {args.amp} applies to the torch backend at fp32; with --backend {args.backend} "
            f"--precision {args.precision} use --precision bf16 (or auto) instead"
        )
    return open_generator(args.checkpoint, args.backend, args.precision, device)
