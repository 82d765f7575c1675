"""Cross-validated ridge regression from model features to neurons (SYSTEM.md §7).

Features are z-scored on the fitting images and scaled by ``1 / sqrt(num_features)``, so
that the penalty grid (1e-5 ... 1e5) means the same for 10 or 100,000 features. Each
neuron gets its own penalty, chosen by k-fold cross-validation (mean squared error). All
penalties and neurons are solved at once from one SVD per fold.
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidInputError

#: The default penalty grid: 11 values, log-spaced from 1e-5 to 1e5.
DEFAULT_PENALTIES = tuple(np.logspace(-5, 5, 11))


def _check(features, responses=None):
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise InvalidInputError(
            f"features must be (images, num_features), got {x.shape}; flatten feature maps first"
        )
    if not np.all(np.isfinite(x)):
        raise InvalidInputError("features contain NaN or infinite values; check the model output")
    if responses is None:
        return x, None
    y = np.asarray(responses, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[0] != x.shape[0]:
        raise InvalidInputError(
            f"responses must be (images, neurons) with {x.shape[0]} images like the features, "
            f"got {y.shape}; transpose (neurons, images) responses with .T"
        )
    return x, y


def _shrink(x_train, y_train, x_eval, penalties):
    """Predictions ``(penalties, n_eval, neurons)`` of ridge fits on centred data."""
    u, s, vt = np.linalg.svd(x_train, full_matrices=False)
    uty = u.T @ y_train  # (r, K)
    proj = x_eval @ vt.T  # (n_eval, r)
    out = []
    for penalty in penalties:
        d = s / (s * s + penalty)
        out.append(proj @ (d[:, None] * uty))
    return np.stack(out)


class RidgeMapping:
    """Ridge regression ``features (images, F) -> responses (images, neurons)`` with CV.

    Args:
        penalties: candidate ridge penalties (on the normalised features).
        num_folds: folds of the cross-validation over images.
        seed: seed of the fold assignment.

    Attributes (after :meth:`fit`):
        penalty_: float64 ``(neurons,)`` chosen penalty per neuron.
        cv_error_: float64 ``(len(penalties), neurons)`` mean squared CV error.
        coef_: float64 ``(F, neurons)`` weights on the raw (unnormalised) features.
        intercept_: float64 ``(neurons,)``.
    """

    def __init__(self, penalties=DEFAULT_PENALTIES, num_folds: int = 5, seed: int = 0):
        self.penalties = np.asarray(penalties, dtype=np.float64)
        if self.penalties.ndim != 1 or len(self.penalties) == 0 or np.any(self.penalties <= 0):
            raise InvalidInputError("penalties must be a non-empty list of positive numbers")
        if num_folds < 2:
            raise InvalidInputError(f"num_folds must be >= 2, got {num_folds}")
        self.num_folds = num_folds
        self.seed = seed

    def fit(self, features, responses) -> RidgeMapping:
        """Choose a penalty per neuron by CV, then refit on all images.

        Args:
            features: float ``(images, F)``.
            responses: float ``(images, neurons)`` (or ``(images,)`` for one neuron).

        Returns:
            self.
        """
        x, y = _check(features, responses)
        n = x.shape[0]
        if n < 2 * self.num_folds:
            raise InvalidInputError(
                f"ridge needs at least {2 * self.num_folds} images to cross-validate, got {n}"
            )
        mean = x.mean(axis=0)
        scale = x.std(axis=0)
        scale[scale == 0] = 1.0
        scale *= np.sqrt(x.shape[1])
        xs = (x - mean) / scale
        folds = np.random.default_rng(self.seed).permutation(n) % self.num_folds
        errors = np.zeros((len(self.penalties), y.shape[1]))
        for fold in range(self.num_folds):
            train, held = folds != fold, folds == fold
            x_mean, y_mean = xs[train].mean(0), y[train].mean(0)
            pred = _shrink(xs[train] - x_mean, y[train] - y_mean, xs[held] - x_mean,
                           self.penalties) + y_mean
            errors += ((pred - y[held]) ** 2).sum(axis=1)
        self.cv_error_ = errors / n
        best = np.argmin(self.cv_error_, axis=0)
        self.penalty_ = self.penalties[best]
        y_mean = y.mean(0)
        u, s, vt = np.linalg.svd(xs, full_matrices=False)
        uty = u.T @ (y - y_mean)
        coef = np.empty((x.shape[1], y.shape[1]))
        for index in np.unique(best):
            cols = best == index
            d = s / (s * s + self.penalties[index])
            coef[:, cols] = vt.T @ (d[:, None] * uty[:, cols])
        self.coef_ = coef / scale[:, None]
        self.intercept_ = y_mean - mean @ self.coef_
        return self

    def predict(self, features) -> np.ndarray:
        """Predicted responses, float64 ``(images, neurons)``, for features ``(images, F)``."""
        if not hasattr(self, "coef_"):
            raise InvalidInputError("this RidgeMapping is not fitted yet; call fit() first")
        x, _ = _check(features)
        if x.shape[1] != self.coef_.shape[0]:
            raise InvalidInputError(
                f"features have {x.shape[1]} columns, the mapping was fitted on "
                f"{self.coef_.shape[0]}"
            )
        return x @ self.coef_ + self.intercept_
