"""Shape checks shared by the metric functions (private).

Every metric takes neurons first: responses and predictions ``(neurons, images)``,
single-repeat responses ``(neurons, images, repeats)``. A single neuron may be given
without the neuron axis (``(images,)`` and ``(images, repeats)``); the metric then
returns a float instead of a ``(neurons,)`` array.
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidInputError


def as_matrix(values, name: str) -> tuple[np.ndarray, bool]:
    """``(images,)`` or ``(neurons, images)`` -> float64 ``(neurons, images)`` and a 1-D flag."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1:
        return arr[None, :], True
    if arr.ndim != 2:
        raise InvalidInputError(
            f"{name} must have shape (neurons, images) or (images,), got {arr.shape}"
        )
    return arr, False


def as_raw(values, name: str = "raw_responses") -> tuple[np.ndarray, bool]:
    """``(images, repeats)`` or ``(neurons, images, repeats)`` -> float64 3-D, 1-neuron flag."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 2:
        return arr[None], True
    if arr.ndim != 3:
        raise InvalidInputError(
            f"{name} must have shape (neurons, images, repeats) or (images, repeats), "
            f"got {arr.shape}"
        )
    return arr, False


def check_same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    """Raise a one-line error unless two ``(neurons, images)`` arrays have the same shape."""
    if a.shape != b.shape:
        raise InvalidInputError(
            f"{name_a} {a.shape} and {name_b} {b.shape} must have the same (neurons, images) "
            "shape; transpose model outputs (images, neurons) with .T"
        )


def finish(values: np.ndarray, single: bool):
    """Per-neuron result: a float for a single neuron, else the ``(neurons,)`` array."""
    return float(values[0]) if single else values
