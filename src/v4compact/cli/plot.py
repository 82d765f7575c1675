"""``v4compact plot ...``: draw figures to PNG or PDF (the format follows the file suffix)."""

from __future__ import annotations

import sys

from .checks import FIGURE_SUFFIXES, output_file
from .options import add_out, add_session_id, command, group


def register(subparsers, parents) -> None:
    """Add ``plot`` and its subcommands."""
    _, sub = group(subparsers, "plot", help="draw figures (PNG/PDF/SVG by suffix)",
                   description="Draw figures of the data and the models.",
                   dest="plot_command", metavar="FIGURE")
    session = command(
        sub, "session", parents, _session,
        help="a session's images and its neuron x image responses",
        description="A grid of the session's images (when present) above the neuron x image "
        "response heatmap (each neuron divided by its s.d., colour limit at the 95th "
        "percentile). Without the images the heatmap is still drawn, with a note.",
    )
    add_session_id(session)
    add_out(session, "FILE", "output file; .png, .pdf or .svg")
    session.add_argument("--dpi", type=int, default=150, help="resolution of PNG output")


def _session(args) -> int:
    from ..data.paths import fetch_command
    from ..data.session import load_session
    from ..figures.session import plot_session

    out = output_file(args.out, FIGURE_SUFFIXES)
    session = load_session(args.session_id, data_dir=args.data_dir)
    if not session.has_images:
        fetch = fetch_command(f"images:{session.session_id}", args.data_dir)
        print(f"note: images of session {session.session_id} are not in {session.data_dir}; "
              f"drawing the responses only (fetch them with: {fetch})", file=sys.stderr)
    figure = plot_session(session)
    figure.savefig(out, dpi=args.dpi)
    print(f"wrote {out}")
    return 0
