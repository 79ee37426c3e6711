"""`i2i bench train`: seconds per training iteration and peak memory, per engine variant.

Each variant runs in a fresh subprocess so its peak memory is its own. On CPU, "peak" is the
process's peak resident set size, and "steps" is how much that peak grew while training steps ran
(activations and optimiser state, beyond the model and libraries); on CUDA it is
``torch.cuda.max_memory_allocated``. Timings exclude ``--warmup`` steps.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

FP32_VARIANTS = {
    "fp32": ["engine.amp=off"],
    "channels_last": ["engine.amp=off", "engine.channels_last=true"],
    "checkpointing": ["engine.amp=off", "engine.grad_checkpointing=true"],
    "compile": ["engine.amp=off", "engine.compile=true"],
}
# bf16 autocast on the CPU: about 3x faster convolutions where the CPU computes bf16 natively
# (AVX512-BF16, AMX), slower than fp32 where it is emulated; the table's header says which this is
CPU_VARIANTS = {
    **FP32_VARIANTS,
    "bf16": ["engine.amp=bf16"],
    "bf16+checkpointing": ["engine.amp=bf16", "engine.grad_checkpointing=true"],
    "bf16+channels_last": ["engine.amp=bf16", "engine.channels_last=true"],
}
GPU_VARIANTS = {
    **CPU_VARIANTS,
    "fp16": ["engine.amp=fp16"],
    "bf16+compile": ["engine.amp=bf16", "engine.compile=true"],
}


def register(sub) -> None:
    parser = sub.add_parser("train", help="s/iter and peak memory of training steps, per variant")
    parser.add_argument("--model", default=None, help="model name (checked against the config's)")
    parser.add_argument("--config", required=True, help="experiment YAML whose model is benchmarked")
    parser.add_argument("--size", type=int, default=256, help="training crop height (and width unless --width)")
    parser.add_argument("--width", type=int, default=None, help="training crop width (default: --size, a square)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--variants", default=None, help="comma-separated subset of: " + ", ".join(GPU_VARIANTS))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="extra config overrides for every variant")
    # internal: the child process measuring one variant
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    parser.set_defaults(func=run)


def run(args) -> int:
    if args.one is not None:
        print(json.dumps(measure(args, json.loads(args.one))))
        return 0
    import torch

    from ..config import load_config
    from ..errors import ConfigError

    cfg = load_config(args.config, args.overrides)
    if args.model and args.model != cfg.model["name"]:
        raise ConfigError(f"--model {args.model} but {args.config} configures '{cfg.model['name']}'")
    on_gpu = args.device.startswith("cuda") or (args.device == "auto" and torch.cuda.is_available())
    table = GPU_VARIANTS if on_gpu else CPU_VARIANTS
    names = args.variants.split(",") if args.variants else list(table)
    unknown = [n for n in names if n not in GPU_VARIANTS]
    if unknown:
        raise ConfigError(f"unknown variant(s) {unknown}; known: {', '.join(GPU_VARIANTS)}")
    print(
        f"# {cfg.model['name']} from {args.config}, {args.size}x{args.width or args.size}, batch {args.batch}, "
        f"{args.steps} timed steps after {args.warmup} warm-up, device {'cuda' if on_gpu else 'cpu'}"
        + ("" if on_gpu else f" ({cpu_bf16_note()})")
    )
    for name in names:
        cmd = [
            sys.executable,
            "-m",
            "translate.cli",
            "bench",
            "train",
            "--config",
            args.config,
            "--size",
            str(args.size),
            "--batch",
            str(args.batch),
            "--steps",
            str(args.steps),
            "--warmup",
            str(args.warmup),
            "--device",
            args.device,
            "--one",
            json.dumps(GPU_VARIANTS[name]),
        ]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        if args.width:
            cmd += ["--width", str(args.width)]
        cmd += list(args.overrides)
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        if proc.returncode != 0:
            print(f"{name}: failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        extra = f" (steps +{r['step_gb']:.2f} GB)" if r["kind"] == "cpu" else ""
        print(f"{name}: {r['s_per_iter']:.3f} s/iter, peak {r['peak_gb']:.2f} GB{extra}", flush=True)
    return 0


def cpu_bf16_note() -> str:
    """Whether this CPU computes bf16 natively, for the table's header."""
    from ..devices import cpu_computes_bf16

    return "native bf16" if cpu_computes_bf16() else "no native bf16: bf16 is emulated, slower than fp32"


def measure(args, variant_overrides: list[str]) -> dict:
    """Run in the child process: build the runtime, time steps on random images."""
    import resource
    import time

    import torch

    from ..config import load_config
    from ..distributed import DistEnv
    from ..engine import build_runtime, move_batch, train_step

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(
        args.config, [*args.overrides, *variant_overrides, f"engine.device={args.device}", "optim.max_steps=1000000"]
    )
    rt = build_runtime(cfg, DistEnv(), steps_per_epoch=1)
    shape = (args.batch, 3, args.size, args.width or args.size)
    batch = move_batch(rt.model.example_batch(shape), rt.device, cfg.engine.channels_last)
    cuda = rt.device.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(args.warmup):
        train_step(rt, batch)
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        train_step(rt, batch)
    sync()
    elapsed = (time.perf_counter() - start) / max(1, args.steps)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if cuda:
        peak = torch.cuda.max_memory_allocated() / 2**30
        return {"kind": "cuda", "s_per_iter": elapsed, "peak_gb": peak, "step_gb": peak}
    return {
        "kind": "cpu",
        "s_per_iter": elapsed,
        "peak_gb": rss_after / 2**20,
        "step_gb": (rss_after - rss_before) / 2**20,
    }
