"""Raw (not noise-corrected) goodness of fit: squared Pearson correlation per neuron."""

from __future__ import annotations

import numpy as np

from ._arrays import as_matrix, check_same_shape, finish


def pearson_r(responses, predictions):
    """Pearson correlation per neuron across images, ignoring images with a NaN in either array.

    Args:
        responses: float ``(neurons, images)`` or ``(images,)``, e.g. repeat-averaged
            spike counts.
        predictions: float, same shape as ``responses``.

    Returns:
        float64 ``(neurons,)`` (a float for 1-D input); NaN where fewer than 3 images are
        valid or either variable is constant.
    """
    y, single = as_matrix(responses, "responses")
    x, _ = as_matrix(predictions, "predictions")
    check_same_shape(y, x, "responses", "predictions")
    valid = np.isfinite(x) & np.isfinite(y)
    count = valid.sum(axis=1)
    x = np.where(valid, x, 0.0)
    y = np.where(valid, y, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        xc = np.where(valid, x - x.sum(1, keepdims=True) / count[:, None], 0.0)
        yc = np.where(valid, y - y.sum(1, keepdims=True) / count[:, None], 0.0)
        sxy = (xc * yc).sum(1)
        sxx = (xc * xc).sum(1)
        syy = (yc * yc).sum(1)
        r = sxy / np.sqrt(sxx * syy)
    r[(count < 3) | (sxx <= 0) | (syy <= 0)] = np.nan
    return finish(r, single)


def raw_r2(responses, predictions):
    """Raw R^2: squared Pearson correlation of prediction and response, per neuron.

    This is the fraction of variance explained, not corrected for trial-to-trial noise,
    so it underestimates how well a model predicts the neuron's expected response
    (use :func:`~v4compact.metrics.r2_er` when single-repeat responses are available).

    Args:
        responses: float ``(neurons, images)`` or ``(images,)``, repeat-averaged responses
            (spike counts per 100 ms bin). NaN images are ignored.
        predictions: float, same shape as ``responses``.

    Returns:
        float64 ``(neurons,)`` in [0, 1] (a float for 1-D input); NaN for a constant
        prediction or response.
    """
    r = pearson_r(responses, predictions)
    return r * r
