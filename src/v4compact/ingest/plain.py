"""Plain files: images as a folder or zip, responses as ``.npy``, ``.csv`` or HDF5.

Images go through the one image path (:func:`v4compact.models.inputs.as_image_batch`: any
size and mode -> ``uint8 (N, 112, 112, 3)``). Responses are ``(neurons, images)`` (averaged)
or ``(neurons, images, repeats)`` (single repeats, NaN where an image was shown fewer times);
column ``j`` is the ``j``-th image in sorted name order, or the image named on line ``j`` of
an order file.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError, V4CompactError
from .recording import Recording

#: Response file suffixes read.
RESPONSE_SUFFIXES = (".npy", ".csv", ".h5", ".hdf5")


def _decode(data, name: str, where: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    from ..models.inputs import as_image_batch

    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as image:
            image.load()
            return as_image_batch(image, warn=False)
    except (OSError, UnidentifiedImageError, ValueError, V4CompactError) as err:
        raise InvalidInputError(
            f"image {name} in {where} does not decode ({' '.join(str(err).split())[:80]}); "
            "replace or remove the file"
        ) from None


def read_images(source: str | os.PathLike) -> tuple[np.ndarray, list[str], list[str]]:
    """Images of a folder or a zip, in sorted name order.

    Returns:
        ``(uint8 (N, 112, 112, 3), names, sources)``.

    Raises:
        InvalidInputError: missing, empty, not a folder / zip, or an image that does not decode.
    """
    from ..models.inputs import IMAGE_EXTENSIONS

    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.iterdir()
                       if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            kinds = ", ".join(IMAGE_EXTENSIONS)
            raise InvalidInputError(f"{source} holds no image files ({kinds}); give the "
                                    "folder of the images shown")
        arrays = [_decode(p, p.name, str(source)) for p in files]
        return np.concatenate(arrays), [p.name for p in files], [str(p) for p in files]
    if not source.exists():
        raise InvalidInputError(f"images {source} not found; give a folder or a .zip of images")
    if not zipfile.is_zipfile(source):
        raise InvalidInputError(f"{source} is neither a folder nor a zip of images; give one")
    with zipfile.ZipFile(source) as archive:
        members = sorted(i.filename for i in archive.infolist()
                         if not i.is_dir() and Path(i.filename).suffix.lower() in IMAGE_EXTENSIONS
                         and not Path(i.filename).name.startswith("."))
        if not members:
            raise InvalidInputError(f"{source} holds no image files; give a zip of images")
        arrays = [_decode(archive.read(m), m, str(source)) for m in members]
    return np.concatenate(arrays), members, [f"{source.name}:{m}" for m in members]


def read_responses(path: str | os.PathLike, key: str | None = None) -> np.ndarray:
    """A response array from ``.npy``, ``.csv`` (neurons x images, no header) or HDF5.

    Args:
        path: the file.
        key: the HDF5 dataset (default: the only one, else one named ``responses``).

    Raises:
        InvalidInputError: missing, unreadable, not numeric, or not 2-d / 3-d.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"responses {path} not found; give the file with --responses")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        elif suffix == ".csv":
            array = np.loadtxt(path, delimiter=",", ndmin=2)
        elif suffix in (".h5", ".hdf5"):
            array = _read_h5(path, key)
        else:
            raise InvalidInputError(
                f"{path}: responses must be {', '.join(RESPONSE_SUFFIXES)}; convert the file")
    except InvalidInputError:
        raise
    except (ValueError, OSError) as err:
        raise InvalidInputError(
            f"{path} is not a readable numeric {suffix} file ({' '.join(str(err).split())[:90]});"
            " write numbers only (no header row)"
        ) from None
    if not np.issubdtype(array.dtype, np.number) or array.dtype.kind == "c":
        raise InvalidInputError(f"{path} holds {array.dtype} values; write real numbers")
    if array.ndim not in (2, 3):
        raise InvalidInputError(
            f"{path} has shape {array.shape}; write (neurons, images) or (neurons, images, "
            "repeats)"
        )
    return array.astype(np.float64)


def _read_h5(path: Path, key: str | None) -> np.ndarray:
    import h5py

    with h5py.File(path, "r") as fh:
        names: list[str] = []
        fh.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        if key is None:
            if len(names) == 1:
                key = names[0]
            elif "responses" in names:
                key = "responses"
            else:
                raise InvalidInputError(
                    f"{path} holds {len(names)} datasets ({', '.join(names[:5]) or 'none'}); "
                    "name the responses with --responses-key"
                )
        if key not in fh or not isinstance(fh[key], h5py.Dataset):
            raise InvalidInputError(f"{path} has no dataset {key!r} (it has "
                                    f"{', '.join(names[:5]) or 'none'}); fix --responses-key")
        return np.asarray(fh[key][()])


def read_order(path: str | os.PathLike, names: list[str]) -> np.ndarray:
    """Image indices of the response columns from an order file (one image name a line).

    Raises:
        InvalidInputError: a name that is not among the images, or a name given twice.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"order file {path} not found; give a text file with one image "
                                "name a line")
    lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    lookup = {n: i for i, n in enumerate(names)}
    lookup.update({Path(n).name: i for i, n in enumerate(names)})
    missing = [line for line in lines if line not in lookup]
    if missing:
        raise InvalidInputError(
            f"{path} names {len(missing)} image(s) that are not among the images, e.g. "
            f"{missing[0]!r}; add the image or fix the name"
        )
    index = np.array([lookup[line] for line in lines], dtype=np.int64)
    if len(set(index.tolist())) != len(index):
        raise InvalidInputError(f"{path} names an image twice; list each image once")
    return index


def read_plain(images: str | os.PathLike, responses: str | os.PathLike, *,
               order: str | os.PathLike | None = None, key: str | None = None,
               area: str | None = None, animal: str = "") -> Recording:
    """Images plus a response file -> :class:`Recording` (see the module docstring)."""
    array = read_responses(responses, key)
    pixels, names, sources = read_images(images)
    if order is not None:
        index = read_order(order, names)
        pixels, names, sources = pixels[index], [names[i] for i in index], \
            [sources[i] for i in index]
    raw = array if array.ndim == 3 else None
    averaged = array if array.ndim == 2 else None
    neurons = [{"name": f"neuron{k}", "area": area or "", "animal": animal, "channel": None}
               for k in range(array.shape[0])]
    rows = [{"name": n, "type": "", "source": s} for n, s in zip(names, sources, strict=True)]
    return Recording(responses=averaged, raw_responses=raw, images=pixels, neurons=neurons,
                     image_rows=rows, animal=animal,
                     meta={"format": "plain", "responses_file": str(responses),
                           "responses_shape": list(array.shape)})
