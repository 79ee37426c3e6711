"""`i2i bench synth`."""

from __future__ import annotations


def register(sub) -> None:
    parser = sub.add_parser("synth", help="(not yet available)")
    parser.set_defaults(func=lambda args: print("i2i bench synth: not yet available") or 1)
