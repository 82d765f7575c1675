"""``static/v4synth.js`` in headless Debian chromium: the model input and the synthesis of the
static site, compared with the Python package.

A temporary folder (the vendored TensorFlow.js files, ``v4synth.js``, a small harness page,
images and arrays written here) is served by a real ``python -m http.server`` on 127.0.0.1;
nothing else is served and no request may leave that origin. TensorFlow.js runs on its CPU
backend (chromium runs with ``--disable-gpu``).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import v4compact
from v4compact.images import IMAGE_MEAN, IMAGE_SIZE
from v4compact.models.inputs import as_image_batch
from v4compact.synthesis import param as param_lib
from v4compact.synthesis import transforms as transform_lib
from v4compact.synthesis.objectives import Objective, RenderContext
from v4compact.synthesis.presets import PRESETS, Preset
from v4compact.synthesis.regularizers import gaussian_blur, gaussian_kernel, total_variation
from v4compact.synthesis.render import render
from v4compact.web.browser_presets import preset_table, runs_in_browser

from .conftest import static_server

pytestmark = pytest.mark.browser

STATIC = Path(v4compact.__file__).parent / "web" / "static"
#: The vendored TensorFlow.js files the harness loads (``make vendor``).
TFJS_FILES = ("tf-core.min.js", "tf-backend-cpu.min.js")
#: The test objective: a fixed random KERNEL x KERNEL convolution with FILTERS filters on
#: the re-centred image, relu, a weighted sum (the same network in tf.js and torch).
KERNEL, FILTERS = 5, 4
#: Steps of the step-rule comparison and the image-blur period used there (the image is
#: blurred after steps 3 and 6).
PARITY_STEPS, PARITY_BLUR_EVERY = 7, 3

HARNESS = """<!doctype html>
<html><head><meta charset="utf-8"><link rel="icon" href="data:,">
<script src="tf-core.min.js"></script>
<script src="tf-backend-cpu.min.js"></script>
<script src="v4synth.js"></script>
</head><body><script>
"use strict";
window.ready = tf.setBackend("cpu").then(() => tf.ready());
window.loadF32 = async (name) => new Float32Array(await (await fetch(name)).arrayBuffer());
window.loadImage = async (name) => {
  const img = new Image();
  img.src = name;
  await img.decode();
  return img;
};
window.presetTable = () => fetch("presets.json").then((r) => r.json());
// The test objective, shaped like a compact model in v4runtime.js: a differentiable op
// (tf.customGrad: tf-core.min.js registers no gradients) from pixels [N, 112, 112, 3] to [N]
// responses (conv + relu + weighted sum of the re-centred image, objective.json), summed.
window.testObjective = async () => {
  const spec = await (await fetch("objective.json")).json();
  const [conv, readout] = await Promise.all([loadF32("conv.f32"), loadF32("readout.f32")]);
  const side = 112 - spec.kernel + 1;
  const w = tf.tensor4d(conv, [spec.kernel, spec.kernel, 3, spec.filters]);
  const r = tf.tensor4d(readout, [1, side, side, spec.filters]);
  const m = tf.tensor1d(spec.mean);
  const responses = tf.customGrad((x, save) => {
    const pre = tf.conv2d(tf.sub(x, m), w, 1, "valid");
    save([pre]);
    return {
      value: tf.sum(tf.mul(tf.relu(pre), r), [1, 2, 3]),
      gradFunc: (dy, [saved]) => tf.conv2dTranspose(
        tf.mul(tf.mul(tf.step(saved), r), tf.reshape(dy, [-1, 1, 1, 1])), w, x.shape, 1, "valid"),
    };
  });
  const fn = (x) => tf.sum(responses(x));
  fn.dispose = () => { w.dispose(); r.dispose(); m.dispose(); };
  return fn;
};
</script></body></html>
"""


# -- the served folder ------------------------------------------------------------------------
def _mosaic(photos: np.ndarray, cols: int, rows: int, size: tuple[int, int]) -> np.ndarray:
    """``cols x rows`` session photos tiled, resized (Lanczos) to ``size`` = (width, height)."""
    from PIL import Image

    tiles = [photos[(r * cols + c) % len(photos)] for r in range(rows) for c in range(cols)]
    grid = np.concatenate([np.concatenate(tiles[r * cols:(r + 1) * cols], axis=1)
                           for r in range(rows)], axis=0)
    return np.asarray(Image.fromarray(grid).resize(size, Image.Resampling.LANCZOS))


def _write_photos(folder: Path) -> None:
    """Photos of several sizes and modes, made from real session photos, as PNG and JPEG."""
    from PIL import Image

    photos = np.asarray(v4compact.load_session(201025).images[:24])
    made = {
        "landscape_640x480.png": Image.fromarray(_mosaic(photos, 4, 3, (640, 480))),
        "portrait_300x500.png": Image.fromarray(_mosaic(photos[4:], 3, 5, (300, 500))),
        "odd_301x499.png": Image.fromarray(_mosaic(photos[7:], 3, 4, (301, 499))),
        "native_112x112.png": Image.fromarray(photos[3]),
        "large_1200x800.png": Image.fromarray(_mosaic(photos[9:], 3, 2, (1200, 800))),
        "tiny_50x40.png": Image.fromarray(photos[5]).resize((50, 40), Image.Resampling.LANCZOS),
        "gray_256x200.png": Image.fromarray(_mosaic(photos[2:], 2, 2, (256, 200))).convert("L"),
        "palette_320x240.png": Image.fromarray(_mosaic(photos[11:], 3, 2, (320, 240)))
        .convert("P", palette=Image.Palette.ADAPTIVE, colors=64),
    }
    # RGBA: alpha ramps from transparent (left) to opaque (right), a fully transparent hole
    rgba = np.dstack([_mosaic(photos[13:], 4, 3, (400, 300)),
                      np.tile(np.linspace(0, 255, 400).astype(np.uint8), (300, 1))])
    rgba[100:160, 250:330, 3] = 0
    made["alpha_400x300.png"] = Image.fromarray(rgba, "RGBA")
    for name, image in made.items():
        image.save(folder / name)
    for name in ("landscape_640x480", "portrait_300x500"):
        Image.open(folder / f"{name}.png").convert("RGB").save(folder / f"{name}.jpg", quality=90)
    # a phone photo held upright: stored 640x480, EXIF orientation 6 (turn 90 degrees
    # clockwise to view); Pillow's exif_transpose and the browser both show it 480x640
    exif = Image.Exif()
    exif[0x0112] = 6
    made["landscape_640x480.png"].save(folder / "exif_rotated.jpg", quality=90, exif=exif)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The folder the page is served from (written once)."""
    root = tmp_path_factory.mktemp("v4synth")
    vendor = STATIC / "vendor"
    missing = [name for name in TFJS_FILES if not (vendor / name).exists()]
    if missing:
        pytest.fail(f"TensorFlow.js is not vendored ({', '.join(missing)}): run make vendor")
    for name in TFJS_FILES:
        shutil.copy(vendor / name, root / name)
    shutil.copy(STATIC / "v4synth.js", root / "v4synth.js")
    (root / "index.html").write_text(HARNESS)
    (root / "presets.json").write_text(json.dumps(preset_table()))
    (root / "objective.json").write_text(
        json.dumps({"mean": IMAGE_MEAN.tolist(), "kernel": KERNEL, "filters": FILTERS}))
    _write_photos(root)
    rng = np.random.default_rng(20251025)
    side = IMAGE_SIZE - KERNEL + 1
    conv = rng.normal(0.0, 0.05, (KERNEL, KERNEL, 3, FILTERS)).astype(np.float32)  # HWIO
    readout = rng.normal(0.0, 1.0 / side, (side, side, FILTERS)).astype(np.float32)
    start = rng.uniform(60.0, 200.0, (IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.float32)  # HWC
    conv.tofile(root / "conv.f32")
    readout.tofile(root / "readout.f32")
    start.tofile(root / "start.f32")
    return root


@pytest.fixture(scope="module")
def origin(served):
    """``python -m http.server`` on a free loopback port, serving :func:`served`."""
    with static_server(served) as url:
        yield url


@pytest.fixture(scope="module")
def page(browser, origin):
    """The harness page (one for the module); afterwards: no script error, no request to
    another origin."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(60_000)
    problems: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(origin + "/index.html")
    page.evaluate("() => window.ready")
    yield page
    foreign = [u for u in requests if not u.startswith(origin + "/")]
    context.close()
    assert not foreign, foreign
    assert not problems, problems


# -- preprocessing ------------------------------------------------------------------------------
def _browser_input(page, name: str) -> np.ndarray:
    pixels = page.evaluate(
        "async (name) => Array.from(V4.preprocess(await loadImage(name)))", name)
    return np.asarray(pixels, dtype=np.int16).reshape(IMAGE_SIZE, IMAGE_SIZE, 3)


def _python_input(path: Path) -> np.ndarray:
    return as_image_batch(path, warn=False)[0].astype(np.int16)


@pytest.mark.parametrize("name", [
    "landscape_640x480.png", "portrait_300x500.png", "odd_301x499.png", "native_112x112.png",
    "large_1200x800.png", "tiny_50x40.png", "gray_256x200.png", "palette_320x240.png",
    "alpha_400x300.png",
])
def test_preprocess_equals_python_on_png_photos(page, served, name):
    difference = np.abs(_browser_input(page, name) - _python_input(served / name))
    # Pillow's fixed-point bicubic is reproduced exactly, so the pixels agree bit for bit
    # (the brief allows one grey level)
    assert difference.max() == 0, \
        f"{name}: max {difference.max()}, {np.count_nonzero(difference)} values differ"


@pytest.mark.parametrize("name",
                         ["landscape_640x480.jpg", "portrait_300x500.jpg", "exif_rotated.jpg"])
def test_preprocess_of_jpeg_photos_within_one_grey_level(page, served, name):
    # JPEG decoders may round differently (IDCT, chroma upsampling); chromium's and Pillow's
    # libjpeg-turbo decode these identically (measured: 0 differences), one grey level is
    # the bound the explorer promises
    difference = np.abs(_browser_input(page, name) - _python_input(served / name))
    assert difference.max() <= 1, f"{name}: max {difference.max()}"


def test_every_source_kind_gives_the_same_input(page, served):
    name = "alpha_400x300.png"
    kinds = page.evaluate("""async (name) => {
        const img = await loadImage(name);
        const bitmap = await createImageBitmap(await (await fetch(name)).blob());
        const canvas = document.createElement("canvas");
        canvas.width = img.naturalWidth;
        canvas.height = img.naturalHeight;
        const ctx = canvas.getContext("2d");
        ctx.drawImage(img, 0, 0);
        const data = ctx.getImageData(0, 0, canvas.width, canvas.height);
        const out = {
            image: V4.preprocess(img), bitmap: V4.preprocess(bitmap), canvas: V4.preprocess(canvas),
            imageData: V4.preprocess(data),
            raw: V4.preprocessPixels(data.data, data.width, data.height),
        };
        return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, Array.from(v)]));
    }""", name)
    expected = _python_input(served / name).reshape(-1)
    for kind, pixels in kinds.items():
        assert np.array_equal(np.asarray(pixels), expected), kind


def test_preprocess_rejects_wrong_input(page):
    message = page.evaluate("""() => { try { V4.preprocessPixels(new Uint8Array(10), 3, 3); }
                                       catch (e) { return e.message; } return null; }""")
    assert message and "36 RGBA bytes" in message


# -- the synthesis building blocks --------------------------------------------------------------
def _nchw(hwc: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(hwc)).permute(2, 0, 1)[None].contiguous()


def _hwc(nchw: torch.Tensor) -> np.ndarray:
    return nchw.detach()[0].permute(1, 2, 0).numpy()


def test_blur_transforms_and_tv_equal_torch(page, served):
    """Each op of v4synth.js (output and gradient of a weighted sum) against the Python one."""
    rng = np.random.default_rng(7)
    photo = np.asarray(v4compact.load_session(201025).images[30], dtype=np.float32)
    image = np.clip(photo * 1.3 - 30.0, 0.0, 255.0)  # clipped plateaus: equal neighbours
    weights = rng.normal(size=image.shape).astype(np.float32)
    image.tofile(served / "ops_image.f32")
    weights.tofile(served / "ops_weights.f32")
    generator_seed = 5
    dy, dx = torch.randint(-2, 3, (2,), generator=torch.Generator().manual_seed(generator_seed))
    ops = {  # name: (JS expression of x, torch function of x); differentiable ones also grad
        "blur": ("ops.gaussianBlur(x, 1.0)", lambda x: gaussian_blur(x, 1.0)),
        "jitter": (f"ops.shift(x, {int(dy)}, {int(dx)})",
                   lambda x: transform_lib.jitter(2)(
                       x, torch.Generator().manual_seed(generator_seed))),
        "zoom_in": ("ops.affine(x, 0, 1.025)",
                    lambda x: transform_lib.random_scale([1.025])(x, torch.Generator())),
        "zoom_out": ("ops.affine(x, 0, 0.975)",
                     lambda x: transform_lib.random_scale([0.975])(x, torch.Generator())),
        "rotate": ("ops.affine(x, 2.5, 1)",
                   lambda x: transform_lib.random_rotate([2.5])(x, torch.Generator())),
        "rotate_back": ("ops.affine(x, -2.5, 1)",
                        lambda x: transform_lib.random_rotate([-2.5])(x, torch.Generator())),
        "tv": ("tf.reshape(ops.totalVariation(x), [1, 1, 1, 1])",
               lambda x: -total_variation(1.0)(RenderContext(None, x)).view(1, 1, 1, 1)),
    }
    script = """async (ops_) => {
        await ready;
        const ops = V4.synthesisOps;
        const image = await loadF32("ops_image.f32"), weights = await loadF32("ops_weights.f32");
        const x0 = tf.tensor4d(image, [1, 112, 112, 3]);
        const before = tf.memory().numTensors;
        const out = {kernel: Array.from(ops.gaussianKernel(1.0)),
                     kernel2: Array.from(ops.gaussianKernel(2.0))};
        for (const [name, expr] of Object.entries(ops_)) {
            const f = new Function("ops", "tf", "x", "return " + expr);
            const y = tf.tidy(() => f(ops, tf, x0));
            out[name] = {y: Array.from(await y.data())};
            if (name !== "blur") {  // the blur acts on gradients and images, undifferentiated
                const w = tf.tensor(weights.subarray(0, y.size), y.shape);
                const g = tf.grad((x) => tf.sum(tf.mul(f(ops, tf, x), w)))(x0);
                out[name].grad = Array.from(await g.data());
                tf.dispose([w, g]);
            }
            y.dispose();
        }
        out.leaked = tf.memory().numTensors - before;
        x0.dispose();
        return out;
    }"""
    got = page.evaluate(script, {name: expr for name, (expr, _) in ops.items()})
    assert got["leaked"] == 0
    assert np.allclose(got["kernel"], gaussian_kernel(1.0).numpy(), rtol=0, atol=1e-7)
    assert np.allclose(got["kernel2"], gaussian_kernel(2.0).numpy(), rtol=0, atol=1e-7)
    for name, (_, fn) in ops.items():
        x = _nchw(image).requires_grad_(True)
        y = fn(x)
        w = torch.from_numpy(weights.reshape(-1)[: y.numel()].copy())
        w = w.view(y.shape[0], y.shape[2], y.shape[3], y.shape[1]).permute(0, 3, 1, 2)
        y_js = np.asarray(got[name]["y"], dtype=np.float32)
        y_py = y.detach().permute(0, 2, 3, 1).reshape(-1).numpy()
        # float32 sums in another order; the affine sampling grid in float64 (torch: float32)
        # moves sample points by ~1e-6 px, ~1e-3 grey levels where the photo has edges
        assert np.abs(y_js - y_py).max() < 5e-3, (name, np.abs(y_js - y_py).max())
        if name != "blur":
            (grad,) = torch.autograd.grad((y * w).sum(), x)
            grad_js = np.asarray(got[name]["grad"], dtype=np.float32).reshape(image.shape)
            error = np.abs(grad_js - _hwc(grad)).max()
            assert error <= 1e-4 * np.abs(_hwc(grad)).max(), (name, error)


# -- the synthesis loop -------------------------------------------------------------------------
class _ConvReadout(torch.nn.Module):
    """The harness's test objective in torch: re-centred (N, 3, 112, 112) -> (N, 1)."""

    def __init__(self, conv_hwio: np.ndarray, readout_hwc: np.ndarray):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.from_numpy(conv_hwio).permute(3, 2, 0, 1))
        self.readout = torch.nn.Parameter(torch.from_numpy(readout_hwc).permute(2, 0, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = torch.relu(torch.nn.functional.conv2d(x, self.weight))
        return (maps * self.readout).sum(dim=(1, 2, 3))[:, None]


def _synthesize(page, options_js: str, arg=None) -> dict:
    """Run ``V4.synthesize`` with the test objective; ``options_js`` is an object literal
    using ``objective``, ``table``, ``start`` and ``arg``."""
    return page.evaluate(f"""async (arg) => {{
        await ready;
        const table = await presetTable();
        const start = await loadF32("start.f32");
        const objective = await testObjective();
        try {{
            const r = await V4.synthesize({options_js});
            return {{...r, pixels: Array.from(r.pixels), last: Array.from(r.last)}};
        }} finally {{ objective.dispose(); }}
    }}""", arg)


@pytest.mark.parametrize("settings", [
    {},
    {"grayscale": True, "max_contrast": 30.0},
    {"total_variation": 0.05},
], ids=["upstream", "grayscale+contrast", "tv-penalty"])
def test_upstream_step_rule_equals_python_render(page, served, settings):
    """From the same start image, N steps of V4.synthesize equal render() in torch."""
    changes = {"image_blur_every": PARITY_BLUR_EVERY, **settings}
    got = _synthesize(page, "{objective, preset: {...table.upstream, ...arg}, steps: "
                            f"{PARITY_STEPS}, init: start}}", changes)
    conv = np.fromfile(served / "conv.f32", np.float32).reshape(KERNEL, KERNEL, 3, FILTERS)
    side = IMAGE_SIZE - KERNEL + 1
    readout = np.fromfile(served / "readout.f32", np.float32).reshape(side, side, FILTERS)
    start = np.fromfile(served / "start.f32", np.float32).reshape(IMAGE_SIZE, IMAGE_SIZE, 3)
    params, image_fn = param_lib.pixel(1, init=_nchw(start))
    result = render(_ConvReadout(conv, readout), Objective(lambda c: c.output()[:, 0], "test"),
                    param=(params, image_fn), preset="upstream", steps=PARITY_STEPS,
                    progress=False, **changes)
    last_py = _hwc(params[0])
    last_js = np.asarray(got["last"], dtype=np.float32).reshape(last_py.shape)
    # Each step moves pixels by ~10 units (step_size) along a gradient that differs from
    # torch's by float32 rounding (~1e-6 relative): measured 5e-5 grey levels after 7 steps.
    # 0.01 (1/100 of a grey level) leaves room for a relu that flips at a rounding-sized
    # pre-activation, and fails at once if any part of the rule (RMS, blur, clip, image blur,
    # projections) differs.
    error = np.abs(last_js - last_py).max()
    assert error < 0.01, f"step rule differs from render() by {error:.2e} grey levels"
    assert got["steps"] == PARITY_STEPS and not got["stopped"]
    assert np.allclose(got["trace"], result.history[:, 0], rtol=1e-4, atol=1e-4)
    assert got["bestStep"] == int(np.argmax([*result.history[:, 0], result.scores[0]]))
    assert got["value"] == pytest.approx(float(result.scores[0]), rel=1e-4, abs=1e-4)
    best = np.asarray(got["pixels"]).reshape(result.images[0].shape)
    assert np.abs(best - result.images[0].astype(int)).max() <= 1


def test_seed_gives_the_same_image_and_other_seeds_differ(page):
    runs = page.evaluate("""async () => {
        await ready;
        const table = await presetTable();
        const objective = await testObjective();
        const run = async (seed) => {
            const r = await V4.synthesize(
                {objective, preset: "upstream_robust", presetTable: table, steps: 12, seed});
            return {pixels: Array.from(r.pixels), trace: r.trace, seed: r.seed, preset: r.preset};
        };
        const out = [await run(3), await run(3), await run(4)];
        objective.dispose();
        return out;
    }""")
    first, again, other = runs
    assert first["pixels"] == again["pixels"] and first["trace"] == again["trace"]
    assert first["pixels"] != other["pixels"]
    assert first["preset"] == {**preset_table()["upstream_robust"], "steps": 12}


def test_signal_stops_the_run(page):
    got = page.evaluate("""async () => {
        await ready;
        const table = await presetTable();
        const objective = await testObjective();
        const controller = new AbortController();
        const calls = [];
        const r = await V4.synthesize({
            objective, preset: "upstream", presetTable: table, steps: 50, seed: 1, every: 1,
            signal: controller.signal, onStep(step, value, pixels) {
                calls.push([step, value, pixels.length]);
                if (step === 3) controller.abort();
            }});
        objective.dispose();
        return {stopped: r.stopped, steps: r.steps, trace: r.trace, calls, size: r.pixels.length};
    }""")
    assert got["stopped"] and got["steps"] == 3 and len(got["trace"]) == 3
    assert [c[0] for c in got["calls"]] == [1, 2, 3]
    assert [c[1] for c in got["calls"]] == got["trace"]
    size = IMAGE_SIZE * IMAGE_SIZE * 3
    assert got["size"] == size and all(c[2] == size for c in got["calls"])


@pytest.mark.parametrize("preset", ["upstream", "upstream_robust"])
def test_objective_rises_and_no_tensor_is_left_behind(page, preset):
    got = page.evaluate("""async (preset) => {
        await ready;
        const table = await presetTable();
        const objective = await testObjective();
        const before = tf.memory().numTensors;
        const counts = [];
        const r = await V4.synthesize({
            objective, preset, presetTable: table, steps: 25, seed: 2, every: 1,
            onStep() { counts.push(tf.memory().numTensors); }});
        const after = tf.memory().numTensors;
        objective.dispose();
        return {counts, before, after, trace: r.trace, value: r.value, bestStep: r.bestStep};
    }""", preset)
    assert got["after"] == got["before"]
    # the same tensors alive at every step, once a best image is held (with transforms the
    # first is scored after eval_every steps)
    first_best = 0 if preset == "upstream" else preset_table()[preset]["eval_every"] - 1
    assert len(set(got["counts"][first_best:])) == 1, got["counts"]
    trace = np.asarray(got["trace"])
    if preset == "upstream":  # every step goes up; every step's image is a candidate
        assert np.all(np.diff(trace) > 0), trace
        assert got["value"] >= trace.max()
    else:  # scored on randomly transformed images: up on average
        assert trace[-5:].mean() > trace[:5].mean() and got["value"] > trace[:5].max(), trace


def test_every_exported_preset_runs_and_others_are_refused(page):
    fourier = PRESETS["fourier"].to_dict()
    got = page.evaluate("""async (fourier) => {
        await ready;
        const table = await presetTable();
        const objective = await testObjective();
        const out = {fields: V4.synthesisOps.PRESET_FIELDS, ran: {}, refused: {}};
        for (const name of Object.keys(table)) {
            const options = {objective, preset: name, presetTable: table, steps: 2};
            out.ran[name] = (await V4.synthesize(options)).steps;
        }
        const tries = {fourier: {objective, preset: fourier},
                       unknownSetting: {objective, preset: {...table.upstream, momentum: 0.9}},
                       unknownName: {objective, preset: "fourier", presetTable: table},
                       noTable: {objective, preset: "upstream"}};
        for (const [name, options] of Object.entries(tries)) {
            try { await V4.synthesize(options); out.refused[name] = null; }
            catch (e) { out.refused[name] = e.message; }
        }
        objective.dispose();
        return out;
    }""", fourier)
    assert got["fields"] == [f.name for f in dataclasses.fields(Preset)]
    assert got["ran"] == {name: 2 for name in preset_table()}
    refused = got["refused"]
    assert "normalized_gradient" in refused["fourier"]
    assert "momentum" in refused["unknownSetting"]
    assert "unknown preset" in refused["unknownName"]
    assert "presetTable" in refused["noTable"]


def test_preset_table_is_the_browser_runnable_presets_as_json():
    from v4compact.web.routes.synthesize import synthesize_stream

    table = preset_table()
    assert set(table) == {name for name, p in PRESETS.items() if runs_in_browser(p)}
    explorer_default = inspect.signature(synthesize_stream).parameters["preset"].default.default
    assert explorer_default in table and "upstream_robust" in table
    for name, settings in table.items():
        assert settings == json.loads(json.dumps(PRESETS[name].to_dict()))
        assert Preset(**{k: tuple(v) if isinstance(v, list) else v
                         for k, v in settings.items()}) == PRESETS[name]
    assert json.loads(json.dumps(table)) == table
