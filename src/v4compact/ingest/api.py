"""``import_session`` and ``export_session``: a lab's recordings in, any session out.

:func:`import_session` reads an NWB file (:mod:`v4compact.ingest.nwb`) or plain files
(:mod:`v4compact.ingest.plain`), checks everything (:func:`check_recording`: one-line errors
naming the file and the fix; warnings for what is legal but suspicious), and writes the
session once, atomically, in the layout of :mod:`v4compact.data.layout`. Nothing is written
when a check fails.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np

from ..data import datasets, layout
from ..data.registry import file_sha256
from ..errors import InvalidInputError
from .recording import Recording

#: Default counting window after onset, ms: 100 ms bins like the release's responses, placed
#: 50-150 ms after onset as Brain-Score's benchmark on these recordings (Cowley2026.V4-pls)
#: bins them, which skips V4's ~50 ms response latency.
DEFAULT_WINDOW_MS = (50.0, 150.0)
#: Fewest images a session may have: a fit half and a held-out half of at least 5 each.
MIN_IMAGES = 10
#: SNR below which a neuron is called weak (the release's own criterion, SYSTEM.md §2).
WEAK_SNR = 0.15


class SessionImportWarning(UserWarning):
    """Legal but suspicious data (weak neurons, no repeats, resized images)."""


def check_recording(rec: Recording, where: str) -> tuple[np.ndarray, np.ndarray | None, list]:
    """Check a recording; return ``(responses, raw_responses, warnings)``.

    Args:
        rec: what a reader returned.
        where: the file(s) named in messages.

    Raises:
        InvalidInputError: one line naming the file and the fix (see docs/datasets.md's table).
    """
    raw = rec.raw_responses
    responses = rec.responses
    num_images = None if rec.images is None else len(rec.images)
    array = raw if raw is not None else responses
    if array is None:
        raise InvalidInputError(f"{where} holds no responses; give --responses FILE")
    if num_images is not None and array.shape[1] != num_images:
        raise InvalidInputError(
            f"{where}: responses have {array.shape[1]} images (columns) but {num_images} "
            "images were found; give one response column per image (or an order file)"
        )
    if array.shape[0] == 0:
        raise InvalidInputError(f"{where}: responses have no neuron (0 rows); give at least one")
    if raw is not None:
        if np.isinf(raw).any():
            raise InvalidInputError(f"{where}: single-repeat responses hold inf; replace it "
                                    "by the count, or NaN for a repeat not shown")
        shown = ~np.isnan(raw).all(axis=0)  # (images, repeats)
        never = np.flatnonzero(~shown.any(axis=1))
        if never.size:
            name = rec.image_rows[never[0]]["name"] if rec.image_rows else ""
            raise InvalidInputError(
                f"{where}: image {int(never[0])} ({name}) has no repeat (all NaN); remove the "
                "image or give its responses"
            )
        if responses is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                responses = np.nanmean(raw, axis=2)
        elif responses.shape != raw.shape[:2]:
            raise InvalidInputError(f"{where}: averaged responses {responses.shape} and repeats "
                                    f"{raw.shape} disagree; write both for the same neurons and "
                                    "images")
    if not np.isfinite(responses).all():
        bad = np.argwhere(~np.isfinite(responses))[0]
        raise InvalidInputError(
            f"{where}: averaged responses hold NaN or inf (neuron {bad[0]}, image {bad[1]}); "
            "remove that neuron or image, or give single repeats (NaN marks a missing repeat)"
        )
    values = raw[~np.isnan(raw)] if raw is not None else responses
    if (values < 0).any():
        raise InvalidInputError(
            f"{where}: responses hold negative values (min {values.min():g}); give spike "
            "counts or rates (>= 0), not baseline-subtracted or z-scored responses"
        )
    if responses.shape[1] < MIN_IMAGES:
        raise InvalidInputError(
            f"{where}: {responses.shape[1]} images are too few to split into a fit and a "
            f"held-out half; give at least {MIN_IMAGES}"
        )
    flat = np.flatnonzero(np.ptp(responses, axis=1) == 0)
    if flat.size:
        names = ", ".join(str(rec.neurons[k]["name"]) for k in flat[:3])
        raise InvalidInputError(
            f"{where}: {flat.size} neuron(s) never respond (the same response to every "
            f"image: {names}); remove them from the file"
        )
    if rec.images is not None:
        digests: dict[bytes, int] = {}
        for i, image in enumerate(rec.images):
            digest = hashlib.sha1(np.ascontiguousarray(image).tobytes()).digest()
            if digest in digests:
                j = digests[digest]
                raise InvalidInputError(
                    f"{where}: images {rec.image_rows[j]['name']} and "
                    f"{rec.image_rows[i]['name']} are identical; give each image once and "
                    "put both presentations' responses in its repeats"
                )
            digests[digest] = i
    found = []
    if raw is not None and raw.shape[2] > 1:
        from ..metrics import snr

        values = snr(raw)
        weak = int(np.sum(~(values >= WEAK_SNR)))
        if weak > len(values) / 2:
            found.append(f"{weak} of {len(values)} neurons have SNR below {WEAK_SNR} (median "
                         f"{np.nanmedian(values):.3f}); check the window and the unit sorting")
    else:
        found.append("no repeats: SNR, r2_ER and split-half R^2 cannot be computed; only raw "
                     "R^2 against these responses")
    return responses, raw, found


def _heldout(heldout, rec: Recording, num_images: int, where: str):
    if heldout is None:
        if rec.heldout is not None:
            return np.asarray(rec.heldout, bool), "explicit (from the source)"
        mask = np.zeros(num_images, bool)
        mask[num_images // 2:] = True
        return mask, "first-half"
    if isinstance(heldout, str | os.PathLike):
        lines = [x.strip() for x in Path(heldout).read_text().splitlines() if x.strip()]
        names = {r["name"]: i for i, r in enumerate(rec.image_rows)}
        names.update({Path(r["name"]).name: i for i, r in enumerate(rec.image_rows)})
        bad = [x for x in lines if x not in names and not x.isdigit()]
        if bad:
            raise InvalidInputError(f"{heldout} names image {bad[0]!r}, which is not among the "
                                    "images; list held-out images by name or index")
        heldout = [names.get(x, int(x) if x.isdigit() else -1) for x in lines]
    index = np.asarray(heldout, dtype=np.int64).reshape(-1)
    if index.size and (index.min() < 0 or index.max() >= num_images):
        raise InvalidInputError(f"held-out image {int(index.max())} does not exist ({num_images} "
                                "images); give indices 0..N-1")
    mask = np.zeros(num_images, bool)
    mask[index] = True
    if mask.sum() < MIN_IMAGES // 2 or (~mask).sum() < MIN_IMAGES // 2:
        raise InvalidInputError(
            f"{where}: the held-out split has {int(mask.sum())} held-out and "
            f"{int((~mask).sum())} fit images; give at least {MIN_IMAGES // 2} of each")
    return mask, "explicit"


def import_session(
    source: str | os.PathLike,
    name: str,
    *,
    responses: str | os.PathLike | None = None,
    order: str | os.PathLike | None = None,
    responses_key: str | None = None,
    images: str | os.PathLike | None = None,
    window_ms: tuple[float, float] = DEFAULT_WINDOW_MS,
    image_column: str | None = None,
    area: str | None = None,
    animal: str | None = None,
    heldout=None,
    out: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
):
    """Import one session of a lab's recordings.

    Args:
        source: an ``.nwb`` file, or (with ``responses``) a folder or zip of images.
        name: the new session's id, ``"dataset:session"`` (e.g. ``"mylab:s01"``).
        responses: plain files only: ``.npy`` / ``.csv`` / HDF5 responses, ``(neurons,
            images)`` or ``(neurons, images, repeats)``.
        order: plain files: a text file naming the image of each response column, one a line
            (default: sorted image names).
        responses_key: the HDF5 dataset holding the responses.
        images: NWB files without images: the folder of the images (sorted names are image
            indices 0, 1, ...; string stimulus ids are matched to file names).
        window_ms: ``(start, stop)`` ms after onset in which spikes are counted (NWB spike
            times and binned counts); default :data:`DEFAULT_WINDOW_MS`.
        image_column: the intervals-table column holding each presentation's image index.
        area: brain area of every neuron (``"V4"``, ``"V1"``, ``"IT"``), overriding the file.
        animal: the animal (default: the NWB subject's id).
        heldout: held-out images: indices, or a text file of image names / indices (default:
            the source's split, else the second half).
        out: folder of datasets to write into (default ``<data dir>/datasets``); the session
            goes to ``out/<dataset>/<session>/`` and ``out`` is registered for this process.
        data_dir: data directory.
        overwrite: replace an existing session of that id.

    Returns:
        The imported session (:class:`~v4compact.data.session.ImportedSession`).

    Raises:
        InvalidInputError: bad input (one line naming the file and the fix); nothing written.
    """
    from ..data.session import ImportedSession

    dataset, session = datasets.parse_name(name)
    start, stop = (float(v) for v in window_ms)
    if not (np.isfinite(start) and np.isfinite(stop)) or stop <= start:
        raise InvalidInputError(f"bad window {start:g}-{stop:g} ms; give START < STOP in ms after "
                                "onset, e.g. --window 50 150")
    root = Path(out) if out is not None else datasets.default_root(data_dir)
    layout.check_free(root, dataset, session, overwrite)  # before any file is read
    source = Path(source)
    if not source.exists():
        raise InvalidInputError(f"{source} not found; give an .nwb file, or a folder / zip of "
                                "images with --responses FILE")
    settings = {"window_ms": [start, stop], "image_column": image_column, "area": area,
                "images": str(images) if images else None, "order": str(order) if order else None,
                "responses": str(responses) if responses else None}
    if source.suffix.lower() == ".nwb":
        if responses is not None:
            raise InvalidInputError(f"{source} is an NWB file; --responses is for plain files "
                                    "(images folder / zip plus a response file)")
        from .nwb import read_nwb

        rec = read_nwb(source, window_ms=(start, stop), image_column=image_column,
                       images_dir=images, area=area)
        where = str(source)
        source_hash = file_sha256(source)
    else:
        if responses is None:
            raise InvalidInputError(
                f"{source} is not an .nwb file; for plain files give the responses too: "
                f"v4compact data import {source} --responses FILE --name {name}")
        from .plain import read_plain

        rec = read_plain(source, responses, order=order, key=responses_key, area=area,
                         animal=animal or "")
        where = f"{responses} with images {source}"
        source_hash = file_sha256(responses)
    if animal:
        rec.animal = animal
        for neuron in rec.neurons:
            neuron["animal"] = animal
    averaged, raw, found = check_recording(rec, where)
    mask, rule = _heldout(heldout, rec, averaged.shape[1], where)
    for text in found:
        warnings.warn(f"{name}: {text}", SessionImportWarning, stacklevel=2)
    units = rec.units or (f"spike counts in {stop - start:g} ms" if rec.meta.get("format") ==
                          "nwb" else "as given (plain file)")
    meta = {"animal": rec.animal, "units": units, "window_ms": rec.window_ms,
            "split_rule": rule,
            "source": {"path": str(source.resolve()), "sha256": source_hash, **rec.meta},
            "settings": settings, "warnings": found}
    folder = layout.write_session(
        root, dataset, session, responses=averaged, raw_responses=raw, images=rec.images,
        neurons=rec.neurons, image_rows=rec.image_rows, heldout=mask, meta=meta,
        overwrite=overwrite)
    if out is not None:
        datasets.register_folder(root)
    return ImportedSession(folder, data_dir)


def export_session(session, out: str | os.PathLike, format: str = "nwb",
                   data_dir: str | os.PathLike | None = None) -> Path:
    """Write a session (release id, imported id, or a loaded session) to one file.

    Args:
        session: ``190923``, ``"mylab:s01"`` or a :class:`~v4compact.data.session.Session`.
        out: the file to write (``.nwb``).
        format: ``"nwb"`` (the only one).

    Returns:
        The file written (validated by pynwb's validator before it is moved into place).
    """
    from ..data.session import Session, load_session
    from .nwb import write_nwb

    if format != "nwb":
        raise InvalidInputError(f"unknown export format {format!r}; choose nwb")
    if not isinstance(session, Session):
        session = load_session(session, data_dir=data_dir)
    return write_nwb(session, out)
