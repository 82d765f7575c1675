"""Fixtures of the model tests: the Keras golden references (tests/golden/keras_outputs.npz)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "keras_outputs.npz"
#: The three neurons whose every release format is in the data copy.
FORMAT_NEURONS = [(190923, 0), (201025, 10), (210225, 5)]


@pytest.fixture(scope="session")
def golden() -> dict[str, np.ndarray]:
    """Keras 3 outputs written by scripts/make_golden.py (loaded once, fully into memory)."""
    with np.load(GOLDEN) as npz:
        return {name: npz[name] for name in npz.files}


@pytest.fixture(scope="session")
def golden_images(golden) -> np.ndarray:
    """The 10 reference images, uint8 (10, 112, 112, 3): 6 natural then 4 random."""
    return golden["images"]


def relative_error(pred: np.ndarray, ref: np.ndarray, axis=0) -> np.ndarray:
    """max |pred - ref| over ``axis`` divided by the spread (std) of ``ref`` over ``axis``."""
    return np.abs(pred - ref).max(axis=axis) / ref.std(axis=axis)
