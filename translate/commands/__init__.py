"""Subcommands of ``i2i``; each module has ``register(subparsers)``."""
