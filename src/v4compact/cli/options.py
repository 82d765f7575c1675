"""One declaration of each parser shape and option that several subcommands share.

A subcommand is added with :func:`command` (or :func:`group` for a command made of
subcommands) and takes its common options from the ``add_*`` functions, so that the
spelling, defaults and help of ``--device``, ``--sessions``, ``--out``... are written once.
"""

from __future__ import annotations

import argparse


def command(subparsers, name: str, parents, func, *, help: str, description: str,
            epilog: str | None = None) -> argparse.ArgumentParser:
    """Add subcommand ``name`` that runs ``func(args)`` (an int exit status).

    An ``epilog`` of several lines (examples, tables) keeps its line breaks; one-line
    epilogs and descriptions are re-wrapped to the terminal.
    """
    extra = ({"formatter_class": argparse.RawDescriptionHelpFormatter}
             if epilog and "\n" in epilog else {})
    parser = subparsers.add_parser(name, parents=parents, help=help, description=description,
                                   epilog=epilog, **extra)
    parser.set_defaults(func=func)
    return parser


def group(subparsers, name: str, *, help: str, description: str, dest: str, metavar: str):
    """Add a command made of subcommands (``v4compact data ...``).

    Returns:
        ``(parser, its subparsers)``. Given without a subcommand, it prints its help and
        exits with status 2.
    """
    parser = subparsers.add_parser(name, help=help, description=description)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])
    return parser, parser.add_subparsers(dest=dest, metavar=metavar)


def add_session_id(parser: argparse.ArgumentParser) -> None:
    """The positional ``SID`` of a command about one recording session."""
    parser.add_argument("session_id", metavar="SID", help="session id, e.g. 190923 or mylab:s01")


def add_sessions(parser: argparse.ArgumentParser, default: str, type=None) -> None:
    """``--sessions SID ...``; ``default`` says what is used without it."""
    parser.add_argument("--sessions", nargs="+", metavar="SID", type=type,
                        help=f"session ids (default: {default})")


def add_device(parser: argparse.ArgumentParser, default: str | None = "cpu") -> None:
    """``--device``: a torch device; ``None`` means CUDA when present, else the CPU."""
    shown = "cuda when present, else cpu" if default is None else default
    parser.add_argument("--device", default=default,
                        help=f"torch device: cpu, cuda, cuda:1, ... (default: {shown})")


def add_out(parser: argparse.ArgumentParser, metavar: str, help: str,
            required: bool = True) -> None:
    """``--out``: where the command writes (checked before any work by ``cli.checks``)."""
    parser.add_argument("--out", required=required, default=None, metavar=metavar, help=help)


def add_num_boot(parser: argparse.ArgumentParser, default: int, note: str = "") -> None:
    """``--num-boot N``: bootstrap resamples of the confidence intervals."""
    parser.add_argument("--num-boot", type=int, default=default, metavar="N",
                        help=f"bootstrap resamples for the 95%% intervals (default {default}"
                        f"{note})")
