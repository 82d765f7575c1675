"""The .keras, .weights.h5, .npy, .pt and .h5 files of the sample neurons give the same model."""

from __future__ import annotations

import numpy as np
import pytest

from v4compact.models.formats.keras_io import FORMATS, read_model_file
from v4compact.models.formats.loaders import load_compact_model

from .conftest import FORMAT_NEURONS, relative_error


@pytest.mark.parametrize(("session", "neuron"), FORMAT_NEURONS)
def test_all_formats_give_the_same_outputs(session, neuron, golden, golden_images):
    ref = golden["compact_outputs"][list(golden["compact_ids"]).index(
        f"compact/{session}/{neuron}")]
    outputs = {}
    for fmt in FORMATS:
        model = load_compact_model(session, neuron, format=fmt)
        assert model.model_id == f"compact/{session}/{neuron}"
        outputs[fmt] = model.predict(golden_images)
    for fmt, pred in outputs.items():
        assert relative_error(pred, ref) < 1e-4, fmt  # each format matches Keras
        # and the formats match each other (the .pt port is float64, rounded to float32)
        assert relative_error(pred, outputs["keras"]) < 1e-5, fmt


@pytest.mark.parametrize(("session", "neuron"), FORMAT_NEURONS)
def test_all_formats_give_the_same_weights(session, neuron, data_dir):
    root = data_dir / "data_compact_models"
    stem = f"compact_model_{session}_neuron{neuron}"
    files = {
        "keras": root / "models_keras" / f"{stem}.keras",
        "weights-h5": root / "model_weights_h5" / f"{stem}.weights.h5",
        "npy": root / "model_weights_npy" / f"{stem}.npy",
        "torch": root / "models_torch" / f"{stem}.pt",
        "h5": root / "models_h5" / f"{stem}.h5",
    }
    expected_filters = np.load(root / "nums_filters" / f"{stem}.npy").tolist()
    reference = read_model_file(files["keras"])
    assert reference.num_filters == expected_filters
    assert reference.bn_eps == pytest.approx(1e-3) and reference.relu
    for fmt, path in files.items():
        weights = read_model_file(path, num_filters=expected_filters)  # format from the name
        assert weights.format == fmt
        assert weights.kind == "compact" and weights.num_filters == expected_filters
        assert weights.state_dict.keys() == reference.state_dict.keys()
        for name, value in reference.state_dict.items():
            assert value.dtype == np.float32
            # exact for the Keras files; float64 -> float32 rounding for the .pt port
            np.testing.assert_allclose(weights.state_dict[name], value, rtol=1e-6, atol=1e-8,
                                       err_msg=f"{fmt} {name}")


def test_keras_config_decides_the_architecture(data_dir):
    """Filters, ReLUs and the head are read from each file, not assumed."""
    shared = data_dir / "data_shared_compact_models"
    relu = read_model_file(shared / "from_ensemble_model" / "shared_compact_model_35filters.keras")
    linear = read_model_file(
        shared / "linear_from_ensemble_model" / "shared_compact_model_35filters.keras")
    for weights in (relu, linear):
        assert weights.kind == "shared"
        assert weights.num_filters == [35, 35, 35, 100, 100]
        assert weights.num_outputs == 219
        assert weights.state_dict["readout.mixing.weight"].shape == (219, 100, 1, 1)
        assert weights.state_dict["readout.spatial.weight"].shape == (219, 1, 28, 28)
    assert relu.relu and not linear.relu


def test_mismatching_nums_filters_is_an_error(data_dir):
    from v4compact.errors import ModelFormatError

    path = data_dir / "data_compact_models" / "models_keras" / "compact_model_201025_neuron10.keras"
    with pytest.raises(ModelFormatError, match="nums_filters"):
        read_model_file(path, num_filters=[1, 2, 3, 4, 5])


def _rewrite_keras(source, target, edit) -> None:
    """Copy a .keras zip, passing its parsed config.json through ``edit``."""
    import json
    import zipfile

    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == "config.json":
                config = json.loads(data)
                edit(config["config"]["layers"])
                data = json.dumps(config).encode()
            dst.writestr(name, data)


def test_config_that_disagrees_with_the_weights(tmp_path, data_dir):
    from v4compact.errors import ModelFormatError

    source = data_dir / "data_compact_models" / "models_keras" / \
        "compact_model_201025_neuron10.keras"

    def more_filters(layers):
        next(lay for lay in layers if lay["name"] == "layer1_conv")["config"]["filters"] = 40

    def no_head(layers):
        del layers[-1]

    for edit, text in ((more_filters, "inconsistent"), (no_head, "unsupported architecture")):
        path = tmp_path / f"{edit.__name__}.keras"
        _rewrite_keras(source, path, edit)
        with pytest.raises(ModelFormatError, match=text):
            read_model_file(path)


def test_a_shared_file_is_not_a_compact_model(data_dir):
    from v4compact.errors import ModelFormatError
    from v4compact.models.nets.compact import CompactModel
    from v4compact.models.nets.shared import SharedCompactModel

    shared_dir = data_dir / "data_shared_compact_models" / "from_vgg19"
    shared = read_model_file(shared_dir / "shared_compact_model_5filters.keras")
    with pytest.raises(ModelFormatError, match="load_shared_model"):
        CompactModel.from_weights(shared)
    compact = read_model_file(
        data_dir / "data_compact_models" / "models_keras" / "compact_model_190923_neuron0.keras")
    with pytest.raises(ModelFormatError, match="load_compact_model"):
        SharedCompactModel.from_weights(compact)
