"""`i2i bench infer`: untiled vs tiled inference of one large image: time, peak memory, difference,
in each precision asked for (default fp32 and bf16; bf16 is also compared with fp32's untiled output).

Each variant runs in a fresh process (spawned), so its peak memory is its own: on CPU the growth
of peak RSS (``ru_maxrss``) over the process's state just before inference (model and input
loaded), which sees torch's allocations where tracemalloc does not; on CUDA
``torch.cuda.max_memory_allocated`` above the memory held before inference.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

VARIANTS = ("untiled", "tile", "thumbnail", "image")


def register(sub) -> None:
    parser = sub.add_parser("infer", help="untiled vs tiled inference: seconds, peak memory, difference")
    parser.add_argument("--size", type=int, default=2048, help="image side in pixels (default 2048)")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--ngf", type=int, default=64)
    parser.add_argument("--n-blocks", type=int, default=9)
    parser.add_argument("--norm", default="instance")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--amp", default="off,bf16", help="comma-separated precisions, each of auto, off, bf16, fp16 (default off,bf16)"
    )
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help=f"comma-separated subset of {','.join(VARIANTS)} (tiled: norm-stats modes)",
    )
    parser.add_argument("--stat-passes", type=int, default=None, help="cap for the 'image' variant (default exact)")
    parser.add_argument("--cache", default="auto", help="frontier store of the 'image' variant: auto, ram, disk, off")
    parser.add_argument(
        "--cache-mb", type=float, default=None, help="RAM budget of that store (default: i2i translate's)"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    parser.add_argument(
        "--backends",
        default=None,
        help="comma-separated inference backends (torch, onnxruntime, openvino): instead of the tiling variants, "
        "time each backend × precision on --sizes side by side in this process (see backend_table)",
    )
    parser.add_argument("--precisions", default="fp32,bf16", help="precisions for --backends (default fp32,bf16)")
    parser.add_argument("--sizes", default="256,512,1024", help="image sides for --backends (default 256,512,1024)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per path and size, after a warm-up")
    parser.add_argument(
        "--tiled-size",
        type=int,
        default=0,
        help="with --backends: also translate one image of this side tiled (--tile, --overlap, whole-image "
        "statistics) with torch fp32 and with backend auto (0: not; e.g. 4096)",
    )
    parser.set_defaults(func=run)


def test_image(size: int):
    """A photograph scaled to ``size`` (dark background, bright face, texture), as a 1×3×H×W tensor."""
    import cv2
    from skimage import data

    from ..data.images import to_tensor

    return to_tensor(cv2.resize(data.astronaut(), (size, size), interpolation=cv2.INTER_CUBIC))[None]


def _variant(args: dict, variant: str, out_path: str) -> dict:
    """Run one variant in this (fresh) process; the output is saved for the comparison."""
    import numpy as np
    import torch

    from ..cpu_memory import retain_freed_memory
    from ..devices import resolve_device
    from ..infer import DEFAULT_CACHE_MB, frontier_cache_mode, translate_image
    from ..nets import build_generator

    torch.manual_seed(0)
    device = resolve_device(args["device"])
    retain_freed_memory(device)  # as `i2i translate` does
    spec = {"name": "resnet", "ngf": args["ngf"], "n_blocks": args["n_blocks"], "norm": args["norm"]}
    net = build_generator(spec).to(device).eval()
    image = test_image(args["size"])
    cache_mb = DEFAULT_CACHE_MB if args["cache_mb"] is None else args["cache_mb"]
    cache = {"cache": args["cache"], "cache_mb": cache_mb} if variant == "image" else {}
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    if variant == "untiled":
        tile = args["size"]  # one pass over the whole image
        out = translate_image(net, image, tile=tile, overlap=0, device=device, amp=args["amp"])
    else:
        out = translate_image(
            net,
            image,
            tile=args["tile"],
            overlap=args["overlap"],
            device=device,
            amp=args["amp"],
            norm_stats=variant,
            stat_passes=args["stat_passes"],
            **cache,
        )
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    result = {"variant": variant, "seconds": seconds, "device": str(device)}
    if cache:
        result["cache"] = frontier_cache_mode(net, args["size"], args["size"], args["tile"], args["overlap"], **cache)
    result["peak_rss_growth_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    if device.type == "cuda":
        result["peak_cuda_mb"] = (torch.cuda.max_memory_allocated() - base) / 2**20
    np.save(out_path, out.numpy())
    return result


def _child(args: dict, variant: str, out_path: str, queue) -> None:
    queue.put(_variant(args, variant, out_path))


def run(args: argparse.Namespace) -> int:
    from ..devices import AMP_NAMES
    from ..errors import ConfigError

    if args.backends is not None:
        import torch

        from ..cpu_memory import retain_freed_memory
        from .backends import backend_table

        retain_freed_memory(torch.device("cpu"))  # the backends run on the CPU, as `i2i translate` would
        return backend_table(args)

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise ConfigError(f"unknown variants {sorted(unknown)}; known: {', '.join(VARIANTS)}")
    amps = [a.strip() for a in args.amp.split(",") if a.strip()]
    unknown_amps = [a for a in amps if a not in AMP_NAMES]
    if unknown_amps or not amps:
        raise ConfigError(f"--amp {args.amp!r}: expected comma-separated names of {', '.join(AMP_NAMES)}")
    settings = {
        k: getattr(args, k)
        for k in ("size", "tile", "overlap", "ngf", "n_blocks", "norm", "device", "stat_passes", "cache", "cache_mb")
    }
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for amp in amps:
            results += _run_precision(settings | {"amp": amp}, variants, Path(tmp))
        _compare(results, Path(tmp), baseline=(amps[0], "untiled"))
    print(
        f"\nResNet ngf={args.ngf} n_blocks={args.n_blocks} norm={args.norm}, {args.size}² image, tile {args.tile}, "
        f"overlap {args.overlap}; diffs in /255: vs the same precision's untiled output, and vs {amps[0]} untiled"
    )
    print(
        f"{'variant':10s} {'seconds':>8s} {'peak MB':>9s} {'mean diff':>10s} {'max diff':>9s} {'cache':>6s} "
        f"{'amp':>5s} {'vs ' + amps[0]:>10s}"
    )
    for r in results:
        peak = r.get("peak_cuda_mb", r["peak_rss_growth_mb"])
        mean = f"{r['mean_abs_diff_255']:.3f}" if "mean_abs_diff_255" in r else "-"
        peak_diff = f"{r['max_abs_diff_255']:.2f}" if "max_abs_diff_255" in r else "-"
        base = f"{r['mean_abs_diff_baseline_255']:.3f}" if "mean_abs_diff_baseline_255" in r else "-"
        print(
            f"{r['variant']:10s} {r['seconds']:8.1f} {peak:9.0f} {mean:>10s} {peak_diff:>9s} {r.get('cache', '-'):>6s} "
            f"{r['amp']:>5s} {base:>10s}"
        )
    if args.json:
        print(json.dumps({"settings": settings | {"amp": amps}, "results": results}, indent=2))
    return 0


def _run_precision(settings: dict, variants: list[str], tmp: Path) -> list[dict]:
    """Every variant in ``settings["amp"]``, each in a fresh process; outputs saved under ``tmp``."""
    ctx = multiprocessing.get_context("spawn")
    results = []
    print(f"amp {settings['amp']}:", flush=True)
    for variant in variants:
        queue = ctx.Queue()
        path = str(tmp / f"{settings['amp']}-{variant}.npy")
        proc = ctx.Process(target=_child, args=(settings, variant, path, queue))
        proc.start()
        result = _wait(proc, queue, variant)
        proc.join()
        results.append(result | {"amp": settings["amp"]})
        print(_line(results[-1]), flush=True)
    return results


def _compare(results: list[dict], tmp: Path, baseline: tuple[str, str]) -> None:
    """Add to each result its difference from its precision's untiled output and from ``baseline``'s."""
    import numpy as np

    def load(amp: str, variant: str):
        path = tmp / f"{amp}-{variant}.npy"
        return np.load(path) if path.exists() else None

    reference = load(*baseline)
    for result in results:
        out = load(result["amp"], result["variant"])
        untiled = load(result["amp"], "untiled")
        if untiled is not None and result["variant"] != "untiled":
            diff = np.abs(out - untiled) * 127.5  # in 1/255 steps
            result["mean_abs_diff_255"] = float(diff.mean())
            result["max_abs_diff_255"] = float(diff.max())
        if reference is not None and (result["amp"], result["variant"]) != baseline:
            result["mean_abs_diff_baseline_255"] = float((np.abs(out - reference) * 127.5).mean())


def _wait(proc, queue, variant: str) -> dict:
    """The variant's result, or an error once its process has died without one (no endless wait)."""
    import queue as queues

    while True:
        try:
            return queue.get(timeout=1.0)
        except queues.Empty:
            if not proc.is_alive() and queue.empty():
                raise RuntimeError(f"bench infer: variant '{variant}' failed (exit code {proc.exitcode})") from None


def _line(result: dict) -> str:
    mem = (
        f"{result['peak_cuda_mb']:.0f} MB CUDA"
        if "peak_cuda_mb" in result
        else f"{result['peak_rss_growth_mb']:.0f} MB RSS growth"
    )
    cache = f", cache {result['cache']}" if "cache" in result else ""
    return f"  {result['variant']}: {result['seconds']:.1f} s, peak {mem}{cache}"
