"""The catalogue of the 50 recording sessions, shipped with the package (no data needed)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from ..errors import UnknownSessionError

#: The test sessions whose neurons have compact models, in the canonical output order.
MODEL_SESSIONS: tuple[int, ...] = (190923, 201025, 210225, 211022)
#: The session used for early stopping / hyper-parameters.
VALIDATION_SESSION = 210224


@dataclass(frozen=True)
class SessionInfo:
    """One row of the catalogue.

    Attributes:
        session_id: six-digit recording date id, e.g. 190923.
        animal: monkey ("WE", "PE" or "RA").
        split: "train", "validation" or "test".
        num_neurons: number of recorded V4 neurons.
        num_images: number of images shown.
        median_repeats: median number of repeats per image.
        image_types: human-readable image types with counts.
    """

    session_id: int
    animal: str
    split: str
    num_neurons: int
    num_images: int
    median_repeats: int
    image_types: str

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


def list_sessions(split: str | None = None, animal: str | None = None) -> list[SessionInfo]:
    """The recording sessions, optionally filtered.

    Args:
        split: keep only "train", "validation" or "test" sessions.
        animal: keep only sessions of one monkey ("WE", "PE", "RA").

    Returns:
        Session records sorted by id.
    """
    rows = list(_catalogue().values())
    if split is not None:
        valid = sorted({r.split for r in rows})
        if split not in valid:
            raise UnknownSessionError(f"unknown split {split!r}; choose one of {', '.join(valid)}")
        rows = [r for r in rows if r.split == split]
    if animal is not None:
        valid = sorted({r.animal for r in rows} | {r.animal for r in _catalogue().values()})
        if animal.upper() not in valid:
            raise UnknownSessionError(
                f"unknown animal {animal!r}; choose one of {', '.join(valid)}"
            )
        rows = [r for r in rows if r.animal == animal.upper()]
    return sorted(rows, key=lambda r: r.session_id)


def session_info(session_id: int | str) -> SessionInfo:
    """The catalogue record of one session; raises :class:`UnknownSessionError` if unknown."""
    try:
        key = int(session_id)
    except (TypeError, ValueError):
        key = None
    cat = _catalogue()
    if key not in cat:
        valid = ", ".join(str(s) for s in sorted(cat))
        raise UnknownSessionError(f"unknown session {session_id!r}; valid sessions: {valid}")
    return cat[key]
