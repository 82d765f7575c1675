"""Exported models (ONNX, safetensors, TorchScript) reload and give the same outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import v4compact
from v4compact.errors import DataNotFoundError, InvalidInputError, ModelFormatError
from v4compact.models.formats.export import FORMATS, export_model, load_exported
from v4compact.models.formats.onnx import OnnxModel
from v4compact.models.inputs import to_model_input

MODELS = {
    "compact": lambda d: v4compact.load_compact_model(201025, 10, data_dir=d),
    "shared": lambda d: v4compact.load_shared_model("from_ensemble_model", 5, data_dir=d),
    "population": lambda d: v4compact.load_compact_population(
        ["190923/3", "201025/10", "210225/5"], data_dir=d),
}


@pytest.fixture(scope="module")
def natural_tensor(golden_images) -> torch.Tensor:
    return to_model_input(golden_images[:6])


def _outputs(model, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        out = model(x)
    return out.numpy() if isinstance(out, torch.Tensor) else np.asarray(out)


@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize("fmt", FORMATS)
def test_export_reloads_with_same_outputs(kind, fmt, tmp_path, data_dir, natural_tensor):
    model = MODELS[kind](data_dir)
    path = export_model(model, tmp_path / kind, format=fmt)
    assert path.is_file() and path.parent == tmp_path
    reloaded = load_exported(path)
    assert reloaded.neuron_ids == model.neuron_ids
    assert reloaded.model_id == model.model_id
    ref = _outputs(model, natural_tensor)
    out = _outputs(reloaded, natural_tensor)
    assert out.shape == ref.shape == (6, model.num_outputs)
    err = np.abs(out - ref).max(axis=0) / ref.std(axis=0)
    assert err.max() < 1e-4
    if fmt == "safetensors":
        assert type(reloaded) is type(model)
        np.testing.assert_array_equal(out, ref)  # same weights, same code


def test_export_by_id_adds_suffix(tmp_path, data_dir, golden_images):
    path = export_model("compact/190923/0", tmp_path / "neuron", "onnx", data_dir=data_dir)
    assert path.name == "neuron.onnx"
    onnx_model = load_exported(path)
    assert isinstance(onnx_model, OnnxModel)
    model = v4compact.load_compact_model(190923, 0, data_dir=data_dir)
    images = golden_images[:6]
    ref = model.predict(images)
    out = onnx_model.predict(images)
    assert out.shape == ref.shape == (6,)
    assert np.abs(out - ref).max() < 1e-4 * ref.std()


def test_exported_onnx_takes_any_batch_size(tmp_path, data_dir, natural_tensor):
    model = MODELS["population"](data_dir)
    onnx_model = load_exported(export_model(model, tmp_path / "pop.onnx"))
    for n in (1, 5):
        assert onnx_model(natural_tensor[:n]).shape == (n, 3)
    # the population's CPU micro-batching setting survives the export
    assert model.micro_batch is None


def test_export_errors_are_one_line(tmp_path, data_dir):
    model = MODELS["compact"](data_dir)
    with pytest.raises(InvalidInputError, match="unknown export format"):
        export_model(model, tmp_path / "m", format="pickle")
    with pytest.raises(InvalidInputError, match="V4Model or a model id"):
        export_model(42, tmp_path / "m")
    with pytest.raises(DataNotFoundError):
        load_exported(tmp_path / "missing.onnx")
    text = tmp_path / "notes.safetensors"
    text.write_text("not a model")
    for fmt in FORMATS:
        with pytest.raises(ModelFormatError) as info:
            load_exported(text, format=fmt)
        assert "\n" not in str(info.value)
    with pytest.raises(InvalidInputError, match="cannot tell the format"):
        load_exported(text.rename(tmp_path / "notes.bin"))
