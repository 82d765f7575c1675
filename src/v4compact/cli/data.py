"""``v4compact data ...``: list sessions of every dataset, fetch release files, show what is
present, import a lab's recordings (NWB or plain files) and export any session as NWB."""

from __future__ import annotations

import sys

from .ingest import register as _register_import
from .options import add_session_id, command, group
from .tables import print_table

_FETCH_HELP = """\
groups (several may be given; default: sessions):
  sessions                 averaged + raw responses of all 50 sessions
  session:SID              images + responses of one session, e.g. session:190923
  images[:SID]             image zips (all, or one session)
  responses[:SID]          repeat-averaged responses
  raw-responses[:SID]      single-repeat responses
  compact-models[:SID[/K]] the 219 compact models (.keras) and their filter counts
  compact-models-all       compact models in every released format
  compact-models-torch | -weights-h5 | -npy | -h5, compact-model-summaries, nums-filters
  shared-models[:TEACHER]  shared compact models, e.g. shared-models:from_ensemble_model
  ensemble-members[:K]     the 25 trained ensemble-model members
  docs                     readme files and the ensemble summary
  all                      every file of the release
  PATH                     one release file, e.g. data_V4_responses/images/images_190923.zip
"""


def register(subparsers, parents) -> None:
    """Add ``data`` and its subcommands."""
    _, sub = group(
        subparsers, "data", help="list sessions, fetch and check the V4 data",
        description="The V4 recording data and released models: catalogue, download, status.",
        dest="data_command", metavar="SUBCOMMAND")

    sessions = command(sub, "sessions", parents, _sessions,
                       help="table of the sessions of every dataset",
                       description="Print the session catalogue as a table: the release's 50 "
                       "sessions, then every imported session (dataset:session).")
    sessions.add_argument("--split", choices=["train", "validation", "test", "imported"],
                          help="only sessions of this split")
    sessions.add_argument("--animal", help="only sessions of this animal (WE, PE, RA, ...)")
    sessions.add_argument("--dataset", help="only sessions of this dataset (cowley2023 or a "
                          "lab's name)")
    _register_import(sub, parents)

    info = command(
        sub, "info", parents, _info, help="one session: metadata, files present, SNR",
        description="Describe one session: catalogue record, which of its files are in the "
        "data directory, response statistics, (with --images) a decode of every image and "
        "(with --snr) the unbiased SNR per neuron.",
    )
    add_session_id(info)
    info.add_argument("--snr", action="store_true",
                      help="unbiased SNR per neuron (needs the raw responses)")
    info.add_argument("--images", action="store_true",
                      help="decode every image and print pixel statistics (needs the images)")

    fetch = command(
        sub, "fetch", parents, _fetch, help="download release files (verified, resumable)",
        description="Download files of the public release into the data directory, verify "
        "them (SHA-256, else git blob SHA-1) and skip those already present.",
        epilog=_FETCH_HELP,
    )
    fetch.add_argument("what", nargs="*", default=["sessions"], metavar="WHAT",
                       help="groups or release paths (see below)")
    fetch.add_argument("--base-url", default=None,
                       help="server with the release layout (default: $V4COMPACT_BASE_URL, "
                       "else the pinned commit on raw.githubusercontent.com)")
    fetch.add_argument("--retries", type=int, default=3, help="extra attempts per file")
    fetch.add_argument("--no-progress", action="store_true", help="no progress bars")

    status = command(
        sub, "status", parents, _status,
        help="what is present, missing or corrupt, per kind of file",
        description="Compare the data directory with the release registry. Missing files "
        "are normal (fetch them when needed); the exit status is 1 when a file is corrupt "
        "(wrong size, or wrong hash with --verify), so scripts can rely on it.",
    )
    status.add_argument("--verify", action="store_true",
                        help="hash every present file (default: compare sizes only)")


def _sessions(args) -> int:
    from ..data.catalog import list_sessions

    rows = list_sessions(split=args.split, animal=args.animal, dataset=args.dataset,
                         data_dir=args.data_dir)
    header = ("session", "dataset", "animal", "split", "neurons", "images", "repeats",
              "image types")
    table = [header] + [
        (str(r.session_id), r.dataset, r.animal, r.split, str(r.num_neurons),
         str(r.num_images), str(r.median_repeats), r.image_types)
        for r in rows
    ]
    print_table(table, right=(4, 5, 6))
    return 0


def _info(args) -> int:
    import numpy as np

    from ..data.session import load_session

    session = load_session(args.session_id, data_dir=args.data_dir)
    info = session.info
    print(f"session {session.session_id}: dataset {session.dataset}, animal "
          f"{info.animal or 'not given'}, split {info.split}, {info.num_neurons} neurons, "
          f"{info.num_images} images, median {info.median_repeats} repeats")
    areas = sorted({n.area or "not given" for n in session.neurons})
    window = (f"{session.window_ms[0]:g}-{session.window_ms[1]:g} ms after onset"
              if session.window_ms else "not stated")
    print(f"areas: {', '.join(areas)}; units: {session.units}; window: {window}")
    print(f"image types: {info.image_types}")
    print(f"data directory: {session.data_dir}")
    print(f"images: {'present' if session.has_images else 'missing'}; raw responses: "
          f"{'present' if session.has_raw_responses else 'missing'}")
    fit, heldout = session.heldout_split()
    if np.array_equal(heldout, np.arange(len(fit), info.num_images)):
        print(f"held-out split: fit images 0-{fit[-1]}, held out {heldout[0]}-{heldout[-1]}")
    else:
        print(f"held-out split: {len(fit)} fit images, {len(heldout)} held out (explicit)")
    mean = session.responses.mean(axis=1)
    print(f"mean response per neuron ({session.units}): median {np.median(mean):.3f}, "
          f"range {mean.min():.3f}-{mean.max():.3f}")
    if args.images:
        images = np.asarray(session.images)
        mean = images.reshape(-1, 3).mean(axis=0)
        print(f"images: {len(images)} decoded, {images.shape[1]}x{images.shape[2]} RGB uint8, "
              f"mean (R, G, B) = ({mean[0]:.1f}, {mean[1]:.1f}, {mean[2]:.1f})")
    if args.snr:
        snr = session.snr()
        good = int(np.sum(snr > 0.15))
        print(f"unbiased SNR: median {np.nanmedian(snr):.3f}; {good} of {len(snr)} neurons "
              "above 0.15")
        print("SNR per neuron: " + " ".join(f"{v:.2f}" for v in snr))
    return 0


def _fetch(args) -> int:
    from .. import config
    from ..data.fetch import fetch

    files = fetch(args.what, data_dir=args.data_dir, base_url=args.base_url,
                  progress=not args.no_progress, retries=args.retries)
    noun = "file" if len(files) == 1 else "files"
    print(f"{len(files)} {noun} present and verified in {config.data_dir(args.data_dir)}")
    return 0


def _status(args) -> int:
    from .. import config
    from ..data.fetch import data_status
    from ..data.paths import fetch_command

    root = config.data_dir(args.data_dir)
    status = data_status(args.data_dir, verify=args.verify, progress=True)
    print(f"data directory: {root} (from {config.data_dir_source(args.data_dir)})")
    check = "sizes and hashes" if args.verify else "sizes only; --verify hashes"
    print(f"release: {sum(s.total for s in status.values())} files ({check})\n")
    table = [("kind", "present", "missing", "corrupt", "total", "what")]
    for row in status.values():
        table.append((row.kind, str(row.present), str(len(row.missing)), str(len(row.corrupt)),
                      str(row.total), row.description))
    print_table(table, right=(1, 2, 3, 4))
    for kind in ("images", "raw-responses", "responses"):
        missing = status[kind].missing
        if missing and len(missing) < status[kind].total:
            sids = " ".join(sorted(p.rsplit("_", 1)[-1].split(".")[0] for p in missing))
            print(f"\n{kind} missing for sessions: {sids}")
    corrupt = [p for row in status.values() for p in row.corrupt]
    for path in corrupt:
        print(f"corrupt: {path}", file=sys.stderr)
    incomplete = [row.kind for row in status.values() if row.missing or row.corrupt]
    if incomplete:
        print(f"\nfetch what is missing with: {fetch_command(' '.join(incomplete), args.data_dir)}"
              " (or: all)")
    if corrupt:
        print(f"error: {len(corrupt)} corrupt file(s) in {root}; fetching them again replaces "
              "them", file=sys.stderr)
        return 1
    return 0
