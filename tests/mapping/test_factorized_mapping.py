"""The factorized spatial x feature mapping on real core features of session 201025."""

from __future__ import annotations

import numpy as np
import pytest

from v4compact.errors import InvalidInputError
from v4compact.mapping import FactorizedMapping

from .conftest import median_raw_r2


def test_factorized_mapping_learns_and_keeps_the_best_round(core_201025):
    features, responses, fit, held = core_201025
    responses = responses[:, :20]  # 20 of the 89 neurons keep the test short
    mapping = FactorizedMapping(lr=1e-3, epochs_per_round=2, max_rounds=3, seed=0)
    mapping.fit(features[fit], responses[fit])
    rounds, scores = zip(*mapping.history_, strict=True)
    assert rounds == (0, 1, 2, 3) and mapping.score_name_ == "raw_r2"
    assert scores[mapping.best_round_] == max(scores)
    assert max(scores) > scores[0]  # training improves on the SVD initialisation
    readout = mapping.readout_
    assert readout.spatial.weight.shape == (20, 1, 7, 7)
    assert readout.mixing.weight.shape == (20, 100, 1, 1)
    pred = mapping.predict(features[held])
    assert median_raw_r2(responses[held], pred) > 0.2
    # predictions come back in the responses' units (spikes per 100 ms), not z-scored
    assert abs(np.median(pred.mean(0) / responses[held].mean(0)) - 1) < 0.3


def test_channels_first_equals_channels_last(core_201025):
    features, responses, fit, _ = core_201025
    kwargs = {"lr": 1e-3, "epochs_per_round": 1, "max_rounds": 1, "seed": 3}
    some = fit[:200]
    last = FactorizedMapping(**kwargs).fit(features[some], responses[some, :5])
    first = FactorizedMapping(channels_last=False, **kwargs).fit(
        features[some].transpose(0, 3, 1, 2), responses[some, :5])
    assert np.allclose(last.predict(features[:20]),
                       first.predict(features[:20].transpose(0, 3, 1, 2)), atol=1e-4)
    with pytest.raises(InvalidInputError, match="channels"):
        last.predict(features[:5, :, :, :50])
