"""User input is converted or rejected with one clear error."""

from __future__ import annotations

import shutil
import warnings
import zipfile

import numpy as np
import pytest
from PIL import Image

from v4compact.errors import (
    InvalidInputError,
    ModelFormatError,
    UnknownNeuronError,
    V4CompactError,
)
from v4compact.models.inputs import as_image_batch
from v4compact.models.keras_io import read_model_file
from v4compact.models.registry import load_compact_model


@pytest.fixture(scope="module")
def model():
    return load_compact_model(190923, 0)


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert message and "\n" not in message
    assert isinstance(err.value, V4CompactError)
    return message


def test_rgba_64x64_array_is_converted_and_resized_with_a_warning(model):
    rgba = np.random.default_rng(3).integers(0, 256, size=(64, 64, 4), dtype=np.uint8)
    with pytest.warns(UserWarning, match="resized to 112x112"):
        batch = as_image_batch(rgba)
    assert batch.shape == (1, 112, 112, 3) and batch.dtype == np.uint8
    expected = np.asarray(Image.fromarray(rgba[..., :3]).resize((112, 112), Image.BILINEAR))
    np.testing.assert_array_equal(batch[0], expected)
    with pytest.warns(UserWarning, match="resized"):
        pred = model.predict(rgba)
    assert pred.shape == (1,) and np.isfinite(pred).all()


def test_grayscale_single_and_float_inputs(golden_images):
    gray = golden_images[0, :, :, 0]
    for form in (gray, gray[:, :, None], gray[None]):
        batch = as_image_batch(form)
        assert batch.shape == (1, 112, 112, 3)
        np.testing.assert_array_equal(batch[0, :, :, 2], gray)
    as_float = as_image_batch(golden_images.astype(np.float64))
    assert as_float.dtype == np.float32 and as_float.shape == (10, 112, 112, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # right-sized input: no warning
        assert as_image_batch(golden_images[0]).shape == (1, 112, 112, 3)


def test_uint8_and_float_give_the_same_prediction(model, golden_images):
    np.testing.assert_allclose(model.predict(golden_images),
                               model.predict(golden_images.astype(np.float32)), rtol=1e-6)


def test_paths_lists_and_folders(model, golden_images, tmp_path):
    paths = []
    for i in range(3):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(golden_images[i]).save(path)
        paths.append(path)
    np.testing.assert_array_equal(as_image_batch(tmp_path), golden_images[:3])
    np.testing.assert_array_equal(as_image_batch([str(p) for p in paths]), golden_images[:3])
    np.testing.assert_array_equal(as_image_batch(paths[1]), golden_images[1:2])
    np.testing.assert_allclose(model.predict(tmp_path), model.predict(golden_images[:3]),
                               rtol=1e-6)


def test_text_file_as_image(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not an image\n")
    with pytest.raises(InvalidInputError) as err:
        as_image_batch(path)
    assert "notes.jpg" in _one_line(err)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((2, 112, 112, 5), dtype=np.uint8),
        np.zeros((2, 3, 112, 112, 3), dtype=np.uint8),
        np.zeros((0, 112, 112, 3), dtype=np.uint8),
        np.array(["a", "b"]),
        np.full((1, 112, 112, 3), np.nan, dtype=np.float32),
        np.full((1, 112, 112, 3), 300, dtype=np.int32),
    ],
)
def test_bad_arrays(model, bad):
    with pytest.raises(InvalidInputError) as err:
        model.predict(bad)
    _one_line(err)


def test_missing_image_file(tmp_path):
    with pytest.raises(InvalidInputError) as err:
        as_image_batch(tmp_path / "nope.png")
    assert "nope.png" in _one_line(err)


def test_zip_without_config_is_not_a_model(tmp_path):
    path = tmp_path / "fake.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(ModelFormatError) as err:
        read_model_file(path)
    assert "config.json" in _one_line(err)


def test_truncated_keras_file(tmp_path, data_dir):
    source = data_dir / "data_compact_models" / "models_keras" / \
        "compact_model_190923_neuron0.keras"
    data = source.read_bytes()
    path = tmp_path / "truncated.keras"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFormatError) as err:
        read_model_file(path)
    assert "truncated" in _one_line(err)


def test_text_file_as_model(tmp_path):
    for name in ("model.keras", "model.h5", "model.weights.h5", "model.npy", "model.pt"):
        path = tmp_path / name
        path.write_text("not a model\n")
        with pytest.raises(ModelFormatError) as err:
            read_model_file(path)
        assert name in _one_line(err)


def test_wrong_kind_of_h5(tmp_path, data_dir):
    """A legacy Keras 2 model renamed to .weights.h5 is rejected, not misread."""
    source = data_dir / "data_compact_models" / "models_h5" / "compact_model_190923_neuron0.h5"
    path = tmp_path / "renamed.weights.h5"
    shutil.copy(source, path)
    with pytest.raises(ModelFormatError) as err:
        read_model_file(path)
    _one_line(err)


def test_neuron_500_of_a_session_with_33():
    with pytest.raises(UnknownNeuronError) as err:
        load_compact_model(190923, 500)
    message = _one_line(err)
    assert "33" in message and "0-32" in message


def test_npy_with_foreign_objects_is_refused(tmp_path):
    """A .npy weight list is unpickled with numpy classes only (no arbitrary code)."""
    from fractions import Fraction

    path = tmp_path / "evil.npy"
    np.save(path, np.array([Fraction(1, 2), np.zeros(3)], dtype=object), allow_pickle=True)
    with pytest.raises(ModelFormatError) as err:
        read_model_file(path)
    assert "refusing" in _one_line(err)


def test_float_images_in_0_1_warn(golden_images):
    with pytest.warns(UserWarning, match="multiply"):
        as_image_batch(golden_images[:1] / 255.0)
