"""`i2i translate`."""

from __future__ import annotations


def register(sub) -> None:
    parser = sub.add_parser("translate", help="(not yet available)")
    parser.set_defaults(func=lambda args: print("i2i translate: not yet available") or 1)
