"""Noise-aware metrics from single-repeat responses: SNR, r2_ER, split-half corrected R^2.

Single-repeat responses are float ``(neurons, images, repeats)`` spike counts; an image
shown fewer times is padded with trailing NaN (any NaN position is accepted). For every
image the repeats that are not NaN are used; images with fewer than 2 valid repeats
give no variance estimate and are left out of the noise variance.
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidInputError
from ._arrays import as_matrix, as_raw, check_same_shape, finish


def _noise_stats(raw: np.ndarray):
    """Repeat mean ``(neurons, images)``, noise variance ``s2`` and median repeats ``n``.

    ``s2`` (per neuron) is the mean over images of the across-repeat variance (ddof = 1,
    images with >= 2 repeats only); ``n`` (per neuron) is the median repeat count over
    images that have at least one repeat.
    """
    valid = np.isfinite(raw)
    counts = valid.sum(axis=2)
    filled = np.where(valid, raw, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = filled.sum(axis=2) / counts
        dev = np.where(valid, raw - mean[..., None], 0.0)
        var = (dev * dev).sum(axis=2) / (counts - 1)
    has_var = counts >= 2
    with np.errstate(invalid="ignore", divide="ignore"):
        s2 = np.where(has_var, var, 0.0).sum(axis=1) / has_var.sum(axis=1)
    n = np.array(
        [np.median(c[c > 0]) if np.any(c > 0) else np.nan for c in counts], dtype=np.float64
    )
    mean[counts == 0] = np.nan
    return mean, s2, n


def snr(raw_responses):
    """Unbiased signal-to-noise ratio per neuron (Pospisil & Bair 2021; SYSTEM.md §2).

    With ``m`` images, ``n`` the median number of repeats, ``s2`` the mean over images of
    the across-repeat variance (ddof = 1) and ``d2`` the variance over images (ddof = 0) of
    the repeat-mean, ``SNR = (d2 - (m - 1) / m * s2 / n) / s2``: an unbiased estimate of
    the variance of the expected response across images divided by the single-trial noise
    variance. It can be slightly negative for a neuron with no signal. About 0.15 is a
    useful inclusion threshold.

    Args:
        raw_responses: float ``(neurons, images, repeats)`` or ``(images, repeats)``
            single-repeat spike counts, NaN-padded.

    Returns:
        float64 ``(neurons,)`` (a float for one neuron); NaN if the noise variance is 0.
    """
    raw, single = as_raw(raw_responses)
    mean, s2, n = _noise_stats(raw)
    keep = np.isfinite(mean)
    m = keep.sum(axis=1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        centred = np.where(keep, mean - np.nanmean(mean, axis=1, keepdims=True), 0.0)
        d2 = (centred * centred).sum(axis=1) / m
        out = (d2 - (m - 1) / m * s2 / n) / s2
    out[~(s2 > 0)] = np.nan
    return finish(out, single)


def _paired(raw_responses, predictions):
    raw, single = as_raw(raw_responses)
    x, _ = as_matrix(predictions, "predictions")
    if single and x.shape[0] != 1:
        raise InvalidInputError(
            f"predictions {x.shape} do not match one neuron's raw responses {raw.shape[1:]}; "
            "pass predictions of shape (images,)"
        )
    check_same_shape(raw[..., 0], x, "raw_responses", "predictions")
    return raw, x, single


def r2_er(raw_responses, predictions):
    """Unbiased noise-corrected R^2 (r2_ER, Pospisil & Bair 2021), per neuron.

    Estimates the squared correlation between the prediction and the neuron's *expected*
    response (the mean over infinitely many repeats), without the upward bias of
    "R^2 divided by a reliability ceiling". With ``y`` the centred repeat-mean, ``x`` the
    centred prediction, ``Sxy = sum(x*y)``, ``Sxx = sum(x^2)``, ``Syy = sum(y^2)``, ``m``
    images, ``n`` the median repeats and ``s2`` the mean across-repeat variance (ddof = 1)::

        r2_er = (Sxy^2 - s2/n * Sxx) / (Sxx * Syy - s2/n * (m - 1) * Sxx)

    Being unbiased, single values can exceed 1 or fall below 0 for noisy neurons. With
    unequal repeats the median ``n`` makes it approximately (not exactly) unbiased.

    Args:
        raw_responses: float ``(neurons, images, repeats)`` or ``(images, repeats)``
            single-repeat responses, NaN-padded.
        predictions: float ``(neurons, images)`` (or ``(images,)`` for one neuron), in any
            unit (the metric is invariant to scale and offset). Images whose prediction is
            NaN or which have no valid repeat are left out.

    Returns:
        float64 ``(neurons,)`` (a float for one neuron); NaN for a constant prediction.
    """
    raw, x, single = _paired(raw_responses, predictions)
    raw = np.where(np.isfinite(x)[..., None], raw, np.nan)
    mean, s2, n = _noise_stats(raw)
    valid = np.isfinite(mean) & np.isfinite(x)
    m = valid.sum(axis=1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        xc = np.where(valid, x - np.nanmean(np.where(valid, x, np.nan), 1, keepdims=True), 0.0)
        yc = np.where(valid, mean - np.nanmean(np.where(valid, mean, np.nan), 1, keepdims=True), 0)
        sxy = (xc * yc).sum(1)
        sxx = (xc * xc).sum(1)
        syy = (yc * yc).sum(1)
        noise = s2 / n
        out = (sxy**2 - noise * sxx) / (sxx * syy - noise * (m - 1) * sxx)
    out[~(sxx > 0) | (m < 3)] = np.nan
    return finish(out, single)


def split_half_reliability(raw_responses, num_splits: int = 50, seed: int = 0):
    """Spearman-Brown corrected split-half correlation of the repeat-mean, per neuron.

    For each of ``num_splits`` random splits, the valid repeats of every image are shuffled
    and divided into two halves (``k // 2`` and ``k - k // 2`` repeats); ``r`` is the Pearson
    correlation across images of the two half-means and ``2r / (1 + r)`` the estimated
    reliability of the full repeat-mean. The result is the mean over splits.

    Args:
        raw_responses: float ``(neurons, images, repeats)`` or ``(images, repeats)``.
        num_splits: number of random splits.
        seed: seed of the random splits.

    Returns:
        float64 ``(neurons,)`` (a float for one neuron).
    """
    from .correlation import pearson_r

    raw, single = as_raw(raw_responses)
    if num_splits < 1:
        raise InvalidInputError(f"num_splits must be >= 1, got {num_splits}")
    rng = np.random.default_rng(seed)
    valid = np.isfinite(raw)
    counts = valid.sum(axis=2, keepdims=True)
    filled = np.where(valid, raw, 0.0)
    total = np.zeros(raw.shape[0])
    for _ in range(num_splits):
        keys = np.where(valid, rng.random(raw.shape), np.inf)
        rank = np.argsort(np.argsort(keys, axis=2), axis=2)
        first = valid & (rank < counts // 2)
        second = valid & ~first
        with np.errstate(invalid="ignore", divide="ignore"):
            half_a = (filled * first).sum(2) / first.sum(2)
            half_b = (filled * second).sum(2) / second.sum(2)
        r = pearson_r(half_a, half_b)
        total += 2 * r / (1 + r)
    return finish(total / num_splits, single)


def split_half_r2(raw_responses, predictions, num_splits: int = 50, seed: int = 0):
    """Split-half corrected R^2 (Brain-Score style), per neuron.

    ``raw_r2(repeat-mean, prediction) / reliability``, where the reliability is the
    Spearman-Brown corrected split-half correlation averaged over ``num_splits`` random
    splits of the repeats (:func:`split_half_reliability`). A ratio of two noisy
    estimates: consistent but biased for few repeats or low SNR (compare :func:`r2_er`).

    Args:
        raw_responses: float ``(neurons, images, repeats)`` or ``(images, repeats)``,
            NaN-padded single-repeat responses (each image needs >= 2 valid repeats).
        predictions: float ``(neurons, images)`` or ``(images,)``.
        num_splits: number of random splits of the repeats.
        seed: seed of the random splits.

    Returns:
        float64 ``(neurons,)`` (a float for one neuron).
    """
    from .correlation import raw_r2

    raw, x, single = _paired(raw_responses, predictions)
    raw = np.where(np.isfinite(x)[..., None], raw, np.nan)
    mean, _, _ = _noise_stats(raw)
    r2 = raw_r2(mean, x)
    reliability = split_half_reliability(raw, num_splits=num_splits, seed=seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = r2 / reliability
    return finish(out, single)
