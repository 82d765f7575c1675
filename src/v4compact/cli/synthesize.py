"""``v4compact synthesize | rank | experiment``: preferred stimuli and in-silico experiments.

* ``v4compact synthesize MODEL_ID [--neurons ...] --seeds 9 --steps 1000 --preset upstream
  [--minimize] --out DIR`` — PNGs, one contact sheet per neuron, ``responses.csv`` /
  ``responses.json`` and ``provenance.json`` in DIR.
* ``v4compact rank MODEL_ID [--neuron N] [--images session:ID|FOLDER|ZIP] --top 16 --out
  FIG.png`` — top/bottom natural images by predicted (and measured) response, plus a CSV.
* ``v4compact experiment gaudy MODEL_ID --images ... --out DIR`` and ``v4compact experiment
  tuning MODEL_ID --stimulus dot --parameter size --values 4,8,16 --out DIR`` — a table
  (CSV), a per-neuron summary and a figure.

For ``population`` with ``synthesize``, each image runs only through its own neuron's
compact model (a routed batch), which is what synthesis needs and 219 times cheaper than the
fused all-neuron forward.
"""

from __future__ import annotations

from ..errors import InvalidInputError
from .checks import FIGURE_SUFFIXES, check_positive, output_dir, output_file
from .options import add_device, add_out, command, group

#: Preset names shown in --help (checked against v4compact.synthesis.list_presets() by tests).
PRESET_NAMES = ("upstream", "fourier", "upstream_robust")


def register(subparsers, parents) -> None:
    """Add ``synthesize``, ``rank`` and ``experiment``."""
    syn = command(
        subparsers, "synthesize", parents, _synthesize,
        help="synthesize preferred (or least preferred) stimuli",
        description="Optimise images to drive (or suppress) model neurons, many neurons x "
        "many random starts in one batch. Writes PNGs, a figure-2a contact sheet per neuron, "
        "responses.csv/json and provenance.json into --out.",
    )
    syn.add_argument("model_id", metavar="MODEL_ID",
                     help="compact/<session>/<neuron>, shared/<teacher>/<filters> or population")
    syn.add_argument("--neurons", nargs="+", metavar="N", default=None,
                     help="neuron ids (201025/2) or output columns (default: all outputs)")
    syn.add_argument("--seeds", type=int, default=9, help="random starts per neuron (9)")
    syn.add_argument("--steps", type=int, default=None, help="steps (default: the preset's)")
    # the names are spelled out rather than read from synthesis.presets, whose package imports
    # torch: building the parser must stay light (tests check the list against the presets)
    syn.add_argument("--preset", default="upstream", metavar="NAME",
                     help=f"synthesis recipe: {', '.join(PRESET_NAMES)} "
                     "(default: upstream, the original study's)")
    syn.add_argument("--minimize", action="store_true", help="drive responses down")
    syn.add_argument("--grayscale", action="store_true", help="constrain images to gray")
    syn.add_argument("--seed", type=int, default=0, help="run seed (0)")
    syn.add_argument("--snapshot-every", type=int, default=None, metavar="K",
                     help="also save the trajectory every K steps (trajectory.npz)")
    add_device(syn)
    syn.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    add_out(syn, "DIR", "output folder")

    rank = command(
        subparsers, "rank", parents, _rank,
        help="rank natural images by a neuron's predicted response",
        description="Top-k and bottom-k images of a collection by predicted response; for a "
        "session's own recorded neuron also by measured response, side by side.",
    )
    rank.add_argument("model_id", metavar="MODEL_ID")
    rank.add_argument("--neuron", default="0", help="neuron id or output column (default 0)")
    rank.add_argument("--images", default=None, metavar="SOURCE",
                      help="session:ID, a folder of images or a zip of JPEGs (default: the "
                      "session of a compact model's neuron)")
    rank.add_argument("--heldout", action="store_true",
                      help="for a session: rank only its held-out (second) half")
    rank.add_argument("--top", type=int, default=16, help="images per panel (16)")
    add_device(rank)
    add_out(rank, "FIG", "figure file (.png/.pdf/.svg); the ranking CSV goes next to it")

    _, sub = group(subparsers, "experiment", help="in-silico experiments (gaudy, tuning)",
                   description="In-silico experiments on a model.", dest="experiment",
                   metavar="EXPERIMENT")
    gaudy = command(
        sub, "gaudy", parents, _gaudy, help="natural vs gaudy vs grayscale versions of images",
        description="Responses to natural images and to their gaudy and grayscale versions.")
    gaudy.add_argument("model_id", metavar="MODEL_ID")
    gaudy.add_argument("--images", required=True, metavar="SOURCE",
                       help="session:ID, a folder or a zip")
    gaudy.add_argument("--neurons", nargs="+", default=None, metavar="N")
    gaudy.add_argument("--heldout", action="store_true", help="held-out half of a session")
    add_device(gaudy)
    add_out(gaudy, "DIR", "output folder")

    tuning = command(
        sub, "tuning", parents, _tuning,
        help="response vs one parameter of a parametric stimulus",
        description="Tuning curve for dots, bars, gratings or colour patches. Example: "
        "--stimulus dot --parameter size --values 4,8,16,32,64 --set color=255:0:0")
    tuning.add_argument("model_id", metavar="MODEL_ID")
    tuning.add_argument("--stimulus", required=True,
                        choices=["dot", "bar", "grating", "color_patch"])
    tuning.add_argument("--parameter", required=True, help="e.g. size, x, orientation, color")
    tuning.add_argument("--values", required=True,
                        help="comma-separated values; colours as R:G:B (255:0:0,0:255:0)")
    tuning.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="fixed stimulus parameters, e.g. size=30 color=255:255:0")
    tuning.add_argument("--neurons", nargs="+", default=None, metavar="N")
    add_device(tuning)
    add_out(tuning, "DIR", "output folder")


def _parse_value(text: str):
    text = text.strip()
    if ":" in text:
        try:
            return tuple(float(v) for v in text.split(":"))
        except ValueError as err:
            raise InvalidInputError(f"bad colour {text!r}; write R:G:B like 255:0:0") from err
    try:
        return float(text)
    except ValueError as err:
        raise InvalidInputError(f"bad value {text!r}; give a number or R:G:B") from err


def _load(model_id: str, neurons, device, data_dir, routed: bool = False):
    from ..models import zoo

    if routed and model_id.strip("/") == zoo.POPULATION.name:
        from ..synthesis.routing import RoutedModels

        ids = zoo.model_neuron_ids()
        wanted = ids if neurons is None else [
            ids[int(n)] if str(n).isdigit() and int(n) < len(ids) else n for n in neurons]
        bad = [n for n in wanted if n not in ids]
        if bad:
            raise InvalidInputError(f"population has no neuron {bad[0]!r}; use an id like "
                                    f"'201025/2' or a column 0..{len(ids) - 1}")
        models = [zoo.load_model(f"{zoo.COMPACT.name}/{n}", device=device, data_dir=data_dir)
                  for n in wanted]
        return RoutedModels(models, model_id="population"), wanted
    return zoo.load_model(model_id, device=device, data_dir=data_dir), neurons


def _synthesize(args) -> int:
    import numpy as np

    from ..figures.synthesis import synthesis_figure
    from ..synthesis import get_preset, synthesize

    get_preset(args.preset)  # an unknown name fails before any model is loaded
    check_positive("--seeds", args.seeds)
    if args.steps is not None:
        check_positive("--steps", args.steps)
    out = output_dir(args.out)  # before the work: a result is never lost to a bad --out
    model, neurons = _load(args.model_id, args.neurons, args.device, args.data_dir, routed=True)
    settings = {"grayscale": True} if args.grayscale else {}
    result = synthesize(model, neurons, seeds=args.seeds, preset=args.preset,
                        steps=args.steps, minimize=args.minimize, seed=args.seed,
                        device=args.device, progress=not args.no_progress,
                        snapshot_every=args.snapshot_every, **settings)
    written = result.save(out)
    for target in dict.fromkeys(result.target_ids):
        fig = synthesis_figure(result, neuron=target)
        path = out / f"contact_sheet_{str(target).replace('/', '-')}.png"
        fig.savefig(path, dpi=110)
        written.append(path)
    if result.snapshots is not None:
        path = out / "trajectory.npz"
        np.savez_compressed(path, snapshots=result.snapshots, steps=result.snapshot_steps)
        written.append(path)
    from ..models.zoo import Z_SCORED_UNITS

    print(f"wrote {len(written)} files to {out} (responses in {Z_SCORED_UNITS})")
    for row in result.rows()[: min(len(result.images), 20)]:
        print(f"  {row['target']}  start {row['start']}: response {row['response']:.3f}")
    return 0


def _rank(args) -> int:
    import csv

    from ..figures.synthesis import ranking_figure
    from ..synthesis.natural import load_image_collection, rank_images

    check_positive("--top", args.top)
    out = output_file(args.out, FIGURE_SUFFIXES)
    model, _ = _load(args.model_id, None, args.device, args.data_dir)
    source = args.images
    neuron = args.neuron
    ids = list(getattr(model, "neuron_ids", []) or [])
    if source is None:
        if len(ids) != 1:
            raise InvalidInputError("--images is required for a multi-neuron model; give "
                                    "session:ID, a folder or a zip")
        source = f"session:{ids[0].split('/')[0]}"
    coll = load_image_collection(source, data_dir=args.data_dir)
    indices = None
    if args.heldout:
        if coll.session is None:
            raise InvalidInputError("--heldout works only with --images session:ID")
        indices = coll.session.heldout_split()[1]
    ranking = rank_images(model, coll, neuron, indices=indices, device=args.device)
    fig = ranking_figure(ranking, k=min(args.top, len(ranking.predicted)))
    fig.savefig(out, dpi=110)
    rows = ranking.rows()
    csv_path = out.with_suffix(".csv")
    with csv_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {out} and {csv_path}")
    if ranking.correlation is not None:
        print(f"r(predicted, measured) = {ranking.correlation:.3f}")
    return 0


def _gaudy(args) -> int:
    from ..experiments import gaudy_experiment
    from ..synthesis.natural import load_image_collection

    out = output_dir(args.out)
    model, _ = _load(args.model_id, None, args.device, args.data_dir)
    coll = load_image_collection(args.images, data_dir=args.data_dir)
    indices = None
    if args.heldout:
        if coll.session is None:
            raise InvalidInputError("--heldout works only with --images session:ID")
        indices = coll.session.heldout_split()[1]
    result = gaudy_experiment(model, coll, args.neurons, indices=indices, device=args.device)
    paths = result.save(out, "gaudy")
    print("wrote " + ", ".join(str(p) for p in paths))
    for row in result.summary.rows[:10]:
        print(f"  {row['neuron']}: natural {row['mean_natural']:.3f}  gaudy "
              f"{row['mean_gaudy']:.3f}  grayscale {row['mean_grayscale']:.3f}")
    return 0


def _tuning(args) -> int:
    from ..experiments import tuning_curve

    out = output_dir(args.out)
    model, _ = _load(args.model_id, None, args.device, args.data_dir)
    values = [_parse_value(v) for v in args.values.split(",") if v.strip()]
    fixed = {}
    for item in args.set:
        if "=" not in item:
            raise InvalidInputError(f"--set {item!r}: write KEY=VALUE, e.g. size=30")
        key, value = item.split("=", 1)
        fixed[key] = _parse_value(value)
    result = tuning_curve(model, args.stimulus, args.parameter, values, args.neurons,
                          device=args.device, **fixed)
    paths = result.save(out, f"tuning_{args.stimulus}_{args.parameter}")
    print("wrote " + ", ".join(str(p) for p in paths))
    for row in result.summary.rows[:10]:
        print(f"  {row['neuron']}: preferred {args.parameter} = {row['preferred_value']}, "
              f"modulation {row['modulation']:.3f}")
    return 0


__all__ = ["register"]
