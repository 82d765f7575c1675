"""``v4compact report --out DIR``: evaluate the released models, write one HTML page."""

from __future__ import annotations

import sys

from .checks import output_dir
from .options import add_device, add_num_boot, add_out, add_sessions, command


def register(subparsers, parents) -> None:
    """Add the ``report`` subcommand."""
    parser = command(
        subparsers, "report", parents, run,
        help="evaluate the released models into an HTML report",
        description="Evaluate every compact model and the shared compact models on the "
        "held-out V4 responses and write DIR/index.html (self-contained: tables, figures, "
        "metric used, data provenance) plus DIR/compact.csv and DIR/shared.csv.",
    )
    add_out(parser, "DIR", "output folder")
    add_sessions(parser, "the four model sessions, 190923 201025 210225 211022")
    parser.add_argument("--compact-results", nargs="+", metavar="CSV",
                        help="reuse 'v4compact evaluate compact' results (one or more CSVs, "
                        "merged) instead of computing")
    parser.add_argument("--shared-results", nargs="+", metavar="CSV",
                        help="reuse 'v4compact evaluate shared' results (one or more CSVs)")
    parser.add_argument("--teachers", nargs="+", metavar="T",
                        help="shared-model teachers to evaluate (default: all 7)")
    parser.add_argument("--num-filters", nargs="+", type=int, metavar="F",
                        help="shared-model filter counts to evaluate (default: all 8)")
    add_num_boot(parser, 1000)
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    add_device(parser, None)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> int:
    """Build the report; returns the exit status."""
    from ..data.catalog import MODEL_SESSIONS
    from ..report import build_report

    path = build_report(
        output_dir(args.out), data_dir=args.data_dir, sessions=args.sessions or MODEL_SESSIONS,
        compact=args.compact_results, shared=args.shared_results, teachers=args.teachers,
        num_filters=args.num_filters, num_boot=args.num_boot, seed=args.seed,
        device=args.device, progress=not args.quiet,
    )
    print(f"wrote {path}", file=sys.stderr)
    return 0
