"""The estimators against synthetic neurons with a known true R^2 and SNR."""

from __future__ import annotations

import numpy as np
import pytest

from v4compact.errors import InvalidInputError
from v4compact.metrics import r2_er, raw_r2, snr, split_half_r2, split_half_reliability
from v4compact.metrics.simulate import simulate_neurons


@pytest.mark.parametrize("noise", ["gaussian", "poisson"])
@pytest.mark.parametrize("true_r2", [0.3, 0.8])
@pytest.mark.parametrize(("repeats", "min_repeats"), [(5, None), (10, 6)])
def test_r2_er_is_unbiased_where_raw_r2_is_not(noise, true_r2, repeats, min_repeats):
    sim = simulate_neurons(
        num_neurons=600, num_images=300, num_repeats=repeats, true_r2=true_r2, snr=0.3,
        noise=noise, min_repeats=min_repeats, seed=7,
    )
    assert np.allclose(raw_r2(sim.expected_responses, sim.predictions), true_r2)
    estimate = r2_er(sim.raw_responses, sim.predictions)
    raw = raw_r2(sim.responses, sim.predictions)
    assert abs(estimate.mean() - true_r2) < 0.02
    assert true_r2 - raw.mean() > 0.05  # raw R^2 is visibly biased downwards
    if min_repeats is not None:
        assert np.isnan(sim.raw_responses).any()


def test_split_half_r2_converges_with_many_repeats():
    sim = simulate_neurons(num_neurons=300, num_images=300, num_repeats=20, true_r2=0.6,
                           snr=0.5, noise="poisson", seed=1)
    values = split_half_r2(sim.raw_responses, sim.predictions, num_splits=10, seed=0)
    assert abs(np.mean(values) - 0.6) < 0.02


def test_split_half_reliability_matches_theory():
    sim = simulate_neurons(num_neurons=400, num_images=300, num_repeats=8, snr=0.4,
                           noise="gaussian", seed=2)
    expected = 0.4 / (0.4 + 1 / 8)  # var(mu) / var(repeat-mean)
    values = split_half_reliability(sim.raw_responses, num_splits=10)
    assert abs(np.mean(values) - expected) < 0.02


@pytest.mark.parametrize("noise", ["gaussian", "poisson"])
def test_snr_is_unbiased(noise):
    sim = simulate_neurons(num_neurons=500, num_images=300, num_repeats=6, snr=0.3,
                           noise=noise, min_repeats=4, seed=3)
    assert np.allclose(sim.true_snr, 0.3)
    assert abs(np.mean(snr(sim.raw_responses)) - 0.3) < 0.02


def test_simulation_is_seeded_and_validated():
    a = simulate_neurons(num_neurons=3, num_images=20, seed=5, noise="poisson")
    b = simulate_neurons(num_neurons=3, num_images=20, seed=5, noise="poisson")
    assert np.array_equal(a.raw_responses, b.raw_responses)
    with pytest.raises(InvalidInputError, match="noise model"):
        simulate_neurons(noise="binomial")
    with pytest.raises(InvalidInputError, match="true_r2"):
        simulate_neurons(true_r2=1.5)
