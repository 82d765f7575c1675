"""Real features for the mapping tests: a shared compact model's core on session 201025."""

from __future__ import annotations

import numpy as np
import pytest

import v4compact

#: A light core (10 filters in layers 0-2) keeps the fixture to one pass over 1,200 images;
#: the 200-filter core gives median raw R^2 0.42 with the same code (docs/ensemble.md).
CORE = "shared/from_ensemble_model/10:layer4"


@pytest.fixture(scope="package")
def core_201025(data_dir):
    """``(features (1200, 7, 7, 100), responses (1200, 89), fit indices, held-out indices)``."""
    session = v4compact.load_session(201025)
    backbone = v4compact.load_backbone(CORE, pool_to=7)
    features = backbone.features(session.images, batch_size=100)
    fit, held = session.heldout_split()
    return features, session.responses.T, fit, held


def median_raw_r2(responses: np.ndarray, predictions: np.ndarray) -> float:
    """Median over neurons of raw R^2, for ``(images, neurons)`` arrays."""
    from v4compact.metrics import raw_r2

    return float(np.median(raw_r2(responses.T, predictions.T)))
