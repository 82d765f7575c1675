"""The fused population equals the 219 separate compact models, column by column."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import v4compact
from v4compact.errors import InvalidInputError, UnknownNeuronError, UnknownSessionError
from v4compact.models.engines.population import CompactPopulation
from v4compact.models.inputs import to_model_input
from v4compact.models.nets.macs import STAGES, compact_macs, total_macs
from v4compact.models.zoo import model_neuron_ids

SUBSET = ["211022/41", (190923, 0), "compact/201025/10"]
SUBSET_IDS = ["190923/0", "201025/10", "211022/41"]  # canonical order


def spread_error(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per column: max |pred - ref| over images divided by the s.d. of ref over images."""
    return np.abs(pred - ref).max(axis=0) / ref.std(axis=0)


@pytest.fixture(scope="module")
def population(data_dir):
    return v4compact.load_compact_population(data_dir=data_dir)


@pytest.fixture(scope="module")
def natural(golden_images) -> np.ndarray:
    """The 6 natural reference images, uint8 (6, 112, 112, 3)."""
    return golden_images[:6]


@pytest.fixture(scope="module")
def population_outputs(population, natural) -> np.ndarray:
    return population.predict(natural)


@pytest.fixture(scope="module")
def subset(data_dir):
    return v4compact.load_compact_population(SUBSET, data_dir=data_dir)


def test_all_neurons_in_canonical_order(population, data_dir):
    assert population.model_id == "population"
    assert population.neuron_ids == model_neuron_ids()
    assert population.num_outputs == 219
    assert population.neuron_ids[:2] == ["190923/0", "190923/1"]
    assert population.neuron_ids[-1] == "211022/41"
    folder = data_dir / "data_compact_models" / "nums_filters"
    files = [np.load(folder / f"compact_model_{n.replace('/', '_neuron')}.npy")
             for n in population.neuron_ids]
    assert population.filters_per_model == [f.tolist() for f in files]
    assert population.num_filters == np.sum(files, axis=0).tolist()


@pytest.mark.slow
def test_equals_separate_models_column_by_column(population, population_outputs, natural,
                                                 data_dir):
    separate = np.stack([
        v4compact.load_compact_model(*nid.split("/"), data_dir=data_dir).predict(natural)
        for nid in population.neuron_ids], axis=1)
    assert population_outputs.shape == (6, 219)
    assert population_outputs.dtype == np.float32
    err = spread_error(population_outputs, separate)
    assert err.max() < 1e-5, population.neuron_ids[int(err.argmax())]


def test_matches_keras_golden_outputs(population, population_outputs, golden):
    # the Keras 3 outputs of every compact model on the same natural images
    order = [list(golden["compact_ids"]).index(f"compact/{n}") for n in population.neuron_ids]
    keras = golden["compact_outputs"][order, :6].T
    assert spread_error(population_outputs, keras).max() < 1e-4


def test_subset_selection_and_order(subset, population, population_outputs, natural):
    assert subset.neuron_ids == SUBSET_IDS
    assert subset.num_outputs == 3
    columns = [population.neuron_ids.index(n) for n in SUBSET_IDS]
    out = subset.predict(natural)
    assert out.shape == (6, 3)
    assert spread_error(out, population_outputs[:, columns]).max() < 1e-5


def test_single_neuron_population_predicts_one_column(data_dir, natural):
    pop = v4compact.load_compact_population("201025/10", data_dir=data_dir)
    model = v4compact.load_compact_model(201025, 10, data_dir=data_dir)
    out = pop.predict(natural)
    assert out.shape == (6,)
    assert spread_error(out[:, None], model.predict(natural)[:, None]).max() < 1e-5


def test_group_size_does_not_change_outputs(subset, natural):
    models = subset.to_compact_models()
    one_group = CompactPopulation(models, group_channels=100_000, micro_batch=5)
    assert len(one_group.groups) == 1
    x = to_model_input(natural)
    with torch.no_grad():
        ref, out = subset(x), one_group(x)
    assert spread_error(out.numpy(), ref.numpy()).max() < 1e-5


def test_stack_engine_equals_the_groups(population, population_outputs, natural):
    # the engine CUDA uses by default (one folded stack of all 219 models), run on the CPU
    stacked = copy.deepcopy(population)
    stacked.engine = "stack"
    out = stacked.predict(natural)
    # two float32 paths, each within 1e-5 of the separate models: 2e-5 between them
    assert spread_error(out, population_outputs).max() < 2e-5
    assert list(stacked._stack_cache) == ["cpu"]  # built once, then reused
    stacked.engine = "fast"
    with pytest.raises(InvalidInputError, match="population engine 'fast'"):
        stacked.predict(natural)


def test_feature_maps_match_separate_models(subset, natural):
    models = subset.to_compact_models()
    x = to_model_input(natural[:2])
    with torch.no_grad():
        for layer in subset.layer_names[:-1]:
            fused = subset.forward_to(x, layer)
            slices = subset.channel_slices(layer)
            for model, part in zip(models, slices, strict=True):
                ref = model.forward_to(x, layer)
                assert fused[:, part].shape == ref.shape
                scale = ref.abs().max().item()
                assert (fused[:, part] - ref).abs().max().item() <= 1e-5 * scale, layer
    acts = subset.activations(natural[:2], "layer2")
    assert acts.shape == (2, 28, 28, subset.num_filters[2])


def test_gradients_equal_separate_models(subset):
    models = subset.to_compact_models()
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(2, 3, 112, 112, generator=gen) * 255 - 110).requires_grad_(True)
    weights = torch.tensor([1.0, -2.0, 0.5])
    (subset(x) * weights).sum().backward()
    fused_grad = x.grad.clone()
    x.grad = None
    sum(w * m(x).sum() for w, m in zip(weights, models, strict=True)).backward()
    assert torch.isfinite(fused_grad).all()
    assert fused_grad.abs().max() > 0
    # float32 rounding can flip a ReLU whose input is ~0, so compare the whole gradient
    # image, not each pixel
    assert (fused_grad - x.grad).norm() <= 1e-3 * x.grad.norm()


def test_grad_mode_output_equals_inference_output(subset):
    x = torch.zeros(3, 3, 112, 112).uniform_(-100, 100, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = subset(x)
    out = subset(x.clone().requires_grad_(True))
    assert out.requires_grad
    torch.testing.assert_close(out.detach(), ref, rtol=1e-5, atol=1e-5)


def test_macs_counted_from_filter_counts(population, subset):
    macs = population.macs()
    assert set(macs) == set(STAGES) | {"total"}
    assert macs["total"] == sum(total_macs(f) for f in population.filters_per_model)
    assert macs["total"] == pytest.approx(12.4e9, rel=0.01)  # the figure quoted in issue 3
    assert macs["layer0"] == pytest.approx(9.6e9, rel=0.01)
    assert subset.macs()["layer0"] == sum(compact_macs(f)["layer0"]
                                          for f in subset.filters_per_model)
    assert subset.num_parameters == sum(m.num_parameters for m in subset.to_compact_models())


@pytest.mark.parametrize("neurons, error", [
    (["190923/500"], UnknownNeuronError),
    (["190924/1"], UnknownSessionError),
    (["201025/10", "compact/201025/10"], InvalidInputError),
    (["201025"], InvalidInputError),
    ([], InvalidInputError),
])
def test_bad_neuron_selections(neurons, error, data_dir):
    with pytest.raises(error) as info:
        v4compact.load_compact_population(neurons, data_dir=data_dir)
    assert "\n" not in str(info.value)


def test_bad_tensor_inputs(subset):
    for bad in (torch.zeros(2, 112, 112, 3), torch.zeros(3, 112, 112),
                torch.zeros(1, 3, 112, 112, dtype=torch.uint8)):
        with pytest.raises(InvalidInputError):
            subset(bad)
    with pytest.raises(InvalidInputError, match="no layer"):
        subset.forward_to(torch.zeros(1, 3, 112, 112), "layer9")


def test_population_rejects_non_compact_models(data_dir):
    shared = v4compact.load_shared_model("from_ensemble_model", 5, data_dir=data_dir)
    with pytest.raises(InvalidInputError, match="not a compact model"):
        CompactPopulation([shared])
    with pytest.raises(InvalidInputError):
        CompactPopulation([])


def test_load_model_by_id_gives_population(population, data_dir):
    model = v4compact.load_model("population", data_dir=data_dir)
    assert isinstance(model, CompactPopulation)
    assert model.neuron_ids == population.neuron_ids
    assert model.device == torch.device("cpu")
    assert "groups=" in repr(model)
    assert "population" in v4compact.list_models("pop*", data_dir=data_dir)


def test_tuned_on_first_use_then_cached(natural, data_dir, tmp_path, monkeypatch):
    """The first CPU inference call times the candidate group sizes and micro-batches, keeps
    the fastest and stores it; a new population on this machine reuses it; outputs do not
    depend on the choice."""
    import json

    from v4compact.models.engines import tuning

    monkeypatch.setenv("V4COMPACT_TUNING", str(tmp_path / "tuning.json"))
    first = v4compact.load_compact_population(SUBSET, data_dir=data_dir)
    assert not first._tuned
    out = first.predict(natural[:2])
    stored = json.loads((tmp_path / "tuning.json").read_text())[tuning.machine_key()]["3"]
    assert (first.group_channels, first._cpu_micro_batch) == \
        (stored["group_channels"], stored["micro_batch"])
    assert len(stored["seconds_per_image"]) == 12
    again = v4compact.load_compact_population(SUBSET, data_dir=data_dir)
    assert again._tuned and again.group_channels == first.group_channels
    fixed = v4compact.load_compact_population(SUBSET, data_dir=data_dir)
    fixed.regroup(1)  # one model per group
    assert len(fixed.groups) == 3
    np.testing.assert_allclose(fixed.predict(natural[:2]), out, rtol=1e-5, atol=1e-5)
    x = torch.zeros(1, 3, 112, 112, requires_grad=True)
    first(x).sum().backward()  # groups rebuilt during predict() still record gradients
    assert x.grad.abs().max() > 0
    # the regrouped constants carry no autograd history: the population copies, e.g. for
    # predict(device=...) (a CUDA run found buffers that refused deepcopy)
    assert not any(b.requires_grad or b.grad_fn for b in first.buffers())
    np.testing.assert_array_equal(copy.deepcopy(first).predict(natural[:2]), out)
    monkeypatch.setenv("V4COMPACT_TUNING", "off")
    assert tuning.tuning_file() is None and tuning.cached_choice(3) is None
