"""``v4compact train ensemble``: train ensemble members on recorded sessions."""

from __future__ import annotations

import os
import sys

from .checks import check_positive, output_dir
from .options import add_device, add_out, add_sessions, command, group

#: The training presets (``v4compact.training.ensemble.PRESETS``; restated so that building
#: the parser does not import torch - a test keeps the two equal).
PRESET_NAMES = ("upstream", "modern")
#: The defaults of ``EnsembleTrainingConfig`` shown in the help (kept equal by a test).
DEFAULT_BACKBONE_TEXT = "shared/from_ensemble_model/200:layer3"
DEFAULT_VALIDATION_TEXT = "210224"

_EPILOG = """\
examples:
  v4compact train ensemble --members 5 --epochs 2 --width 128 --inner-width 64 --out runs/up
  v4compact train ensemble --preset modern --members 5 --epochs 3 --out runs/modern
  v4compact train ensemble --out runs/up --resume          (after a kill: same settings)
  torchrun --nproc_per_node=4 -m v4compact train ensemble --device cuda --out runs/big

The backbone's features are computed once per image and cached (--cache-dir); outputs of
trained members are in z-scored units. On a busy CPU, --threads 1 is often fastest.
"""


def register(subparsers, parents) -> None:
    """Add the ``train`` command group (``train ensemble``)."""
    _, commands = group(subparsers, "train", help="train models on V4 data",
                        description="Train models on recorded V4 sessions.",
                        dest="train_command", metavar="MODEL")
    ensemble = command(
        commands, "ensemble", parents, run_ensemble,
        help="train ensemble members (the compact models' teacher)",
        description="Train ensemble members (SYSTEM.md §6) on training sessions, with early "
        "stopping on the validation session (ridge from the members' embeddings, median "
        "r2_ER when single-repeat responses exist, raw R^2 otherwise). Checkpoints after "
        "every session; --resume continues a killed run exactly. Under torchrun the members "
        "are spread over the processes.",
        epilog=_EPILOG,
    )
    ensemble.add_argument("--backbone", default=None, metavar="SPEC",
                          help="resnet50, resnet50:PATH, vgg19, <model id>:<layer> "
                          f"(default {DEFAULT_BACKBONE_TEXT})")
    add_sessions(ensemble, "every training session whose images are in the data directory; "
                 "imported sessions such as mylab:s01 train on their fit half")
    ensemble.add_argument("--validation", default=None, metavar="SID",
                          help=f"validation session for early stopping "
                          f"(default {DEFAULT_VALIDATION_TEXT})")
    ensemble.add_argument("--members", type=int, default=25, help="members (default 25)")
    ensemble.add_argument("--epochs", type=int, default=5, help="epochs (default 5)")
    ensemble.add_argument("--preset", choices=PRESET_NAMES, default=PRESET_NAMES[0],
                          help="training recipe (default upstream, as SYSTEM.md §6)")
    ensemble.add_argument("--width", type=int, default=512,
                          help="member channels (released: 512)")
    ensemble.add_argument("--inner-width", type=int, default=256,
                          help="channels inside a residual block (released: 256)")
    ensemble.add_argument("--num-blocks", type=int, default=4,
                          help="residual blocks (released: 4)")
    ensemble.add_argument("--max-images", type=int, default=None, metavar="N",
                          help="use at most N images per session (quick trials)")
    ensemble.add_argument("--batch-size", type=int, default=None,
                          help="images per step (default: the preset's, 64)")
    ensemble.add_argument("--seed", type=int, default=None,
                          help="seed of member 0 (default 31490, as upstream)")
    add_out(ensemble, "RUN_DIR", "the run folder")
    ensemble.add_argument("--resume", action="store_true",
                          help="continue the run in RUN_DIR from its last checkpoint")
    ensemble.add_argument("--cache-dir", metavar="DIR", default=None,
                          help="feature cache (default: the per-user cache)")
    ensemble.add_argument("--no-cache", action="store_true",
                          help="recompute backbone features at every session visit "
                          "(upstream's way; slow)")
    add_device(ensemble)
    ensemble.add_argument("--threads", type=int, default=None,
                          help="torch CPU threads per process (default: torch's choice)")
    ensemble.add_argument("--quiet", action="store_true", help="no progress bars")


def run_ensemble(args) -> int:
    """Train and print a one-line summary; returns the exit status."""
    import torch

    from ..training.ensemble import EnsembleTrainingConfig, train_ensemble

    for option in ("members", "epochs", "width", "inner_width", "num_blocks"):
        check_positive(f"--{option.replace('_', '-')}", getattr(args, option))
    if args.threads is not None:
        check_positive("--threads", args.threads)
        torch.set_num_threads(args.threads)
    from ..data.catalog import parse_session_id

    validation = None if args.validation is None else parse_session_id(args.validation)
    sessions = None if args.sessions is None else [parse_session_id(s) for s in args.sessions]
    given = {"backbone": args.backbone, "validation": validation, "seed": args.seed}
    config = EnsembleTrainingConfig(
        sessions=sessions, members=args.members, epochs=args.epochs, preset=args.preset,
        width=args.width, inner_width=args.inner_width, num_blocks=args.num_blocks,
        max_images=args.max_images, batch_size=args.batch_size,
        **{name: value for name, value in given.items() if value is not None},
    )
    out = output_dir(args.out)
    summary = train_ensemble(out, config, resume=args.resume, data_dir=args.data_dir,
                             cache_dir=args.cache_dir, use_cache=not args.no_cache,
                             device=args.device, progress=not args.quiet)
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 reports
        return 0
    print(f"best validation {summary['validation_metric']} (median over neurons of session "
          f"{summary['validation_session']}): {summary['best_validation_score']:.4f}; "
          f"{config.members} members in {out / 'members'}", file=sys.stderr)
    return 0
