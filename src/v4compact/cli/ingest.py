"""``v4compact data import | export | verify | datasets``: a lab's recordings in, any session out.

Thin layer over :func:`v4compact.import_session`, :func:`v4compact.export_session`,
:func:`v4compact.data.layout.verify_session` and :func:`v4compact.list_datasets`.
"""

from __future__ import annotations

import sys
import time

from .options import command
from .tables import print_table

_IMPORT_EPILOG = """\
sources:
  FILE.nwb                  spike times in Units, counted in --window after each onset of an
                            IndexSeries in /stimulus or of an intervals table (start_time + an
                            image-index column); binned counts (ndx-binned-spikes'
                            BinnedAlignedSpikes); or the response series 'data export' writes.
                            Images from the file's Images container, else --images DIR.
  IMAGES --responses FILE   a folder or zip of images plus .npy / .csv / HDF5 responses,
                            (neurons, images) or (neurons, images, repeats) with NaN padding,
                            columns in sorted image-name order (or --order FILE).
examples:
  v4compact data import rec.nwb --name mylab:s01
  v4compact data import stimuli/ --responses counts.npy --name mylab:s02 --area IT
(docs/datasets.md lists every layout, check and error.)
"""


def register(sub, parents) -> None:
    """Add ``data import``, ``data export``, ``data verify`` and ``data datasets``."""
    from ..ingest import DEFAULT_WINDOW_MS

    start, stop = DEFAULT_WINDOW_MS
    imp = command(
        sub, "import", parents, _import, help="import a lab's session (NWB or plain files)",
        description="Import one recording session as DATASET:SESSION: read it, check it "
        "(one-line errors naming the file and the fix; nothing is written when a check "
        "fails) and write it atomically into <data dir>/datasets/ (or --out).",
        epilog=_IMPORT_EPILOG)
    imp.add_argument("source", metavar="SOURCE", help="an .nwb file, or a folder / zip of "
                     "images (with --responses)")
    imp.add_argument("--name", required=True, metavar="DATASET:SESSION",
                     help="id of the new session, e.g. mylab:s01")
    imp.add_argument("--responses", metavar="FILE", help="plain files: .npy, .csv or HDF5 "
                     "responses, (neurons, images) or (neurons, images, repeats)")
    imp.add_argument("--responses-key", metavar="KEY", help="the HDF5 dataset holding them")
    imp.add_argument("--order", metavar="FILE", help="plain files: the image of each response "
                     "column, one name a line (default: sorted image names)")
    imp.add_argument("--images", metavar="DIR", help="NWB files without images: the folder "
                     "of the image files (stimulus ids matched to file names, or indices to "
                     "sorted names)")
    imp.add_argument("--window", nargs=2, type=float, default=[start, stop],
                     metavar=("START", "STOP"),
                     help=f"count spikes in [START, STOP) ms after onset (default {start:g} "
                     f"{stop:g}: 100 ms bins like the release, placed as Brain-Score's "
                     "Cowley2026.V4-pls benchmark places them)")
    imp.add_argument("--image-column", metavar="COLUMN", help="the intervals-table column "
                     "with each presentation's image index (when not found by name)")
    imp.add_argument("--area", help="brain area of every neuron (V1, V4, IT, ...), overriding "
                     "the file's")
    imp.add_argument("--animal", help="the animal (default: the NWB subject id)")
    imp.add_argument("--heldout", metavar="FILE", help="held-out images, one name or index a "
                     "line (default: the source's split, else the second half)")
    imp.add_argument("--out", metavar="DIR", help="folder of datasets to write into (default "
                     "<data dir>/datasets; add it to $V4COMPACT_DATASETS to find it later)")
    imp.add_argument("--overwrite", action="store_true", help="replace an existing session")

    exp = command(
        sub, "export", parents, _export, help="write any session as an NWB file",
        description="Write a session, release or imported, as one NWB file (images, "
        "presentations, units, responses), checked by pynwb's validator; 'data import' "
        "reads it back identically.")
    exp.add_argument("session_id", metavar="SESSION", help="e.g. 190923 or mylab:s01")
    exp.add_argument("--format", default="nwb", choices=["nwb"], help="file format (nwb)")
    exp.add_argument("--out", required=True, metavar="FILE.nwb", help="the file to write")

    ver = command(
        sub, "verify", parents, _verify, help="check an imported session against its manifest",
        description="Compare every file of an imported session with the size and SHA-256 "
        "in its manifest; exit status 1 when one differs.")
    ver.add_argument("session_id", metavar="SESSION", help="e.g. mylab:s01")

    command(sub, "datasets", parents, _datasets, help="the datasets: the release and each "
            "lab's", description="List the registered datasets and where they live.")


def _import(args) -> int:
    from ..ingest import import_session

    began = time.perf_counter()
    session = import_session(
        args.source, args.name, responses=args.responses, order=args.order,
        responses_key=args.responses_key, images=args.images, window_ms=tuple(args.window),
        image_column=args.image_column, area=args.area, animal=args.animal,
        heldout=args.heldout, out=args.out, data_dir=args.data_dir, overwrite=args.overwrite)
    m = session.manifest
    print(f"imported {session.session_id}: {session.num_neurons} neurons, "
          f"{session.num_images} images, up to {m['max_repeats']} repeats "
          f"(median {m['median_repeats']}), {m['num_heldout']} held out ({m['split_rule']})")
    source = m["source"]
    if "counts_from" in source:
        print(f"responses: {source['counts_from']} ({source.get('presentations', '')}); units: "
              f"{session.units}")
    else:
        print(f"responses: {source.get('responses_file')}; units: {session.units}")
    if session.has_raw_responses and session.raw_responses.shape[2] > 1:
        import numpy as np

        snr = session.snr()
        print(f"SNR: median {np.nanmedian(snr):.3f}, {int(np.sum(snr > 0.15))} of "
              f"{len(snr)} neurons above 0.15")
    print(f"written to {session.folder} in {time.perf_counter() - began:.1f} s")
    return 0


def _export(args) -> int:
    from ..ingest import export_session

    began = time.perf_counter()
    path = export_session(args.session_id, args.out, format=args.format,
                          data_dir=args.data_dir)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB, valid NWB) in "
          f"{time.perf_counter() - began:.1f} s")
    return 0


def _verify(args) -> int:
    from ..data.catalog import parse_session_id
    from ..data.datasets import find_session
    from ..data.layout import verify_session
    from ..errors import InvalidInputError

    sid = parse_session_id(args.session_id)
    if not isinstance(sid, str):
        raise InvalidInputError(f"{sid} is a release session; check release files with: "
                                "v4compact data status --verify")
    folder = find_session(sid, args.data_dir)
    problems = verify_session(folder)
    for problem in problems:
        print(f"corrupt: {folder}/{problem}", file=sys.stderr)
    if problems:
        print(f"error: {sid} has {len(problems)} damaged file(s); import it again",
              file=sys.stderr)
        return 1
    print(f"{sid}: every file matches its manifest ({folder})")
    return 0


def _datasets(args) -> int:
    from ..data.catalog import list_datasets

    rows = [("dataset", "kind", "sessions", "folder")]
    rows += [(d.name, d.kind, str(d.num_sessions), str(d.folder or "(the release)"))
             for d in list_datasets(args.data_dir)]
    print_table(rows, right=(2,))
    return 0
