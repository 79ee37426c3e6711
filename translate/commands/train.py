"""`i2i train CONFIG [key=value ...]`: train a model; resumes a killed run automatically."""

from __future__ import annotations


def register(sub) -> None:
    parser = sub.add_parser(
        "train",
        help="train a translation model from an experiment YAML",
        description="Train the model described by CONFIG. Later key=value arguments override the YAML "
        "(e.g. optim.max_steps=1000 engine.amp=bf16). Re-running the same command resumes from the "
        "run folder's latest checkpoint (resume=auto). For several GPUs, start it with "
        "`torchrun --nproc_per_node=N -m translate.cli train CONFIG`.",
    )
    parser.add_argument("config", help="experiment YAML (see configs/)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..config import load_config, to_yaml

    cfg = load_config(args.config, args.overrides)
    if args.print_config:
        print(to_yaml(cfg))
        return 0
    from ..engine import train

    result = train(cfg)
    if result.exports:
        for name, path in result.exports.items():
            print(f"exported {name}: {path}")
    return 0
