"""Mappings from model features to neurons (SYSTEM.md §7).

- :class:`RidgeMapping` (:mod:`.ridge`): ridge regression with a cross-validated penalty per
  neuron (scikit-learn), upstream's fixed penalty or its heuristic;
- :class:`FactorizedMapping` (:mod:`.factorized`): the factorized spatial x feature mapping
  (torch), SVD-initialised from ridge, early-stopped on validation.

Both take features of any backbone, ensemble embeddings or model activations.
"""

from .factorized import FactorizedMapping
from .ridge import DEFAULT_PENALTIES, RidgeMapping, heuristic_penalty

__all__ = ["DEFAULT_PENALTIES", "FactorizedMapping", "RidgeMapping", "heuristic_penalty"]
