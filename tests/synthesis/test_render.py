"""The render loop and presets on the real compact and shared models."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from v4compact.errors import InvalidInputError
from v4compact.synthesis import get_preset, neuron, render, synthesize
from v4compact.synthesis.presets import PRESETS
from v4compact.synthesis.routing import RoutedModels

PRESET_NAMES = sorted(PRESETS)


@pytest.fixture(scope="module")
def routed(compact_2, compact_10):
    return RoutedModels([compact_2, compact_10], model_id="two")


def test_upstream_preset_has_the_published_hyper_parameters():
    p = get_preset("upstream")
    assert (p.param, p.optimizer, p.step_size, p.grad_blur_sigma) == \
        ("pixel", "normalized_gradient", 10.0, 1.0)
    assert (p.image_blur_sigma, p.image_blur_every, p.init_low, p.init_high) == \
        (1.0, 50, 128.0, 178.0)
    assert not p.has_transforms and p.total_variation == 0 and p.max_contrast is None


@pytest.mark.slow
def test_upstream_beats_every_heldout_natural_image(routed, natural_range):
    result = synthesize(routed, ["201025/2", "201025/10"], seeds=2, steps=12, progress=False)
    assert result.images.dtype == np.uint8 and result.images.shape == (4, 112, 112, 3)
    assert result.target_ids == ["201025/2"] * 2 + ["201025/10"] * 2
    assert result.start_index == [0, 1, 0, 1]
    best_natural = np.array([natural_range[t][1] for t in result.target_ids])
    assert np.all(result.target_responses > best_natural)


def test_minimize_goes_below_every_heldout_natural_image(compact_2, natural_range):
    result = synthesize(compact_2, seeds=2, steps=15, minimize=True, progress=False)
    assert np.all(result.target_responses < natural_range["201025/2"][0])
    assert result.provenance["minimize"] is True


@pytest.mark.parametrize("preset", ["upstream", "fourier"])
def test_same_seed_gives_identical_images(compact_2, preset):
    kwargs = dict(seeds=1, steps=2, preset=preset, progress=False)
    a = synthesize(compact_2, seed=7, **kwargs)
    b = synthesize(compact_2, seed=7, **kwargs)
    c = synthesize(compact_2, seed=8, **kwargs)
    np.testing.assert_array_equal(a.images, b.images)
    assert not np.array_equal(a.images, c.images)


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_batched_equals_per_neuron(routed, compact_10, preset):
    """The routed batch runs its compact models as one stack (grouped convolutions, one
    forward and backward pass); each neuron's images equal those of its model alone."""
    batched = synthesize(routed, ["201025/2", "201025/10"], seeds=2, steps=4, preset=preset,
                         progress=False)
    alone = synthesize(compact_10, seeds=2, steps=4, preset=preset, progress=False)
    diff = np.abs(batched.images[2:].astype(int) - alone.images.astype(int))
    assert routed._fused  # the per-model CPU path ran
    if get_preset(preset).optimizer == "adam":
        # Adam divides each Fourier coefficient's gradient by its own magnitude, so the
        # float rounding of grouped vs single convolutions (gradients equal to ~1e-6) flips
        # the steps of coefficients whose gradient is ~0: a few pixels differ visibly.
        assert (diff > 1).mean() < 0.05
        np.testing.assert_allclose(batched.target_responses[2:], alone.target_responses,
                                   rtol=0.25)
    else:
        assert diff.max() <= 1  # float rounding only
        np.testing.assert_allclose(batched.target_responses[2:], alone.target_responses,
                                   rtol=1e-3)


@pytest.mark.parametrize("mode", ["threads", "stack"])
def test_routed_gradients_are_each_models_own(compact_2, compact_10, mode):
    """The routed pass computes each image's input gradient inside its forward pass (no
    activation kept or recomputed), per model on a thread pool or in grouped stack chunks;
    the gradient of any weighted sum of the responses equals the one through the separate
    models."""
    torch.manual_seed(0)
    x = torch.randn(5, 3, 112, 112, dtype=torch.float64)
    columns = torch.tensor([1, 0, 1, 1, 0])
    weights = torch.tensor([0.5, -2.0, 1.0, 3.0, 0.25], dtype=torch.float64)
    models = [copy.deepcopy(m).double() for m in (compact_2, compact_10)]
    routed = RoutedModels(models)
    routed.cpu_mode = mode
    a = x.clone().requires_grad_(True)
    y = routed.forward_columns(a, columns)
    (y * weights).sum().backward()
    b = x.clone().requires_grad_(True)
    ref = torch.stack([models[int(c)](b[i:i + 1]).reshape(()) for i, c in enumerate(columns)])
    (ref * weights).sum().backward()
    assert routed._stacks if mode == "stack" else routed._fused
    torch.testing.assert_close(y, ref.detach(), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-9, atol=1e-12)


def test_shared_model_batch_follows_each_images_own_neuron(data_dir):
    """In a 219-output model, one batch of several neurons steps each image along the gradient
    of its own neuron: the same direction as one neuron at a time."""
    from v4compact.models.formats.loaders import load_shared_model

    model = load_shared_model("from_ensemble_model", 5, data_dir=data_dir)
    cols = [3, 40, 100]
    batched = render(model, neuron(cols), steps=1, progress=False, image_seeds=[11, 12, 13])
    for i, col in enumerate(cols):
        alone = render(model, neuron(col), num_images=1, steps=1, progress=False,
                       image_seeds=[11 + i])
        np.testing.assert_allclose(batched.images[i].astype(float),
                                   alone.images[0].astype(float), atol=1.0)
        assert abs(batched.target_responses[i] - alone.target_responses[0]) < 1e-3 * (
            1 + abs(alone.target_responses[0]))
    assert batched.responses.shape == (3, 219)


def test_snapshots_provenance_and_constraints(compact_2):
    result = synthesize(compact_2, seeds=1, steps=4, snapshot_every=2, grayscale=True,
                        max_contrast=30.0, progress=False)
    assert result.snapshots.shape == (2, 1, 112, 112, 3) and result.snapshot_steps == [2, 4]
    img = result.images[0].astype(int)
    assert np.abs(img[..., 0] - img[..., 1]).max() <= 1
    assert np.abs(img[..., 1] - img[..., 2]).max() <= 1
    assert img.std() <= 31.0
    prov = result.provenance
    for key in ("model_id", "objective", "preset", "seed", "v4compact_version", "steps"):
        assert key in prov
    assert prov["model_id"] == "compact/201025/2" and prov["preset"]["grayscale"] is True


def test_bad_input_gives_one_line_errors(compact_2):
    with pytest.raises(InvalidInputError, match="unknown synthesis preset") as err:
        synthesize(compact_2, preset="nope", progress=False)
    assert "\n" not in str(err.value)
    with pytest.raises(InvalidInputError, match="seeds"):
        synthesize(compact_2, seeds=0, progress=False)
    with pytest.raises(InvalidInputError, match="steps"):
        synthesize(compact_2, steps=0, progress=False)
    with pytest.raises(InvalidInputError, match="unknown preset setting"):
        synthesize(compact_2, stepsize=3, progress=False)
    with pytest.raises(InvalidInputError, match="Objective"):
        render(compact_2, "neuron 0", progress=False)


def test_population_routes_each_image_to_its_own_neuron(data_dir):
    """A fused population is routed (each image through its own neuron only) and gives the
    same images as its fused all-neuron forward."""
    from v4compact.models.formats.loaders import load_compact_population

    population = load_compact_population(["201025/2", "190923/0"], data_dir=data_dir)
    routed = synthesize(population, seeds=1, steps=2, progress=False)
    fused = synthesize(population, seeds=1, steps=2, progress=False, route=False)
    assert routed.target_ids == fused.target_ids == ["190923/0", "201025/2"]
    assert routed.responses is None and fused.responses.shape == (2, 2)
    assert np.abs(routed.images.astype(int) - fused.images.astype(int)).max() <= 1
    np.testing.assert_allclose(routed.target_responses, fused.target_responses, rtol=1e-3,
                               atol=1e-3)


def test_one_upstream_step_is_the_published_update(compact_2):
    """x1 = clip(x0 + 10 * blur_sigma1(g / (rms(g) + 1e-5)), 0, 255), g = d response / d x0."""
    import torch

    from v4compact.images import IMAGE_MEAN
    from v4compact.synthesis import param
    from v4compact.synthesis.regularizers import gaussian_blur

    _, image_fn = param.pixel(1, image_seeds=[123])
    x0 = image_fn().detach().clone().requires_grad_(True)
    mean = torch.as_tensor(IMAGE_MEAN).view(1, 3, 1, 1)
    (g,) = torch.autograd.grad(compact_2(x0 - mean).sum(), x0)
    g = g / (g.pow(2).mean().sqrt() + 1e-5)
    expected = (x0.detach() + 10.0 * gaussian_blur(g, 1.0)).clamp(0, 255)
    expected = expected[0].permute(1, 2, 0).numpy()
    result = render(compact_2, neuron(0), num_images=1, steps=1, image_seeds=[123],
                    progress=False)
    assert np.abs(result.images[0].astype(float) - expected).max() <= 0.5 + 1e-3


def test_render_leaves_modes_and_batch_norm_statistics_alone(data_dir):
    """Synthesis runs in inference mode, restores each submodule's own mode, and never
    updates batch-norm running statistics (regression test)."""
    import torch

    from v4compact.models.formats.loaders import load_compact_model

    model = load_compact_model(201025, 2, data_dir=data_dir)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    routed = RoutedModels([model])
    assert not model.training  # the wrapper holds inference models
    model.train()
    result = synthesize(routed, seeds=1, steps=1, progress=False)
    assert model.training and not routed.training
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key])
    model.eval()
    np.testing.assert_allclose(result.target_responses, model.predict(result.images),
                               rtol=1e-4, atol=1e-4)
