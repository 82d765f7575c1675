"""The in-page model runtime (static/v4runtime.js, TensorFlow.js) against PyTorch.

Python writes the 219 released models (and a made one) with ``write_browser_model`` into a
folder beside copies of the vendored TensorFlow.js files, the runtime and a tiny harness
page, all under a sub-path (``/deep/site/``); a real ``python -m http.server`` serves it on
127.0.0.1 and headless Debian chromium (as in test_browser.py) runs the models there.
The references are PyTorch's: ``load_compact_model(...).predict`` / ``.activations``, the
autograd input gradient, and ``silenced_copy`` for switched-off filters.

Tolerances are fractions of each neuron's output s.d. over the 20 test images (held-out
photos 0-19 of session 201025). TF.js's ``cpu`` backend is plain JavaScript (~0.3 s per
image per model here), so the check of all 219 models runs on ``wasm``, also exact float32
(XNNPACK, no reduced precision), and ``cpu`` repeats it for a few models.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from .conftest import static_server

pytestmark = pytest.mark.browser

#: The folder the harness lives in on the server: the runtime must work under a sub-path.
SUB_PATH = "deep/site"
#: Test images: the first 20 held-out photos of this session.
SESSION, NUM_IMAGES = 201025, 20
#: Models checked on the slow backends (cpu, and the default one when it is not wasm).
FEW_NEURONS = ("201025/10", "190923/5")
#: Exact float32 backends: outputs within this fraction of the neuron's output s.d.
EXACT = 1e-4
#: The made model's filters (small, as a pruned student).
MADE_FILTERS = (4, 5, 3, 4, 2)

#: Helpers of the harness page, run after the runtime has loaded.
HARNESS_SCRIPT = """
// the test images: uint8 [N, 112, 112, 3] written by the test
async function testImages() {
  return new Uint8Array(await (await fetch("images.bin")).arrayBuffer());
}
// a Float32Array as base64 (far quicker to hand to Python than a list of numbers)
function base64(values) {
  const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  let text = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192));
  }
  return btoa(text);
}"""


# -- Python side -------------------------------------------------------------------------------
def _model_of(neuron_id: str):
    from v4compact import load_compact_model

    session, neuron = neuron_id.split("/")
    return load_compact_model(int(session), int(neuron))


def _forward_from_files(manifest_path: Path, images: np.ndarray) -> np.ndarray:
    """The written model run in torch from its manifest and .bin alone (an independent
    reading of the layouts): ``(N, 112, 112, 3)`` pixels -> ``(N,)`` outputs."""
    manifest = json.loads(manifest_path.read_text())
    raw = (manifest_path.parent / manifest["weights"]).read_bytes()
    weights = {
        t["name"]: torch.from_numpy(np.frombuffer(
            raw, "<f4", t["byte_length"] // 4, t["byte_offset"]).reshape(t["shape"]).copy())
        for t in manifest["tensors"]
    }
    x = torch.from_numpy(images.astype(np.float32)) - torch.tensor(manifest["image_mean"])
    x = x.permute(0, 3, 1, 2)
    for layer in manifest["layers"]:
        (top, bottom), (left, right) = layer["pads"]
        x = F.pad(x, (left, right, top, bottom))
        name, stride = layer["name"], layer["stride"]
        if layer["kind"] == "conv":
            x = F.conv2d(x, weights[f"{name}.kernel"].permute(3, 2, 0, 1),
                         weights[f"{name}.bias"], stride)
        else:
            depthwise = weights[f"{name}.depthwise"].permute(2, 3, 0, 1)
            x = F.conv2d(x, depthwise, None, stride, groups=depthwise.shape[0])
            x = F.conv2d(x, weights[f"{name}.pointwise"].permute(3, 2, 0, 1),
                         weights[f"{name}.bias"])
        x = F.relu(x) if layer["relu"] else x
    flat = x.permute(0, 2, 3, 1).reshape(len(x), -1)
    return (flat @ weights["readout.weight"] + weights["readout.bias"]).numpy()[:, 0]


def _made_model(folder: Path):
    """A made model file (``.keras`` as make-compact writes it) with non-trivial batch norm,
    loaded back through ``load_compact_model(path)``."""
    from v4compact import load_compact_model
    from v4compact.models.formats.keras_writer import write_keras
    from v4compact.models.nets.compact import CompactModel

    model = CompactModel.student(MADE_FILTERS, seed=3)
    generator = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for block in model.blocks():
            channels = block.bn.num_features
            block.bn.weight.uniform_(0.5, 1.5, generator=generator)
            block.bn.bias.uniform_(-0.2, 0.2, generator=generator)
            block.bn.running_mean.uniform_(-1.0, 1.0, generator=generator)
            block.bn.running_var.copy_(torch.rand(channels, generator=generator) * 2 + 0.1)
    path = write_keras(model.eval(), folder / "made.keras", metadata={"neuron_id": "lab:s1/7"})
    return load_compact_model(path)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    from v4compact import load_session

    session = load_session(SESSION)
    _, heldout = session.heldout_split()
    return np.ascontiguousarray(session.images[heldout[:NUM_IMAGES]], dtype=np.uint8)


@pytest.fixture(scope="module")
def site(tmp_path_factory, images):
    """The served folder: ``<root>/deep/site/`` holds the harness, runtime, vendor files,
    images and ``models/<session>/<neuron>.json + .bin`` for all 219 models and a made one.

    Returns:
        ``(root, site folder, PyTorch predictions {neuron_id: (20,) float32})``.
    """
    from v4compact.models.zoo import model_neuron_ids
    from v4compact.web.browser_weights import write_browser_model
    from v4compact.web.siteexport import write_runtime_page

    root = tmp_path_factory.mktemp("served")
    folder = root / SUB_PATH
    write_runtime_page(folder, "v4runtime harness", HARNESS_SCRIPT)
    (folder / "images.bin").write_bytes(images.tobytes())
    predictions = {}
    for neuron_id in model_neuron_ids():
        model = _model_of(neuron_id)
        session, neuron = neuron_id.split("/")
        write_browser_model(model, folder / "models" / session, neuron)
        predictions[neuron_id] = model.predict(images)
    made = _made_model(root)
    write_browser_model(made, folder / "models" / "made", "7")
    predictions["made"] = made.predict(images)
    return root, folder, predictions


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def base_url(site):
    """``http://127.0.0.1:<port>/deep/site/`` from a real ``python -m http.server``."""
    with static_server(site[0]) as origin:
        yield f"{origin}/{SUB_PATH}/"


@pytest.fixture
def page(browser, base_url):
    """The harness page, with its requests and console errors recorded."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(180_000)
    page.requests, page.problems = [], []
    page.on("request", lambda request: page.requests.append(request.url))
    page.on("console", lambda m: page.problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    page.goto(base_url + "index.html")
    page.base = base_url
    yield page
    context.close()


def _assert_clean(page) -> None:
    """Only the server's own origin was asked for anything, and nothing logged an error."""
    origin = urlsplit(page.base)[:2]
    foreign = [url for url in page.requests
               if not url.startswith("data:") and urlsplit(url)[:2] != origin]
    assert not foreign, foreign
    assert not page.problems, page.problems


def _floats(text: str) -> np.ndarray:
    """A Float32Array the page sent as base64 (its ``base64`` helper)."""
    return np.frombuffer(base64.b64decode(text), "<f4")


def _errors_in_sd(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Per model (rows): max |got - want| over images / s.d. of ``want`` over images."""
    return np.abs(got - want).max(axis=1) / want.std(axis=1)


PREDICT_JS = """async ([backend, urls]) => {
  const used = await V4.init(backend);
  const pixels = await testImages();
  const out = [];
  for (const url of urls) {
    const model = await V4.loadModel(url);
    out.push(Array.from(await model.predict(pixels)));
    model.dispose();
  }
  return {backend: used, info: V4.backendInfo(), out, tensors: tf.memory().numTensors};
}"""


# -- the writer alone --------------------------------------------------------------------------
def test_manifest_covers_the_bin_and_reads_back_as_the_model(tmp_path, images):
    from v4compact.models.arch import IMAGE_MEAN, IMAGE_SIZE, STAGE_NAMES, same_padding
    from v4compact.web.browser_weights import write_browser_model

    model = _model_of("201025/10")
    path = write_browser_model(model, tmp_path / "models", "10")
    assert path == tmp_path / "models" / "10.json"
    manifest = json.loads(path.read_text())
    assert (manifest["format"], manifest["version"]) == ("v4compact-browser-model", 1)
    assert manifest["neuron_id"] == "201025/10" and manifest["num_filters"] == [50, 39, 3, 6, 3]
    assert manifest["image_size"] == IMAGE_SIZE
    assert np.array_equal(np.float32(manifest["image_mean"]), IMAGE_MEAN)
    assert manifest["stage_names"] == list(STAGE_NAMES)
    assert manifest["output_units"] == "z-scored units"
    assert [layer["pads"][0] for layer in manifest["layers"]] == \
        [[2, 2], [1, 2], [1, 2], [2, 2], [2, 2]]
    assert manifest["layers"][1]["pads"][0] == list(same_padding(112, 5, 2))
    # the tensors tile the .bin exactly: contiguous, in order, sizes from their shapes
    size = (tmp_path / "models" / "10.bin").stat().st_size
    offset = 0
    for tensor in manifest["tensors"]:
        assert tensor["byte_offset"] == offset and tensor["dtype"] == "float32"
        assert tensor["byte_length"] == 4 * int(np.prod(tensor["shape"]))
        offset += tensor["byte_length"]
    assert offset == size == manifest["byte_length"]
    shapes = {t["name"]: t["shape"] for t in manifest["tensors"]}
    assert shapes["layer0.kernel"] == [5, 5, 3, 50]
    assert shapes["layer1.depthwise"] == [5, 5, 50, 1]
    assert shapes["layer1.pointwise"] == [1, 1, 50, 39]
    assert shapes["readout.weight"] == [28 * 28 * 3, 1]
    # the files alone, read as TF.js reads them, give PyTorch's predictions
    want = model.predict(images)
    got = _forward_from_files(path, images)
    assert _errors_in_sd(got[None], want[None]).max() < EXACT
    assert model.core.batch_norm  # the model written is unchanged (not folded in place)


def test_a_made_model_file_is_written(tmp_path, images):
    from v4compact.web.browser_weights import write_browser_model

    made = _made_model(tmp_path)
    path = write_browser_model(made, tmp_path / "made", "7")
    manifest = json.loads(path.read_text())
    assert manifest["neuron_id"] == "lab:s1/7"
    assert manifest["model_id"].startswith("file:")
    assert manifest["num_filters"] == list(MADE_FILTERS)
    want = made.predict(images)
    assert _errors_in_sd(_forward_from_files(path, images)[None], want[None]).max() < EXACT


# -- in the browser ----------------------------------------------------------------------------
def test_all_219_models_match_pytorch_on_wasm(page, site):
    from v4compact.models.zoo import model_neuron_ids

    predictions = site[2]
    neuron_ids = model_neuron_ids()
    result = page.evaluate("""async (urls) => {
      const backend = await V4.init("wasm");
      const population = await V4.loadPopulation(urls);
      const out = await population.predict(await testImages());
      const ids = population.neuronIds;
      population.dispose();
      return {backend, ids, out: Array.from(out), tensors: tf.memory().numTensors};
    }""", [f"models/{n}.json" for n in neuron_ids])
    assert result["backend"] == "wasm"
    assert result["ids"] == neuron_ids
    assert result["tensors"] == 0  # dispose() freed everything
    got = np.array(result["out"], dtype=np.float32).reshape(NUM_IMAGES, len(neuron_ids)).T
    want = np.stack([predictions[n] for n in neuron_ids])
    errors = _errors_in_sd(got, want)
    worst = int(errors.argmax())
    print(f"\nwasm, 219 models x {NUM_IMAGES} images: largest error {errors.max():.2e} s.d. "
          f"({neuron_ids[worst]}), median {np.median(errors):.2e} s.d.")
    assert errors.max() < EXACT, (neuron_ids[worst], errors.max())
    # the runtime found the wasm binary beside itself, under the sub-path
    binaries = [url for url in page.requests if url.endswith(".wasm")]
    assert binaries and all(f"/{SUB_PATH}/static/vendor/tfjs-backend-wasm" in url
                            for url in binaries), binaries
    _assert_clean(page)


def test_exact_cpu_backend_matches_pytorch(page, site):
    predictions = site[2]
    names = [*FEW_NEURONS, "made"]
    urls = [f"models/{n}.json" for n in FEW_NEURONS] + ["models/made/7.json"]
    result = page.evaluate(PREDICT_JS, ["cpu", urls])
    assert result["backend"] == "cpu" and result["info"]["float32"]
    assert result["tensors"] == 0
    errors = _errors_in_sd(np.array(result["out"]), np.stack([predictions[n] for n in names]))
    print(f"\ncpu, {names} x {NUM_IMAGES} images: errors {np.array2string(errors, precision=2)} "
          "s.d.")
    assert errors.max() < EXACT
    _assert_clean(page)


def test_default_backend_matches_pytorch(page, site):
    """Whatever TF.js picks here ("auto": webgl on SwiftShader in this headless chromium).
    Bound: float32 backends sum in another order than PyTorch, 1e-6-ish of the s.d. (bound
    1e-3 leaves room for GPUs' fast-math shaders); WebGL in float16 (10-bit mantissa, 5e-4
    relative per rounding, over five layers of sums of up to 75-1300 terms) gets 3e-2."""
    predictions = site[2]
    urls = [f"models/{n}.json" for n in FEW_NEURONS]
    result = page.evaluate(PREDICT_JS, ["auto", urls])
    errors = _errors_in_sd(np.array(result["out"]),
                           np.stack([predictions[n] for n in FEW_NEURONS]))
    info = result["info"]
    print(f"\ndefault backend {result['backend']} ({'float32' if info['float32'] else 'float16'}"
          f"): largest error {errors.max():.2e} s.d. over {FEW_NEURONS} x {NUM_IMAGES} images")
    assert errors.max() < (1e-3 if info["float32"] else 3e-2)
    _assert_clean(page)


def test_input_gradients_match_pytorch(page, site, images):
    """d output / d pixels, and d (sum of a stage's map) / d pixels, on every backend."""
    from v4compact.models.inputs import to_model_input

    model = _model_of("201025/10")
    targets = ["output", "layer1.depthwise", "layer3"]
    want = {}
    for target in targets:
        pixels = torch.from_numpy(images[:1].astype(np.float32)).permute(0, 3, 1, 2)
        pixels.requires_grad_(True)
        model.forward_to(to_model_input(pixels), target).sum().backward()
        want[target] = pixels.grad.permute(0, 2, 3, 1).numpy()
    result = page.evaluate("""async ([backends, targets]) => {
      const pixels = await testImages();
      const out = {};
      for (const backend of backends) {
        const used = await V4.init(backend);
        const model = await V4.loadModel("models/201025/10.json");
        const x = tf.tensor4d(Float32Array.from(pixels.subarray(0, 112 * 112 * 3)),
                              [1, 112, 112, 3]);
        out[used] = {};
        for (const target of targets) {
          // tf.grad of a non-scalar: dy = ones, the gradient of the sum
          const f = target === "output" ? (z) => model.apply(z)
            : (z) => model.activations(z, target);
          const grad = tf.grad(f)(x);
          out[used][target] = base64(await grad.data());
          grad.dispose();
        }
        x.dispose();
        model.dispose();
        out[used].leaked = tf.memory().numTensors;
      }
      return out;
    }""", [["auto", "cpu", "wasm"], targets])
    assert len(result) == 3
    for backend, grads in result.items():
        assert grads.pop("leaked") == 0, backend
        for target, values in grads.items():
            got = _floats(values).reshape(want[target].shape)
            relative = np.linalg.norm(got - want[target]) / np.linalg.norm(want[target])
            print(f"\ninput gradient of {target} on {backend}: relative error {relative:.2e}")
            assert relative < (1e-5 if backend in ("cpu", "wasm") else 1e-3), (backend, target)
    _assert_clean(page)


def test_switching_a_filter_off_matches_silenced_copy(page, site, images):
    from v4compact.web.ablation import silenced_copy

    model = _model_of("201025/10")
    full = site[2]["201025/10"]
    pairs = [("layer0", 0), ("layer1", 5), ("layer2", 1), ("layer3", 4), ("layer4", 2)]
    result = page.evaluate("""async (pairs) => {
      await V4.init("wasm");
      const model = await V4.loadModel("models/201025/10.json");
      const pixels = await testImages();
      const out = [];
      for (const [layer, index] of pairs) {
        const off = model.withFilterOff(layer, index);
        out.push(Array.from(await off.predict(pixels)));
        off.dispose();
      }
      let message = "";
      try { model.withFilterOff("layer2", 3); } catch (err) { message = err.message; }
      const unchanged = Array.from(await model.predict(pixels));
      model.dispose();
      return {out, message, unchanged};
    }""", pairs)
    assert result["message"] == "layer2 has filters 0 to 2, not 3; pick one of those"
    assert _errors_in_sd(np.array(result["unchanged"])[None], full[None]).max() < EXACT
    errors = []
    for (layer, index), got in zip(pairs, result["out"], strict=True):
        want = silenced_copy(model, layer, index).predict(images)
        assert np.abs(want - full).max() > 0.01 * full.std()  # the filter matters
        errors.append(_errors_in_sd(np.array(got)[None], want[None]).max())
    print(f"\nfilters switched off, wasm: largest error {max(errors):.2e} s.d.")
    assert max(errors) < EXACT, dict(zip(pairs, errors, strict=True))
    _assert_clean(page)


def test_activations_match_pytorch(page, site, images):
    from v4compact.models.arch import STAGE_NAMES

    model = _model_of("201025/10")
    result = page.evaluate("""async (stages) => {
      await V4.init("cpu");
      const model = await V4.loadModel("models/201025/10.json");
      const pixels = await testImages();
      const x = tf.tensor4d(Float32Array.from(pixels.subarray(0, 2 * 112 * 112 * 3)),
                            [2, 112, 112, 3]);
      const out = {};
      for (const stage of stages) {
        const map = model.activations(x, stage);
        out[stage] = {shape: map.shape, values: base64(await map.data())};
        map.dispose();
      }
      let message = "";
      try { model.activations(x, "layer9"); } catch (err) { message = err.message; }
      tf.dispose(x);
      model.dispose();
      return {out, message};
    }""", list(STAGE_NAMES))
    assert result["message"].startswith('unknown stage "layer9"; choose one of layer0, ')
    errors = {}
    for stage in STAGE_NAMES:
        want = model.activations(images[:2], stage)
        got = result["out"][stage]
        assert got["shape"] == list(want.shape), stage
        values = _floats(got["values"]).reshape(want.shape)
        errors[stage] = np.abs(values - want).max() / np.abs(want).max()
    print(f"\nactivations on cpu: largest error {max(errors.values()):.2e} of the stage's "
          "largest value")
    assert max(errors.values()) < 1e-5, errors
    _assert_clean(page)


def test_damaged_or_missing_files_are_refused_with_a_message(page, site):
    folder = site[1] / "models" / "damaged"
    folder.mkdir(exist_ok=True)
    source = site[1] / "models" / "201025"
    shutil.copyfile(source / "10.json", folder / "10.json")
    (folder / "10.bin").write_bytes((source / "10.bin").read_bytes()[:-4])
    result = page.evaluate("""async () => {
      await V4.init("cpu");
      const messages = [];
      for (const urls of [["models/damaged/10.json"], ["models/201025/10.json", "nope.json"]]) {
        try { await V4.loadPopulation(urls); } catch (err) { messages.push(err.message); }
      }
      return {messages, tensors: tf.memory().numTensors};
    }""")
    truncated, missing = result["messages"]
    assert truncated.endswith("models/damaged/10.bin has 43024 bytes, the manifest says 43028; "
                              "write the model again")
    assert missing.startswith("model manifest ") and missing.endswith("nope.json: HTTP 404")
    assert result["tensors"] == 0  # the model that did load was freed
    page.problems = [p for p in page.problems if "404" not in p]  # the missing file's own
    _assert_clean(page)
