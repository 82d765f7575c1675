"""``v4compact evaluate``: score models on the held-out V4 responses, write a tidy CSV."""

from __future__ import annotations

import sys

from .checks import output_file

_EPILOG = """\
examples:
  v4compact evaluate compact --sessions 190923 201025 210225 --out compact.csv
  v4compact evaluate shared --out shared.csv
  v4compact evaluate shared/from_ensemble_model/200 --sessions 201025
  v4compact evaluate my_model.onnx --sessions 210325      (ridge-mapped features)
  v4compact evaluate runs/upstream --sessions 201025      (a trained ensemble run)
"""


def register(subparsers, parents) -> None:
    """Add the ``evaluate`` subcommand."""
    from .options import add_device, add_num_boot, add_out, add_sessions, command

    parser = command(
        subparsers, "evaluate", parents, run, help="score models on held-out V4 responses",
        description="Score models neuron by neuron on the held-out half of test sessions: "
        "r2_ER where single-repeat responses exist, otherwise raw R^2 against the "
        "repeat-averaged responses (the metric is named in every row). Prints a per-session "
        "summary (median, IQR) and writes a tidy CSV.",
        epilog=_EPILOG,
    )
    parser.add_argument(
        "model", nargs="+", metavar="MODEL",
        help="model id (compact/201025/10, shared/from_vgg19/50, ensemble), 'compact' (every "
        "compact model of the sessions), 'shared' (all 56 shared models), a training run "
        "folder (v4compact train ensemble --out RUN_DIR) or an .onnx file taking "
        "re-centred (N, 3, 112, 112) images",
    )
    add_sessions(parser, "those of the model's neurons; all five test sessions for an ONNX "
                 "file")
    parser.add_argument("--split", choices=["heldout", "fit", "all"], default="heldout",
                        help="images to score (default: heldout, the second half)")
    parser.add_argument("--metric", choices=["auto", "r2_er", "raw_r2", "split_half_r2"],
                        default="auto", help="default auto: r2_er if raw responses exist")
    parser.add_argument("--mapping", choices=["auto", "direct", "ridge"], default="auto",
                        help="for ONNX files: outputs are neurons (direct) or features (ridge)")
    add_num_boot(parser, 1000, "; 0: no intervals")
    parser.add_argument("--seed", type=int, default=0, help="seed of bootstrap and ridge folds")
    parser.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    add_device(parser, None)
    add_out(parser, "CSV", "write the per-neuron table here", required=False)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    """Evaluate and print the summary; returns the exit status."""
    from ..evaluation import evaluate

    out = output_file(args.out) if args.out else None
    model = args.model[0] if len(args.model) == 1 else args.model
    result = evaluate(
        model, sessions=args.sessions, split=args.split, data_dir=args.data_dir,
        metric=args.metric, mapping=args.mapping, num_boot=args.num_boot, seed=args.seed,
        batch_size=args.batch_size, device=args.device, progress=not args.quiet,
    )
    print(result.format_summary())
    if out is not None:
        path = result.to_csv(out)
        print(f"wrote {len(result)} rows to {path}", file=sys.stderr)
    return 0
