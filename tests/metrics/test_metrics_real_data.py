"""The metrics on the real single-repeat recordings, against straightforward loop versions."""

from __future__ import annotations

import numpy as np
import pytest

from v4compact.errors import InvalidInputError
from v4compact.metrics import bootstrap_ci, pearson_r, r2_er, raw_r2, snr, split_half_r2
from v4compact.metrics.simulate import simulate_neurons


@pytest.fixture(scope="module")
def raw_210325(data_dir):
    path = data_dir / "data_V4_responses" / "responses_raw" / "responses_210325.npy"
    return np.load(path)


def _loop_stats(trials):
    """Per-neuron reference of (repeat-mean, s2, n) written as a plain loop over images."""
    means, variances, counts = [], [], []
    for image in trials:
        values = image[~np.isnan(image)]
        means.append(values.mean())
        counts.append(len(values))
        if len(values) >= 2:
            variances.append(values.var(ddof=1))
    return np.array(means), np.mean(variances), np.median(counts)


def _loop_r2_er(trials, prediction):
    y, s2, n = _loop_stats(trials)
    x = prediction - prediction.mean()
    y = y - y.mean()
    m = len(y)
    sxy, sxx, syy = x @ y, x @ x, y @ y
    return (sxy**2 - s2 / n * sxx) / (sxx * syy - s2 / n * (m - 1) * sxx)


def _loop_snr(trials):
    y, s2, n = _loop_stats(trials)
    m = len(y)
    return (y.var() - (m - 1) / m * s2 / n) / s2


def test_r2_er_and_snr_match_loop_reference(raw_210325, data_dir):
    averaged = np.load(
        data_dir / "data_V4_responses" / "responses_repeat_averaged" / "responses_210325.npy"
    )
    assert np.isnan(raw_210325).any()  # genuinely unequal repeats
    # a "model": the population mean response, a real but imperfect predictor
    predictions = np.broadcast_to(averaged.mean(axis=0), averaged.shape)
    values = r2_er(raw_210325, predictions)
    ratios = snr(raw_210325)
    for k in range(0, raw_210325.shape[0], 7):
        assert values[k] == pytest.approx(_loop_r2_er(raw_210325[k], predictions[k]), rel=1e-9)
        assert ratios[k] == pytest.approx(_loop_snr(raw_210325[k]), rel=1e-9)
    # noise correction raises the estimate for a real predictor
    assert np.median(values) > np.median(raw_r2(averaged, predictions))


def test_raw_r2_matches_numpy_and_ignores_nan(raw_210325):
    averaged = np.nanmean(raw_210325, axis=2)
    first_repeat = raw_210325[:, :, 0]
    values = raw_r2(averaged, first_repeat)
    for k in (0, 13, 49):
        assert values[k] == pytest.approx(np.corrcoef(averaged[k], first_repeat[k])[0, 1] ** 2)
    holes = first_repeat.copy()
    holes[:, ::5] = np.nan
    keep = np.ones(averaged.shape[1], bool)
    keep[::5] = False
    assert np.allclose(raw_r2(averaged, holes), raw_r2(averaged[:, keep], first_repeat[:, keep]))
    assert isinstance(raw_r2(averaged[0], first_repeat[0]), float)
    assert pearson_r(averaged[0], averaged[0]) == pytest.approx(1.0)


def test_metrics_are_invariant_to_prediction_scale(raw_210325):
    predictions = raw_210325[:, :, 0]
    predictions = np.where(np.isnan(predictions), 0.0, predictions)
    base = r2_er(raw_210325, predictions)
    assert np.allclose(r2_er(raw_210325, 3.0 * predictions - 7.0), base)
    sh = split_half_r2(raw_210325, predictions, num_splits=5, seed=1)
    assert np.allclose(sh, split_half_r2(raw_210325, 2 * predictions, num_splits=5, seed=1))


def test_single_neuron_and_shape_errors(raw_210325):
    one = raw_210325[3]
    prediction = np.nanmean(one, axis=1)
    assert isinstance(r2_er(one, prediction), float)
    assert isinstance(snr(one), float)
    assert r2_er(one, prediction) == pytest.approx(r2_er(raw_210325, np.nanmean(raw_210325, 2))[3])
    with pytest.raises(InvalidInputError, match="transpose"):
        raw_r2(np.zeros((5, 10)), np.zeros((10, 5)))
    with pytest.raises(InvalidInputError, match="repeats"):
        r2_er(np.zeros(10), np.zeros(10))


def test_bootstrap_ci_brackets_estimate_and_covers_truth():
    sim = simulate_neurons(num_neurons=100, num_images=200, num_repeats=8, true_r2=0.5,
                           snr=0.3, noise="poisson", seed=11)
    estimate, low, high = bootstrap_ci(r2_er, sim.raw_responses, sim.predictions, num_boot=200)
    assert estimate.shape == low.shape == high.shape == (100,)
    assert np.all(low <= high)
    assert np.mean((low <= sim.true_r2) & (sim.true_r2 <= high)) >= 0.9
    again = bootstrap_ci(r2_er, sim.raw_responses, sim.predictions, num_boot=200)
    assert np.array_equal(again[1], low)  # seeded
    one = bootstrap_ci(raw_r2, sim.responses[0], sim.predictions[0], num_boot=100)
    assert all(isinstance(v, float) for v in one) and one[1] <= one[0] <= one[2]
    with pytest.raises(InvalidInputError, match="ci"):
        bootstrap_ci(raw_r2, sim.responses, sim.predictions, ci=95)


def test_bootstrap_fast_path_equals_resampling_loop(raw_210325):
    averaged = np.nanmean(raw_210325, axis=2)
    predictions = np.where(np.isnan(raw_210325[:, :, 1]), 0.0, raw_210325[:, :, 1])
    predictions[2, 7] = np.nan  # NaN pairs are dropped per resample in both paths
    fast = bootstrap_ci(raw_r2, averaged, predictions, num_boot=60, seed=4)
    loop = bootstrap_ci(lambda y, x: raw_r2(y, x), averaged, predictions, num_boot=60, seed=4)
    for a, b in zip(fast, loop, strict=True):
        assert np.allclose(a, b, atol=1e-10, equal_nan=True)
