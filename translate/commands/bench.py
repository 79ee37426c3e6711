"""`i2i bench`."""

from __future__ import annotations


def register(sub) -> None:
    parser = sub.add_parser("bench", help="(not yet available)")
    parser.set_defaults(func=lambda args: print("i2i bench: not yet available") or 1)
