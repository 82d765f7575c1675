"""``v4compact figure NAME --out FILE``: draw one of the paper's performance figures."""

from __future__ import annotations

import sys

FIGURES = ("fig1h", "fig3d", "snr")


def register(subparsers, parents) -> None:
    """Add the ``figure`` subcommand."""
    parser = subparsers.add_parser(
        "figure", parents=parents, help="draw a performance figure (fig1h, fig3d, snr)",
        description="Draw a figure of the paper from the released models and data. fig1h: "
        "held-out performance of every compact model; fig3d: shared compact models against "
        "the number of early filters, per teacher; snr: SNR distribution per session. "
        "fig1h and fig3d evaluate the models unless --results gives a CSV written by "
        "'v4compact evaluate'.",
    )
    parser.add_argument("name", choices=FIGURES, help="which figure")
    parser.add_argument("--out", required=True, metavar="FILE",
                        help="output image (.png, .pdf, .svg)")
    parser.add_argument("--results", nargs="+", metavar="CSV",
                        help="reuse results of 'v4compact evaluate compact|shared --out CSV' "
                        "(several CSVs are merged)")
    parser.add_argument("--sessions", nargs="+", metavar="SID",
                        help="sessions (default: the four model sessions; all for snr)")
    parser.add_argument("--num-boot", type=int, default=0, metavar="N",
                        help="bootstrap resamples when evaluating (default 0: none needed)")
    parser.add_argument("--device", default=None, help="torch device for the models")
    parser.add_argument("--dpi", type=int, default=150, help="resolution of raster output")
    parser.set_defaults(func=run)


def run(args) -> int:
    """Draw and save the figure; returns the exit status."""
    from pathlib import Path

    from ..data.catalog import MODEL_SESSIONS
    from ..evaluation import EvaluationResult, evaluate
    from ..figures.performance import fig1h, fig3d, snr_distribution

    if args.name == "snr":
        fig = snr_distribution(sessions=args.sessions, data_dir=args.data_dir)
    else:
        if args.results:
            result = EvaluationResult.from_csv(args.results[0])
            for path in args.results[1:]:
                result.extend(EvaluationResult.from_csv(path))
        else:
            sessions = args.sessions or list(MODEL_SESSIONS)
            result = evaluate("compact" if args.name == "fig1h" else "shared",
                              sessions=sessions, data_dir=args.data_dir,
                              num_boot=args.num_boot, device=args.device)
        fig = fig1h(result) if args.name == "fig1h" else fig3d(result)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=args.dpi, bbox_inches="tight")
    print(f"wrote {out}", file=sys.stderr)
    return 0
