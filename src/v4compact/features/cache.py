"""A disk cache of backbone features: one memory-mapped ``.npy`` file per backbone and image set.

Layout under the cache root (default ``<per-user cache>/features``, see
:func:`v4compact.config.default_cache_dir`)::

    <root>/<backbone spec>-<hash>/backbone.json        what the folder holds (the backbone key)
    <root>/<backbone spec>-<hash>/<image set>.npy      float16 or float32 (N, H, W, C)

The folder's hash covers :attr:`~v4compact.models.teachers.backbones.Backbone.cache_key` (weights,
layer, preprocessing, input size, pooling) and the stored dtype, so features of another
backbone or preprocessing are never mixed up; the image set names the images (e.g.
``"session201025"``) and the file records how many there are.

Writes are safe against interruption: features are written to a temporary file in the same
folder and renamed to the final name only when complete (``os.replace`` is atomic), so a
killed run leaves no partial file under the final name and two processes computing the same
features both leave a complete file.

float16 halves the disk space; its rounding error is ``2^-11`` of each value (measured on
real features in ``tests/features/test_cache.py``: at most 4.6e-3 of the features' s.d.).
Values beyond float16's range (65504) raise an error that suggests ``dtype="float32"``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from pathlib import Path

import numpy as np

from .. import config
from ..errors import CorruptDataError, InvalidInputError

__all__ = ["DTYPES", "FeatureCache", "session_features"]

#: Storage types of the cached features.
DTYPES = ("float16", "float32")
#: Storage type of cached backbone features for training and evaluating ensembles: float32,
#: so that training sees the backbone's exact features.
FEATURE_CACHE_DTYPE = "float32"
_FLOAT16_MAX = float(np.finfo(np.float16).max)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:60] or "backbone"


class FeatureCache:
    """Backbone features on disk, computed once per backbone and image set.

    Args:
        root: cache folder (default: ``<per-user cache>/features``).
        dtype: ``"float16"`` (default, half the space) or ``"float32"``.
    """

    def __init__(self, root: str | os.PathLike | None = None, dtype: str = "float16") -> None:
        if dtype not in DTYPES:
            raise InvalidInputError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        self.root = Path(root) if root is not None else config.default_cache_dir() / "features"
        self.dtype = dtype

    def folder(self, backbone) -> Path:
        """The folder of one backbone's features.

        Raises:
            InvalidInputError: a backbone without a stable identity (a user's module).
        """
        key = backbone.cache_key
        if not key:
            raise InvalidInputError(
                f"backbone {backbone.spec!r} has no stable identity to cache its features "
                "under; load it with load_backbone(<spec>) or compute features directly"
            )
        digest = hashlib.sha256(f"{key}|{self.dtype}".encode()).hexdigest()[:12]
        return self.root / f"{_slug(backbone.spec)}-{digest}"

    def path(self, backbone, image_set: str) -> Path:
        """The file of one backbone's features of one image set."""
        if not re.fullmatch(r"[A-Za-z0-9._-]+", str(image_set)):
            raise InvalidInputError(
                f"image set name {image_set!r} must use letters, digits, '.', '_' or '-'"
            )
        return self.folder(backbone) / f"{image_set}.npy"

    def features(self, backbone, images, image_set: str, batch_size: int = 32,
                 progress: bool = False) -> np.ndarray:
        """The backbone's features of ``images``, from the cache or computed and stored.

        Args:
            backbone: a :class:`~v4compact.models.teachers.backbones.Backbone` with a ``cache_key``.
            images: the image set's images, uint8 ``(N, 112, 112, 3)`` or a lazy
                ``session.images``; read only when the features are not cached yet.
            image_set: the name of the image set (e.g. ``"session201025"``).
            batch_size: images per forward pass when computing.
            progress: show a progress bar when computing.

        Returns:
            Read-only memory-mapped ``(N, H, W, C)`` array of the cache's dtype.

        Raises:
            InvalidInputError: cached features of this image set hold another number of
                images (the name is used for other images), or values overflow float16.
            CorruptDataError: the cached file is unreadable.
        """
        path = self.path(backbone, image_set)
        if not path.is_file():
            self._write(backbone, images, path, batch_size, progress)
        try:
            cached = np.load(path, mmap_mode="r")
        except (ValueError, OSError) as err:
            raise CorruptDataError(
                f"cached features {path} are unreadable ({err}); delete the file to recompute"
            ) from None
        if len(cached) != len(images):
            raise InvalidInputError(
                f"cached features {path.name} of {backbone.spec} hold {len(cached)} images, "
                f"{len(images)} were given; use another image set name for other images"
            )
        return cached

    def _write(self, backbone, images, path: Path, batch_size: int, progress: bool) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        info = path.parent / "backbone.json"
        if not info.is_file():
            self._atomic_text(info, json.dumps({"spec": backbone.spec, "key": backbone.cache_key,
                                                "dtype": self.dtype}, indent=1))
        channels, height, width = backbone.output_shape
        shape = (len(images), height, width, channels)
        tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex}.tmp.npy")
        starts = range(0, len(images), batch_size)
        if progress:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc=f"{backbone.spec} features", unit="batch")
        try:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=self.dtype, shape=shape)
            staging = np.empty((min(batch_size, len(images)), height, width, channels),
                               dtype=np.float32)
            for start in starts:
                chunk = np.asarray(images[start:start + batch_size])
                block = backbone.features(chunk, batch_size=batch_size,
                                          out=staging[:len(chunk)])
                if self.dtype == "float16" and np.abs(block).max() > _FLOAT16_MAX:
                    raise InvalidInputError(
                        f"features of {backbone.spec} exceed float16's range; use "
                        "FeatureCache(dtype='float32')"
                    )
                out[start:start + len(chunk)] = block
            out.flush()
            del out
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    @staticmethod
    def _atomic_text(path: Path, text: str) -> None:
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)


def session_features(backbone, session, cache: FeatureCache | None = None,
                     batch_size: int = 32, progress: bool = False) -> np.ndarray:
    """Features of all images of a session, cached on disk.

    Args:
        backbone: a :class:`~v4compact.models.teachers.backbones.Backbone`.
        session: a :class:`~v4compact.data.session.Session` (its images are read lazily,
            only when not cached).
        cache: the cache (default: ``FeatureCache()``, float16 in the per-user cache).
        batch_size, progress: as for :meth:`FeatureCache.features`.

    Returns:
        Read-only memory-mapped ``(num_images, H, W, C)``.
    """
    cache = cache or FeatureCache()
    return cache.features(backbone, session.images, f"session{session.session_id}",
                          batch_size=batch_size, progress=progress)
