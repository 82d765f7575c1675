"""From z-scored units to spikes: an affine calibration per recorded neuron.

The compact models' teacher was fitted to responses z-scored per neuron, so every released
model outputs **z-scored units** (:data:`v4compact.models.ids.Z_SCORED_UNITS`): near 0 on
average over natural images, s.d. near 1, sometimes negative - not spike counts
(SYSTEM.md §9). For a neuron that was recorded, :func:`fit_calibration` fits
``spikes = slope * output + intercept`` by least squares on the first half of its session
(:meth:`~v4compact.data.session.Session.heldout_split`, the half that fitted the models),
against the repeat-averaged spike counts per 100 ms. The map is affine, so a neuron's
correlation with its responses (raw R^2, r2_ER) is the same in either unit; only the scale
and offset change. ``predict(..., units="spikes")`` and ``v4compact predict --units spikes``
apply it.

This module does not import torch at import time (the CLI reads :data:`UNITS`); it runs
models through :func:`~v4compact.models.runner.run_model`, the engine under ``predict``.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass

import numpy as np

from .. import config
from ..errors import DataNotFoundError, InvalidInputError
from .ids import Z_SCORED_UNITS, split_neuron_id

__all__ = ["SPIKE_UNITS", "UNITS", "Calibration", "calibration_from_outputs", "fit_calibration"]

#: Units of calibrated outputs: repeat-averaged spike counts in the recordings' 100 ms bin.
SPIKE_UNITS = "spikes per 100 ms"
#: The ``units=`` values of :func:`~v4compact.models.predict.predict` and what they mean.
UNITS: dict[str, str] = {"z-scored": Z_SCORED_UNITS, "spikes": SPIKE_UNITS}


@dataclass(frozen=True, eq=False)
class Calibration:
    """Affine maps from a model's outputs (z-scored units) to spikes per 100 ms.

    Attributes:
        neuron_ids: ``"session/neuron"`` of each output column.
        slope: float64 ``(K,)``, spikes per 100 ms per z-scored unit.
        intercept: float64 ``(K,)``, spikes per 100 ms at output 0.
    """

    neuron_ids: list[str]
    slope: np.ndarray
    intercept: np.ndarray

    def apply(self, outputs) -> np.ndarray:
        """Outputs in z-scored units -> predicted spikes per 100 ms.

        Args:
            outputs: ``(N, K)`` model outputs, columns in :attr:`neuron_ids` order
                (``(N,)`` when ``K == 1``).

        Returns:
            float32 array of the same shape, in spikes per 100 ms.

        Raises:
            InvalidInputError: a column count other than ``K``.
        """
        arr = np.asarray(outputs, dtype=np.float64)
        count = len(self.neuron_ids)
        columns = arr.reshape(len(arr), -1) if arr.ndim == 1 and count == 1 else arr
        if columns.ndim != 2 or columns.shape[1] != count:
            raise InvalidInputError(
                f"outputs of shape {arr.shape} do not match a calibration of {count} "
                f"neuron(s); pass (N, {count}) outputs in the order of its neuron_ids"
            )
        return (columns * self.slope + self.intercept).reshape(arr.shape).astype(np.float32)


#: Fitted calibrations by (model id, neuron ids, data directory, weights digest).
_CACHE: dict[tuple, Calibration] = {}
_CACHE_LOCK = threading.Lock()


def fit_calibration(model, data_dir: str | os.PathLike | None = None) -> Calibration:
    """Fit each output column's map to spikes on the first half of its neuron's session.

    For every session among the model's ``neuron_ids``, the model is run on the session's
    fit half (:meth:`~v4compact.data.session.Session.heldout_split` ``[0]``) and each of its
    neurons' columns is regressed onto the repeat-averaged spike counts (per 100 ms) by
    least squares. The result is cached in memory per model id, neuron ids, data directory
    and (for torch models) weights, so a second call is free and a retrained model is
    fitted again.

    Args:
        model: anything :func:`~v4compact.models.predict.predict` runs whose
            ``neuron_ids`` name recorded neurons (``"session/neuron"``), e.g. a compact,
            shared or population model.
        data_dir: data directory (default: :func:`v4compact.config.data_dir`).

    Returns:
        A :class:`Calibration` with one slope and intercept per output column.

    Raises:
        InvalidInputError: a model without recorded-neuron ids.
        UnknownSessionError, UnknownNeuronError: an id naming no recorded neuron.
        DataNotFoundError: a session's images or responses are not in the data directory
            (the message names the fetch command).
    """
    from ..data.catalog import session_info
    from ..data.paths import fetch_command
    from ..data.session import load_session
    from ..errors import UnknownNeuronError
    from .runner import run_model

    name = getattr(model, "model_id", "") or type(model).__name__
    neuron_ids = [str(n) for n in (getattr(model, "neuron_ids", None) or [])]
    if not neuron_ids:
        raise InvalidInputError(
            f"model {name} has no neuron_ids, so its outputs cannot be calibrated to spikes; "
            "use units='z-scored' or set neuron_ids to recorded neurons ('session/neuron')"
        )
    columns: dict[int, list[tuple[int, int]]] = {}
    for column, neuron_id in enumerate(neuron_ids):
        try:
            sid, k = split_neuron_id(neuron_id)
        except InvalidInputError:
            raise InvalidInputError(
                f"output {neuron_id!r} of model {name} is not a recorded neuron "
                "('session/neuron'), so it cannot be calibrated to spikes; use units='z-scored'"
            ) from None
        count = session_info(sid).num_neurons
        if k >= count:
            raise UnknownNeuronError(f"model {name} names neuron {neuron_id}, but session {sid} "
                                     f"recorded {count} neurons (0-{count - 1})")
        columns.setdefault(sid, []).append((column, k))
    key = (getattr(model, "model_id", ""), tuple(neuron_ids), str(config.data_dir(data_dir)),
           _weights_digest(model))
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
    slope = np.zeros(len(neuron_ids))
    intercept = np.zeros(len(neuron_ids))
    for sid, pairs in columns.items():
        session = load_session(sid, data_dir=data_dir)
        if not session.has_images:
            raise DataNotFoundError(
                f"calibrating {name} to spikes needs the images of session {sid}; fetch them "
                f"with: {fetch_command(f'images:{sid}', data_dir)}"
            )
        fit, _ = session.heldout_split()
        outputs = run_model(model, session.images[fit]).reshape(len(fit), -1)
        cols = [column for column, _ in pairs]
        part = calibration_from_outputs(session, [k for _, k in pairs], outputs[:, cols])
        slope[cols], intercept[cols] = part.slope, part.intercept
    calibration = Calibration(neuron_ids, slope, intercept)
    with _CACHE_LOCK:
        _CACHE[key] = calibration
    return calibration


def calibration_from_outputs(session, neurons, fit_outputs) -> Calibration:
    """Fit the map to spikes of some of a session's neurons from outputs already computed.

    :func:`fit_calibration` fits every model this way after running it on the fit half, so
    outputs computed elsewhere (e.g. one fused-population pass over the session) give the
    same calibration.

    Args:
        session: the recording :class:`~v4compact.data.session.Session`.
        neurons: ``(K,)`` neuron indices within the session.
        fit_outputs: float ``(F, K)`` model outputs (z-scored units) on the session's fit
            half (:meth:`~v4compact.data.session.Session.heldout_split` ``[0]``, in order),
            one column per neuron.

    Returns:
        A :class:`Calibration` with ``neuron_ids`` ``"<session>/<k>"``.

    Raises:
        InvalidInputError: outputs of the wrong shape.
    """
    fit, _ = session.heldout_split()
    neurons = [int(k) for k in np.asarray(neurons).reshape(-1)]
    outputs = np.asarray(fit_outputs, dtype=np.float64)
    if outputs.shape != (len(fit), len(neurons)):
        raise InvalidInputError(
            f"outputs of shape {outputs.shape} do not match {len(fit)} fit-half images x "
            f"{len(neurons)} neurons of session {session.session_id}; pass (images, neurons)"
        )
    slope = np.zeros(len(neurons))
    intercept = np.zeros(len(neurons))
    for column, k in enumerate(neurons):
        slope[column], intercept[column] = _least_squares(outputs[:, column],
                                                          session.responses[k, fit])
    return Calibration([f"{session.session_id}/{k}" for k in neurons], slope, intercept)


def _least_squares(output: np.ndarray, spikes: np.ndarray) -> tuple[float, float]:
    """``(slope, intercept)`` minimising ``sum((spikes - slope * output - intercept)^2)``.

    A constant output carries no information: slope 0, intercept the mean spike count.
    """
    x = np.asarray(output, dtype=np.float64)
    y = np.asarray(spikes, dtype=np.float64)
    dx = x - x.mean()
    sxx = float(dx @ dx)
    slope = float(dx @ (y - y.mean())) / sxx if sxx > 0 else 0.0
    return slope, float(y.mean() - slope * x.mean())


def _weights_digest(model) -> str | None:
    """A hash of a torch model's parameters and buffers (``None`` for other models)."""
    state_dict = getattr(model, "state_dict", None)
    if state_dict is None:
        return None
    import torch

    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in state_dict().items():
        digest.update(name.encode())
        raw = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
        digest.update(raw.numpy().tobytes())
    return digest.hexdigest()
