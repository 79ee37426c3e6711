"""`i2i export`."""

from __future__ import annotations


def register(sub) -> None:
    parser = sub.add_parser("export", help="(not yet available)")
    parser.set_defaults(func=lambda args: print("i2i export: not yet available") or 1)
