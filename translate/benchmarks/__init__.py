"""Benchmarks behind `i2i bench`; each module has `register(subparsers)`."""
