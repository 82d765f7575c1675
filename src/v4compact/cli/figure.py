"""``v4compact figure NAME --out FILE``: draw one of the paper's performance figures."""

from __future__ import annotations

import sys

from ..errors import InvalidInputError
from .checks import FIGURE_SUFFIXES, output_file
from .options import add_device, add_num_boot, add_out, add_sessions, command

FIGURES = ("fig1b", "fig1h", "fig3d", "snr")


def register(subparsers, parents) -> None:
    """Add the ``figure`` subcommand."""
    parser = command(
        subparsers, "figure", parents, run,
        help="draw a performance figure (fig1b, fig1h, fig3d, snr)",
        description="Draw a figure of the paper from the released models and data. fig1b: "
        "a task-driven backbone + ridge vs the ensemble model, per neuron (--backbone, "
        "--ensemble); fig1h: "
        "held-out performance of every compact model (vs --ensemble when given or "
        "released); fig3d: shared compact models against "
        "the number of early filters, per teacher; snr: SNR distribution per session. "
        "fig1h and fig3d evaluate the models unless --results gives a CSV written by "
        "'v4compact evaluate'.",
    )
    parser.add_argument("name", choices=FIGURES, help="which figure")
    add_out(parser, "FILE", "output image (.png, .pdf, .svg)")
    parser.add_argument("--results", nargs="+", metavar="CSV",
                        help="reuse results of 'v4compact evaluate compact|shared --out CSV' "
                        "(several CSVs are merged)")
    add_sessions(parser, "the four model sessions; all for snr")
    add_num_boot(parser, 0, ": the figures draw no intervals")
    add_device(parser, None)
    parser.add_argument("--ensemble", metavar="RUN_DIR|ensemble", default=None,
                        help="fig1b, fig1h: the ensemble - a run folder of 'v4compact train "
                        "ensemble' or 'ensemble' (the released members, the default when "
                        "present)")
    parser.add_argument("--backbone", metavar="SPEC", default="resnet50",
                        help="fig1b: the task-driven backbone (resnet50, vgg19, "
                        "<model id>:<layer>, ...; default resnet50)")
    parser.add_argument("--pool-to", type=int, default=7, metavar="N",
                        help="fig1b: average-pool the backbone's maps to N x N before the "
                        "ridge (default 7; 0 keeps them)")
    parser.add_argument("--dpi", type=int, default=150, help="resolution of raster output")


def run(args) -> int:
    """Draw and save the figure; returns the exit status."""
    from ..data.catalog import MODEL_SESSIONS
    from ..evaluation import EvaluationResult, evaluate
    from ..figures.performance import fig1h, fig3d, snr_distribution

    out = output_file(args.out, FIGURE_SUFFIXES)
    if args.name == "fig1b":
        fig = _fig1b(args)
    elif args.name == "snr":
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
        ensemble = _ensemble(args) if args.name == "fig1h" else None
        if ensemble is not None:
            model, label = ensemble
            sessions = sorted({s.session for s in result.scored})
            scores = evaluate(model, sessions=sessions, data_dir=args.data_dir,
                              num_boot=args.num_boot, device=args.device)
            fig = fig1h(result, scores, label)
        else:
            fig = fig1h(result) if args.name == "fig1h" else fig3d(result)
    fig.savefig(out, dpi=args.dpi, bbox_inches="tight")
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _ensemble(args, required: bool = False) -> tuple[str, str] | None:
    """``(what evaluate() scores, label for the figure)`` of the ensemble, or ``None`` when
    none was asked for, none is ``required`` and the released members are absent."""
    from ..errors import DataNotFoundError
    from ..models.teachers.runs import describe_run, is_run_dir
    from ..models.zoo import ENSEMBLE

    try:
        ENSEMBLE.local_files(ENSEMBLE.name, args.data_dir)
        released = True
    except DataNotFoundError:
        released = False
    if args.ensemble is None or args.ensemble == ENSEMBLE.name:
        if released or args.ensemble is not None or required:  # missing: says how to fetch
            return ENSEMBLE.name, "ensemble model: the released members"
        return None
    if not is_run_dir(args.ensemble):
        raise InvalidInputError(f"--ensemble {args.ensemble}: not a training run folder (no "
                                "run.json); give RUN_DIR of 'v4compact train ensemble' or "
                                "'ensemble'")
    note = "" if released else " (the released members are absent)"
    return args.ensemble, f"ensemble model: {describe_run(args.ensemble)}{note}"


def _fig1b(args):
    """fig1b: evaluate the backbone + ridge and the ensemble on the test sessions, draw."""
    from ..data.catalog import MODEL_SESSIONS
    from ..evaluation import backbone_predictor, evaluate
    from ..figures.ensemble import fig1b
    from ..models.teachers.backbones import load_backbone

    ensemble = _ensemble(args, required=True)
    backbone = load_backbone(args.backbone, device=args.device or "cpu",
                             data_dir=args.data_dir, pool_to=args.pool_to or None)
    label = args.backbone + (f", pooled to {args.pool_to}x{args.pool_to}" if args.pool_to
                             else "")
    sessions = args.sessions or list(MODEL_SESSIONS)
    backbone_scores = evaluate(backbone_predictor(backbone, name=label), sessions=sessions,
                               data_dir=args.data_dir, num_boot=args.num_boot)
    ensemble_scores = evaluate(ensemble[0], sessions=sessions, data_dir=args.data_dir,
                               num_boot=args.num_boot, device=args.device)
    return fig1b(backbone_scores, ensemble_scores, label, ensemble[1])
