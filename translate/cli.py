"""The ``i2i`` command: one entry point with git-style subcommands.

Each subcommand lives in its own module under ``translate/commands`` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to the function that runs it.
"""

from __future__ import annotations

import argparse
import logging
import sys

from i2i_cli import first_foreign_package

from . import plugins
from .errors import I2IError


def build_parser() -> argparse.ArgumentParser:
    from .commands import app, augment, bench, data, distill, export, importing, sample, study, train, translate

    parser = argparse.ArgumentParser(prog="i2i", description="GAN image-to-image translation toolkit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (train, distill, translate, sample, export, importing, data, augment, study, bench, app):
        module.register(sub)
    add_import_option(parser)
    return parser


def add_import_option(parser: argparse.ArgumentParser) -> None:
    """``--import MODULE`` on every command that runs (the leaves of the subcommand tree), so a
    user's module registers its networks and models before the command looks a name up."""
    subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subcommands:
        parser.add_argument(
            "--import",
            dest="import_modules",
            action="append",
            default=[],
            metavar="MODULE",
            help="import a module (dotted name or .py file) that registers your own networks or models; repeatable",
        )
    for action in subcommands:
        for child in dict.fromkeys(action.choices.values()):  # aliases map to the same parser
            add_import_option(child)


class _StderrLog(logging.Handler):
    """Writes the toolkit's log records to the current ``sys.stderr`` (looked up at each record)."""

    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record), file=sys.stderr)


def show_toolkit_logs() -> None:
    """The toolkit's INFO messages (e.g. the precision ``amp: auto`` chose) on stderr; once per process."""
    logger = logging.getLogger("translate")
    if not any(isinstance(h, _StderrLog) for h in logger.handlers):
        logger.addHandler(_StderrLog())
        logger.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    show_toolkit_logs()
    problem = first_foreign_package()
    if problem is not None:  # `python -m translate.cli` and torchrun start here, not at the i2i script
        print(f"i2i: error: {problem}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    try:
        plugins.import_modules(args.import_modules)
        return int(args.func(args) or 0)
    except I2IError as exc:
        # user errors: one clear line, no traceback
        print(f"i2i {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"i2i {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
