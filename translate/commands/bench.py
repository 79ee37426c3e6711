"""`i2i bench`: speed and memory benchmarks (results are recorded in docs/benchmarks.md)."""

from __future__ import annotations


def register(sub) -> None:
    from ..benchmarks import augment, gpu, infer, synth, train

    parser = sub.add_parser("bench", help="speed and memory benchmarks")
    kinds = parser.add_subparsers(dest="bench", required=True, metavar="WHAT")
    for module in (train, infer, synth, augment, gpu):
        module.register(kinds)
