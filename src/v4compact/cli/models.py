"""``v4compact models list``, ``v4compact predict`` and ``v4compact export``: thin layers over
:func:`v4compact.list_models`, :func:`v4compact.models.predict.predict` and
:func:`v4compact.export_model`.

Model selectors (the ``MODEL`` argument):

- ``compact/201025/10`` or ``201025/10``: one neuron's compact model;
- ``shared/from_ensemble_model/200``: a shared compact model (219 columns);
- ``all`` or ``population``: the 219 compact models fused into one module;
- any other id of the zoo (``v4compact models list``), or ``file:PATH`` for a model file
  (``.onnx``, ``.safetensors``, TorchScript ``.pt``);
- ``201025/*``: every neuron of a session, fused;
- a comma-separated list such as ``201025/10,190923/0``: those neurons, fused.

Image arguments (``IMAGES``): image files, folders of images, or ``session:SID`` (all images
of a session), ``session:SID:heldout`` / ``session:SID:fit`` (its second / first half).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError, UnknownModelError
from .options import add_device, add_out, command, group

_SELECTOR_HELP = ("compact/S/N or S/N (one neuron), shared/TEACHER/F, all (the 219-neuron "
                  "population), S/* (a session's neurons), a comma-separated list of S/N, "
                  "file:PATH (a model file) or any id of 'v4compact models list'")
_IMAGES_HELP = ("image files, folders, or session:SID[:heldout|:fit] (a session's images; "
                "heldout = second half)")


def register(subparsers, parents) -> None:
    """Add ``models`` (with ``list``), ``predict`` and ``export``."""
    _, sub = group(subparsers, "models", help="list every known model and its status",
                   description="The models of the zoo (v4compact.models.zoo).",
                   dest="models_command", metavar="SUBCOMMAND")
    listing = command(
        sub, "list", parents, _list, help="print model ids with their status",
        description="Print every released model id, whether its files are in the data "
        "directory (present / missing) and, when missing, the command that fetches them. "
        "Outputs of every released model are in z-scored units.")
    listing.add_argument("pattern", nargs="?", default=None,
                         help="shell-style filter, e.g. 'compact/201025/*' or 'shared/*/200'")
    listing.add_argument("--present", action="store_true",
                         help="only the models whose files are all present")

    from ..models.calibration import UNITS

    predict = command(
        subparsers, "predict", parents, _predict, help="predicted responses of models to images",
        description="Predict responses to images; one row per image, one column per neuron. "
        "Images of another size are centre-cropped to a square and resized to 112x112 "
        "(bicubic). Outputs are in z-scored units (not spike counts) unless --units spikes.",
        epilog=f"MODEL: {_SELECTOR_HELP}. IMAGES: {_IMAGES_HELP}.",
    )
    predict.add_argument("model", metavar="MODEL", help="model selector (see below)")
    predict.add_argument("images", nargs="+", metavar="IMAGES", help=_IMAGES_HELP)
    add_out(predict, "FILE", "write a .csv table or a .npy array (default: CSV on stdout)",
            required=False)
    predict.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    add_device(predict)
    predict.add_argument("--no-progress", action="store_true", help="no progress bar")
    predict.add_argument("--units", choices=list(UNITS), default="z-scored",
                         help="z-scored: the models' own units (default); spikes: spikes per "
                         "100 ms, through an affine map fitted per neuron on the first half of "
                         "its session (recorded neurons only; needs the session's images)")

    export = command(
        subparsers, "export", parents, _export,
        help="export a model to ONNX, safetensors or TorchScript",
        description="Write a model to a file that reloads without the release data "
        "(v4compact.models.formats.export.load_exported reads it back).",
        epilog=f"MODEL: {_SELECTOR_HELP}.",
    )
    export.add_argument("model", metavar="MODEL", help="model selector (see below)")
    export.add_argument("--format", default="onnx",
                        choices=["onnx", "safetensors", "torchscript"], help="file format")
    add_out(export, "PATH", "output file (default: the model id, slashes as underscores, "
            "in the current folder)", required=False)


def load_selected_model(selector: str, device: str = "cpu", data_dir=None):
    """The model a ``MODEL`` selector names (see the module docstring).

    Raises:
        UnknownModelError, UnknownSessionError, UnknownNeuronError: nothing of that name.
        InvalidInputError: a selector of no known form.
        DataNotFoundError: a model file is missing.
    """
    from ..models import zoo

    text = selector.strip()
    if text == "all":
        text = zoo.POPULATION.name
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if len(parts) == 1 and not text.endswith("*") and _is_model_id(text):
        return zoo.load_model(text, device=device, data_dir=data_dir)
    neurons: list[str] = []
    for part in parts:
        session, sep, index = part.removeprefix(f"{zoo.COMPACT.name}/").partition("/")
        if sep and index == "*":
            neurons += zoo.session_neuron_ids(session)
            continue
        try:
            sid, k = zoo.parse_neuron_id(part)
        except InvalidInputError:
            raise InvalidInputError(f"bad model selector {part!r}; use {_SELECTOR_HELP}") from None
        neurons.append(f"{sid}/{k}")
    if len(parts) == 1 and not text.endswith("*"):
        return zoo.load_model(f"{zoo.COMPACT.name}/{neurons[0]}", device=device,
                              data_dir=data_dir)
    from ..models.formats.loaders import load_compact_population

    return load_compact_population(neurons, device=device, data_dir=data_dir)


def _is_model_id(text: str) -> bool:
    """True when ``text`` has the form of a zoo id (a family's prefix), valid or not."""
    from ..models import zoo

    try:
        zoo.family_of(text)
    except UnknownModelError:
        return False
    return True


def read_images(specs: list[str], data_dir=None) -> tuple[np.ndarray, list[str]]:
    """Images named on the command line, through the one image path, with one label each.

    Returns:
        ``(N, 112, 112, 3)`` pixels 0-255 (:func:`~v4compact.models.inputs.as_image_batch`)
        and ``N`` labels (file names, or ``session:SID/INDEX`` with 0-based image indices).
    """
    from ..models.inputs import as_image_batch, list_image_files

    items, labels = [], []
    for spec in specs:
        if spec.startswith("session:"):
            from ..data.session import load_session

            sid, _, part = spec[len("session:"):].partition(":")
            session = load_session(sid, data_dir=data_dir)
            fit, heldout = session.heldout_split()
            choice = {"": np.arange(session.num_images), "all": np.arange(session.num_images),
                      "fit": fit, "heldout": heldout}
            if part not in choice:
                raise InvalidInputError(f"bad image set {spec!r}; use session:SID, "
                                        "session:SID:fit or session:SID:heldout")
            indices = choice[part]
            items.append(np.asarray(session.images[indices]))
            labels += [f"session:{session.session_id}/{i}" for i in indices]
            continue
        path = Path(spec)
        files = list_image_files(path) if path.is_dir() else [path]
        items += files
        labels += [str(p) for p in files]
    return as_image_batch(items), labels


def _list(args) -> int:
    from ..models import zoo

    rows = zoo.model_status(args.pattern, data_dir=args.data_dir)
    if args.present:
        rows = [r for r in rows if r.present]
    if not rows:
        what = "no model" if args.pattern is None else f"no model matches {args.pattern!r}"
        where = " in the data directory" if args.present else ""
        raise UnknownModelError(f"{what}{where}; see v4compact models list")
    width = max(len(r.model_id) for r in rows)
    for row in rows:
        print(f"{row.model_id:<{width}}  {row.status:<7}  {row.fetch_command or ''}".rstrip())
    present = sum(r.present for r in rows)
    print(f"{len(rows)} models: {present} present, {len(rows) - present} missing "
          f"(outputs in {zoo.Z_SCORED_UNITS})", file=sys.stderr)
    return 0


def _predict(args) -> int:
    from ..models.predict import predict
    from .checks import output_file

    out = output_file(args.out, (".csv", ".npy")) if args.out else None  # before the work
    model = load_selected_model(args.model, device=args.device, data_dir=args.data_dir)
    images, labels = read_images(args.images, data_dir=args.data_dir)
    progress = not args.no_progress and len(images) > args.batch_size
    responses = predict(model, images, batch_size=args.batch_size, progress=progress,
                        units=args.units, data_dir=args.data_dir)
    table = responses.reshape(len(images), -1)
    units = _units_label(model, args.units)
    summary = f"{table.shape[0]} images x {table.shape[1]} neurons, in {units}"
    if out is not None and out.suffix.lower() == ".npy":
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, responses)
        print(f"wrote {out}: {summary}", file=sys.stderr)
        return 0
    columns = list(getattr(model, "neuron_ids", None) or []) \
        or [f"output{k}" for k in range(table.shape[1])]
    handle = open(out, "w", newline="") if out is not None else sys.stdout  # noqa: SIM115
    try:
        writer = csv.writer(handle)
        writer.writerow(["image", "units", *columns])
        for label, row in zip(labels, table, strict=True):
            writer.writerow([label, units, *(f"{v:.7g}" for v in row)])
    finally:
        if out is not None:
            handle.close()
            print(f"wrote {out}: {summary}", file=sys.stderr)
    return 0


def _units_label(model, units: str) -> str:
    """What the numbers are: z-scored units for the package's models (and their exports),
    spikes per 100 ms when calibrated, "model units" for a user's own model file."""
    from ..models import zoo
    from ..models.calibration import UNITS

    if units != "z-scored":
        return UNITS[units]
    try:
        family = zoo.family_of(getattr(model, "model_id", "") or "")
    except UnknownModelError:
        return "model units"
    return UNITS[units] if family is not zoo.FILE else "model units"


def _export(args) -> int:
    from ..models.formats.export import SUFFIXES, export_model

    model = load_selected_model(args.model, data_dir=args.data_dir)
    out = args.out or model.model_id.replace("/", "_") + SUFFIXES[args.format]
    path = export_model(model, out, format=args.format)
    print(f"wrote {path} ({args.format}, {model.model_id}, {model.num_outputs} outputs)")
    return 0
