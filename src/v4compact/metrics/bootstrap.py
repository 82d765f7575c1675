"""Bootstrap confidence intervals over images for any per-neuron metric."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..errors import InvalidInputError


def _image_axes(arrays: Sequence[np.ndarray], image_axis) -> list[int]:
    if image_axis is None:
        return [0 if a.ndim == 1 else 1 for a in arrays]
    if isinstance(image_axis, int):
        return [image_axis] * len(arrays)
    axes = list(image_axis)
    if len(axes) != len(arrays):
        raise InvalidInputError(
            f"image_axis lists {len(axes)} axes for {len(arrays)} arrays; give one per array"
        )
    return axes


def bootstrap_ci(
    metric_fn: Callable[..., np.ndarray | float],
    *arrays,
    num_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    image_axis: int | Sequence[int] | None = None,
    **metric_kwargs,
):
    """Percentile bootstrap confidence interval of a metric, resampling images.

    Images are drawn with replacement (the same draw for every array), the metric is
    recomputed ``num_boot`` times, and the interval is the ``(1 - ci) / 2`` and
    ``(1 + ci) / 2`` quantiles of the resampled values (NaN draws ignored).

    Args:
        metric_fn: a metric such as :func:`~v4compact.metrics.raw_r2` or
            :func:`~v4compact.metrics.r2_er`, returning ``(neurons,)`` or a float.
        *arrays: its positional inputs, in the metrics' convention: the image axis is
            axis 0 of a 1-D array and axis 1 otherwise (``(neurons, images)``,
            ``(neurons, images, repeats)``). Use ``image_axis`` for other layouts, e.g.
            ``image_axis=(0, 0)`` for one neuron's ``(images, repeats)`` and ``(images,)``.
        num_boot: number of bootstrap resamples.
        ci: coverage of the interval, in (0, 1).
        seed: seed of the resampling.
        image_axis: the image axis of every array (an int for all, or one per array).
        **metric_kwargs: passed on to ``metric_fn``.

    Returns:
        ``(estimate, ci_low, ci_high)``: the metric on the full data and the interval
        bounds, each float64 ``(neurons,)`` (floats when the metric returns a float).
    """
    if not arrays:
        raise InvalidInputError("bootstrap_ci needs at least one data array after metric_fn")
    if not 0 < ci < 1:
        raise InvalidInputError(f"ci must be between 0 and 1 (e.g. 0.95), got {ci}")
    if num_boot < 1:
        raise InvalidInputError(f"num_boot must be >= 1, got {num_boot}")
    arrays = [np.asarray(a) for a in arrays]
    axes = _image_axes(arrays, image_axis)
    sizes = {a.shape[ax] for a, ax in zip(arrays, axes, strict=True)}
    if len(sizes) != 1:
        raise InvalidInputError(
            f"the arrays have different numbers of images along their image axes ({sizes}); "
            "pass image_axis to name the image axis of each"
        )
    num_images = sizes.pop()
    estimate = metric_fn(*arrays, **metric_kwargs)
    rng = np.random.default_rng(seed)
    fast = _correlation_fast_path(metric_fn, arrays, image_axis, metric_kwargs)
    draws = []
    for _ in range(num_boot):
        idx = rng.integers(0, num_images, size=num_images)
        if fast is not None:
            draws.append(np.bincount(idx, minlength=num_images))
            continue
        sample = [np.take(a, idx, axis=ax) for a, ax in zip(arrays, axes, strict=True)]
        draws.append(np.asarray(metric_fn(*sample, **metric_kwargs), dtype=np.float64))
    draws = np.stack(draws)
    if fast is not None:
        draws = fast(draws.astype(np.float64))
    alpha = (1.0 - ci) / 2.0
    with np.errstate(invalid="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN neurons give NaN bounds
            low = np.nanquantile(draws, alpha, axis=0)
            high = np.nanquantile(draws, 1.0 - alpha, axis=0)
    if np.ndim(estimate) == 0:
        return float(estimate), float(low), float(high)
    return np.asarray(estimate, dtype=np.float64), low, high


def _correlation_fast_path(metric_fn, arrays, image_axis, metric_kwargs):
    """For raw_r2 / pearson_r: a function of bootstrap counts ``(boot, images)``.

    Resampling images with replacement is the same as weighting each image by how often it
    was drawn, so the weighted sums of all resamples come from a few matrix products
    instead of one metric call per resample (same draws, same values up to rounding).
    """
    from .correlation import pearson_r, raw_r2

    if metric_fn not in (raw_r2, pearson_r) or metric_kwargs or image_axis is not None:
        return None
    if len(arrays) != 2 or arrays[0].shape != arrays[1].shape or arrays[0].ndim > 2:
        return None
    y = np.atleast_2d(np.asarray(arrays[0], dtype=np.float64))
    x = np.atleast_2d(np.asarray(arrays[1], dtype=np.float64))
    valid = np.isfinite(x) & np.isfinite(y)
    with np.errstate(invalid="ignore"):
        x = np.where(valid, x - np.nanmean(np.where(valid, x, np.nan), 1, keepdims=True), 0.0)
        y = np.where(valid, y - np.nanmean(np.where(valid, y, np.nan), 1, keepdims=True), 0.0)
    mask = valid.astype(np.float64)
    squared = metric_fn is raw_r2

    def from_counts(weights: np.ndarray) -> np.ndarray:
        sw = weights @ mask.T
        sx, sy = weights @ x.T, weights @ y.T
        sxx, syy, sxy = weights @ (x * x).T, weights @ (y * y).T, weights @ (x * y).T
        with np.errstate(invalid="ignore", divide="ignore"):
            vx = sw * sxx - sx * sx
            vy = sw * syy - sy * sy
            r = (sw * sxy - sx * sy) / np.sqrt(vx * vy)
        r[(vx <= 1e-12 * sw * sxx) | (vy <= 1e-12 * sw * syy) | (sw < 3)] = np.nan
        out = r * r if squared else r
        return out[:, 0] if arrays[0].ndim == 1 else out

    return from_counts
