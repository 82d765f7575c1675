"""The ``v4compact`` command line: thin subcommands over the public Python API.

Each subcommand lives in its own module of this package and exposes
``register(subparsers, parents)``, which adds its parser and sets ``func`` (a callable
taking the parsed arguments and returning an exit code). Errors of the
:class:`~v4compact.errors.V4CompactError` family are printed as one line, without a
traceback, and the command exits with status 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import V4CompactError

#: Subcommand modules, in the order they appear in ``v4compact --help``.
COMMAND_MODULES = [
    "v4compact.cli.data",
    "v4compact.cli.plot",
    "v4compact.cli.evaluate",
    "v4compact.cli.figure",
    "v4compact.cli.report",
    "v4compact.cli.serve",
    "v4compact.cli.synthesize",
    "v4compact.cli.models",
]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (all subcommands registered)."""
    from .. import __version__

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir",
        metavar="DIR",
        default=None,
        help="data directory laid out like the public release "
        "(default: $V4COMPACT_DATA, else the per-user cache)",
    )
    parser = argparse.ArgumentParser(
        prog="v4compact",
        description="Compact deep-network models of macaque V4 neurons: data, models, "
        "evaluation, preferred stimuli and the explorer web page.",
        epilog="Run 'v4compact COMMAND --help' for the options of each command.",
    )
    parser.add_argument("--version", action="version", version=f"v4compact {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers, [common])
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``v4compact`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except V4CompactError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
