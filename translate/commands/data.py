"""`i2i data`."""

from __future__ import annotations


def register(sub) -> None:
    parser = sub.add_parser("data", help="(not yet available)")
    parser.set_defaults(func=lambda args: print("i2i data: not yet available") or 1)
