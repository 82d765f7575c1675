"""User input is converted or rejected with one clear error."""

from __future__ import annotations

import shutil
import warnings
import zipfile

import numpy as np
import pytest
from PIL import Image, ImageOps

from v4compact.errors import (
    InvalidInputError,
    ModelFormatError,
    UnknownNeuronError,
    V4CompactError,
)
from v4compact.models.formats.keras_io import read_model_file
from v4compact.models.formats.loaders import load_compact_model
from v4compact.models.inputs import as_image_batch


@pytest.fixture(scope="module")
def model():
    return load_compact_model(190923, 0)


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert message and "\n" not in message
    assert isinstance(err.value, V4CompactError)
    return message


def _on_white(image: Image.Image) -> Image.Image:
    """Pillow's own compositing of an RGBA image on white (the reference)."""
    white = Image.new("RGBA", image.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, image.convert("RGBA")).convert("RGB")


def test_rgba_64x64_array_is_composited_on_white_and_resized_with_a_warning(model):
    rgba = np.random.default_rng(3).integers(0, 256, size=(64, 64, 4), dtype=np.uint8)
    with pytest.warns(UserWarning, match="resized to 112x112"):
        batch = as_image_batch(rgba)
    assert batch.shape == (1, 112, 112, 3) and batch.dtype == np.uint8
    expected = _on_white(Image.fromarray(rgba)).resize((112, 112), Image.Resampling.BICUBIC)
    np.testing.assert_array_equal(batch[0], np.asarray(expected))
    with pytest.warns(UserWarning, match="resized"):
        pred = model.predict(rgba)
    assert pred.shape == (1,) and np.isfinite(pred).all()


def test_wide_photo_is_centre_cropped_then_bicubic_resized(golden_images):
    """The resize policy against Pillow's own ImageOps.fit (centre crop + bicubic)."""
    photo = Image.fromarray(golden_images[0]).resize((300, 200), Image.Resampling.BICUBIC)
    with pytest.warns(UserWarning, match="300x200 centre-cropped"):
        batch = as_image_batch(photo)
    expected = ImageOps.fit(photo, (112, 112), Image.Resampling.BICUBIC, centering=(0.5, 0.5))
    np.testing.assert_array_equal(batch[0], np.asarray(expected))
    # a 224x112 photo: its centre 112x112 square, untouched
    wide = np.concatenate([golden_images[1], golden_images[2]], axis=1)  # (112, 224, 3)
    with pytest.warns(UserWarning, match="224x112"):
        centre = as_image_batch(wide)
    np.testing.assert_array_equal(centre[0], wide[:, 56:168])


def test_right_sized_inputs_pass_through_bit_identical(golden_images, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(as_image_batch(golden_images), golden_images)
        as_float = golden_images.astype(np.float32) + 0.25
        np.testing.assert_array_equal(as_image_batch(as_float), as_float)
        opaque = np.concatenate([golden_images[:2], np.full((2, 112, 112, 1), 255, np.uint8)], -1)
        np.testing.assert_array_equal(as_image_batch(opaque), golden_images[:2])
        Image.fromarray(golden_images[4]).save(tmp_path / "same.png")
        np.testing.assert_array_equal(as_image_batch(tmp_path / "same.png")[0], golden_images[4])


def test_16_bit_png_is_scaled_not_clipped(model, golden_images, tmp_path):
    gray8 = golden_images[0, :, :, 1]
    gray16 = gray8.astype(np.uint16) * 257  # the same brightness in 16 bits: 255 -> 65535
    gray16[0, 0], gray16[0, 1] = 65535, 300  # full white, and a value an 8-bit clip would max
    path = tmp_path / "sixteen.png"
    Image.fromarray(gray16).save(path)
    assert Image.open(path).mode == "I;16"
    batch = as_image_batch(path)
    assert batch.dtype == np.float32 and batch.shape == (1, 112, 112, 3)
    assert batch[0, 0, 0, 0] == 255.0 and batch[0, 0, 1, 0] == pytest.approx(300 / 257)
    expected = np.repeat((gray16 / 257.0).astype(np.float32)[..., None], 3, axis=-1)
    np.testing.assert_array_equal(batch[0], expected)
    np.testing.assert_array_equal(as_image_batch(gray16), batch)  # a uint16 array: the same
    # away from the two edited pixels the 16-bit image is the 8-bit one: same predictions
    gray16[0, :2] = gray8[0, :2].astype(np.uint16) * 257
    Image.fromarray(gray16).save(path)
    np.testing.assert_allclose(model.predict(path), model.predict(gray8), rtol=1e-6)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK", "YCbCr", "1", "I;16"])
def test_pil_images_of_any_mode(golden_images, mode):
    rgb = Image.fromarray(golden_images[5])
    image = rgb.convert("L").convert("I;16") if mode == "I;16" else rgb.convert(mode)
    batch = as_image_batch(image)
    assert batch.shape == (1, 112, 112, 3)
    if mode == "I;16":  # Pillow converts 8-bit gray to 16 bits without rescaling
        expected = np.asarray(rgb.convert("L")).astype(np.float32) / 257.0
        np.testing.assert_allclose(batch[0, :, :, 0], expected, rtol=1e-6)
    else:  # opaque alpha: exactly Pillow's own RGB conversion
        np.testing.assert_array_equal(batch[0], np.asarray(image.convert("RGB")))


def test_transparent_pixels_are_white_in_files_and_pil_images(tmp_path, golden_images):
    rgba = np.concatenate([golden_images[0], np.zeros((112, 112, 1), np.uint8)], axis=-1)
    rgba[:56, :, 3] = 255  # top half opaque, bottom half transparent
    path = tmp_path / "half.png"
    Image.fromarray(rgba).save(path)
    for source in (path, Image.open(path), rgba, [path]):
        batch = as_image_batch(source)
        np.testing.assert_array_equal(batch[0, :56], golden_images[0, :56])
        assert (batch[0, 56:] == 255).all()


def test_exif_orientation_is_applied(golden_images, tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 3  # the camera was upside down: viewers rotate by 180 degrees
    path = tmp_path / "upside_down.png"
    Image.fromarray(golden_images[2]).save(path, exif=exif)
    np.testing.assert_array_equal(as_image_batch(path)[0], golden_images[2][::-1, ::-1])


def test_lists_mix_paths_pil_images_and_arrays(golden_images, tmp_path):
    Image.fromarray(golden_images[0]).save(tmp_path / "a.png")
    mixed = [tmp_path / "a.png", Image.fromarray(golden_images[1]), golden_images[2:4]]
    np.testing.assert_array_equal(as_image_batch(mixed), golden_images[:4])
    as_float = as_image_batch([golden_images[0], golden_images[1].astype(np.float32)])
    assert as_float.dtype == np.float32
    np.testing.assert_array_equal(as_float, golden_images[:2])


def test_to_model_input_recentres_arrays_and_keeps_gradients(golden_images):
    import torch

    from v4compact.images import recenter
    from v4compact.models.inputs import to_model_input

    x = to_model_input(golden_images[:3])
    assert x.shape == (3, 3, 112, 112) and x.dtype == torch.float32
    np.testing.assert_array_equal(x.permute(0, 2, 3, 1).numpy(), recenter(golden_images[:3]))
    pixels = torch.tensor(golden_images[:2], dtype=torch.float32).permute(0, 3, 1, 2)
    pixels.requires_grad_(True)
    y = to_model_input(pixels)
    np.testing.assert_array_equal(y.detach().numpy(), x[:2].numpy())
    y.sum().backward()
    assert torch.equal(pixels.grad, torch.ones_like(pixels))
    assert to_model_input(golden_images[:1], dtype=torch.float64).dtype == torch.float64


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
