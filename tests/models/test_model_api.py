"""predict / activations / forward_to / weights of the compact and shared models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from v4compact.errors import InvalidInputError
from v4compact.images import recenter
from v4compact.models.formats.loaders import load_compact_model, load_shared_model


@pytest.fixture(scope="module")
def compact():
    return load_compact_model(201025, 10)


@pytest.fixture(scope="module")
def shared():
    return load_shared_model("from_ensemble_model", 10)


def test_layer_names(compact, shared):
    expected = ["layer0", "layer1.depthwise", "layer1", "layer2.depthwise", "layer2",
                "layer3.depthwise", "layer3", "layer4.depthwise", "layer4", "output"]
    assert compact.layer_names == expected == shared.layer_names


def test_activation_shapes(compact, golden_images):
    k = compact.num_filters  # [50, 39, 3, 6, 3]
    shapes = {"layer0": (112, 112, k[0]), "layer1.depthwise": (56, 56, k[0]),
              "layer1": (56, 56, k[1]), "layer2.depthwise": (28, 28, k[1]),
              "layer2": (28, 28, k[2]), "layer3.depthwise": (28, 28, k[2]),
              "layer3": (28, 28, k[3]), "layer4": (28, 28, k[4]), "output": (1,)}
    for layer, shape in shapes.items():
        act = compact.activations(golden_images[:2], layer)
        assert act.shape == (2, *shape) and act.dtype == np.float32, layer
        if layer.startswith("layer") and "." not in layer:
            assert act.min() >= 0  # post-ReLU
    with pytest.raises(InvalidInputError, match="layer9"):
        compact.activations(golden_images[:1], "layer9")


def test_readout_of_layer4_activations_gives_the_output(compact, golden_images):
    """Channels-last flatten: output = sum(layer4 map * readout_map) + bias."""
    maps = compact.activations(golden_images, "layer4").astype(np.float64)
    manual = np.einsum("nhwc,hwc->n", maps, compact.readout_map()) + compact.readout_bias()
    np.testing.assert_allclose(manual, compact.predict(golden_images), rtol=1e-4, atol=1e-5)


def test_forward_is_differentiable(compact, golden_images):
    x = torch.from_numpy(recenter(golden_images[:2])).permute(0, 3, 1, 2).contiguous()
    x.requires_grad_(True)
    compact.forward(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    y = compact.forward_to(x.detach(), "layer2.depthwise")
    assert y.shape == (2, 39, 28, 28)


def test_predict_batching_progress_and_shapes(compact, shared, golden_images, capsys):
    full = compact.predict(golden_images, batch_size=64)
    np.testing.assert_allclose(compact.predict(golden_images, batch_size=3, progress=True),
                               full, rtol=1e-5, atol=1e-6)
    assert "compact/201025/10" in capsys.readouterr().err  # the tqdm bar names the model
    assert full.shape == (10,)
    assert compact.predict(golden_images[0]).shape == (1,)
    assert shared.predict(golden_images[:3]).shape == (3, 219)
    with pytest.raises(InvalidInputError):
        compact.predict(golden_images, batch_size=0)


def test_predict_keeps_training_mode_and_runs_on_a_device(compact, golden_images):
    compact.train()
    try:
        out = compact.predict(golden_images[:2], device="cpu")
        assert compact.training  # restored after predict
    finally:
        compact.eval()
    np.testing.assert_allclose(out, compact.predict(golden_images[:2]), rtol=1e-6)
    assert compact.device == torch.device("cpu")


def test_layer_weights_are_keras_layouts(compact, data_dir):
    npy = data_dir / "data_compact_models" / "model_weights_npy" / \
        "compact_model_201025_neuron10.npy"
    keras_list = np.load(npy, allow_pickle=True)  # the release's own get_weights() list
    w0 = compact.layer_weights(0)
    np.testing.assert_array_equal(w0["kernel"], keras_list[0])
    np.testing.assert_array_equal(w0["bias"], keras_list[1])
    np.testing.assert_array_equal(w0["bn_moving_variance"], keras_list[5])
    w1 = compact.layer_weights(1)
    np.testing.assert_array_equal(w1["depthwise_kernel"], keras_list[6])
    np.testing.assert_array_equal(w1["pointwise_kernel"], keras_list[7])
    assert compact.readout_map().shape == (28, 28, 3)
    np.testing.assert_array_equal(compact.readout_map().ravel(), keras_list[-2][:, 0])
    with pytest.raises(InvalidInputError):
        compact.layer_weights(5)


def test_num_parameters_counts_trainable_keras_weights(compact, shared):
    k = compact.num_filters
    expected = (75 * k[0] + k[0]) + sum(25 * k[i - 1] + k[i - 1] * k[i] + k[i]
                                        for i in range(1, 5))
    expected += 2 * sum(k) + 28 * 28 * k[4] + 1  # batch-norm gamma/beta, readout
    assert compact.num_parameters == expected
    assert shared.num_parameters > compact.num_parameters


def test_shared_readout(shared):
    assert shared.readout_map().shape == (28, 28, 219)
    assert shared.mixing_weights().shape == (100, 219)
