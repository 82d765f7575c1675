"""The static website (``v4compact site export``): the exported folder served by a plain
``python -m http.server`` on loopback (no project code serving), driven by headless Debian
chromium through Playwright; the models run in the page (TensorFlow.js)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

import v4compact
from v4compact.cli import main
from v4compact.models.zoo import model_neuron_ids

from .conftest import HELDOUT_IMAGES, MADE_NEURONS, SITE_NEURONS, static_server

pytestmark = pytest.mark.browser

#: Neurons whose in-page synthesis is checked (one to three per model session).
SYNTH_NEURONS = ("201025/10", "201025/40", "190923/0", "210225/5", "211022/3")


@pytest.fixture(scope="module")
def site(tmp_path_factory, site_cache, made_run, data_dir):
    """All 219 neurons (two of them built in the small site cache) and the two made models,
    exported once."""
    from v4compact.data import datasets
    from v4compact.web.siteexport import export_site

    out = tmp_path_factory.mktemp("export") / "site"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datasets, "_EXTRA_ROOTS", [made_run.parent / "datasets"])
        report = export_site(out, data_dir=data_dir, cache_dir=site_cache, made=[made_run],
                             build=False, progress=False)
    assert report.neurons == model_neuron_ids() and report.made == list(MADE_NEURONS)
    assert (out / ".nojekyll").is_file()
    return out


@pytest.fixture(scope="module")
def origin(site):
    """The export served from a sub-path, /v4/explorer/, as GitHub Pages serves a project."""
    root = site.parent / "pages"
    (root / "v4").mkdir(parents=True, exist_ok=True)
    link = root / "v4" / "explorer"
    if not link.exists():
        link.symlink_to(site, target_is_directory=True)
    with static_server(root) as url:
        yield url


def _open(browser, origin, width=1280, height=900):
    context = browser.new_context(viewport={"width": width, "height": height},
                                  base_url=origin + "/v4/explorer/")
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.problems, page.requests = [], []
    page.on("console", lambda m: page.problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.problems.append(str(e)))
    page.on("request", lambda r: page.requests.append(r.url))
    return context, page


@pytest.fixture
def page(browser, origin):
    context, page = _open(browser, origin)
    yield page
    assert not page.problems, page.problems
    foreign = [u for u in page.requests if not u.startswith((origin + "/v4/explorer/", "data:",
                                                             "blob:"))]
    assert not foreign, foreign  # nothing leaves the site (not even its own root)
    context.close()


def test_gallery_and_neuron_page_from_static_files(page):
    started = time.perf_counter()
    page.goto("./")
    page.wait_for_selector("#gallery-cards .card")
    print(f"\ngallery first view: {time.perf_counter() - started:.2f} s")
    assert page.locator("#gallery-cards .card").count() == 219 + len(MADE_NEURONS)
    page.select_option("#filter-dataset", "lab")
    assert page.locator("#gallery-cards .card").count() == len(MADE_NEURONS)
    # the gallery loads no model, nor the runtime (TensorFlow.js loads when a page computes)
    assert not any("/models/" in u or "/vendor/" in u for u in page.requests)
    started = time.perf_counter()
    page.goto(f"./#/neuron/{SITE_NEURONS[0]}")
    page.wait_for_selector("#scatter svg circle")
    page.wait_for_selector("#network canvas.kernel")
    print(f"neuron page ready: {time.perf_counter() - started:.2f} s")
    assert page.locator("#scatter svg circle").count() == HELDOUT_IMAGES
    models = [u for u in page.requests if "/data/models/" in u and u.endswith(".bin")]
    assert len(models) <= 1  # a neuron page loads at most its own model
    page.goto(f"./#/made/{MADE_NEURONS[1]}")
    page.wait_for_selector("#provenance-table")
    page.goto("./#/about")
    assert "run in your own browser" in page.inner_text("#about-static")


def test_filter_ablation_in_the_page_equals_python(page, data_dir):
    from v4compact import evaluate
    from v4compact.web.ablation import silenced_copy

    page.goto(f"./#/neuron/{SITE_NEURONS[0]}")
    page.wait_for_selector("#network canvas.kernel")
    page.locator('canvas.kernel[data-layer="layer2"][data-index="1"]').click()
    page.wait_for_selector("#filter-panel .ablation-text")
    page.wait_for_selector("#filter-panel canvas.mapimg")  # the activation map, drawn here
    result = page.evaluate(
        f"window.V4_SITE.api('/api/neurons/{SITE_NEURONS[0]}/ablation?layer=layer2&filter=1')")
    model = v4compact.load_compact_model(*SITE_NEURONS[0].split("/"), data_dir=data_dir)
    scores = [evaluate(m, sessions=[201025], metric="raw_r2", num_boot=0, progress=False,
                       data_dir=data_dir).scores[0].value
              for m in (model, silenced_copy(model, "layer2", 1))]
    print(f"\nablation raw R2 page {result['before']:.6f} -> {result['after']:.6f}, "
          f"python {scores[0]:.6f} -> {scores[1]:.6f}")
    assert result["before"] == pytest.approx(scores[0], abs=1e-4)
    assert result["after"] - result["before"] == pytest.approx(scores[1] - scores[0], abs=1e-4)


def test_predictions_of_219_neurons_equal_pytorch(page, site, data_dir):
    from v4compact.models.formats.loaders import load_compact_population

    session = v4compact.load_session(201025, data_dir=data_dir)
    _, heldout = session.heldout_split()
    images = np.asarray(session.images[heldout[:20]])
    population = load_compact_population(data_dir=data_dir)
    want = np.asarray(population.predict(images), dtype=np.float64)  # (20, 219)
    scale = want.std(axis=0)
    page.goto("./#/about")
    page.wait_for_selector("h1")
    # the page's own choice of backend (here: WebGL is software-drawn, so WebAssembly)
    default = page.evaluate("window.V4_SITE.backend()")
    got = {}
    for backend in dict.fromkeys(["wasm", default]):  # wasm: exact float32 (XNNPACK)
        got[backend] = page.evaluate(
            """async ([backend, pixels]) => {
                 const used = await V4.init(backend);
                 const index = await (await fetch("data/models/index.json")).json();
                 const urls = index.filter((r) => !r.made).map((r) => r.manifest);
                 const population = await V4.loadPopulation(urls);
                 const out = await population.predict(Uint8Array.from(pixels));
                 population.dispose();
                 return { used, ids: population.neuronIds, values: Array.from(out) };
               }""", [backend, images.reshape(-1).tolist()])
    for backend, result in got.items():
        assert result["used"] == backend
        assert result["ids"] == list(population.neuron_ids)
        values = np.asarray(result["values"], dtype=np.float64).reshape(20, 219)
        error = float((np.abs(values - want) / scale).max())
        print(f"\n{backend}{' (the page default)' if backend == default else ''}: largest "
              f"error {error:.2e} of a neuron's s.d. over the 20 images")
        # float32 backends (wasm, cpu, float32 WebGL) agree to 1e-4 of a neuron's s.d.; a
        # WebGL storing float16 would be reported here with its own error
        assert error < (1e-4 if backend in ("wasm", "cpu") else 1e-2)


def test_try_your_image_predicts_219_neurons_in_the_page(page, tmp_path, data_dir):
    from PIL import Image

    from v4compact.models.formats.loaders import load_compact_population
    from v4compact.models.inputs import as_image_batch

    # a 640x480 photo made of a real stimulus (centre-cropped and shrunk by the page)
    pixels = v4compact.load_session(201025, data_dir=data_dir).image(42)
    photo = tmp_path / "photo.png"
    Image.fromarray(pixels).resize((640, 480), Image.BICUBIC).save(photo)
    want = np.asarray(load_compact_population(data_dir=data_dir).predict(
        as_image_batch([str(photo)])), dtype=np.float64).reshape(-1)
    page.goto("./#/try")
    page.wait_for_selector("#try-file", state="attached")
    started = time.perf_counter()
    page.set_input_files("#try-file", str(photo))
    page.wait_for_selector("#response-bars .bar")
    first = time.perf_counter() - started
    assert page.locator("#response-bars .bar").count() == 219
    bars = page.locator("#response-bars .bar").all_inner_texts()
    top_id, top_value = bars[0].split()
    ids = load_compact_population(data_dir=data_dir).neuron_ids
    assert top_id == ids[int(np.argmax(want))]  # no z-scores in this cache: sorted by output
    assert float(top_value) == pytest.approx(want.max(), abs=0.006)  # shown with 2 decimals
    again = page.evaluate("""async () => {  // a second photo: the models are loaded now
        const blob = await (await fetch("data/sessions/201025/images/42.png")).blob();
        const form = new FormData();
        form.append("image", blob, "photo.png");
        const started = performance.now();
        const result = await window.V4_SITE.api("/api/predict", { method: "POST", body: form });
        return [performance.now() - started, result.responses.length];
      }""")
    assert again[1] == 219
    print(f"\n219 predictions for a photo: {first:.2f} s the first time (models loading), "
          f"{again[0] / 1000:.2f} s the next")


def test_synthesis_in_the_page_beats_the_best_natural_image(page, data_dir):
    from v4compact.data.session import load_session

    page.goto("./#/synthesize")
    page.wait_for_selector("#syn-start")
    ended = {}
    for neuron_id in SYNTH_NEURONS:
        started = time.perf_counter()
        ended[neuron_id] = page.evaluate(
            """(id) => new Promise((resolve, reject) => {
                 const out = {};
                 window.V4_SITE.stream(`/api/synthesize/stream?neurons=${id}&preset=upstream` +
                   "&steps=100&seed=1", { start() {}, progress() {},
                   done(data) { out.done = data; }, error(e) { reject(new Error(e.detail)); } },
                   new AbortController().signal).then(() => resolve(out.done), reject);
               })""", neuron_id)
        ended[neuron_id]["seconds"] = time.perf_counter() - started
    for neuron_id, done in ended.items():
        sid, idx = neuron_id.split("/")
        model = v4compact.load_compact_model(sid, idx, data_dir=data_dir)
        photos = load_session(201025 if sid == "211022" else int(sid), data_dir=data_dir)
        best_natural = float(np.max(model.predict(np.asarray(photos.images))))
        response = done["images"][0]["response"]
        print(f"\n{neuron_id}: page {response:.2f} vs best natural {best_natural:.2f} "
              f"({done['seconds']:.1f} s for 100 steps)")
        assert response > best_natural


PHONE_PAGES = [("./", "#gallery-cards .card"), (f"./#/neuron/{SITE_NEURONS[0]}", "#network"),
               ("./#/synthesize", "#syn-start"), ("./#/try", ".tabs button"),
               ("./#/sessions", "#sessions-table tbody tr"), ("./#/session/201025", "img.figure"),
               ("./#/tutorials", "#tutorial-list a"), ("./#/tutorial/01_load_data", ".nb-cell"),
               ("./#/about", "h1"), (f"./#/made/{MADE_NEURONS[0]}", "#provenance-table")]


@pytest.mark.parametrize(("path", "ready"), PHONE_PAGES, ids=[p for p, _ in PHONE_PAGES])
def test_every_page_fits_a_phone(browser, origin, path, ready):
    context, phone = _open(browser, origin, width=375, height=740)
    try:
        phone.goto(path)
        phone.wait_for_selector(ready)
        assert phone.evaluate("document.documentElement.scrollWidth - "
                              "document.documentElement.clientWidth") <= 0
        words = phone.inner_text("main").split()
        assert "null" not in words and "undefined" not in words
        assert not phone.problems, phone.problems
    finally:
        context.close()


def test_tutorials_link_the_notebook_download(page, site):
    page.goto("./#/tutorial/01_load_data")
    link = page.wait_for_selector("#tutorial-download")
    href = link.get_attribute("href")
    assert (site / href).is_file()
    json.loads((site / href).read_text())  # the notebook itself


def test_export_refuses_a_folder_that_is_not_an_export(tmp_path, capsys):
    (tmp_path / "mine.txt").write_text("keep me")
    assert main(["site", "export", "--out", str(tmp_path), "--neurons", "201025/10",
                 "--no-build"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"error: {tmp_path.resolve()} exists and is not an earlier export; give an "
                   "empty or new folder to --out")
    assert (tmp_path / "mine.txt").read_text() == "keep me"
    assert main(["site", "export", "--out", str(tmp_path / "x"), "--neurons", "999999"]) == 1
    assert "has no compact models" in capsys.readouterr().err


def test_opened_from_disk_it_says_how_to_serve_it(browser, site):
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto((site / "index.html").as_uri())
        page.wait_for_selector("main .error")
        assert page.inner_text("main .error") == (
            "Problem: this site must be served, not opened from disk: run 'python -m "
            "http.server' in its folder and open http://127.0.0.1:8000/")
    finally:
        context.close()
