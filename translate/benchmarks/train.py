"""`i2i bench train`."""

from __future__ import annotations


def register(sub) -> None:
    parser = sub.add_parser("train", help="(not yet available)")
    parser.set_defaults(func=lambda args: print("i2i bench train: not yet available") or 1)
