"""Cross-validated ridge mapping on real responses."""

from __future__ import annotations

import numpy as np
import pytest

from v4compact.errors import InvalidInputError
from v4compact.mapping import RidgeMapping


@pytest.fixture(scope="module")
def population(data_dir):
    path = data_dir / "data_V4_responses" / "responses_repeat_averaged" / "responses_201025.npy"
    return np.load(path).T  # (images, neurons)


def test_ridge_recovers_a_linear_readout(population):
    rng = np.random.default_rng(0)
    features = population[:, :60]
    weights = rng.standard_normal((60, 3))
    clean = features @ weights
    noisy = clean + rng.standard_normal(clean.shape) * clean.std(0) * 3
    targets = np.column_stack([clean, noisy])
    ridge = RidgeMapping().fit(features[:600], targets[:600])
    assert ridge.penalty_.shape == (6,)
    assert ridge.penalty_[:3].max() < ridge.penalty_[3:].min()  # noisier -> more shrinkage
    pred = ridge.predict(features[600:])
    assert np.allclose(pred[:, :3], clean[600:], atol=1e-3 * np.abs(clean).max())
    r = [np.corrcoef(pred[:, k], clean[600:, k - 3])[0, 1] for k in range(3, 6)]
    assert min(r) > 0.5  # 60 features, 600 images, noise s.d. 3x the signal


def test_ridge_predicts_held_out_neurons_from_the_others(population):
    ridge = RidgeMapping(seed=1).fit(population[:600, 10:], population[:600, :10])
    pred = ridge.predict(population[600:, 10:])
    r = [np.corrcoef(pred[:, k], population[600:, k])[0, 1] for k in range(10)]
    assert np.median(r) > 0.2


def test_ridge_input_errors(population):
    with pytest.raises(InvalidInputError, match="transpose"):
        RidgeMapping().fit(population[:100], population[:50, :3])
    with pytest.raises(InvalidInputError, match="fit"):
        RidgeMapping().predict(population)
    with pytest.raises(InvalidInputError, match="positive"):
        RidgeMapping(penalties=[0.0, 1.0])
