"""The data of an ensemble training run: the images each session trains on, responses
z-scored per neuron, backbone features from the feature cache, and the early-stopping
validation (ridge from the members' embeddings to the validation session, out of fold).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from ..errors import DataNotFoundError
from .ensemble_config import VALIDATION_FOLD_SEED, VALIDATION_FOLDS, WE_EXCLUDED_IMAGES

__all__ = ["Features", "SessionData", "default_sessions", "fold_ids", "out_of_fold_predictions",
           "training_image_indices", "validation_metric", "validation_score",
           "zscore_responses"]

def training_image_indices(session) -> np.ndarray:
    """Indices of a session's images used for training (0-based, file order).

    The release's sessions of the WE animal skip images 601-900 (synthesized); other release
    sessions use all. An imported session trains on its fit half only, so that its held-out
    half can score the result.
    """
    from ..data.datasets import RELEASE_DATASET

    if session.dataset != RELEASE_DATASET:
        return np.asarray(session.heldout_split()[0])
    indices = np.arange(session.num_images)
    if session.animal == "WE":
        indices = indices[(indices < WE_EXCLUDED_IMAGES.start)
                          | (indices >= WE_EXCLUDED_IMAGES.stop)]
    return indices


def zscore_responses(responses: np.ndarray) -> np.ndarray:
    """Z-score each neuron over images (s.d. with ddof 0; a constant neuron becomes 0).

    Args:
        responses: float ``(neurons, images)`` spike counts.

    Returns:
        float32 ``(images, neurons)`` in z-scored units.
    """
    values = np.asarray(responses, dtype=np.float64)
    mean = values.mean(axis=1, keepdims=True)
    sd = values.std(axis=1, keepdims=True)
    z = np.divide(values - mean, sd, out=np.zeros_like(values), where=sd > 0)
    return np.ascontiguousarray(z.T, dtype=np.float32)


@dataclass
class SessionData:
    """One session's training arrays: features ``(n, H, W, C)``, z-scored ``(n, neurons)``."""

    session_id: int
    features: np.ndarray | None
    targets: np.ndarray
    responses: np.ndarray  # the repeat-averaged responses (neurons, n) of the used images
    raw: np.ndarray | None  # single-repeat (neurons, n, repeats) or None


class Features:
    """Backbone features of sessions: from the cache, or recomputed at every call."""

    def __init__(self, backbone, cache, max_images: int | None, data_dir) -> None:
        self.backbone, self.cache, self.max_images, self.data_dir = (backbone, cache,
                                                                     max_images, data_dir)

    def indices(self, session, training: bool) -> np.ndarray:
        indices = training_image_indices(session) if training else np.arange(session.num_images)
        return indices[:self.max_images] if self.max_images else indices

    def load(self, session_id: int, training: bool, with_features: bool = True
             ) -> SessionData:
        """A session's arrays; ``with_features=False`` leaves ``features`` empty (``None``)."""
        from ..data.session import load_session

        session = load_session(session_id, data_dir=self.data_dir)
        indices = self.indices(session, training)
        if not with_features:
            features = None
        elif self.cache is None:
            features = self.backbone.features(np.asarray(session.images[indices]))
        else:
            everything = len(indices) == session.num_images
            digest = hashlib.sha256(indices.tobytes()).hexdigest()[:10]
            name = f"session{str(session_id).replace(':', '-')}" + (
                "" if everything else f"-{digest}")
            images = session.images if everything else np.asarray(session.images[indices])
            features = self.cache.features(self.backbone, images, name)
        responses = session.responses[:, indices]
        raw = session.raw_responses[:, indices] if session.has_raw_responses else None
        if features is not None:  # in memory: random batches, writable for torch
            features = np.array(features, dtype=np.float32)
        return SessionData(session_id, features, zscore_responses(responses), responses, raw)


def default_sessions(data_dir) -> list[int]:
    from ..data.catalog import list_sessions
    from ..data.session import load_session

    ids = [s.session_id for s in list_sessions(split="train")
           if load_session(s.session_id, data_dir=data_dir).has_images]
    if not ids:
        raise DataNotFoundError(
            "no training session has its images in the data directory; fetch some with "
            "'v4compact data fetch session:<id>' or pass --sessions"
        )
    return ids


def fold_ids(num_images: int) -> np.ndarray:
    """Fold of each validation image: upstream's seeded shuffle, then contiguous folds."""
    order = np.random.RandomState(VALIDATION_FOLD_SEED).permutation(num_images)
    folds = np.empty(num_images, dtype=np.int64)
    folds[order] = np.arange(num_images) * VALIDATION_FOLDS // num_images
    return folds


def out_of_fold_predictions(embeddings: np.ndarray, responses: np.ndarray) -> np.ndarray:
    """Cross-validated ridge predictions of every image (upstream's heuristic penalty).

    Ridge in its kernel (dual) form: one Gram matrix of the images serves every fold, and
    each fold solves an ``n_fit x n_fit`` system - the same solution as scikit-learn's
    ``Ridge(alpha)`` with an intercept (features and responses centred on the fitting
    images), at a fraction of the cost when features outnumber images (25,088 embedding
    values, 700 images per fold: ~40x faster than eight ``Ridge`` fits on a busy CPU).

    Args:
        embeddings: ``(N, ...)`` one member's embeddings of the validation images.
        responses: ``(N, neurons)`` responses.

    Returns:
        float64 ``(N, neurons)``: each image predicted by the ridge fitted on the other folds.
    """
    from scipy.linalg import solve

    from ..mapping.ridge import heuristic_penalty

    x = np.asarray(embeddings, dtype=np.float64).reshape(len(embeddings), -1)
    y = np.asarray(responses, dtype=np.float64)
    gram = x @ x.T
    folds = fold_ids(len(x))
    predictions = np.empty(y.shape, dtype=np.float64)
    for fold in range(VALIDATION_FOLDS):
        held = folds == fold
        fit = ~held
        alpha = heuristic_penalty(x[fit])
        fit_gram = gram[np.ix_(fit, fit)]
        cross = gram[np.ix_(held, fit)]
        column_mean, total_mean = fit_gram.mean(axis=0), fit_gram.mean()
        centred = fit_gram - column_mean[None, :] - column_mean[:, None] + total_mean
        cross = cross - cross.mean(axis=1, keepdims=True) - column_mean[None, :] + total_mean
        y_mean = y[fit].mean(axis=0)
        centred[np.diag_indices_from(centred)] += alpha
        dual = solve(centred, y[fit] - y_mean, assume_a="pos")
        predictions[held] = cross @ dual + y_mean
    return predictions


def validation_metric(data: SessionData) -> str:
    """r2_ER when the session's single-repeat responses exist, raw R^2 otherwise."""
    return "r2_er" if data.raw is not None else "raw_r2"


def validation_score(mean_predictions: np.ndarray, data: SessionData) -> float:
    """Median over neurons of :func:`validation_metric` of ``(N, neurons)`` predictions."""
    from ..metrics import r2_er, raw_r2

    if data.raw is not None:
        return float(np.nanmedian(r2_er(data.raw, mean_predictions.T)))
    return float(np.nanmedian(raw_r2(data.responses, mean_predictions.T)))
