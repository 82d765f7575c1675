"""What every reader of a source format returns: a recording as numpy arrays and metadata."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Recording:
    """One session as read from a source, before the checks.

    Attributes:
        responses: float ``(neurons, images)`` averaged over repeats, or ``None`` (then the
            mean over the repeats of ``raw_responses``).
        raw_responses: float ``(neurons, images, repeats)`` with trailing NaN, or ``None``.
        images: ``uint8 (images, 112, 112, 3)`` after the one image path, or ``None``.
        neurons: one dict per neuron: ``name, area, animal, channel``.
        image_rows: one dict per image: ``name, type, source``.
        heldout: bool ``(images,)`` from the source, or ``None`` (the first-half convention).
        animal: the animal ("" when not given).
        window_ms: ``[start, stop]`` of the counting window in ms, or ``None``.
        units: units of the responses, or ``None`` (the import's default).
        meta: how the source was read (recorded in the manifest).
    """

    responses: np.ndarray | None
    raw_responses: np.ndarray | None
    images: np.ndarray | None
    neurons: list[dict]
    image_rows: list[dict]
    heldout: np.ndarray | None = None
    animal: str = ""
    window_ms: list[float] | None = None
    units: str | None = None
    meta: dict = field(default_factory=dict)
