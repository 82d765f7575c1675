"""Ridge mappings (scikit-learn) on real core features of session 201025."""

from __future__ import annotations

import numpy as np
import pytest

from v4compact.errors import InvalidInputError
from v4compact.mapping import RidgeMapping, heuristic_penalty

from .conftest import median_raw_r2


def test_cv_ridge_predicts_the_held_out_half(core_201025):
    features, responses, fit, held = core_201025
    ridge = RidgeMapping().fit(features[fit], responses[fit])  # (N, 7, 7, 100) as is
    assert ridge.penalty_.shape == (89,) and ridge.cv_error_.shape == (11, 89)
    score = median_raw_r2(responses[held], ridge.predict(features[held]))
    assert score > 0.25  # measured 0.31 with this 10-filter core (0.42 with 200 filters)
    # k-fold instead of leave-one-out, on flat features: the same choice, near enough
    part = features[:, 2:5, 2:5]
    loo = RidgeMapping().fit(part[fit], responses[fit])
    kfold = RidgeMapping(num_folds=4).fit(part[fit].reshape(len(fit), -1), responses[fit])
    assert abs(median_raw_r2(responses[held], kfold.predict(part[held]))
               - median_raw_r2(responses[held], loo.predict(part[held]))) < 0.03


def test_upstream_fixed_and_heuristic_penalties(core_201025):
    features, responses, fit, held = core_201025
    x = features[fit].reshape(len(fit), -1).astype(np.float64)
    expected = 0.01 * np.median(x.var(axis=0) * (len(fit) - 1) ** 2)
    assert heuristic_penalty(features[fit]) == pytest.approx(expected)
    heuristic = RidgeMapping("heuristic").fit(features[fit], responses[fit])
    assert np.allclose(heuristic.penalty_, expected)
    fixed = RidgeMapping(20000.0).fit(features[fit], responses[fit])
    from sklearn.linear_model import Ridge

    reference = Ridge(alpha=20000.0).fit(x, responses[fit])
    assert np.allclose(fixed.predict(features[held]),
                       reference.predict(features[held].reshape(len(held), -1)), atol=1e-6)
    assert median_raw_r2(responses[held], heuristic.predict(features[held])) > 0.2


def test_ridge_argument_errors():
    with pytest.raises(InvalidInputError, match="positive"):
        RidgeMapping(-1.0)
    with pytest.raises(InvalidInputError, match="'cv', 'heuristic'"):
        RidgeMapping("gcv")
    with pytest.raises(InvalidInputError, match="num_folds"):
        RidgeMapping(num_folds=1)
