"""Browser tests: headless Debian chromium (Playwright) against a real server on 127.0.0.1.

Needs ``apt-get install chromium`` (``/usr/bin/chromium``) and ``pip install playwright``
(its bundled driver; no ``playwright install``).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def base_url(site_cache, notebooks_dir, data_dir):
    from v4compact.web.app import create_app
    from v4compact.web.server import running_server

    app = create_app(data_dir=data_dir, cache_dir=site_cache, notebooks_dir=notebooks_dir)
    with running_server(app) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail("browser tests need Debian's chromium: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, base_url):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=base_url)
    page = context.new_page()
    page.set_default_timeout(60_000)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.problems = problems
    yield page
    context.close()


def _no_script_errors(page, allowed: tuple[str, ...] = ()) -> None:
    real = [p for p in page.problems if not any(a in p for a in allowed)]
    assert not real, real


def test_gallery_shows_all_neurons_and_filters(page, tmp_path, data_dir):
    page.goto("/")
    page.wait_for_selector("#gallery-cards .card")
    assert page.locator("#gallery-cards .card").count() == 219
    assert "219 neurons" in page.inner_text("h1")
    page.select_option("#filter-session", "201025")
    assert page.inner_text("#gallery-count") == "89 of 219 neurons shown"
    assert "session=201025" in page.url  # the filtered view has its own URL
    first = page.locator("#gallery-cards .card").first
    assert first.get_attribute("data-neuron") == "201025/10"  # the only one with a score
    assert "R² 0." in first.inner_text()
    page.fill("#filter-size", "60")
    folder = data_dir / "data_compact_models/nums_filters"
    small = sum(
        int(np.load(folder / f"compact_model_201025_neuron{k}.npy").sum()) <= 60
        for k in range(89)
    )
    assert page.inner_text("#gallery-count") == f"{small} of 219 neurons shown"
    assert "max_filters=60" in page.url
    page.screenshot(path=str(tmp_path / "gallery.png"))
    _no_script_errors(page)


def test_neuron_page_scatter_network_and_ablation(page):
    page.goto("/#/neuron/201025/10")
    page.wait_for_selector("#scatter svg circle")
    assert page.locator("#scatter svg circle").count() == 120
    assert "raw R² =" in page.inner_text("#performance")
    assert page.locator("#natural .thumb img").count() == 16
    assert page.locator("#preferred .thumb img").count() == 2
    page.wait_for_selector("#network canvas.kernel")
    assert page.locator("#network canvas.kernel").count() == 50 + 39 + 3 + 6 + 3
    page.locator('canvas.kernel[data-layer="layer4"][data-index="0"]').click()
    page.wait_for_selector("#filter-panel .ablation-text")
    text = page.inner_text("#filter-panel .ablation-text")
    assert "layer4 filter 0 switched off" in text and "raw R² on held-out photos" in text
    assert page.locator("#scatter svg circle.after").count() == 120
    page.wait_for_function(
        "() => { const i = document.querySelector('#filter-panel img.mapimg');"
        " return i && i.complete && i.naturalWidth > 0; }"
    )
    _no_script_errors(page)


def test_unknown_neuron_shows_a_message(page):
    page.goto("/#/neuron/201025/99")
    page.wait_for_selector(".error")
    assert "unknown neuron" in page.inner_text(".error")
    _no_script_errors(page, allowed=("404",))


def test_short_synthesis_streams_and_offers_download(page):
    page.goto("/#/synthesize?neurons=201025/10&steps=15&seed=2")
    page.wait_for_selector("#syn-start")
    assert page.input_value("#syn-steps") == "15"
    page.click("#syn-start")
    page.wait_for_selector("#syn-results .result-image")
    assert "Done" in page.inner_text("#syn-status")
    caption = page.inner_text("#syn-results .thumb span")
    assert caption.startswith("201025/10 · response")
    download = page.locator("#syn-results a[download]").first
    assert download.get_attribute("download") == "v4_201025_10_seed2.png"
    assert "seed=2" in page.url
    _no_script_errors(page)


def test_upload_shows_219_sorted_responses(page, data_dir, tmp_path):
    photo = tmp_path / "photo.jpg"
    with zipfile.ZipFile(data_dir / "data_V4_responses/images/images_201025.zip") as zf:
        photo.write_bytes(zf.read(sorted(n for n in zf.namelist() if n.endswith(".jpg"))[5]))
    page.goto("/#/try")
    page.set_input_files("#try-file", str(photo))
    page.wait_for_selector("#response-bars .bar")
    assert page.locator("#response-bars .bar").count() == 219
    texts = page.locator("#response-bars .bar span:last-child").all_inner_texts()
    values = [float(v) for v in texts]
    assert values == sorted(values, reverse=True)
    page.locator("#response-bars .bar").first.click()
    page.wait_for_selector("h1:has-text('Neuron ')")
    assert "#/neuron/" in page.url
    _no_script_errors(page)


def test_bad_upload_shows_the_servers_message(page, tmp_path):
    fake = tmp_path / "fake.jpg"
    fake.write_text("not a picture at all " * 20)
    page.goto("/#/try")
    page.set_input_files("#try-file", str(fake))
    page.wait_for_selector("#try-status .error")
    assert "not an image" in page.inner_text("#try-status .error")
    _no_script_errors(page, allowed=("415",))


def test_sessions_and_tutorials_pages(page):
    page.goto("/#/sessions")
    page.wait_for_selector("#sessions-table tbody tr")
    assert page.locator("#sessions-table tbody tr").count() == 50
    page.goto("/#/tutorials")
    page.wait_for_selector("#tutorial-list a")
    assert "open in Colab" in page.inner_text("#tutorial-list")
    page.click("#tutorial-list a:has-text('Load a session')")
    page.wait_for_selector(".nb-cell pre")
    assert "print(1 + 1)" in page.inner_text(".nb-cell pre")
    _no_script_errors(page)
