"""`i2i distill CONFIG [key=value ...]`: train a small student generator on a trained teacher's
mapping (the ``distill`` model, ``translate/models/distill.py``); ``i2i train`` of a config whose
model is ``distill``, refusing any other model so that a wrong config fails before training."""

from __future__ import annotations


def register(sub) -> None:
    parser = sub.add_parser(
        "distill",
        help="distil an exported generator into a smaller, faster student",
        description="Train the student described by CONFIG (model.name: distill; model.teacher: an exported "
        "generator) with the training engine; key=value arguments override the YAML, a re-run resumes. "
        "The student is exported to OUT_DIR/export/G_AB.safetensors with the teacher's SHA-256 and the MAC "
        "counts of both in its metadata.",
    )
    parser.add_argument("config", help="experiment YAML (e.g. configs/distill_quickstart.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..config import load_config
    from ..errors import ConfigError
    from . import train

    model = load_config(args.config, args.overrides).model.get("name")
    if model != "distill":
        raise ConfigError(f"{args.config}: model.name is '{model}', not 'distill'; train it with `i2i train`")
    return train.run(args)
