"""The ensemble model's mapping (SYSTEM.md §7): one ridge per member from its embedding to a
session's neurons, the members' predictions averaged."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import InvalidInputError
from ..models.teachers.ensemble import EnsembleMember
from .ridge import RidgeMapping

__all__ = ["ensemble_ridge_predictions"]


def ensemble_ridge_predictions(members: Sequence[EnsembleMember], features_fit: np.ndarray,
                               responses_fit: np.ndarray, features_eval: np.ndarray,
                               penalty: str | float = "cv", batch_size: int = 64) -> np.ndarray:
    """One ridge per member from its embedding to the neurons, predictions averaged (§7).

    Members are visited one at a time, so memory holds one member's embeddings.

    Args:
        members: trained members (e.g. ``ensemble.members``).
        features_fit: channels-last backbone features ``(n_fit, H, W, C)`` of the fitting
            images.
        responses_fit: ``(n_fit, neurons)`` responses of the fitting images.
        features_eval: backbone features ``(n_eval, H, W, C)`` of the images to predict.
        penalty: :class:`~.ridge.RidgeMapping`'s penalty (``"cv"``,
            ``"heuristic"`` or a number).
        batch_size: feature maps per forward pass.

    Returns:
        float64 ``(n_eval, neurons)``, in the responses' units.
    """
    if len(members) == 0:
        raise InvalidInputError("an ensemble prediction needs at least one member")
    total = None
    for member in members:
        ridge = RidgeMapping(penalty=penalty).fit(member.embeddings(features_fit, batch_size),
                                                  responses_fit)
        predicted = ridge.predict(member.embeddings(features_eval, batch_size))
        total = predicted if total is None else total + predicted
    return total / len(members)
