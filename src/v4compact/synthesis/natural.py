"""Natural preferred stimuli: rank an image collection by a model's predicted response.

Sources (:func:`load_image_collection`): ``"session:201025"`` (a recording session's
images), a folder of PNG/JPEG files, a zip of JPEGs, or an array ``(N, 112, 112, 3)``.
For a session's own recorded neuron the images can also be ranked by the measured
(repeat-averaged) response, side by side with the model's ranking
(:func:`~v4compact.figures.synthesis.ranking_figure`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataNotFoundError, InvalidInputError
from ..models.inputs import IMAGE_EXTENSIONS, as_image_batch, list_image_files
from ..models.predict import predict
from ..models.zoo import split_neuron_id
from .objectives import resolve_columns

__all__ = ["ImageCollection", "Ranking", "load_image_collection", "rank_images", "rank_predictions"]


@dataclass
class ImageCollection:
    """Images with a label of where they came from.

    Attributes:
        images: uint8 ``(N, 112, 112, 3)`` (or a lazy array-like of that shape).
        source: description, e.g. ``"session:201025"`` or a path.
        names: one name per image (file names, or ``"image0001"``-style for sessions).
        session: the :class:`~v4compact.data.session.Session` when the source is one.
    """

    images: object
    source: str
    names: list[str]
    session: object = None

    def __len__(self) -> int:
        return len(self.images)


def load_image_collection(source, data_dir: str | os.PathLike | None = None) -> ImageCollection:
    """Resolve an image source.

    Args:
        source: ``"session:ID"``; a folder of images (other sizes centre-cropped and resized
            to 112x112, :func:`~v4compact.models.inputs.as_image_batch`); a
            ``.zip`` of JPEGs; or an array ``(N, 112, 112, 3)`` pixels 0-255.
        data_dir: data directory for sessions (default: the package setting).

    Returns:
        An :class:`ImageCollection`.

    Raises:
        DataNotFoundError: a path that does not exist; InvalidInputError: an empty folder
        or a badly shaped array.
    """
    if isinstance(source, np.ndarray):
        arr = as_image_batch(source)
        return ImageCollection(arr, "array", [f"image{i:04d}" for i in range(len(arr))])
    text = str(source)
    if text.startswith("session:"):
        from ..data.session import load_session

        session = load_session(text.split(":", 1)[1], data_dir=data_dir)
        names = [f"image{i + 1:04d}" for i in range(session.num_images)]
        return ImageCollection(session.images, text, names, session=session)
    path = Path(text).expanduser()
    if not path.exists():
        raise DataNotFoundError(
            f"image source {text!r} does not exist; give 'session:ID', a folder of images or "
            "a zip of JPEGs"
        )
    if path.is_dir():
        files = list_image_files(path)
        return ImageCollection(as_image_batch(files), str(path), [p.name for p in files])
    if path.suffix.lower() == ".zip":
        from ..data.zipimages import ZipImages

        zipped = ZipImages(path)
        if len(zipped) == 0:
            raise InvalidInputError(f"zip {path} holds no JPEG images")
        return ImageCollection(zipped, str(path), [Path(n).stem for n in zipped.names])
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return ImageCollection(as_image_batch(path), str(path), [path.name])
    raise InvalidInputError(f"cannot read images from {path}; give a folder, a .zip or an image")


@dataclass
class Ranking:
    """Images of a collection ordered by one neuron's predicted response.

    Attributes:
        neuron_id: the ranked neuron (id or column).
        order: int ``(N,)`` image indices from highest to lowest predicted response.
        predicted: float32 ``(N,)`` predicted response of every image (collection order).
        measured: float ``(N,)`` measured repeat-averaged response, or None.
        collection: the ranked :class:`ImageCollection`.
        correlation: Pearson r of predicted vs measured (None without measurements).
    """

    neuron_id: object
    order: np.ndarray
    predicted: np.ndarray
    collection: ImageCollection
    measured: np.ndarray | None = None
    correlation: float | None = None
    measured_order: np.ndarray | None = field(default=None)

    def top(self, k: int = 16) -> np.ndarray:
        """Indices of the ``k`` images with the highest predicted response."""
        return self.order[:k]

    def bottom(self, k: int = 16) -> np.ndarray:
        """Indices of the ``k`` images with the lowest predicted response (lowest first)."""
        return self.order[::-1][:k]

    def rows(self) -> list[dict]:
        """One dict per image in predicted-rank order."""
        out = []
        for rank, i in enumerate(self.order):
            row = {"rank": rank, "index": int(i), "name": self.collection.names[i],
                   "predicted": float(self.predicted[i])}
            if self.measured is not None:
                row["measured"] = float(self.measured[i])
            out.append(row)
        return out


def rank_images(
    model,
    source,
    neuron: int | str = 0,
    *,
    indices=None,
    batch_size: int = 64,
    device=None,
    data_dir=None,
) -> Ranking:
    """Rank a collection by one neuron's predicted response (and measured, when recorded).

    Args:
        model: a compact, shared or population model.
        source: anything :func:`load_image_collection` takes, or an :class:`ImageCollection`.
        neuron: output column or neuron id of the model (a compact model: 0).
        indices: rank only these images of the collection (e.g. the held-out half).
        batch_size: images per forward pass.
        device: where to run (default: the model's device).
        data_dir: data directory for sessions.

    Returns:
        A :class:`Ranking`. When the source is a session that recorded the neuron, its
        ``measured`` responses are filled in.
    """
    coll = source if isinstance(source, ImageCollection) else load_image_collection(
        source, data_dir=data_dir)
    (col,) = resolve_columns(model, [neuron])
    ids = list(getattr(model, "neuron_ids", []) or [])
    neuron_id = ids[col] if ids else col
    if indices is not None:
        indices = np.asarray(indices, dtype=int)
        sub = ImageCollection(np.asarray(coll.images[indices]), coll.source,
                              [coll.names[i] for i in indices], coll.session)
        sub_measured_index = indices
        coll = sub
    else:
        sub_measured_index = None
    predicted = predict(model, coll.images, batch_size=batch_size,
                        device=device).reshape(len(coll), -1)[:, col]
    return rank_predictions(predicted, coll, neuron_id, measured_index=sub_measured_index)


def rank_predictions(predicted, collection: ImageCollection, neuron_id, *,
                     measured_index=None) -> Ranking:
    """A :class:`Ranking` from one neuron's predictions already computed on a collection.

    :func:`rank_images` ranks through this function after its forward pass, so predictions
    made elsewhere (e.g. one fused-population pass over a whole session) rank identically.

    Args:
        predicted: float ``(N,)`` predicted responses, one per image of ``collection``.
        collection: the ranked images (its ``session`` gives the measured responses).
        neuron_id: the neuron's id (``"session/neuron"``) or output column.
        measured_index: ``(N,)`` session image index of each collection image, when the
            collection is a subset of its session's images (default: the first N).

    Returns:
        The :class:`Ranking` (``measured`` filled in when the collection's session recorded
        the neuron).
    """
    predicted = np.asarray(predicted).reshape(-1)
    if len(predicted) != len(collection):
        raise InvalidInputError(
            f"{len(predicted)} predictions for {len(collection)} images; give one per image"
        )
    order = np.argsort(-predicted, kind="stable")
    measured = measured_order = corr = None
    session = collection.session
    if session is not None and isinstance(neuron_id, str) and "/" in neuron_id:
        sid, nidx = split_neuron_id(neuron_id)
        if session.session_id == sid:
            measured = np.asarray(session.responses[nidx], dtype=np.float64)
            if measured_index is not None:
                measured = measured[np.asarray(measured_index, dtype=int)]
            measured_order = np.argsort(-measured, kind="stable")
            corr = float(np.corrcoef(predicted, measured)[0, 1])
    return Ranking(neuron_id=neuron_id, order=order, predicted=predicted,
                   collection=collection, measured=measured, correlation=corr,
                   measured_order=measured_order)
