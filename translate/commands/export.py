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
    parser.add_argument(
        "source",
        help="run folder (its latest checkpoint is used), a ckpt_*.pt file, or an exported "
        "generator .safetensors (with --format onnx/openvino)",
    )
    parser.add_argument("--out", help="output folder (default: RUN/export)")
    parser.add_argument("--no-ema", action="store_true", help="export the raw weights even if EMA weights exist")
    parser.add_argument(
        "--format",
        choices=("safetensors", "onnx", "openvino"),
        default="safetensors",
        help="also write each generator as ONNX (dynamic H×W, opset 17) or OpenVINO IR (needs the deploy extra)",
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    from .. import io
    from ..engine import RunPaths, export_nets, model_from_checkpoint
    from ..errors import CheckpointError

    source = Path(args.source)
    if source.suffix == ".safetensors":
        return _convert({source.stem: source}, args.format, Path(args.out) if args.out else source.parent)
    if source.is_dir():
        run_dir = source
        checkpoint = io.latest_checkpoint(RunPaths(source).checkpoints)
        if checkpoint is None:
            raise CheckpointError(f"no checkpoint under {RunPaths(source).checkpoints}")
    else:
        checkpoint, run_dir = source, source.parent.parent
    model, ema, step = model_from_checkpoint(checkpoint)
    out = Path(args.out) if args.out else RunPaths(run_dir).exports
    exported = export_nets(model, None if args.no_ema else ema, out, step)
    for name, path in exported.items():
        print(f"{name}: {path}")
    return _convert(exported, args.format, out) if args.format != "safetensors" else 0


def _convert(exported: dict[str, Path], fmt: str, out: Path) -> int:
    """Write each exported generator again as ONNX or OpenVINO IR (``translate.deploy``)."""
    from ..deploy import export_onnx, export_openvino
    from ..errors import ConfigError

    if fmt == "safetensors":
        raise ConfigError("the source is already an exported .safetensors generator; use --format onnx or openvino")
    for name, path in exported.items():
        target = out / f"{Path(path).stem}.{'onnx' if fmt == 'onnx' else 'xml'}"
        print(f"{name}: {export_onnx(path, target) if fmt == 'onnx' else export_openvino(path, target)}")
    return 0
