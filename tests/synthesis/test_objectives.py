"""Objectives: behaviour on the real compact models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from v4compact.errors import InvalidInputError, UnknownNeuronError
from v4compact.images import IMAGE_MEAN
from v4compact.synthesis import channel, diversity, minimize, neuron, render
from v4compact.synthesis.objectives import RenderContext, resolve_columns


def _context(model, images: np.ndarray) -> RenderContext:
    x = torch.from_numpy((images.astype(np.float32) - IMAGE_MEAN).transpose(0, 3, 1, 2).copy())
    return RenderContext(model, x)


def test_neuron_objective_improves_over_five_steps(compact_2):
    result = render(compact_2, neuron(0), num_images=2, steps=5, seed=1, progress=False)
    assert result.history.shape == (5, 2)
    assert np.all(result.history[-1] > result.history[0])
    assert np.all(result.scores >= result.history.max(axis=0) - 1e-4)


def test_channel_objective_improves(compact_2):
    obj = channel("layer2.depthwise", 1, where="center")  # pre-ReLU: never dead
    result = render(compact_2, obj, num_images=2, steps=4, seed=0, progress=False)
    assert np.all(result.history[-1] > result.history[0])
    assert result.target_responses is None and result.responses.shape == (2, 1)


def test_algebra_matches_the_parts(compact_2, heldout_images):
    ctx = _context(compact_2, heldout_images[:3])
    a, b = neuron("201025/2"), channel("layer1", 0)
    combo = 2 * a - b / 4 + 1.5
    expected = 2 * a(ctx) - b(ctx) / 4 + 1.5
    torch.testing.assert_close(combo(ctx), expected)
    torch.testing.assert_close(minimize(a)(ctx), -a(ctx))
    torch.testing.assert_close(sum([a, b])(ctx), a(ctx) + b(ctx))
    assert combo.targets == "201025/2"
    assert "neuron[201025/2]" in combo.description and "channel[layer1:0,mean]" in \
        combo.description
    pred = compact_2.predict(heldout_images[:3])
    np.testing.assert_allclose(a(ctx).detach().numpy(), pred, rtol=1e-4, atol=1e-4)


def test_diversity_is_a_bounded_per_image_score(compact_2, heldout_images):
    ctx = _context(compact_2, heldout_images[:4])
    score = diversity("layer1")(ctx)
    assert score.shape == (4,)
    assert torch.all(score <= 1e-6) and torch.all(score >= -1 - 1e-6)
    alone = diversity("layer1", groups=[0, 1, 2, 3])(ctx)
    torch.testing.assert_close(alone, torch.zeros(4))


def test_unknown_neuron_and_layer_are_one_line_errors(compact_2, heldout_images):
    with pytest.raises(UnknownNeuronError) as err:
        resolve_columns(compact_2, "201025/3")
    assert "\n" not in str(err.value) and "201025/2" in str(err.value)
    with pytest.raises(UnknownNeuronError):
        resolve_columns(compact_2, 1)
    ctx = _context(compact_2, heldout_images[:1])
    with pytest.raises(InvalidInputError, match="layer9"):
        channel("layer9", 0)(ctx)
    with pytest.raises(InvalidInputError, match="out of range"):
        channel("layer2", 999)(ctx)
    with pytest.raises(InvalidInputError, match="per-image targets"):
        neuron([0, 0])(ctx)
