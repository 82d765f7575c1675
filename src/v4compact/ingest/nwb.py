"""NWB at the edge: the one module that reads and writes NWB files (through pynwb).

:func:`read_nwb` turns an NWB file into a :class:`~v4compact.ingest.recording.Recording`
(numpy arrays and metadata); :func:`write_nwb` writes any session as an NWB file. Nothing
else in the package imports pynwb (install it with ``pip install 'v4compact[nwb]'``).

Accepted layouts (checked in this order; ``docs/data.md`` has the full table):

1. **Responses already in the file** (what :func:`write_nwb` writes): a ``TimeSeries``
   ``single_repeat_responses`` (presentations x units) and / or ``repeat_averaged_responses``
   (images x units) in any processing module or in acquisition.
2. **Binned counts**: an ``ndx-binned-spikes`` ``BinnedAlignedSpikes`` (units x events x
   bins); the bins inside the window are summed; the image of each event is its
   ``condition_indices`` entry, else the presentation with the same onset.
3. **Spike times** in ``Units``: counted in ``[onset + start, onset + stop)``.

Presentations (onset, image index) come from an ``IndexSeries`` in ``/stimulus`` (its
``indexed_images`` names the ``Images`` container) or from an intervals table
(``trials`` or any table of ``/intervals``) with ``start_time`` and an image-index column.
Images come from the ``Images`` container (``order_of_images`` when present, else name
order) - the one in the IndexSeries, else one in ``stimulus_template`` - or from a folder
(``images_dir``), indexed by sorted file name or matched by name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError
from .recording import Recording

#: Columns of an intervals table tried as the image index, in order.
IMAGE_COLUMNS = ("image_index", "stimulus_index", "image_id", "stimulus_id", "stim_id",
                 "image", "stimulus", "stimulus_name", "image_name")
#: Names of the response series this module writes and reads.
RAW_SERIES = "single_repeat_responses"
AVERAGED_SERIES = "repeat_averaged_responses"
#: Seconds between presentations in an exported schedule (the release has no timing).
EXPORT_PERIOD_S = 0.5


def _pynwb():
    try:
        import pynwb
    except ImportError:
        raise InvalidInputError(
            "reading and writing NWB needs pynwb; install it with: pip install 'v4compact[nwb]'"
        ) from None
    return pynwb


def _open(path: Path):
    pynwb = _pynwb()
    try:
        import ndx_binned_spikes  # noqa: F401  (registers BinnedAlignedSpikes when installed)
    except ImportError:
        pass
    try:
        io = pynwb.NWBHDF5IO(str(path), "r", load_namespaces=True)
        return io, io.read()
    except Exception as err:  # h5py / hdmf raise many types for a file that is not NWB
        raise InvalidInputError(
            f"{path} is not a readable NWB file ({type(err).__name__}: "
            f"{' '.join(str(err).split())[:160]}); give an NWB 2.x file written by pynwb / "
            "MatNWB, or plain files with --responses"
        ) from None


def _all_objects(nwb):
    return list(nwb.objects.values())


def _series(nwb, name: str):
    for obj in _all_objects(nwb):
        if getattr(obj, "name", None) == name and type(obj).__name__ == "TimeSeries":
            return obj
    return None


def _timestamps(series) -> np.ndarray:
    if series.timestamps is not None:
        return np.asarray(series.timestamps[:], dtype=np.float64)
    count = len(series.data)
    return series.starting_time + np.arange(count) / series.rate


def _images_of(container, path: Path) -> tuple[np.ndarray, list[str]]:
    """Pixels and names of an ``Images`` container, in ``order_of_images`` (else name) order."""
    from ..models.inputs import as_image_batch

    if container.order_of_images is not None:
        items = list(container.order_of_images.data[:])
    else:
        items = [container.images[k] for k in sorted(container.images)]
    if not items:
        raise InvalidInputError(f"{path}: the Images container {container.name!r} is empty; "
                                "add the images, or give them with --images DIR")
    arrays = []
    for item in items:
        data = np.asarray(item.data[:])
        if data.ndim not in (2, 3) or data.size == 0:
            raise InvalidInputError(
                f"{path}: image {item.name!r} of {container.name!r} has shape {data.shape}; "
                "store (height, width) or (height, width, 3|4) pixels"
            )
        arrays.append(as_image_batch(data, warn=False))
    return np.concatenate(arrays), [item.name for item in items]


def _find_images_container(nwb, path):
    found = [obj for obj in nwb.stimulus_template.values() if type(obj).__name__ == "Images"]
    if len(found) > 1:
        named = [c for c in found if c.name == "stimuli"]
        found = named or found[:1]
    return found[0] if found else None


def _presentations(nwb, path: Path, image_column: str | None):
    """``(onsets (P,) s, image keys (P,), Images container or None, where)``."""
    if image_column is None:
        for obj in nwb.stimulus.values():
            if type(obj).__name__ == "IndexSeries":
                keys = np.asarray(obj.data[:])
                return _timestamps(obj), keys, obj.indexed_images, f"IndexSeries {obj.name!r}"
    tables = ([nwb.trials] if nwb.trials is not None else []) + [
        t for t in (nwb.intervals or {}).values() if t is not nwb.trials]
    columns = (image_column,) if image_column else IMAGE_COLUMNS
    for table in tables:
        for column in columns:
            if column in table.colnames:
                keys = np.asarray(table[column].data[:])
                onsets = np.asarray(table["start_time"].data[:], dtype=np.float64)
                return onsets, keys, None, f"intervals table {table.name!r}, column {column!r}"
    if image_column:
        names = ", ".join(f"{t.name} ({', '.join(t.colnames)})" for t in tables) or "none"
        raise InvalidInputError(
            f"{path}: no intervals table has the column {image_column!r} (tables: {names}); "
            "name the image-index column with --image-column"
        )
    looked = ", ".join(IMAGE_COLUMNS)
    raise InvalidInputError(
        f"{path}: no stimulus presentations found (looked for an IndexSeries in /stimulus and "
        f"for an intervals table with one of the columns {looked}); name the column with "
        "--image-column"
    )


def _image_index(keys: np.ndarray, names: list[str], path: Path, where: str) -> np.ndarray:
    """Presentation keys (indices, or names) -> 0-based image indices, checked."""
    if keys.dtype.kind in "OSU":
        text = [k.decode() if isinstance(k, bytes) else str(k) for k in keys]
        lookup = {n: i for i, n in enumerate(names)}
        lookup.update({Path(n).stem: i for i, n in enumerate(names)})
        missing = sorted({t for t in text if t not in lookup})
        if missing:
            raise InvalidInputError(
                f"{path}: {where} names {len(missing)} image(s) not among the images, e.g. "
                f"{missing[0]!r}; supply them (--images DIR with files of those names)"
            )
        return np.array([lookup[t] for t in text], dtype=np.int64)
    if keys.dtype.kind not in "iu" and not (keys.dtype.kind == "f" and
                                            np.all(np.mod(keys, 1) == 0)):
        raise InvalidInputError(f"{path}: {where} holds {keys.dtype} values, not image "
                                "indices; name the integer image-index column with --image-column")
    index = keys.astype(np.int64)
    bad = index[(index < 0) | (index >= len(names))]
    if bad.size:
        raise InvalidInputError(
            f"{path}: {where} shows image {int(bad[0])}, but there are {len(names)} images "
            f"(0-{len(names) - 1}); supply every image (the Images container or --images DIR)"
        )
    return index


def _group_repeats(per_presentation: np.ndarray, index: np.ndarray, num_images: int):
    """(units, P) counts -> NaN-padded (units, images, repeats), repeats in presentation order."""
    order = np.argsort(index, kind="stable")
    counts = np.bincount(index, minlength=num_images)
    width = int(counts.max()) if counts.size else 0
    raw = np.full((per_presentation.shape[0], num_images, max(width, 1)), np.nan)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.arange(len(index)) - np.repeat(starts, counts)
    raw[:, index[order], slot] = per_presentation[:, order]
    return raw, counts


def _units_meta(nwb, count: int, area: str | None, animal: str) -> list[dict]:
    units = nwb.units
    rows = []
    for k in range(count):
        row = {"name": f"unit{k}", "area": area or "", "animal": animal, "channel": None}
        if units is not None and k < len(units):
            cols = units.colnames
            for key, options in (("name", ("unit_name", "name")),
                                 ("area", ("brain_area", "area", "location")),
                                 ("channel", ("channel", "electrode_name"))):
                for col in options:
                    if col in cols:
                        value = units[col].data[k]
                        value = value.decode() if isinstance(value, bytes) else value
                        if value is not None and str(value) != "":
                            row[key] = str(value)
                        break
            if row["name"] == f"unit{k}":
                row["name"] = f"unit{units.id.data[k]}"
        if area:
            row["area"] = area
        rows.append(row)
    return rows


def _binned(nwb):
    for obj in _all_objects(nwb):
        if type(obj).__name__ == "BinnedAlignedSpikes":
            return obj
    return None


def read_nwb(
    path: str | os.PathLike,
    *,
    window_ms: tuple[float, float],
    image_column: str | None = None,
    images_dir: str | os.PathLike | None = None,
    area: str | None = None,
) -> Recording:
    """Read one NWB file into a :class:`Recording`.

    Args:
        path: the ``.nwb`` file.
        window_ms: ``(start, stop)`` after onset in ms; spikes in ``[start, stop)`` are counted.
        image_column: the intervals-table column holding each presentation's image index.
        images_dir: folder with the images, for files that do not hold them.
        area: brain area of every unit (overrides the file's ``brain_area`` / ``location``).

    Raises:
        InvalidInputError: one line naming what is missing and where it was looked for.
    """
    path = Path(path)
    io, nwb = _open(path)
    try:
        return _read(nwb, path, window_ms, image_column, images_dir, area)
    finally:
        io.close()


def _read(nwb, path, window_ms, image_column, images_dir, area) -> Recording:
    animal = (nwb.subject.subject_id or "") if nwb.subject is not None else ""
    onsets, keys, container, where = _presentations(nwb, path, image_column)
    if images_dir is not None:
        from .plain import read_images

        images, names, sources = read_images(images_dir)
    else:
        container = container or _find_images_container(nwb, path)
        if container is None:
            raise InvalidInputError(
                f"{path} holds no images ({where} points at none and /stimulus_template has "
                "no Images container); give the image files with --images DIR"
            )
        images, names = _images_of(container, path)
        sources = [f"{path.name}:/stimulus_templates/{container.name}/{n}" for n in names]
    index = _image_index(keys, names, path, where)
    meta = {"format": "nwb", "presentations": where, "num_presentations": int(len(index))}
    raw_series, avg_series = _series(nwb, RAW_SERIES), _series(nwb, AVERAGED_SERIES)
    extra = _comments(raw_series or avg_series)
    responses = raw = None
    if raw_series is not None or avg_series is not None:
        meta["counts_from"] = "response series in the file"
        if raw_series is not None:
            data = np.asarray(raw_series.data[:], dtype=np.float64).T
            if data.shape[1] != len(index):
                raise InvalidInputError(
                    f"{path}: {RAW_SERIES} has {data.shape[1]} rows but {where} has "
                    f"{len(index)} presentations; write one row per presentation")
            raw, _ = _group_repeats(data, index, len(names))
        if avg_series is not None:
            responses = np.asarray(avg_series.data[:], dtype=np.float64).T
        window = extra.get("window_ms")
        units = extra.get("units")
    else:
        start, stop = window_ms
        binned = _binned(nwb)
        if binned is not None:
            per = _binned_counts(binned, onsets, index, start, stop, path)
            per, index = per
            meta["counts_from"] = f"BinnedAlignedSpikes {binned.name!r}"
        else:
            per = _spike_counts(nwb, onsets, start, stop, path)
            meta["counts_from"] = "Units spike times"
        raw, _ = _group_repeats(per, index, len(names))
        window, units = [float(start), float(stop)], f"spike counts in {stop - start:g} ms"
    count = (responses if responses is not None else raw).shape[0]
    image_rows = [{"name": n, "type": "", "source": s} for n, s in zip(names, sources,
                                                                       strict=True)]
    heldout = _image_table(nwb, image_rows)
    return Recording(responses=responses, raw_responses=raw, images=images,
                     neurons=_units_meta(nwb, count, area, animal), image_rows=image_rows,
                     heldout=heldout, animal=animal, window_ms=window, units=units,
                     meta=meta)


def _comments(series) -> dict:
    if series is None:
        return {}
    try:
        value = json.loads(series.comments)
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _image_table(nwb, image_rows: list[dict]) -> np.ndarray | None:
    """The held-out flags and types of an ``image_metadata`` table, when the file has one."""
    table = next((o for o in _all_objects(nwb) if getattr(o, "name", None) == "image_metadata"
                  and type(o).__name__ == "DynamicTable"), None)
    if table is None or len(table) != len(image_rows):
        return None
    for column in ("type", "source"):
        if column in table.colnames:
            for row, value in zip(image_rows, table[column].data[:], strict=True):
                row[column] = value.decode() if isinstance(value, bytes) else str(value)
    if "heldout" not in table.colnames:
        return None
    return np.asarray(table["heldout"].data[:]).astype(bool)


def _spike_counts(nwb, onsets, start_ms, stop_ms, path) -> np.ndarray:
    units = nwb.units
    if units is None or "spike_times" not in units.colnames:
        raise InvalidInputError(
            f"{path} holds no responses: no Units table with spike_times, no "
            f"BinnedAlignedSpikes and no {RAW_SERIES} / {AVERAGED_SERIES} series; add the "
            "spike times, or import plain files with --responses"
        )
    ends = np.asarray(units.spike_times_index.data[:], dtype=np.int64)
    flat = np.asarray(units.spike_times_index.target.data[:], dtype=np.float64)
    begins = np.concatenate([[0], ends[:-1]])
    lo, hi = onsets + start_ms / 1000.0, onsets + stop_ms / 1000.0
    out = np.empty((len(ends), len(onsets)))
    for k, (b, e) in enumerate(zip(begins, ends, strict=True)):
        spikes = np.sort(flat[b:e])
        out[k] = np.searchsorted(spikes, hi, "left") - np.searchsorted(spikes, lo, "left")
    return out


def _binned_counts(binned, onsets, index, start_ms, stop_ms, path):
    data = np.asarray(binned.data[:], dtype=np.float64)  # (units, events, bins)
    width, offset = float(binned.bin_width_in_ms), float(binned.event_to_bin_offset_in_ms)
    edges = offset + width * np.arange(data.shape[2] + 1)
    first = np.flatnonzero(np.isclose(edges, start_ms))
    last = np.flatnonzero(np.isclose(edges, stop_ms))
    if not first.size or not last.size or last[0] <= first[0]:
        raise InvalidInputError(
            f"{path}: the bins of {binned.name!r} ({offset:g} ms + {width:g} ms x "
            f"{data.shape[2]}) do not tile the window {start_ms:g}-{stop_ms:g} ms; choose "
            "--window on bin edges"
        )
    counts = data[:, :, first[0]:last[0]].sum(axis=2)
    if binned.condition_indices is not None:
        return counts, np.asarray(binned.condition_indices[:], dtype=np.int64)
    events = np.asarray(binned.event_timestamps[:], dtype=np.float64)
    where = np.searchsorted(onsets, events)
    where = np.clip(where, 0, len(onsets) - 1)
    if not np.allclose(onsets[where], events, atol=1e-6):
        raise InvalidInputError(
            f"{path}: the event_timestamps of {binned.name!r} are not presentation onsets and "
            "it has no condition_indices; store the image index of each event as "
            "condition_indices"
        )
    return counts, index[where]


# -- writing ---------------------------------------------------------------------------------
def write_nwb(session, path: str | os.PathLike) -> Path:
    """Write a session (release or imported) as one NWB file, validated by pynwb.

    Layout: the images as an ``Images`` container ``stimuli`` (``RGBImage`` each,
    ``order_of_images``) in ``/stimulus_templates``; one ``IndexSeries`` ``presentations``
    in ``/stimulus`` (a schedule, one presentation every :data:`EXPORT_PERIOD_S` s: repeat 0
    of every image, then repeat 1...; the release has no timing); ``Units`` with the
    neurons' names, areas and channels (no spike times: the release has counts); in the
    processing module ``responses``, the ``TimeSeries`` ``repeat_averaged_responses``
    (images x neurons) and, with repeats, ``single_repeat_responses`` (presentations x
    neurons), plus the ``image_metadata`` table (name, type, source, held-out flag).

    Returns:
        The file written (atomically: a temporary name renamed into place).
    """
    pynwb = _pynwb()
    import datetime
    import uuid

    from hdmf.common import DynamicTable, VectorData
    from pynwb.base import ImageReferences, Images, TimeSeries
    from pynwb.file import Subject
    from pynwb.image import IndexSeries, RGBImage

    path = Path(path)
    images = np.asarray(session.images) if session.has_images else None
    if images is None:
        raise InvalidInputError(
            f"session {session.session_id} has no images in the data directory; fetch or "
            "import them first (an NWB export holds the images)"
        )
    raw = session.raw_responses if session.has_raw_responses else None
    if raw is not None:
        present = ~np.isnan(raw).all(axis=0)  # (images, repeats)
        rep, img = np.nonzero(present.T)  # repeat-major: repeat 0 of all images first
        per = raw[:, img, rep].T
    else:
        img = np.arange(session.num_images)
        per = None
    onsets = np.arange(len(img)) * EXPORT_PERIOD_S
    first = np.full(session.num_images, np.nan)
    first[img[::-1]] = onsets[::-1]
    nwb = pynwb.NWBFile(
        session_description=f"v4compact export of session {session.session_id}",
        identifier=str(uuid.uuid4()),
        session_start_time=datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC),
        session_id=str(session.session_id),
        subject=Subject(subject_id=session.animal or "unknown", species="Macaca mulatta")
        if session.animal else None,
    )
    metadata = session.image_metadata
    stimuli = [RGBImage(name=m.name, data=images[m.index]) for m in metadata]
    container = Images(name="stimuli", images=stimuli,
                       description=f"the {session.num_images} images of the session, 112x112 "
                       "RGB uint8, in response-column order",
                       order_of_images=ImageReferences(name="order_of_images", data=stimuli))
    nwb.add_stimulus_template(container)
    nwb.add_stimulus(IndexSeries(name="presentations", data=img.astype(np.uint32),
                                 indexed_images=container, unit="N/A", timestamps=onsets,
                                 description="image shown at each onset (a schedule)"))
    for column, text in (("unit_name", "neuron name"), ("brain_area", "brain area"),
                         ("channel", "electrode channel")):
        nwb.add_unit_column(name=column, description=text)
    for neuron in session.neurons:
        nwb.add_unit(unit_name=neuron.name, brain_area=neuron.area or "",
                     channel=neuron.channel or "")
    module = nwb.create_processing_module(name="responses",
                                          description=f"responses of session "
                                          f"{session.session_id} ({session.units})")
    comments = json.dumps({"units": session.units, "window_ms": session.window_ms,
                           "session_id": str(session.session_id)})
    module.add(TimeSeries(name=AVERAGED_SERIES, data=np.ascontiguousarray(session.responses.T),
                          unit=session.units, timestamps=first, comments=comments,
                          description="responses averaged over repeats (images x neurons; "
                          "timestamps: each image's first presentation)"))
    if per is not None:
        module.add(TimeSeries(name=RAW_SERIES, data=np.ascontiguousarray(per),
                              unit=session.units, timestamps=onsets, comments=comments,
                              description="response of each presentation (presentations x "
                              "neurons), the order of the presentations IndexSeries"))
    module.add(DynamicTable(name="image_metadata", description="one row per image",
                            columns=[VectorData(name=n, description=n,
                                                data=[str(getattr(m, n)) for m in metadata])
                                     for n in ("type", "source")] +
                            [VectorData(name="heldout", description="held out from fitting",
                                        data=np.array([m.heldout for m in metadata]))]))
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp.nwb")
    try:
        with pynwb.NWBHDF5IO(str(temporary), "w") as io:
            io.write(nwb)
        problems = validate_nwb(temporary)
        if problems:
            raise InvalidInputError(f"the NWB file for {session.session_id} does not validate: "
                                    f"{problems[0]}")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def validate_nwb(path: str | os.PathLike) -> list[str]:
    """pynwb's schema validation of a file: ``[]`` when it passes, else the problems."""
    pynwb = _pynwb()
    result = pynwb.validate(path=str(path))
    errors = result[0] if isinstance(result, tuple) else result
    return [str(e) for e in errors]
