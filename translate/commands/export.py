"""`i2i export`: write the generators of a training checkpoint as self-describing safetensors."""

from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    parser = sub.add_parser(
        "export",
        help="export generators from a run folder or checkpoint",
        description="Write each generator of a training checkpoint as one .safetensors file whose "
        "metadata holds its architecture; load it with translate.load_generator(path).",
    )
    parser.add_argument("source", help="run folder (its latest checkpoint is used) or a ckpt_*.pt file")
    parser.add_argument("--out", help="output folder (default: RUN/export)")
    parser.add_argument("--no-ema", action="store_true", help="export the raw weights even if EMA weights exist")
    parser.set_defaults(func=run)


def run(args) -> int:
    from .. import io
    from ..engine import RunPaths, export_nets, model_from_checkpoint
    from ..errors import CheckpointError

    source = Path(args.source)
    if source.is_dir():
        run_dir = source
        checkpoint = io.latest_checkpoint(RunPaths(source).checkpoints)
        if checkpoint is None:
            raise CheckpointError(f"no checkpoint under {RunPaths(source).checkpoints}")
    else:
        checkpoint, run_dir = source, source.parent.parent
    model, ema, step = model_from_checkpoint(checkpoint)
    out = Path(args.out) if args.out else RunPaths(run_dir).exports
    for name, path in export_nets(model, None if args.no_ema else ema, out, step).items():
        print(f"{name}: {path}")
    return 0
