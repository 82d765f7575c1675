"""Lazy reader of a session's JPEG images, straight from the release zip (nothing extracted).

:class:`ZipImages` behaves like a read-only ``uint8`` array ``(num_images, 112, 112, 3)``:
``len``, integer / slice / integer-array indexing, ``np.asarray``, iteration, and
:meth:`ZipImages.iter_chunks` for sessions too large to hold at once. JPEGs are decoded with
Pillow in a thread pool (Pillow releases the GIL while decoding). Members are read by offset
through a file handle per decoding task and inflated with zlib (CRC-checked), which avoids most of
``zipfile``'s per-member overhead; one object may be used from several threads.
"""

from __future__ import annotations

import io
import os
import struct
import threading
import zipfile
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import CorruptDataError, InvalidInputError
from ..images import IMAGE_SIZE

_IMAGE_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, 3)
# Below this many images a thread pool costs more than it saves.
_PARALLEL_MIN = 64


def _default_workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


class ZipImages:
    """The JPEG images of a zip, in file-name order, as a lazy ``uint8`` array.

    Args:
        path: the zip file (``images_<session>.zip``; JPEGs ``image0001.jpg`` ... inside).
        expected_count: if given, the number of JPEGs the zip must hold.
        cache: keep the whole decoded array after the first full read (``np.asarray``),
            so later indexing is free. 1,200 images take 45 MB.
        num_workers: decoding threads (default: CPU count, at most 8).

    Raises:
        CorruptDataError: not a readable zip, or not the expected number of JPEGs.
    """

    dtype = np.dtype(np.uint8)
    ndim = 4

    def __init__(
        self,
        path: str | os.PathLike,
        expected_count: int | None = None,
        cache: bool = True,
        num_workers: int | None = None,
    ):
        self.path = Path(path)
        self._cache_enabled = cache
        self._cache: np.ndarray | None = None
        self._cache_lock = threading.Lock()
        self.num_workers = num_workers or _default_workers()
        try:
            with zipfile.ZipFile(self.path) as archive:
                infos = [i for i in archive.infolist()
                         if i.filename.lower().endswith((".jpg", ".jpeg"))]
        except (zipfile.BadZipFile, OSError) as err:
            raise CorruptDataError(
                f"{self.path} is not a readable zip ({err}); delete it and fetch it again"
            ) from err
        # image0001.jpg ... are zero-padded, so name order is presentation order
        infos.sort(key=lambda i: i.filename)
        self._infos: list[zipfile.ZipInfo] = infos
        self.names: list[str] = [i.filename for i in infos]
        self._data_offsets: list[int] | None = None
        if expected_count is not None and len(self.names) != expected_count:
            raise CorruptDataError(
                f"{self.path} holds {len(self.names)} JPEG images, expected {expected_count}; "
                "delete it and fetch it again"
            )

    # -- numpy-like protocol -------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(num_images, 112, 112, 3)``."""
        return (len(self.names), *_IMAGE_SHAPE)

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        return f"ZipImages({str(self.path)!r}, shape={self.shape}, dtype=uint8)"

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        array = self.load()
        if dtype is not None and np.dtype(dtype) != array.dtype:
            return array.astype(dtype)
        return array.copy() if copy else array

    def __getitem__(self, index) -> np.ndarray:
        """Images by integer (``(112,112,3)``), slice or integer array (``(n,112,112,3)``)."""
        if isinstance(index, tuple):  # images[3, :10] or images[:5, ..., 0]: select, then index
            if not index:
                return self.load()
            first = self[index[0]]
            if isinstance(index[0], (int, np.integer)):
                return first[index[1:]]
            return first[(slice(None), *index[1:])]
        if isinstance(index, (int, np.integer)):
            return self._read([self._check_int(index)])[0]
        if isinstance(index, slice):
            return self._read(list(range(*index.indices(len(self)))))
        indices = np.asarray(index)
        if indices.dtype == bool:
            if indices.shape != (len(self),):
                raise InvalidInputError(
                    f"boolean mask of shape {indices.shape} for {len(self)} images; "
                    f"use a mask of shape ({len(self)},)"
                )
            indices = np.flatnonzero(indices)
        if not np.issubdtype(indices.dtype, np.integer) or indices.ndim != 1:
            raise InvalidInputError(
                f"cannot index images with {index!r}; use an int, a slice, or a 1-d int array"
            )
        return self._read([self._check_int(i) for i in indices])

    def __iter__(self) -> Iterator[np.ndarray]:
        for chunk in self.iter_chunks():
            yield from chunk

    def _check_int(self, i) -> int:
        n = len(self)
        i = int(i)
        if not -n <= i < n:
            raise InvalidInputError(f"image index {i} out of range for {n} images (0..{n - 1})")
        return i % n

    # -- reading ---------------------------------------------------------------------------
    def load(self) -> np.ndarray:
        """All images, ``uint8 (num_images, 112, 112, 3)``; cached when ``cache`` is on."""
        if self._cache is not None:
            return self._cache
        with self._cache_lock:
            if self._cache is None:
                array = self._decode(list(range(len(self))))
                array.flags.writeable = False  # shared by every caller: keep it read-only
                if not self._cache_enabled:
                    return array
                self._cache = array
        return self._cache

    def iter_chunks(self, chunk_size: int = 256) -> Iterator[np.ndarray]:
        """Yield the images in order, ``uint8 (<=chunk_size, 112, 112, 3)`` at a time."""
        if chunk_size < 1:
            raise InvalidInputError(f"chunk_size must be >= 1, got {chunk_size}")
        for start in range(0, len(self), chunk_size):
            yield self[start : start + chunk_size]

    def _read(self, indices: list[int]) -> np.ndarray:
        if self._cache is not None:
            return self._cache[indices]
        return self._decode(indices)

    def _offsets(self) -> list[int]:
        """Where each member's data starts (after its local header), read once."""
        if self._data_offsets is None:
            offsets = []
            with open(self.path, "rb") as fh:
                for info in self._infos:
                    fh.seek(info.header_offset)
                    header = fh.read(30)
                    if len(header) != 30 or header[:4] != b"PK\x03\x04":
                        raise CorruptDataError(
                            f"{self.path}: bad local header for {info.filename}; "
                            "delete the zip and fetch it again"
                        )
                    name_len, extra_len = struct.unpack("<HH", header[26:30])
                    offsets.append(info.header_offset + 30 + name_len + extra_len)
            self._data_offsets = offsets
        return self._data_offsets

    def _member(self, i: int, handle) -> bytes:
        info = self._infos[i]
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            with zipfile.ZipFile(self.path) as archive:  # rare methods: let zipfile do it
                return archive.read(info)
        handle.seek(self._offsets()[i])
        raw = handle.read(info.compress_size)
        data = zlib.decompress(raw, -15) if info.compress_type == zipfile.ZIP_DEFLATED else raw
        if zlib.crc32(data) != info.CRC:
            raise zlib.error("CRC mismatch")
        return data

    def _decode_one(self, i: int, out: np.ndarray, k: int, handle) -> None:
        name = self.names[i]
        try:
            with Image.open(io.BytesIO(self._member(i, handle)), formats=("JPEG",)) as image:
                if image.mode != "RGB":
                    image = image.convert("RGB")
                size, raw = image.size, image.tobytes()
        except (OSError, zlib.error, ValueError) as err:
            raise CorruptDataError(
                f"cannot decode {name} in {self.path} ({err}); delete the zip and fetch it again"
            ) from err
        if size != (IMAGE_SIZE, IMAGE_SIZE):
            raise CorruptDataError(
                f"{name} in {self.path} is {size[0]}x{size[1]}, "
                f"expected {IMAGE_SIZE}x{IMAGE_SIZE} RGB"
            )
        out[k] = np.frombuffer(raw, dtype=np.uint8).reshape(_IMAGE_SHAPE)

    def _decode(self, indices: list[int]) -> np.ndarray:
        out = np.empty((len(indices), *_IMAGE_SHAPE), dtype=np.uint8)
        self._offsets()

        def work(positions) -> None:
            # each task reads through its own handle: no file position shared between threads
            with open(self.path, "rb") as handle:
                for k in positions:
                    self._decode_one(indices[k], out, k, handle)

        if len(indices) < _PARALLEL_MIN or self.num_workers == 1:
            work(range(len(indices)))
            return out
        # a few contiguous blocks per thread keep the per-task overhead small
        blocks = np.array_split(np.arange(len(indices)), self.num_workers * 4)
        with ThreadPoolExecutor(max_workers=self.num_workers) as pool:
            for future in [pool.submit(work, block) for block in blocks if len(block)]:
                future.result()
        return out
