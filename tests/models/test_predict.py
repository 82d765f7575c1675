"""The one predict path: one photo gives one response on every route; every model kind runs
through it; the caller's model keeps its device and its train/eval flags."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from v4compact.cli import main
from v4compact.cli.models import read_images
from v4compact.data.session import load_session
from v4compact.errors import InvalidInputError, ModelFormatError
from v4compact.models.formats.export import export_model, load_exported
from v4compact.models.formats.loaders import load_compact_model
from v4compact.models.formats.onnx import OnnxModel
from v4compact.models.inputs import as_image_batch, to_model_input
from v4compact.models.predict import predict
from v4compact.web.uploads import load_upload


@pytest.fixture(scope="module")
def model(data_dir):
    return load_compact_model(201025, 10, data_dir=data_dir)


@pytest.fixture(scope="module")
def photo(tmp_path_factory, data_dir) -> Path:
    """A 224x112 photo (two of 201025's images side by side), written as PNG by Pillow."""
    session = load_session(201025, data_dir=data_dir)
    wide = np.concatenate([session.image(3), session.image(4)], axis=1)
    path = tmp_path_factory.mktemp("photo") / "photo_224x112.png"
    Image.fromarray(wide).save(path)
    return path


def test_one_photo_one_response_in_the_cli_python_and_the_explorer(photo, data_dir, tmp_path,
                                                                      model, capsys):
    from fastapi.testclient import TestClient

    from v4compact.web.app import create_app

    app = create_app(data_dir=data_dir, cache_dir=tmp_path / "site")
    with TestClient(app, base_url="http://127.0.0.1") as client:
        response = client.post("/api/predict",
                               files={"image": (photo.name, photo.read_bytes(), "image/png")})
        assert response.status_code == 200, response.text
        population = app.state.explorer.population()  # the model the route ran
    explorer = {item["neuron_id"]: item["response"] for item in response.json()["responses"]}
    out = tmp_path / "cli.npy"
    assert main(["predict", "all", str(photo), "--out", str(out), "--no-progress",
                 "--data-dir", str(data_dir)]) == 0
    assert "warning: 1 image(s) of size 224x112 centre-cropped" in capsys.readouterr().err
    cli = np.load(out)
    with pytest.warns(UserWarning, match="224x112 centre-cropped"):
        python = predict(population, photo)
    assert python.shape == cli.shape == (1, 219)
    ids = population.neuron_ids
    np.testing.assert_allclose(cli[0], python[0], rtol=0, atol=1e-6)
    np.testing.assert_allclose([explorer[i] for i in ids], python[0], rtol=0, atol=1e-6)
    # the neuron's own compact model (not fused) sees the same input: same response
    with pytest.warns(UserWarning, match="centre-cropped"):
        single = predict(model, photo)
    assert single.shape == (1,)
    assert single[0] == pytest.approx(explorer["201025/10"], abs=1e-5)


@pytest.mark.parametrize("make", ["jpeg_640x480", "rgba_png_300x200", "png16_130x150"])
def test_upload_cli_and_python_make_the_same_pixels(make, golden_images, tmp_path):
    base = Image.fromarray(golden_images[1])
    if make == "jpeg_640x480":
        image, fmt = base.resize((640, 480), Image.Resampling.BICUBIC), "JPEG"
    elif make == "rgba_png_300x200":
        image, fmt = base.resize((300, 200)).convert("RGBA"), "PNG"
        image.putalpha(Image.linear_gradient("L").resize((300, 200)))
    else:
        gray = np.asarray(base.convert("L").resize((130, 150))).astype(np.uint16) * 257
        image, fmt = Image.fromarray(gray), "PNG"
    path = tmp_path / f"upload.{fmt.lower()}"
    image.save(path, fmt)
    with pytest.warns(UserWarning, match="centre-cropped"):
        reference = as_image_batch(path)
        from_cli, _ = read_images([str(path)])
    uploaded = load_upload(path.read_bytes())
    np.testing.assert_array_equal(uploaded, reference[0])
    np.testing.assert_array_equal(from_cli, reference)
    with pytest.warns(UserWarning, match="centre-cropped"):
        np.testing.assert_array_equal(as_image_batch(Image.open(path)), reference)
    assert uploaded.dtype == (np.float32 if make.startswith("png16") else np.uint8)


def _flags(module: nn.Module) -> list[bool]:
    return [m.training for m in module.modules()]


def test_the_callers_model_keeps_its_device_modes_and_statistics(golden_images, data_dir):
    model = load_compact_model(201025, 10, data_dir=data_dir)
    reference = predict(model, golden_images, batch_size=3)  # loaded in eval mode
    model.train()
    first_block = next(m for m in model.modules() if m is not model)
    first_block.eval()  # a mix of modes, as during fine-tuning with a frozen part
    flags = _flags(model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    out = predict(model, golden_images, batch_size=3, device="cpu")
    assert _flags(model) == flags
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    np.testing.assert_array_equal(out, reference)  # batch norm used its moving statistics
    assert {p.device.type for p in model.parameters()} == {"cpu"}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.usefixtures("no_tf32")  # with TF32 (cuDNN's default) outputs differ by ~4e-3
def test_another_device_runs_a_copy(golden_images, model):
    reference = predict(model, golden_images)
    out = predict(model, golden_images, device="cuda")
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    np.testing.assert_allclose(out, reference, rtol=1e-4, atol=1e-4 * np.abs(reference).max())


def test_onnx_torchscript_and_plain_modules_share_the_one_path(model, golden_images, tmp_path):
    reference = predict(model, golden_images)
    onnx_path = export_model(model, tmp_path / "neuron.onnx")
    for runnable in (onnx_path, str(onnx_path), OnnxModel(onnx_path)):
        np.testing.assert_allclose(predict(runnable, golden_images), reference, rtol=1e-5,
                                   atol=1e-5 * np.abs(reference).max())
    scripted = load_exported(export_model(model, tmp_path / "neuron.pt", format="torchscript"))
    np.testing.assert_allclose(predict(scripted, golden_images), reference, rtol=1e-5,
                               atol=1e-5 * np.abs(reference).max())
    np.testing.assert_array_equal(predict(nn.Sequential(model), golden_images), reference)

    features = nn.Sequential(nn.Conv2d(3, 2, 5, stride=4), nn.Flatten())  # (N, 2 * 27 * 27)
    with torch.no_grad():
        expected = features(to_model_input(golden_images)).numpy()
    np.testing.assert_allclose(predict(features, golden_images, batch_size=4), expected,
                               rtol=1e-6, atol=1e-5)


def test_layer_activations_come_from_the_same_path(model, golden_images):
    maps = predict(model, golden_images[:4], layer="layer2")
    assert maps.shape == (4, 28, 28, model.num_filters[2])
    np.testing.assert_array_equal(maps, model.activations(golden_images[:4], "layer2"))
    with torch.no_grad():
        direct = model.forward_to(to_model_input(golden_images[:4]), "layer2")
    np.testing.assert_allclose(maps, direct.permute(0, 2, 3, 1).numpy(), rtol=1e-6, atol=1e-6)


def test_a_lazy_array_is_read_one_batch_at_a_time(model, golden_images):
    class Lazy:
        """An array-like that decodes on indexing, like ``session.images``."""

        shape = golden_images.shape
        reads: list[int] = []

        def __len__(self) -> int:
            return len(golden_images)

        def __getitem__(self, index):
            self.reads.append(len(golden_images[index]))
            return golden_images[index]

    out = predict(model, Lazy(), batch_size=4)
    assert Lazy.reads == [4, 4, 2]
    np.testing.assert_array_equal(out, predict(model, golden_images))


class _TupleOut(nn.Module):
    def forward(self, x):
        return x.mean(dim=(1, 2, 3)), x.std()


@pytest.mark.parametrize("call, error, needle", [
    (lambda m, x: predict(m, x, batch_size=0), InvalidInputError, "batch_size"),
    (lambda m, x: predict(m, x, units="volts"), InvalidInputError, "unknown units"),
    (lambda m, x: predict(m, x, layer="layer9"), InvalidInputError, "no layer"),
    (lambda m, x: predict(m, x, layer="layer2", units="spikes"), InvalidInputError, "layer="),
    (lambda m, x: predict("model.keras", x), InvalidInputError, "load_model"),
    (lambda m, x: predict(object(), x), InvalidInputError, "cannot predict"),
    (lambda m, x: predict(nn.Flatten(), x, layer="layer2"), InvalidInputError, "forward_to"),
    (lambda m, x: predict(nn.Flatten(), x, units="spikes"), InvalidInputError, "neuron_ids"),
    (lambda m, x: predict(_TupleOut(), x), ModelFormatError, "not a tensor"),
    (lambda m, x: predict(m, x[:0]), InvalidInputError, "shape"),
])
def test_bad_calls_raise_one_line(call, error, needle, model, golden_images):
    with pytest.raises(error) as info:
        call(model, golden_images)
    message = str(info.value)
    assert needle in message and "\n" not in message


def test_onnx_refuses_layers_and_other_devices(model, golden_images, tmp_path):
    path = export_model(model, tmp_path / "neuron.onnx")
    for kwargs, needle in (({"layer": "layer2"}, "torch model"), ({"device": "cuda"}, "CPU")):
        with pytest.raises(InvalidInputError, match=needle):
            predict(path, golden_images, **kwargs)


def test_pil_image_input(model, golden_images):
    buffer = io.BytesIO()
    Image.fromarray(golden_images[0]).save(buffer, "PNG")
    image = Image.open(io.BytesIO(buffer.getvalue()))
    assert predict(model, image).shape == (1,)
    np.testing.assert_array_equal(predict(model, image), predict(model, golden_images[:1]))


def test_any_array_model_plugs_into_the_one_path(model, golden_images):
    """The ArrayModel protocol, not the ONNX class, is what predict knows: a plain object
    with model_id, neuron_ids and __call__ on re-centred CPU batches runs like the model."""

    class NumpyWrapper:
        model_id = "wrapped/201025/10"
        neuron_ids = list(model.neuron_ids)
        calls = 0

        def __call__(self, x):
            NumpyWrapper.calls += 1
            with torch.no_grad():
                return model(x).numpy()

    wrapper = NumpyWrapper()
    np.testing.assert_array_equal(predict(wrapper, golden_images, batch_size=4),
                                  predict(model, golden_images, batch_size=4))
    assert NumpyWrapper.calls == -(-len(golden_images) // 4)
    calls = NumpyWrapper.calls
    with pytest.raises(InvalidInputError, match="runs on the CPU"):  # before any calibration
        predict(wrapper, golden_images, device="cuda", units="spikes")
    assert NumpyWrapper.calls == calls
