"""The catalogue of the recording sessions: the release's 50, shipped with the package (no data
needed), and every imported session of :mod:`v4compact.data.datasets` (read from manifests)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from ..errors import UnknownSessionError
from .datasets import RELEASE_DATASET

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
    from .datasets import user_sessions

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
    from .datasets import is_user_session_id, user_sessions

    if is_user_session_id(session_id) and not str(session_id).startswith(RELEASE_DATASET + ":"):
        from .datasets import find_session, parse_session_id

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
