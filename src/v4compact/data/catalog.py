"""The catalogue of the recording sessions: the release's 50, shipped with the package (no data
needed), and every imported session of :mod:`v4compact.data.datasets` (read from manifests);
the datasets they form, the one parser of a session id of any dataset
(:func:`parse_session_id`) and neuron patterns (:func:`expand_neurons`)."""

from __future__ import annotations

import csv
import fnmatch
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from ..errors import InvalidInputError, UnknownSessionError
from .datasets import (
    RELEASE_DATASET,
    find_session,
    is_user_session_id,
    manifests,
    parse_name,
    roots,
)

#: The test sessions whose neurons have compact models, in the canonical output order.
MODEL_SESSIONS: tuple[int, ...] = (190923, 201025, 210225, 211022)
#: The session used for early stopping / hyper-parameters.
VALIDATION_SESSION = 210224


@dataclass(frozen=True)
class SessionInfo:
    """One row of the catalogue.

    Attributes:
        session_id: six-digit recording date id, e.g. 190923 (int) for the release;
            ``"dataset:session"`` (str) for an imported session.
        animal: monkey ("WE", "PE" or "RA"; an imported session's own, or "").
        split: "train", "validation" or "test"; ``"imported"`` for an imported session.
        num_neurons: number of recorded V4 neurons.
        num_images: number of images shown.
        median_repeats: median number of repeats per image.
        image_types: human-readable image types with counts.
        dataset: the dataset (:data:`~v4compact.data.datasets.RELEASE_DATASET` or a lab's).
    """

    session_id: int | str
    animal: str
    split: str
    num_neurons: int
    num_images: int
    median_repeats: int
    image_types: str
    dataset: str = RELEASE_DATASET

    @property
    def has_models(self) -> bool:
        """True for the four test sessions whose neurons have compact models."""
        return self.session_id in MODEL_SESSIONS


@lru_cache(maxsize=1)
def _catalogue() -> dict[int, SessionInfo]:
    text = resources.files("v4compact.data").joinpath("sessions.csv").read_text()
    rows = csv.DictReader(text.splitlines())
    out = {}
    for row in rows:
        info = SessionInfo(
            session_id=int(row["session_id"]),
            animal=row["animal"],
            split=row["split"],
            num_neurons=int(row["num_neurons"]),
            num_images=int(row["num_images"]),
            median_repeats=int(row["median_repeats"]),
            image_types=row["image_types"],
        )
        out[info.session_id] = info
    return out


def list_sessions(split: str | None = None, animal: str | None = None,
                  dataset: str | None = None, data_dir=None) -> list[SessionInfo]:
    """The recording sessions of every dataset, optionally filtered.

    Args:
        split: keep only "train", "validation", "test" (release) or "imported" sessions.
        animal: keep only sessions of one animal ("WE", "PE", "RA", or an imported one's).
        dataset: keep only one dataset (``"cowley2023"`` or a lab's name).
        data_dir: data directory whose ``datasets/`` folder is searched (see
            :func:`v4compact.data.datasets.roots`).

    Returns:
        Session records: the release's sorted by id, then the imported ones sorted by id.
    """
    release = list(_catalogue().values())
    rows = release if dataset == RELEASE_DATASET else release + user_sessions(data_dir)
    if dataset is not None and dataset != RELEASE_DATASET:
        names = sorted({r.dataset for r in rows})
        if dataset not in names:
            raise UnknownSessionError(
                f"unknown dataset {dataset!r}; choose one of {', '.join(names)} (or import "
                "one with: v4compact data import SOURCE --name DATASET:SESSION)"
            )
        rows = [r for r in rows if r.dataset == dataset]
    if split is not None:
        valid = sorted({r.split for r in release} | {"imported"})
        if split not in valid:
            raise UnknownSessionError(f"unknown split {split!r}; choose one of {', '.join(valid)}")
        rows = [r for r in rows if r.split == split]
    if animal is not None:
        valid = sorted({r.animal for r in release} | {r.animal for r in rows if r.animal})
        if animal.upper() not in {v.upper() for v in valid}:
            raise UnknownSessionError(
                f"unknown animal {animal!r}; choose one of {', '.join(valid)}"
            )
        rows = [r for r in rows if r.animal.upper() == animal.upper()]
    return sorted(rows, key=session_sort_key)


def session_sort_key(info_or_id) -> tuple:
    """Sort key putting release sessions first (by number), then imported ones (by id)."""
    sid = getattr(info_or_id, "session_id", info_or_id)
    return (1, 0, sid) if isinstance(sid, str) else (0, int(sid), "")


def session_info(session_id: int | str, data_dir=None) -> SessionInfo:
    """The catalogue record of one session of any dataset (``190923``, ``"mylab:s01"``).

    Raises:
        UnknownSessionError: not a release session, nor an imported one found in the roots.
    """
    if is_user_session_id(session_id) and not str(session_id).startswith(RELEASE_DATASET + ":"):
        sid = parse_session_id(session_id)
        for info in user_sessions(data_dir):
            if info.session_id == sid:
                return info
        find_session(sid, data_dir)  # raises, listing where it looked
    if is_user_session_id(session_id):
        session_id = str(session_id).partition(":")[2]
    try:
        key = int(session_id)
    except (TypeError, ValueError):
        key = None
    cat = _catalogue()
    if key not in cat:
        valid = ", ".join(str(s) for s in sorted(cat))
        raise UnknownSessionError(f"unknown session {session_id!r}; valid sessions: {valid}")
    return cat[key]


def parse_session_id(value) -> int | str:
    """The canonical id of a session of any dataset.

    Args:
        value: a release id (``190923``, ``"190923"``, ``"cowley2023:190923"``) or a user id
            (``"mylab:s01"``).

    Returns:
        ``int`` for a release session (checked against the catalogue), ``"dataset:session"``
        for a user session (its form checked;
        :func:`~v4compact.data.datasets.find_session` says whether it exists).

    Raises:
        UnknownSessionError: an unknown release session or a malformed user id.
    """
    if is_user_session_id(value):
        dataset, _, session = value.partition(":")
        if dataset == RELEASE_DATASET:
            return session_info(session).session_id
        try:
            return ":".join(parse_name(value))
        except InvalidInputError as err:
            raise UnknownSessionError(str(err)) from None
    return session_info(value).session_id


# -- imported sessions and datasets ---------------------------------------------------------------
def user_sessions(data_dir: str | os.PathLike | None = None) -> list[SessionInfo]:
    """Catalogue records of every imported session, from the manifests only (no array is
    read), sorted by id; the first root holding an id wins."""
    found = {m["id"]: session_info_from_manifest(m) for _, m in manifests(data_dir)}
    return [found[k] for k in sorted(found)]


def session_info_from_manifest(manifest: dict) -> SessionInfo:
    """The catalogue record of an imported session, from its manifest (split
    ``"imported"``)."""
    return SessionInfo(
        session_id=manifest["id"], animal=manifest.get("animal") or "", split="imported",
        num_neurons=int(manifest["num_neurons"]), num_images=int(manifest["num_images"]),
        median_repeats=int(manifest.get("median_repeats") or 1),
        image_types=manifest.get("image_types", ""), dataset=manifest["dataset"])


@dataclass(frozen=True)
class DatasetInfo:
    """One registered dataset.

    Attributes:
        name: ``cowley2023`` or a user dataset's name.
        kind: ``"release"`` or ``"imported"``.
        folder: the folder of an imported dataset (``None`` for the release).
        num_sessions: sessions found.
    """

    name: str
    kind: str
    folder: Path | None
    num_sessions: int


def list_datasets(data_dir: str | os.PathLike | None = None) -> list[DatasetInfo]:
    """The release and every imported dataset found in the roots."""
    out = [DatasetInfo(RELEASE_DATASET, "release", None,
                       len(list_sessions(dataset=RELEASE_DATASET)))]
    counts: dict[str, int] = {}
    for info in user_sessions(data_dir):
        counts[info.dataset] = counts.get(info.dataset, 0) + 1
    for name, count in sorted(counts.items()):
        folder = next(r / name for r in roots(data_dir) if (r / name).is_dir())
        out.append(DatasetInfo(name, "imported", folder, count))
    return out


def expand_neurons(patterns, data_dir: str | os.PathLike | None = None) -> list[str]:
    """Neuron ids of any dataset, with shell-style patterns expanded.

    Args:
        patterns: ids and patterns: ``"201025/10"``, ``"mylab:s01/7"``, ``"mylab:s01/*"``,
            ``"201025/1?"``, ``"mylab:*/*"`` (the session part may be a pattern too).
        data_dir: data directory (where imported sessions are looked for).

    Returns:
        Neuron ids in the order given, each pattern's matches in (session, neuron) order,
        without duplicates.

    Raises:
        InvalidInputError: a pattern that matches no neuron (the message names the
            sessions looked at).
    """
    out: list[str] = []
    for pattern in [patterns] if isinstance(patterns, str) else patterns:
        text = str(pattern).strip()
        if not any(c in text for c in "*?["):
            out.append(text)
            continue
        session_part, sep, neuron_part = text.rpartition("/")
        if not sep:
            raise InvalidInputError(f"bad neuron pattern {text!r}; write SESSION/NEURON, e.g. "
                                    "'mylab:s01/*' or '201025/*'")
        infos = [i for i in list_sessions(data_dir=data_dir)
                 if fnmatch.fnmatchcase(str(i.session_id), session_part)
                 or (i.dataset == RELEASE_DATASET
                     and fnmatch.fnmatchcase(f"{RELEASE_DATASET}:{i.session_id}",
                                             session_part))]
        found = [f"{i.session_id}/{k}" for i in infos for k in range(i.num_neurons)
                 if fnmatch.fnmatchcase(str(k), neuron_part)]
        if not found:
            looked = ", ".join(str(i.session_id) for i in infos) or "no session matches"
            raise InvalidInputError(f"neuron pattern {text!r} matches no neuron (sessions: "
                                    f"{looked}); list them with: v4compact data sessions")
        out += found
    return list(dict.fromkeys(out))
