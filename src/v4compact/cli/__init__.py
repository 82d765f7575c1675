"""The ``v4compact`` command line: thin subcommands over the public Python API.

Each subcommand lives in its own module of this package and exposes
``register(subparsers, parents)``, which adds its parser and sets ``func`` (a callable
taking the parsed arguments and returning an exit code).

:func:`main` is the commands' error boundary: any error (ours, a file the system cannot
read or write, a damaged file a parser chokes on) is printed as one line, ``error: ...``,
and the command exits with status 1 (``v4compact --traceback COMMAND`` shows the traceback
instead). Python warnings are printed as one plain line, ``warning: ...``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from ..errors import V4CompactError, one_line_message

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
    "v4compact.cli.train",
    "v4compact.cli.distill",
    "v4compact.cli.select",
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
    parser.add_argument("--traceback", action="store_true",
                        help="on an error, show the Python traceback instead of one line")
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
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            return int(args.func(args) or 0)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:
            return 0
        except Exception as err:
            if args.traceback:
                raise
            hint = "" if isinstance(err, V4CompactError | OSError) else (
                " (unexpected: 'v4compact --traceback ...' shows where; please report it)"
            )
            print(f"error: {one_line_message(err)}{hint}", file=sys.stderr)
            return 1


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Print a Python warning as one line, without the source line it came from."""
    text = " ".join(str(message).split())
    print(f"warning: {text}", file=file or sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
