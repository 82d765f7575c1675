"""One recording session: its images, responses, metadata, held-out split and signal quality.

A session of any dataset is a :class:`Session`: the release's (``load_session(190923)``) and
an imported one (``load_session("mylab:s01")``, a :class:`ImportedSession` read from the
layout of :mod:`v4compact.data.layout`) answer the same attributes and methods.

``load_session(190923)`` reads the repeat-averaged responses at once (small) and everything
else lazily: the images are decoded from the zip on first use, the raw responses are loaded on
first access. A file that is not in the data directory raises
:class:`~v4compact.errors.DataNotFoundError` saying how to fetch it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from .. import config
from .. import images as image_ops
from ..errors import CorruptDataError
from . import local, paths
from .catalog import SessionInfo, session_info
from .zipimages import ZipImages

#: Units of the release's responses (and the default of an import).
RELEASE_UNITS = "spike counts per 100 ms"


@dataclass(frozen=True)
class NeuronInfo:
    """Per-neuron metadata (one per row of ``responses``).

    Attributes:
        index: 0-based row.
        name: the recording's own name of the unit (the release: ``"190923/0"``).
        area: brain area, e.g. ``"V4"``, ``"V1"``, ``"IT"`` ("" when not given).
        animal: the animal ("" when not given).
        channel: electrode / channel, when given (``None`` otherwise).
    """

    index: int
    name: str
    area: str
    animal: str
    channel: str | None = None


@dataclass(frozen=True)
class ImageInfo:
    """Per-image metadata (one per column of ``responses``).

    Attributes:
        index: 0-based column.
        name: file or stimulus name (the release: ``image0001.jpg``).
        type: image type when known ("normal", "gaudy", ...; "" otherwise).
        source: where the image came from (file, zip, NWB container).
        heldout: True when the image is in the held-out half of :meth:`Session.heldout_split`.
    """

    index: int
    name: str
    type: str
    source: str
    heldout: bool


class Session:
    """A recording session. Create it with :func:`load_session`.

    Attributes:
        session_id: six-digit id (int), e.g. 190923; ``"dataset:session"`` for an imported one.
        dataset: ``"cowley2023"`` (the release) or the imported dataset's name.
        animal: "WE", "PE" or "RA" (an imported session's own animal, or "").
        split: "train", "validation" or "test"; "imported" for an imported session.
        units: units of :attr:`responses` (``"spike counts per 100 ms"`` for the release).
        window_ms: ``(start, stop)`` of the counting window after image onset in ms, or
            ``None`` where not stated (the release gives 100 ms bins, not their offset).
        num_neurons: recorded neurons.
        num_images: images shown.
        info: the full catalogue record (:class:`~v4compact.data.catalog.SessionInfo`).
        data_dir: the data directory the files are read from.
        responses: float64 ``(num_neurons, num_images)``, spike counts per 100 ms averaged
            over repeats.
    """

    def __init__(
        self,
        info: SessionInfo,
        data_dir: str | os.PathLike | None,
        responses: np.ndarray,
    ):
        self.info = info
        self._data_dir_setting = data_dir  # as given, so error messages say where it came from
        self.session_id = info.session_id
        self.animal = info.animal
        self.split = info.split
        self.num_neurons = info.num_neurons
        self.num_images = info.num_images
        self.data_dir = config.data_dir(data_dir)
        self.responses = responses
        self.dataset = info.dataset
        self.units = RELEASE_UNITS
        self.window_ms: tuple[float, float] | None = None

    @property
    def neurons(self) -> list[NeuronInfo]:
        """Per-neuron metadata, one :class:`NeuronInfo` per row of :attr:`responses`."""
        return [NeuronInfo(k, f"{self.session_id}/{k}", "V4", self.animal)
                for k in range(self.num_neurons)]

    @property
    def image_metadata(self) -> list[ImageInfo]:
        """Per-image metadata, one :class:`ImageInfo` per column of :attr:`responses`."""
        _, held = self.heldout_split()
        heldout = np.zeros(self.num_images, bool)
        heldout[held] = True
        source = paths.images_zip(self.session_id)
        return [ImageInfo(i, f"image{i + 1:04d}.jpg", "", source, bool(heldout[i]))
                for i in range(self.num_images)]

    def __repr__(self) -> str:
        return (
            f"Session({self.session_id}, animal={self.animal!r}, split={self.split!r}, "
            f"num_neurons={self.num_neurons}, num_images={self.num_images})"
        )

    @property
    def neuron_ids(self) -> list[str]:
        """``["190923/0", "190923/1", ...]`` (``["mylab:s01/0", ...]`` for an imported
        session), one per row of :attr:`responses`."""
        return [f"{self.session_id}/{k}" for k in range(self.num_neurons)]

    # -- images ------------------------------------------------------------------------------
    @property
    def has_images(self) -> bool:
        """True when the session's image zip is in the data directory."""
        return (self.data_dir / paths.images_zip(self.session_id)).is_file()

    @cached_property
    def _images(self) -> ZipImages:
        path = local.require(
            paths.images_zip(self.session_id), self._data_dir_setting, f"images:{self.session_id}"
        )
        return ZipImages(path, expected_count=self.num_images)

    @property
    def images(self) -> ZipImages:
        """Lazy ``uint8 (num_images, 112, 112, 3)`` images, read straight from the zip.

        Index it like an array (``session.images[:10]``, ``session.images[[3, 7]]``) or take
        ``np.asarray(session.images)`` for all of them (decoded once, then cached).

        Raises:
            DataNotFoundError: the zip is not in the data directory.
        """
        return self._images

    def image(self, index: int) -> np.ndarray:
        """One image, ``uint8 (112, 112, 3)``; ``index`` is 0-based (``image0001.jpg`` is 0)."""
        return self.images[int(index)]

    def iter_images(self, chunk_size: int = 256) -> Iterator[np.ndarray]:
        """Yield the images in order as ``uint8 (<=chunk_size, 112, 112, 3)`` arrays."""
        return self.images.iter_chunks(chunk_size)

    def _select(self, index) -> np.ndarray:
        return np.asarray(self.images) if index is None else np.asarray(self.images[index])

    def recentered_images(self, index=None) -> np.ndarray:
        """Images ready for the compact models: float32 pixels minus ``IMAGE_MEAN``.

        Args:
            index: int, slice or int array of images (default: all).

        Returns:
            float32 ``(n, 112, 112, 3)`` (or ``(112, 112, 3)`` for an int index).
        """
        return image_ops.recenter(self._select(index))

    @staticmethod
    def uncenter(images: np.ndarray, clip: bool = True) -> np.ndarray:
        """Back from re-centred float32 to pixels 0-255 (see :func:`v4compact.images.uncenter`)."""
        return image_ops.uncenter(images, clip=clip)

    def grayscale_images(self, index=None) -> np.ndarray:
        """Images with luminance in all three channels, ``uint8``, same shape as selected."""
        return image_ops.grayscale(self._select(index))

    def gaudy_images(self, index=None, blur_sigma: float = 0.0) -> np.ndarray:
        """Gaudy versions (each channel thresholded at its mean to 0/255), ``uint8``."""
        return image_ops.gaudy(self._select(index), blur_sigma=blur_sigma)

    # -- responses ---------------------------------------------------------------------------
    @property
    def has_raw_responses(self) -> bool:
        """True when the single-repeat responses are in the data directory."""
        return (self.data_dir / paths.responses_raw(self.session_id)).is_file()

    @cached_property
    def raw_responses(self) -> np.ndarray:
        """float64 ``(num_neurons, num_images, repeats)``, trailing NaN where fewer repeats.

        Raises:
            DataNotFoundError: the raw-response file is not in the data directory.
        """
        path = local.require(
            paths.responses_raw(self.session_id),
            self._data_dir_setting,
            f"raw-responses:{self.session_id}",
        )
        raw = _load_npy(path)
        if raw.ndim != 3 or raw.shape[:2] != (self.num_neurons, self.num_images):
            raise CorruptDataError(
                f"{path} has shape {raw.shape}, expected ({self.num_neurons}, {self.num_images}, "
                "repeats); delete it and fetch it again"
            )
        return raw

    def heldout_split(self) -> tuple[np.ndarray, np.ndarray]:
        """The test-session convention: first half of the images fits, second half is held out.

        Returns:
            ``(fit_indices, heldout_indices)``, int64 arrays of image indices; the fit half has
            ``num_images // 2`` images.
        """
        half = self.num_images // 2
        return np.arange(half), np.arange(half, self.num_images)

    def snr(self) -> np.ndarray:
        """Unbiased SNR per neuron, float64 ``(num_neurons,)`` (see :func:`v4compact.metrics.snr`).

        Raises:
            DataNotFoundError: needs the raw responses, which are not in the data directory.
        """
        from ..metrics import snr

        return snr(self.raw_responses)


def _load_npy(path: Path) -> np.ndarray:
    """A response array; one that holds no number at all (all NaN) is corrupt, not data."""
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise CorruptDataError(
            f"{path} is not a readable .npy file ({err}); delete it and fetch it again"
        ) from err
    if array.size and np.issubdtype(array.dtype, np.number) and not np.isfinite(array).any():
        raise CorruptDataError(
            f"{path} holds no finite response (all NaN or infinite); delete it and fetch it again"
        )
    return array


def load_session(session_id, data_dir: str | os.PathLike | None = None) -> Session:
    """Open one recording session of any dataset.

    Args:
        session_id: a release id (int or str, e.g. 190923), an imported session's id
            (``"mylab:s01"``, see :mod:`v4compact.data.datasets`), or the folder of an
            imported session (a :class:`pathlib.Path`).
        data_dir: data directory; ``None`` resolves it through :func:`v4compact.config.data_dir`.

    Returns:
        A :class:`Session` with the averaged responses loaded; images and raw responses are read
        when first used.

    Raises:
        UnknownSessionError: not a session id (the message lists the valid ones).
        DataNotFoundError: the averaged responses are not in the data directory.
        CorruptDataError: the responses do not have the catalogue's shape.
    """
    from .catalog import parse_session_id
    from .datasets import find_session, is_user_session_id

    if isinstance(session_id, os.PathLike):
        return ImportedSession(Path(session_id), data_dir)
    if is_user_session_id(session_id):
        sid = parse_session_id(session_id)
        if isinstance(sid, str):
            return ImportedSession(find_session(sid, data_dir), data_dir)
        session_id = sid
    info = session_info(session_id)
    rel = paths.responses_averaged(info.session_id)
    path = local.require(rel, data_dir, f"responses:{info.session_id}")
    responses = _load_npy(path)
    if responses.shape != (info.num_neurons, info.num_images):
        raise CorruptDataError(
            f"{path} has shape {responses.shape}, expected ({info.num_neurons}, "
            f"{info.num_images}); delete it and fetch it again"
        )
    responses = responses.astype(np.float64, copy=False)
    responses.flags.writeable = False
    return Session(info, data_dir, responses)


class ImportedSession(Session):
    """A session imported by :func:`v4compact.import_session`, read from its folder
    (:mod:`v4compact.data.layout`). Same interface as a release :class:`Session`; the
    held-out split is the import's (explicit, or the first-half convention).

    Attributes:
        folder: the session folder.
        manifest: its manifest (dict): source, import settings, checksums.
    """

    def __init__(self, folder: Path, data_dir=None):
        from .catalog import session_info_from_manifest
        from .layout import read_manifest, read_table

        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder)
        m = self.manifest
        info = session_info_from_manifest(m)
        responses = _load_npy(self.folder / "responses.npy")
        if responses.shape != (info.num_neurons, info.num_images):
            raise CorruptDataError(
                f"{self.folder / 'responses.npy'} has shape {responses.shape}, expected "
                f"({info.num_neurons}, {info.num_images}); import the session again"
            )
        responses = responses.astype(np.float64, copy=False)
        responses.flags.writeable = False
        super().__init__(info, data_dir, responses)
        self.units = m.get("units", RELEASE_UNITS)
        window = m.get("window_ms")
        self.window_ms = tuple(window) if window else None
        self._neuron_rows = read_table(self.folder / "neurons.csv")
        self._image_rows = read_table(self.folder / "images.csv")
        self._heldout = np.array([row["heldout"] == "1" for row in self._image_rows])
        if len(self._neuron_rows) != info.num_neurons or len(self._heldout) != info.num_images:
            raise CorruptDataError(
                f"{self.folder}: neurons.csv / images.csv do not match the responses' shape "
                f"({info.num_neurons}, {info.num_images}); import the session again"
            )

    def __repr__(self) -> str:
        return (f"ImportedSession({self.session_id!r}, num_neurons={self.num_neurons}, "
                f"num_images={self.num_images}, folder={str(self.folder)!r})")

    @property
    def neurons(self) -> list[NeuronInfo]:
        return [NeuronInfo(int(r["index"]), r["name"], r["area"], r["animal"],
                           r["channel"] or None) for r in self._neuron_rows]

    @property
    def image_metadata(self) -> list[ImageInfo]:
        return [ImageInfo(int(r["index"]), r["name"], r["type"], r["source"], r["heldout"] == "1")
                for r in self._image_rows]

    @property
    def has_images(self) -> bool:
        return (self.folder / "images.npy").is_file()

    def _required(self, name: str, what: str, fix: str) -> Path:
        """``folder/name``, or a :class:`DataNotFoundError` saying ``what`` is missing."""
        path = self.folder / name
        if not path.is_file():
            from ..errors import DataNotFoundError

            raise DataNotFoundError(
                f"session {self.session_id} has no {what} ({path} not found); {fix}")
        return path

    @cached_property
    def _images(self) -> np.ndarray:
        path = self._required("images.npy", "images",
                              "import it again with its images (--images DIR)")
        images = np.load(path, mmap_mode="r", allow_pickle=False)
        if images.shape != (self.num_images, image_ops.IMAGE_SIZE, image_ops.IMAGE_SIZE, 3):
            raise CorruptDataError(f"{path} has shape {images.shape}; import the session again")
        return images

    @property
    def images(self) -> np.ndarray:
        """Read-only ``uint8 (num_images, 112, 112, 3)`` (memory-mapped)."""
        return self._images

    def iter_images(self, chunk_size: int = 256) -> Iterator[np.ndarray]:
        for start in range(0, self.num_images, chunk_size):
            yield np.asarray(self.images[start:start + chunk_size])

    @property
    def has_raw_responses(self) -> bool:
        return (self.folder / "raw_responses.npy").is_file()

    @cached_property
    def raw_responses(self) -> np.ndarray:
        path = self._required("raw_responses.npy", "single-repeat responses",
                              "import it from repeats (NWB spike times, or a (neurons, images, "
                              "repeats) file)")
        raw = _load_npy(path)
        if raw.ndim != 3 or raw.shape[:2] != (self.num_neurons, self.num_images):
            raise CorruptDataError(f"{path} has shape {raw.shape}; import the session again")
        raw.flags.writeable = False
        return raw

    def heldout_split(self) -> tuple[np.ndarray, np.ndarray]:
        """The import's split: ``(fit_indices, heldout_indices)``, int64 image indices."""
        return np.flatnonzero(~self._heldout), np.flatnonzero(self._heldout)
