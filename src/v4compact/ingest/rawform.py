"""A session's single-repeat counts written back in the raw form labs record: spike times.

:func:`write_spike_nwb` turns the counts of a session with repeats (``raw_responses``,
neurons x images x repeats) into an NWB file as an acquisition system would leave it:
one presentation per (image, repeat), shown in a seeded random order within each repeat
block every ``period_s`` seconds; for each count ``c`` of a presentation, ``c`` spike times
drawn uniformly inside the counting window after its onset, plus spontaneous spikes
outside the window (which an import with the right window must not count). It is how the
importer is checked against the field's raw layout (``import`` must recover every count),
and how the tutorial makes "a lab's file" from release data.

Layouts (``layout=``):

- ``"indexseries"``: the DiCarlo-lab conversions' layout: an ``Images`` container
  ``stimuli`` with ``order_of_images`` in ``/stimulus_templates``, an ``IndexSeries``
  ``presentations`` in ``/stimulus``, ``Units`` with spike times, and a ``trials`` table;
- ``"trials"``: the images in ``/stimulus_templates``, the presentations only as a trials
  table with an integer ``stimulus_index`` column;
- ``"external"``: no image in the file (as DANDI:001357); the trials table's
  ``stimulus_name`` names each image's file (``image0001.png``...), which
  :func:`write_image_folder` writes (``import --images DIR``);
- ``"binned"``: ``ndx-binned-spikes``' ``BinnedAlignedSpikes`` (units x events x 10 ms bins
  from -50 to 250 ms) with each event's image as ``condition_indices``, no spike times.
"""

from __future__ import annotations

import datetime
import os
import uuid
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError
from .api import DEFAULT_WINDOW_MS

LAYOUTS = ("indexseries", "trials", "external", "binned")
#: Presentation period of the written schedule, s (onset to onset).
PERIOD_S = 0.4
#: Bins of the ``binned`` layout: width and offset of the first bin from onset, ms.
BIN_WIDTH_MS, BIN_OFFSET_MS, NUM_BINS = 10.0, -50.0, 30


def _schedule(raw: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """``(image, repeat)`` of each presentation: repeat blocks in order, images shuffled
    within each block (so an image's r-th presentation is its repeat r)."""
    shown = ~np.isnan(raw).all(axis=0)  # (images, repeats)
    images, repeats = [], []
    for r in range(raw.shape[2]):
        block = rng.permutation(np.flatnonzero(shown[:, r]))
        images.append(block)
        repeats.append(np.full(len(block), r))
    return np.concatenate(images), np.concatenate(repeats)


def _spike_trains(counts: np.ndarray, onsets: np.ndarray, window_ms, rng,
                  spontaneous_hz: float) -> list[np.ndarray]:
    """Per unit, sorted spike times (s): ``counts[k, p]`` inside each window, plus
    spontaneous spikes before and after it."""
    start, stop = (v / 1000.0 for v in window_ms)
    trains = []
    for k in range(counts.shape[0]):
        c = counts[k].astype(np.int64)
        inside = np.repeat(onsets, c) + rng.uniform(start, stop, c.sum())
        outside_span = PERIOD_S - (stop - start)
        n_out = rng.poisson(spontaneous_hz * outside_span, len(onsets))
        offset = rng.uniform(0.0, outside_span, n_out.sum())
        offset = np.where(offset < start, offset, offset + (stop - start))  # skip the window
        outside = np.repeat(onsets, n_out) + offset
        trains.append(np.sort(np.concatenate([inside, outside])))
    return trains


def write_image_folder(session, folder: str | os.PathLike) -> Path:
    """The session's images as PNG files ``image0001.png``... (lossless), for the
    ``external`` layout's ``--images DIR``."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, pixels in enumerate(np.asarray(session.images)):
        Image.fromarray(pixels).save(folder / f"image{i + 1:04d}.png")
    return folder


def write_spike_nwb(session, path: str | os.PathLike, *, layout: str = "indexseries",
                    window_ms=DEFAULT_WINDOW_MS, seed: int = 0,
                    spontaneous_hz: float = 5.0, area: str = "V4") -> Path:
    """Write a session with single-repeat counts as a raw NWB file (see the module doc).

    Args:
        session: a :class:`~v4compact.data.session.Session` with ``raw_responses``
            (integer spike counts, NaN where an image was not shown) and images.
        path: the ``.nwb`` file to write.
        layout: one of :data:`LAYOUTS`.
        window_ms: ``(start, stop)`` after onset where each count's spikes are placed.
        seed: seed of the presentation order and the spike times.
        spontaneous_hz: rate of the spikes placed outside the window.
        area: the ``location`` written for every unit.

    Returns:
        The file written.
    """
    import pynwb
    from pynwb.base import ImageReferences, Images
    from pynwb.image import IndexSeries, RGBImage

    if layout not in LAYOUTS:
        raise InvalidInputError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    raw = np.asarray(session.raw_responses)
    values = raw[~np.isnan(raw)]
    if (values < 0).any() or not np.all(values == np.round(values)):
        raise InvalidInputError(f"session {session.session_id}: raw responses are not spike "
                                "counts (non-negative integers); spike times need counts")
    rng = np.random.default_rng(seed)
    image, repeat = _schedule(raw, rng)
    onsets = 1.0 + np.arange(len(image)) * PERIOD_S
    counts = raw[:, image, repeat]  # (units, presentations)
    nwb = pynwb.NWBFile(
        session_description=f"spike times rebuilt from single-repeat counts ({layout} layout)",
        identifier=str(uuid.uuid4()),
        session_start_time=datetime.datetime(2021, 3, 25, tzinfo=datetime.UTC),
        subject=pynwb.file.Subject(subject_id=session.animal or "unknown",
                                   species="Macaca mulatta"),
    )
    pixels = np.asarray(session.images)
    container = None
    if layout in ("indexseries", "trials", "binned"):
        stimuli = [RGBImage(name=f"image{i + 1:04d}", data=pixels[i])
                   for i in range(session.num_images)]
        container = Images(name="stimuli", images=stimuli, description="the images shown",
                           order_of_images=ImageReferences(name="order_of_images",
                                                           data=stimuli))
        nwb.add_stimulus_template(container)
    if layout in ("indexseries", "binned"):
        nwb.add_stimulus(IndexSeries(name="presentations", data=image.astype(np.uint32),
                                     indexed_images=container, unit="N/A", timestamps=onsets,
                                     description="index of the image shown at each onset"))
    if layout != "binned":
        nwb.add_trial_column(name="stimulus_index" if layout != "external" else
                             "stimulus_name", description="the image shown")
        for p, onset in enumerate(onsets):
            key = int(image[p]) if layout != "external" else f"image{image[p] + 1:04d}"
            column = "stimulus_index" if layout != "external" else "stimulus_name"
            nwb.add_trial(start_time=onset, stop_time=onset + 0.3, **{column: key})
    nwb.add_unit_column(name="location", description="brain area")
    if layout == "binned":
        edges = BIN_OFFSET_MS + BIN_WIDTH_MS * np.arange(NUM_BINS + 1)
        trains = _spike_trains(counts, onsets, window_ms, rng, spontaneous_hz)
        data = np.stack([
            np.stack([np.histogram((t[(t >= o - 0.1) & (t < o + 0.4)] - o) * 1000.0,
                                   edges)[0] for o in onsets])
            for t in trains]).astype(np.uint32)
        for _ in range(raw.shape[0]):
            nwb.add_unit(location=area)
        from ndx_binned_spikes import BinnedAlignedSpikes

        module = nwb.create_processing_module(name="ecephys", description="binned spikes")
        module.add(BinnedAlignedSpikes(
            name="BinnedAlignedSpikes", bin_width_in_ms=BIN_WIDTH_MS,
            event_to_bin_offset_in_ms=BIN_OFFSET_MS, data=data, event_timestamps=onsets,
            condition_indices=image.astype(np.uint64),
            units_region=nwb.units.create_region(name="units_region",
                                                 region=list(range(raw.shape[0])),
                                                 description="all units")))
    else:
        for train in _spike_trains(counts, onsets, window_ms, rng, spontaneous_hz):
            nwb.add_unit(spike_times=train, location=area)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path
