"""The closed loop: choose the images of the next experiment with a model.

The paper alternated recording and model training, showing in each new session images the
current model chose ("active learning" images in 17 release sessions). :func:`choose_images`
does that step for any neurons: it scores every image of a candidate pool (anything
:func:`~v4compact.training.corpus.open_corpus` reads) with a committee of models and keeps
N of them.

The committee is a mapped teacher's members (:func:`~v4compact.training.teachers.
mapped_committee`): the ensemble's members, each with its ridge mapping to the neurons
(``ensemble``, ``ensemble:<RUN_DIR>``), or for a backbone (``backbone:<spec>``) ridge
mappings fitted on bootstrap resamples of the session's fit half (query by bagging).
Predictions are in z-scored units. Criteria (:data:`CRITERIA`):

- ``disagreement`` (default; query by committee): the variance over members of the
  predicted response, averaged over the chosen neurons - the images the models are least
  sure about;
- ``strongest``: the committee's mean predicted response, averaged over the neurons - the
  images expected to drive them hardest;
- ``diverse``: a spread of predicted responses: greedy farthest-point selection in the
  space of the committee's mean predictions (neurons as dimensions), from a seeded start;
- ``random``: a seeded uniform draw (the baseline to compare against).

:func:`write_selection` writes the chosen images as 112x112 JPEGs in a zip with a manifest
(``manifest.csv`` inside the zip and beside it: rank, file, source shard and member,
criterion value), ready for a stimulus computer.
"""

from __future__ import annotations

import csv
import io
import json
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError

CRITERIA = ("disagreement", "strongest", "diverse", "random")
#: Members of a backbone's bootstrap committee unless told otherwise.
DEFAULT_BOOTSTRAP = 8
#: JPEG quality of the written images.
JPEG_QUALITY = 95


@dataclass
class Selection:
    """The chosen images.

    Attributes:
        images: uint8 ``(N, 112, 112, 3)`` in rank order.
        sources: ``(shard path, member name)`` of each.
        positions: ``(shard number, image index)`` of each in the pool.
        values: the criterion's value of each (z-scored units; squared for disagreement).
        criterion: the criterion used.
        neurons: the neurons it was chosen for.
        settings: model spec, seed, pool size (for the manifest).
    """

    images: np.ndarray
    sources: list[tuple[str, str]]
    positions: list[tuple[int, int]]
    values: np.ndarray
    criterion: str
    neurons: list[str]
    settings: dict


def score_images(predictions: np.ndarray, criterion: str, count: int,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Choose ``count`` images from committee predictions.

    Args:
        predictions: float ``(members, images, neurons)`` in z-scored units.
        criterion: one of :data:`CRITERIA`.
        count: images to choose.
        seed: seed of ``random`` and of ``diverse``'s first image.

    Returns:
        ``(chosen indices (count,), criterion value of each)`` in rank order (for
        ``diverse``: the distance to the images chosen before it).
    """
    members, num_images, _ = predictions.shape
    if criterion not in CRITERIA:
        raise InvalidInputError(f"unknown criterion {criterion!r}; choose one of "
                                f"{', '.join(CRITERIA)}")
    if not 0 < count <= num_images:
        raise InvalidInputError(f"cannot choose {count} of {num_images} candidate images; "
                                f"choose 1 to {num_images}")
    rng = np.random.default_rng(seed)
    mean = predictions.mean(axis=0)  # (images, neurons)
    if criterion == "disagreement":
        if members < 2:
            raise InvalidInputError("disagreement needs a committee of at least 2 members; use "
                                    "an ensemble teacher, or a backbone with bootstrap >= 2")
        value = predictions.var(axis=0).mean(axis=1)
    elif criterion == "strongest":
        value = mean.mean(axis=1)
    elif criterion == "random":
        chosen = rng.choice(num_images, count, replace=False)
        return chosen, np.zeros(count)
    else:  # diverse: farthest-point traversal
        first = int(rng.integers(num_images))
        chosen = [first]
        distance = np.linalg.norm(mean - mean[first], axis=1)
        values = [0.0]
        for _ in range(count - 1):
            nxt = int(np.argmax(distance))
            chosen.append(nxt)
            values.append(float(distance[nxt]))
            distance = np.minimum(distance, np.linalg.norm(mean - mean[nxt], axis=1))
        return np.array(chosen), np.array(values)
    order = np.argsort(-value, kind="stable")[:count]
    return order, value[order]


def choose_images(model: str, neurons: Sequence[str], pool, count: int, *,
                  criterion: str = "disagreement", seed: int = 0,
                  bootstrap: int = DEFAULT_BOOTSTRAP, exclude_heldout: bool = True,
                  device="cpu", data_dir: str | os.PathLike | None = None,
                  batch_size: int = 64) -> Selection:
    """Score a candidate pool with a committee and keep ``count`` images.

    Args:
        model: ``ensemble``, ``ensemble:<RUN_DIR>`` or ``backbone:<spec>``.
        neurons: neuron ids or patterns of any dataset (``"mylab:s01/*"``).
        pool: the candidates: paths :func:`open_corpus` reads (zips, tars, folders).
        count: images to choose.
        criterion: one of :data:`CRITERIA`.
        seed: seed of the committee's resamples, ``random`` and ``diverse``.
        bootstrap: committee size for a backbone (ignored for an ensemble).
        exclude_heldout: leave out the held-out half of test-session zips in the pool.

    Returns:
        The :class:`Selection`.
    """
    from ..data.catalog import expand_neurons
    from .corpus import open_corpus
    from .teachers import mapped_committee

    if not (str(model).startswith("backbone:") or str(model) == "ensemble"
            or str(model).startswith("ensemble:")):
        raise InvalidInputError(f"model {model!r} is not a committee; give ensemble, "
                                "ensemble:RUN_DIR or backbone:SPEC")
    corpus = open_corpus(pool, exclude_heldout, data_dir)
    if not 0 < count <= len(corpus):
        raise InvalidInputError(f"cannot choose {count} of the pool's {len(corpus)} images; "
                                f"choose 1 to {len(corpus)}")
    members, names = mapped_committee(model, expand_neurons(neurons, data_dir), device=device,
                                      data_dir=data_dir, batch_size=batch_size,
                                      bootstrap=bootstrap if criterion != "random" else 0,
                                      seed=seed)
    images = corpus.images()
    predictions = np.concatenate([members(images[i:i + 512])
                                  for i in range(0, len(images), 512)], axis=1)
    chosen, values = score_images(predictions, criterion, count, seed)
    positions = corpus.positions()
    picked = [positions[i] for i in chosen]
    return Selection(
        images=images[chosen], positions=picked,
        sources=[(str(corpus.shards[s].path), corpus.shards[s].names[i]) for s, i in picked],
        values=values, criterion=criterion, neurons=names,
        settings={"model": str(model), "seed": seed, "pool_images": len(corpus),
                  "members": int(predictions.shape[0]), "count": count})


def write_selection(selection: Selection, out: str | os.PathLike) -> Path:
    """The chosen images as ``next_0001.jpg``... in a zip, with ``manifest.csv`` inside and
    beside it (``<out>.csv``) and the settings as ``selection.json`` inside.

    Returns:
        The zip (written whole: a temporary name renamed into place).
    """
    from PIL import Image

    out = Path(out)
    if out.suffix.lower() != ".zip":
        raise InvalidInputError(f"{out}: the selection is written as a .zip; name a .zip file")
    rows = [("rank", "file", "source", "member", f"{selection.criterion}")]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for rank, (pixels, (shard, member), value) in enumerate(
                zip(selection.images, selection.sources, selection.values, strict=True), 1):
            name = f"next_{rank:04d}.jpg"
            data = io.BytesIO()
            Image.fromarray(pixels).save(data, format="JPEG", quality=JPEG_QUALITY)
            archive.writestr(name, data.getvalue())
            rows.append((str(rank), name, shard, member, f"{value:.6g}"))
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(rows)
        archive.writestr("manifest.csv", text.getvalue())
        archive.writestr("selection.json", json.dumps(
            {"criterion": selection.criterion, "neurons": selection.neurons,
             **selection.settings}, indent=2))
    from ..files import atomic_write

    with atomic_write(out) as fh:
        fh.write(buffer.getvalue())
    with atomic_write(out.with_suffix(".csv"), "w", newline="") as fh:
        fh.write(text.getvalue())
    return out
