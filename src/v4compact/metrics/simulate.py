"""Synthetic neurons with a known true R^2, to validate the metrics by simulation.

Each neuron has an expected response ``mu`` over images (its noise-free tuning) and a
model prediction whose squared correlation with ``mu`` over the simulated images is
exactly ``true_r2``. Single-repeat responses add trial noise to ``mu``: Gaussian with a
fixed variance, or Poisson spike counts with rate ``mu``. The signal-to-noise ratio
(variance of ``mu`` over images / mean trial-noise variance) is also exact in-sample, so
:func:`~v4compact.metrics.snr` and :func:`~v4compact.metrics.r2_er` can be checked
against the truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError

NOISE_MODELS = ("gaussian", "poisson")


@dataclass(frozen=True)
class SimulatedNeurons:
    """A simulated recording.

    Attributes:
        raw_responses: float64 ``(neurons, images, repeats)`` single-repeat responses,
            trailing NaN for images shown fewer than ``repeats`` times.
        predictions: float64 ``(neurons, images)`` model predictions.
        expected_responses: float64 ``(neurons, images)`` noise-free responses ``mu``.
        true_r2: float64 ``(neurons,)`` squared correlation of predictions and ``mu``.
        true_snr: float64 ``(neurons,)`` variance of ``mu`` (ddof = 0) over the mean
            trial-noise variance.
        repeats: int ``(images,)`` number of valid repeats of each image.
    """

    raw_responses: np.ndarray
    predictions: np.ndarray
    expected_responses: np.ndarray
    true_r2: np.ndarray
    true_snr: np.ndarray
    repeats: np.ndarray

    @property
    def responses(self) -> np.ndarray:
        """Repeat-averaged responses, float64 ``(neurons, images)``."""
        return np.nanmean(self.raw_responses, axis=2)


def _unit_centred(values: np.ndarray) -> np.ndarray:
    centred = values - values.mean(axis=1, keepdims=True)
    return centred / np.linalg.norm(centred, axis=1, keepdims=True)


def simulate_neurons(
    num_neurons: int = 100,
    num_images: int = 300,
    num_repeats: int = 10,
    true_r2: float | np.ndarray = 0.5,
    snr: float = 0.5,
    noise: str = "gaussian",
    min_repeats: int | None = None,
    seed: int = 0,
) -> SimulatedNeurons:
    """Simulate neurons, their trial-to-trial noise and a model with a known true R^2.

    Args:
        num_neurons: number of independent neurons.
        num_images: number of images.
        num_repeats: maximum repeats per image (the size of the repeats axis).
        true_r2: squared correlation, over the images, between the prediction and the
            expected response; a float or one value per neuron, in [0, 1].
        snr: variance of the expected response across images divided by the mean
            single-trial noise variance (> 0).
        noise: ``"gaussian"`` (expected response 5 + N(0, 1) across images, constant noise
            variance ``1 / snr``) or ``"poisson"`` (log-normal rates scaled so that
            variance / mean of the rate equals ``snr``; Poisson spike counts).
        min_repeats: if given, each image gets a random number of repeats in
            ``[min_repeats, num_repeats]`` (the same for all neurons, as in a recording),
            the rest NaN-padded.
        seed: random seed.

    Returns:
        A :class:`SimulatedNeurons`.
    """
    if noise not in NOISE_MODELS:
        raise InvalidInputError(f"unknown noise model {noise!r}; choose one of {NOISE_MODELS}")
    if snr <= 0:
        raise InvalidInputError(f"snr must be > 0, got {snr}")
    low = num_repeats if min_repeats is None else min_repeats
    if not 1 <= low <= num_repeats:
        raise InvalidInputError(
            f"need 1 <= min_repeats <= num_repeats, got {min_repeats} and {num_repeats}"
        )
    target = np.broadcast_to(np.asarray(true_r2, dtype=np.float64), (num_neurons,))
    if np.any((target < 0) | (target > 1)):
        raise InvalidInputError("true_r2 must lie in [0, 1]")
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((num_neurons, num_images))
    if noise == "gaussian":
        z = (z - z.mean(1, keepdims=True)) / z.std(1, keepdims=True)
        mu = 5.0 + z
        noise_var = np.full((num_neurons, 1), 1.0 / snr)
    else:
        rate = np.exp(0.5 * z)
        scale = snr * rate.mean(1, keepdims=True) / rate.var(1, keepdims=True)
        mu = scale * rate
        noise_var = mu.mean(1, keepdims=True)  # Poisson: trial variance = rate
    repeats = rng.integers(low, num_repeats + 1, size=num_images)
    shape = (num_neurons, num_images, num_repeats)
    if noise == "gaussian":
        raw = mu[..., None] + rng.standard_normal(shape) * np.sqrt(noise_var)[..., None]
    else:
        raw = rng.poisson(np.broadcast_to(mu[..., None], shape)).astype(np.float64)
    raw[:, np.arange(num_repeats)[None, :] >= repeats[:, None]] = np.nan
    # prediction = r * (unit signal) + sqrt(1 - r^2) * (unit vector orthogonal to it)
    signal_dir = _unit_centred(mu)
    other = rng.standard_normal((num_neurons, num_images))
    other -= (other * signal_dir).sum(1, keepdims=True) * signal_dir
    other = _unit_centred(other)
    r = np.sqrt(target)[:, None]
    predictions = r * signal_dir + np.sqrt(1.0 - r**2) * other
    true_snr = mu.var(1) / noise_var[:, 0]
    return SimulatedNeurons(
        raw_responses=raw,
        predictions=predictions,
        expected_responses=mu,
        true_r2=np.array(target),
        true_snr=true_snr,
        repeats=repeats,
    )
