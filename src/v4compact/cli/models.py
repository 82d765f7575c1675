"""``v4compact models list``, ``v4compact predict`` and ``v4compact export``: thin layers over
:func:`v4compact.list_models`, :meth:`V4Model.predict` and :func:`v4compact.export_model`.

Model selectors (the ``MODEL`` argument):

- ``compact/201025/10`` or ``201025/10``: one neuron's compact model;
- ``shared/from_ensemble_model/200``: a shared compact model (219 columns);
- ``all`` or ``population``: the 219 compact models fused into one module;
- ``201025/*``: every neuron of a session, fused;
- a comma-separated list such as ``201025/10,190923/0``: those neurons, fused.

Image arguments (``IMAGES``): image files, folders of images, or ``session:SID`` (all images
of a session), ``session:SID:heldout`` / ``session:SID:fit`` (its second / first half).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError

_SELECTOR_HELP = ("compact/S/N or S/N (one neuron), shared/TEACHER/F, all (the 219-neuron "
                  "population), S/* (a session's neurons) or a comma-separated list of S/N")
_IMAGES_HELP = ("image files, folders, or session:SID[:heldout|:fit] (a session's images; "
                "heldout = second half)")


def register(subparsers, parents) -> None:
    """Add ``models`` (with ``list``), ``predict`` and ``export``."""
    models = subparsers.add_parser("models", help="list the available models",
                                   description="The models whose files are in the data "
                                   "directory.")
    sub = models.add_subparsers(dest="models_command", metavar="SUBCOMMAND")
    listing = sub.add_parser("list", parents=parents, help="print model ids, one per line",
                             description="Print the ids of the available models.")
    listing.add_argument("pattern", nargs="?", default=None,
                         help="shell-style filter, e.g. 'compact/201025/*' or 'shared/*/200'")
    listing.set_defaults(func=_list)
    models.set_defaults(func=lambda args: _no_subcommand(models))

    predict = subparsers.add_parser(
        "predict", parents=parents, help="predicted responses of models to images",
        description="Predict responses to images; one row per image, one column per neuron.",
        epilog=f"MODEL: {_SELECTOR_HELP}. IMAGES: {_IMAGES_HELP}.",
    )
    predict.add_argument("model", metavar="MODEL", help="model selector (see below)")
    predict.add_argument("images", nargs="+", metavar="IMAGES", help=_IMAGES_HELP)
    predict.add_argument("--out", default=None, metavar="FILE",
                         help="write a .csv table or a .npy array (default: CSV on stdout)")
    predict.add_argument("--batch-size", type=int, default=64, help="images per forward pass")
    predict.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    predict.add_argument("--no-progress", action="store_true", help="no progress bar")
    predict.set_defaults(func=_predict)

    export = subparsers.add_parser(
        "export", parents=parents, help="export a model to ONNX, safetensors or TorchScript",
        description="Write a model to a file that reloads without the release data "
        "(v4compact.models.export.load_exported reads it back).",
        epilog=f"MODEL: {_SELECTOR_HELP}.",
    )
    export.add_argument("model", metavar="MODEL", help="model selector (see below)")
    export.add_argument("--format", default="onnx",
                        choices=["onnx", "safetensors", "torchscript"], help="file format")
    export.add_argument("--out", default=None, metavar="PATH",
                        help="output file (default: the model id, slashes as underscores, "
                        "in the current folder)")
    export.set_defaults(func=_export)


def _no_subcommand(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def load_selected_model(selector: str, device: str = "cpu", data_dir=None):
    """The model a ``MODEL`` selector names (see the module docstring).

    Raises:
        UnknownModelError, UnknownSessionError, UnknownNeuronError: nothing of that name.
        DataNotFoundError: a model file is missing.
    """
    import v4compact

    from ..data.catalog import session_info

    text = selector.strip()
    if text in ("all", "population"):
        return v4compact.load_compact_population(device=device, data_dir=data_dir)
    if text.startswith("shared/"):
        return v4compact.load_model(text, device=device, data_dir=data_dir)
    parts = [p.strip() for p in text.split(",") if p.strip()]
    neurons: list[str] = []
    for part in parts:
        part = part[len("compact/"):] if part.startswith("compact/") else part
        session, sep, index = part.partition("/")
        if sep and index == "*":
            count = session_info(session).num_neurons
            neurons += [f"{session}/{k}" for k in range(count)]
        elif sep and index and "/" not in index:
            neurons.append(part)
        else:
            raise InvalidInputError(f"bad model selector {part!r}; use {_SELECTOR_HELP}")
    if len(neurons) == 1 and len(parts) == 1 and not text.endswith("*"):
        session, _, index = neurons[0].partition("/")
        return v4compact.load_compact_model(session, index, device=device, data_dir=data_dir)
    return v4compact.load_compact_population(neurons, device=device, data_dir=data_dir)


def read_images(specs: list[str], data_dir=None) -> tuple[np.ndarray, list[str]]:
    """Images named on the command line, stacked, with one label per image.

    Returns:
        ``(N, 112, 112, 3)`` pixels 0-255 and ``N`` labels (file names, or
        ``session:SID/INDEX`` with 0-based image indices).
    """
    from ..models.inputs import IMAGE_EXTENSIONS, as_image_batch

    arrays, labels = [], []
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
            arrays.append(np.asarray(session.images[indices]))
            labels += [f"session:{session.session_id}/{i}" for i in indices]
            continue
        path = Path(spec)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
            labels += [str(p) for p in files]
        else:
            labels.append(str(path))
        arrays.append(as_image_batch(path))
    images = np.concatenate([a.astype(np.float32, copy=False) for a in arrays]) \
        if len({a.dtype for a in arrays}) > 1 else np.concatenate(arrays)
    return images, labels


def _list(args) -> int:
    import v4compact

    for model_id in v4compact.list_models(args.pattern, data_dir=args.data_dir):
        print(model_id)
    return 0


def _predict(args) -> int:
    out = Path(args.out) if args.out else None
    if out is not None and out.suffix.lower() not in (".csv", ".npy"):
        raise InvalidInputError(f"--out {out} must end in .csv or .npy")
    model = load_selected_model(args.model, device=args.device, data_dir=args.data_dir)
    images, labels = read_images(args.images, data_dir=args.data_dir)
    progress = not args.no_progress and len(images) > args.batch_size
    responses = model.predict(images, batch_size=args.batch_size, progress=progress)
    table = responses.reshape(len(images), -1)
    if out is not None and out.suffix.lower() == ".npy":
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, responses)
        print(f"wrote {out}: {table.shape[0]} images x {table.shape[1]} neurons",
              file=sys.stderr)
        return 0
    handle = open(out, "w", newline="") if out is not None else sys.stdout  # noqa: SIM115
    try:
        writer = csv.writer(handle)
        writer.writerow(["image", *model.neuron_ids])
        for label, row in zip(labels, table, strict=True):
            writer.writerow([label, *(f"{v:.7g}" for v in row)])
    finally:
        if out is not None:
            handle.close()
            print(f"wrote {out}: {table.shape[0]} images x {table.shape[1]} neurons",
                  file=sys.stderr)
    return 0


def _export(args) -> int:
    from ..models.export import SUFFIXES, export_model

    model = load_selected_model(args.model, data_dir=args.data_dir)
    out = args.out or model.model_id.replace("/", "_") + SUFFIXES[args.format]
    path = export_model(model, out, format=args.format)
    print(f"wrote {path} ({args.format}, {model.model_id}, {model.num_outputs} outputs)")
    return 0
