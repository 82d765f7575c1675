"""The Keras 3 writer: written files read back exactly (Keras: scripts/check_keras_written.py)."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

import v4compact
from v4compact.errors import InvalidInputError
from v4compact.models.formats.keras_io import read_model_file
from v4compact.models.formats.keras_writer import read_keras_metadata, write_keras
from v4compact.models.nets.compact import CompactModel


def test_a_released_model_round_trips_bit_exactly(tmp_path, data_dir):
    model = v4compact.load_compact_model(201025, 10)
    path = write_keras(model, tmp_path / "neuron10", {"teacher": "test", "seeds": [1, 2]})
    assert path.name == "neuron10.keras"
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["config.json", "metadata.json",
                                              "model.weights.h5"]
        config = json.loads(archive.read("config.json"))
    names = [layer["name"] for layer in config["config"]["layers"]]
    assert names[:4] == ["image_input", "layer0_conv", "layer0_bn", "layer0_act"]
    assert names[-2:] == ["embeddings", "Beta"]
    weights = read_model_file(path)
    assert (weights.kind, weights.num_filters, weights.bn_eps, weights.relu) == \
        ("compact", [50, 39, 3, 6, 3], 1e-3, True)
    state = model.state_dict()
    for name, value in weights.state_dict.items():
        np.testing.assert_array_equal(value, state[name].numpy(), err_msg=name)
    assert read_keras_metadata(path) == {"teacher": "test", "seeds": [1, 2]}


def test_load_compact_model_reads_a_written_file_with_its_neuron(tmp_path):
    student = CompactModel.student((4, 5, 3, 6, 3), seed=0, neuron_id="201025/40")
    student.eval()
    path = write_keras(student, tmp_path / "made.keras", {"neuron_id": "201025/40"})
    loaded = v4compact.load_compact_model(path)
    assert loaded.neuron_ids == ["201025/40"] and loaded.model_id == f"file:{path}"
    assert loaded.provenance["neuron_id"] == "201025/40"
    assert v4compact.load_model(f"file:{path}").num_filters == [4, 5, 3, 6, 3]
    images = np.random.default_rng(1).integers(0, 256, (3, 112, 112, 3), dtype=np.uint8)
    np.testing.assert_allclose(loaded.predict(images), student.predict(images), rtol=0,
                               atol=1e-6)


def test_linear_models_are_written_without_activations(tmp_path):
    linear = CompactModel((3, 3, 3, 3, 3), relu=False).reset_parameters(2).eval()
    weights = read_model_file(write_keras(linear, tmp_path / "linear.keras"))
    assert weights.relu is False


def test_a_fused_model_is_refused(tmp_path):
    with pytest.raises(InvalidInputError, match="unfused CompactModel"):
        write_keras(CompactModel.student((3,) * 5, seed=0).fuse(), tmp_path / "fused.keras")
