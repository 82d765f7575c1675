"""Ridge regression from model features to neurons (SYSTEM.md §7), with scikit-learn.

Three ways to choose the penalty, one class (:class:`RidgeMapping`):

- ``penalty="cv"`` (default): one penalty per neuron from a grid (1e-5 ... 1e5), chosen by
  cross-validation - scikit-learn's ``RidgeCV`` with its closed-form leave-one-out
  error (``num_folds=None``, the default) or shuffled k-fold cross-validation of
  ``Ridge`` fits (``num_folds=k``). Features are z-scored on the fitting images and scaled
  by ``1 / sqrt(num_features)``, so that the grid means the same for 10 or 100,000
  features.
- ``penalty=<number>``: upstream's fixed penalty (100 for the task-driven DNN of figure 1b,
  20000 for the ensemble's embeddings in figure 1h), on the raw features as upstream's
  ``sklearn.linear_model.Ridge(alpha)``.
- ``penalty="heuristic"``: upstream's rule during ensemble training,
  ``alpha = 0.01 x median over features of var(X) * (n - 1)^2`` (variance with ddof 0, n
  fitting images), on the raw features.

Features may be ``(images, F)`` or feature maps of any layout (``(N, C, H, W)`` or
channels-last ``(N, H, W, C)``): they are flattened per image, which a linear map does not
mind as long as fitting and predicting use the same layout. An intercept is always fitted.
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidInputError

__all__ = ["DEFAULT_PENALTIES", "HEURISTIC_SCALE", "RidgeMapping", "heuristic_penalty"]

#: The default penalty grid: 11 values, log-spaced from 1e-5 to 1e5.
DEFAULT_PENALTIES = tuple(np.logspace(-5, 5, 11))
#: Upstream's heuristic penalty is this times the median of var(X) * (n - 1)^2.
HEURISTIC_SCALE = 0.01


def _check(features, responses=None):
    x = np.asarray(features, dtype=np.float64)
    if x.ndim < 2:
        raise InvalidInputError(
            f"features must be (images, num_features) or feature maps (images, ...), got "
            f"{x.shape}"
        )
    x = x.reshape(len(x), -1)
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


def heuristic_penalty(features) -> float:
    """Upstream's ridge penalty: 0.01 x median over features of ``var(X) * (n - 1)^2``.

    Args:
        features: float ``(images, ...)``, flattened per image.

    Returns:
        The penalty (0.01 when it is not finite, as upstream).
    """
    x, _ = _check(features)
    alpha = HEURISTIC_SCALE * float(np.median(x.var(axis=0) * (len(x) - 1) ** 2))
    return alpha if np.isfinite(alpha) else HEURISTIC_SCALE


class RidgeMapping:
    """Ridge regression ``features (images, ...) -> responses (images, neurons)``.

    Args:
        penalty: ``"cv"`` (a penalty per neuron by cross-validation over ``penalties``),
            ``"heuristic"`` (upstream's rule) or a positive number (a fixed penalty).
        penalties: the grid searched by ``"cv"`` (on the normalised features).
        num_folds: ``None`` for scikit-learn's closed-form leave-one-out error, or k >= 2 for
            shuffled k-fold cross-validation.
        seed: seed of the k-fold assignment.

    Attributes (after :meth:`fit`):
        penalty_: float64 ``(neurons,)`` penalty used per neuron (on the normalised features
            for ``"cv"``, on the raw features otherwise).
        cv_error_: float64 ``(len(penalties), neurons)`` mean squared CV error (``"cv"`` only).
        coef_: float64 ``(F, neurons)`` weights on the raw (unnormalised) flat features.
        intercept_: float64 ``(neurons,)``.
    """

    def __init__(self, penalty: str | float = "cv", penalties=DEFAULT_PENALTIES,
                 num_folds: int | None = None, seed: int = 0):
        if isinstance(penalty, str):
            if penalty not in ("cv", "heuristic"):
                raise InvalidInputError(
                    f"penalty must be 'cv', 'heuristic' or a positive number, got {penalty!r}"
                )
        elif not penalty > 0:
            raise InvalidInputError(f"a fixed ridge penalty must be positive, got {penalty!r}")
        self.penalty = penalty
        self.penalties = np.asarray(penalties, dtype=np.float64)
        if self.penalties.ndim != 1 or len(self.penalties) == 0 or np.any(self.penalties <= 0):
            raise InvalidInputError("penalties must be a non-empty list of positive numbers")
        if num_folds is not None and num_folds < 2:
            raise InvalidInputError(f"num_folds must be >= 2 (or None), got {num_folds}")
        self.num_folds = num_folds
        self.seed = seed

    def fit(self, features, responses) -> RidgeMapping:
        """Fit the mapping (choosing the penalty per neuron for ``"cv"``).

        Args:
            features: float ``(images, ...)``.
            responses: float ``(images, neurons)`` (or ``(images,)`` for one neuron).

        Returns:
            self.
        """
        from sklearn.linear_model import Ridge

        x, y = _check(features, responses)
        if self.penalty != "cv":
            alpha = heuristic_penalty(x) if self.penalty == "heuristic" else float(self.penalty)
            ridge = Ridge(alpha=alpha).fit(x, y)
            self.penalty_ = np.full(y.shape[1], alpha)
            self.coef_ = ridge.coef_.reshape(-1, x.shape[1]).T
            self.intercept_ = np.asarray(ridge.intercept_, dtype=np.float64).reshape(-1)
            return self
        folds = self.num_folds or 2
        if len(x) < 2 * folds:
            raise InvalidInputError(
                f"ridge needs at least {2 * folds} images to cross-validate, got {len(x)}"
            )
        mean = x.mean(axis=0)
        scale = x.std(axis=0)
        scale[scale == 0] = 1.0
        scale *= np.sqrt(x.shape[1])
        xs = (x - mean) / scale
        self.cv_error_ = (self._loo_errors(xs, y) if self.num_folds is None
                          else self._kfold_errors(xs, y))
        best = np.argmin(self.cv_error_, axis=0)
        self.penalty_ = self.penalties[best]
        coef = np.empty((x.shape[1], y.shape[1]))
        intercept = np.empty(y.shape[1])
        # one fit per chosen penalty: scikit-learn's per-target penalties solve neuron by
        # neuron, ~50x slower here (600 images x 4,900 features, 89 neurons)
        for index in np.unique(best):
            cols = best == index
            ridge = Ridge(alpha=self.penalties[index]).fit(xs, y[:, cols])
            coef[:, cols] = ridge.coef_.reshape(-1, x.shape[1]).T
            intercept[cols] = ridge.intercept_
        self.coef_ = coef / scale[:, None]
        self.intercept_ = intercept - mean @ self.coef_
        return self

    def _loo_errors(self, xs: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Leave-one-out mean squared errors ``(penalties, neurons)`` (RidgeCV)."""
        from sklearn.linear_model import RidgeCV

        ridge = RidgeCV(alphas=self.penalties, alpha_per_target=True,
                        store_cv_results=True).fit(xs, y)
        # cv_results_: (images, neurons, penalties) squared leave-one-out errors
        return ridge.cv_results_.mean(axis=0).T

    def _kfold_errors(self, xs: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Shuffled k-fold mean squared errors ``(penalties, neurons)``."""
        from sklearn.linear_model import Ridge
        from sklearn.model_selection import KFold, cross_val_predict

        folds = KFold(self.num_folds, shuffle=True, random_state=self.seed)
        return np.stack([((cross_val_predict(Ridge(alpha=a), xs, y, cv=folds) - y) ** 2)
                         .mean(axis=0) for a in self.penalties])

    def predict(self, features) -> np.ndarray:
        """Predicted responses, float64 ``(images, neurons)``, for features ``(images, ...)``."""
        if not hasattr(self, "coef_"):
            raise InvalidInputError("this RidgeMapping is not fitted yet; call fit() first")
        x, _ = _check(features)
        if x.shape[1] != self.coef_.shape[0]:
            raise InvalidInputError(
                f"features have {x.shape[1]} values per image, the mapping was fitted on "
                f"{self.coef_.shape[0]}"
            )
        return x @ self.coef_ + self.intercept_
