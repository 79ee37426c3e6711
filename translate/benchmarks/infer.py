"""`i2i bench infer`."""

from __future__ import annotations


def register(sub) -> None:
    parser = sub.add_parser("infer", help="(not yet available)")
    parser.set_defaults(func=lambda args: print("i2i bench infer: not yet available") or 1)
