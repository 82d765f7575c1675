"""``v4compact choose-images``: pick the next experiment's images with a model committee."""

from __future__ import annotations

_EPILOG = """\
criteria:
  disagreement  variance over the committee's members of the predicted response, averaged
                over the neurons (query by committee; the default)
  strongest     the committee's mean predicted response, averaged over the neurons
  diverse       a spread of predicted responses (greedy farthest-point selection)
  random        a seeded uniform draw (the baseline)
examples:
  v4compact choose-images --model backbone:compact/201025/10:layer4 --neurons '201025/1?' \\
      --pool ../shared/v4data/data_V4_responses/images/images_210224.zip --count 50 \\
      --out next.zip
  v4compact choose-images --model ensemble:runs/lab --neurons 'mylab:s01/*' --pool pool/ \\
      --count 300 --criterion diverse --seed 2 --out next.zip
"""


def register(subparsers, parents) -> None:
    """Add ``choose-images``."""
    from ..training.select import CRITERIA, DEFAULT_BOOTSTRAP
    from .options import add_device, add_out, command

    parser = command(
        subparsers, "choose-images", parents, run,
        help="choose the next experiment's images with a model committee",
        description="Score every image of a candidate pool with a committee of models of "
        "the neurons (an ensemble's members, or a backbone's ridge mappings on bootstrap "
        "resamples of the fit half) and write the N chosen ones as 112x112 JPEGs in a zip, "
        "with a manifest (rank, source, criterion value).", epilog=_EPILOG)
    parser.add_argument("--model", required=True, metavar="SPEC",
                        help="ensemble, ensemble:RUN_DIR or backbone:SPEC")
    parser.add_argument("--neurons", nargs="+", required=True, metavar="ID",
                        help="neurons of any dataset, patterns allowed ('mylab:s01/*')")
    parser.add_argument("--pool", nargs="+", required=True, metavar="PATH",
                        help="candidate images: zips, tars, folders of images")
    parser.add_argument("--count", type=int, required=True, metavar="N", help="images to choose")
    parser.add_argument("--criterion", choices=CRITERIA, default="disagreement",
                        help="how to choose (default: disagreement)")
    parser.add_argument("--seed", type=int, default=0, help="seed (resamples, random, diverse)")
    parser.add_argument("--bootstrap", type=int, default=DEFAULT_BOOTSTRAP, metavar="M",
                        help=f"committee size for a backbone (default {DEFAULT_BOOTSTRAP})")
    parser.add_argument("--include-heldout", action="store_true",
                        help="keep the held-out half of test-session zips in the pool")
    add_device(parser)
    add_out(parser, "FILE.zip", "the zip of chosen images (manifest beside it as .csv)")


def run(args) -> int:
    """Choose and write; prints the summary."""
    from ..training.select import choose_images, write_selection
    from .checks import check_positive, output_file

    check_positive("--count", args.count)
    out = output_file(args.out, (".zip",))
    selection = choose_images(args.model, args.neurons, args.pool, args.count,
                              criterion=args.criterion, seed=args.seed,
                              bootstrap=args.bootstrap,
                              exclude_heldout=not args.include_heldout, device=args.device,
                              data_dir=args.data_dir)
    path = write_selection(selection, out)
    values = selection.values
    print(f"chose {len(values)} of {selection.settings['pool_images']} images by "
          f"{selection.criterion} for {len(selection.neurons)} neuron(s) "
          f"({selection.settings['members']} committee members); criterion "
          f"{values.max():.4g} to {values.min():.4g}")
    print(f"wrote {path} and {path.with_suffix('.csv')}")
    return 0
