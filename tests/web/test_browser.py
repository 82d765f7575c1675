"""Browser tests: headless Debian chromium (Playwright) against a real server on 127.0.0.1.

Needs ``apt-get install chromium`` (``/usr/bin/chromium``) and ``pip install playwright``
(its bundled driver; no ``playwright install``).
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def base_url(site_cache, notebooks_dir, data_dir):
    from v4compact.web.app import create_app
    from v4compact.web.server import running_server

    app = create_app(data_dir=data_dir, cache_dir=site_cache, notebooks_dir=notebooks_dir)
    with running_server(app) as url:
        yield url


def _new_page(browser, base_url, width: int = 1280, height: int = 900):
    context = browser.new_context(viewport={"width": width, "height": height},
                                  base_url=base_url)
    page = context.new_page()
    page.set_default_timeout(60_000)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.problems = problems
    return context, page


@pytest.fixture
def page(browser, base_url):
    context, page = _new_page(browser, base_url)
    yield page
    context.close()


@pytest.fixture
def phone(browser, base_url):
    """A page on a 375 px wide phone screen."""
    context, page = _new_page(browser, base_url, width=375, height=740)
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
    performance = page.inner_text("#performance")
    assert "raw R² =" in performance and "v4compact evaluate compact/201025/10" in performance
    # both axes in spikes per 100 ms: the predictions are calibrated, not z-scored outputs
    axes = page.locator("#scatter svg text").all_text_contents()
    assert "measured (spikes per 100 ms)" in axes and "predicted (spikes per 100 ms)" in axes
    assert page.locator("#natural .thumb img").count() == 16
    caption = page.locator("#natural .thumb span").first.inner_text()
    assert caption.startswith("measured ") and "· predicted " in caption
    assert page.locator("#preferred .thumb img").count() == 2
    assert "z-scored units" in page.inner_text("#preferred")
    page.wait_for_selector("#network canvas.kernel")
    assert page.locator("#network canvas.kernel").count() == 50 + 39 + 3 + 6 + 3
    kernel = page.locator('canvas.kernel[data-layer="layer4"][data-index="0"]')
    kernel.click()
    page.wait_for_selector("#filter-panel .ablation-text")
    text = page.inner_text("#filter-panel .ablation-text")
    assert "layer4 filter 0 switched off" in text and "held-out half (600 photos)" in text
    # the two scores are told apart (enough digits), and the change is given
    before, after = re.search(r"goes from (\S+) to (\S+) \(change ", text).groups()
    assert before != after
    assert "spikes per 100 ms on average" in text
    # the red points are drawn in the filter panel, next to the click, not in the top scatter
    page.wait_for_selector("#filter-panel svg circle.after")
    assert page.locator("#filter-panel svg circle.after").count() == 120
    assert page.locator("#scatter svg circle.after").count() == 0
    chart = page.locator("#ablation-result svg").bounding_box()
    clicked = kernel.bounding_box()
    assert abs(chart["y"] - clicked["y"]) < 900  # within one screen of the filter clicked
    page.wait_for_function(
        "() => { const i = document.querySelector('#filter-panel img.mapimg');"
        " return i && i.complete && i.naturalWidth > 0; }"
    )
    _no_script_errors(page)


@pytest.fixture(scope="module")
def made_url(made_app):
    from v4compact.web.server import running_server

    with running_server(made_app) as url:
        yield url


def test_made_models_in_the_gallery_and_their_page(browser, made_url, lab_datasets):
    context, page = _new_page(browser, made_url)
    try:
        page.goto("/")
        page.wait_for_selector("#gallery-cards .card")
        assert page.locator("#gallery-cards .card").count() == 221
        assert page.inner_text("h1").endswith("and 2 made models")
        page.select_option("#filter-dataset", "lab")
        assert page.inner_text("#gallery-count") == "2 of 221 models shown"
        assert "dataset=lab" in page.url
        page.select_option("#filter-dataset", "cowley2023")
        assert page.inner_text("#gallery-count") == "219 of 221 models shown"
        page.select_option("#filter-dataset", "")
        page.select_option("#filter-area", "V4")
        assert page.inner_text("#gallery-count") == "221 of 221 models shown"
        page.select_option("#filter-dataset", "lab")
        made = page.locator('#gallery-cards .card[data-neuron="lab:s1/3"]')
        assert "made" in made.inner_text() and "lab · V4" in made.inner_text()
        made.click()
        page.wait_for_selector("#scatter svg circle")
        assert page.url.endswith("#/made/lab:s1/3")
        assert page.locator("#scatter svg circle").count() == 320  # 210325's held-out half
        assert "backbone:compact/201025/10:layer4" in page.inner_text("#provenance")
        assert "images_210305.zip" in page.inner_text("#provenance")
        assert "this made model (held-out raw R²)" in page.inner_text("#made-scores")
        page.wait_for_selector("#network canvas.kernel")
        assert page.locator("#network canvas.kernel").count() == sum(
            int(n) for n in page.inner_text("h1 + p.lead").split("(")[-1].strip(").").split(" · "))
        _no_script_errors(page)
    finally:
        context.close()
    phone_context, phone = _new_page(browser, made_url, width=375, height=740)
    try:
        for path, ready in (("/#/?dataset=lab", "#gallery-cards .card"),
                            ("/#/made/lab:s1/0", "#network canvas.kernel")):
            phone.goto(path)
            phone.wait_for_selector(ready)
            assert _overflow(phone) <= 0, f"{path} is wider than 375 px"
            words = phone.inner_text("main").split()
            assert "null" not in words and "undefined" not in words
        _no_script_errors(phone)
    finally:
        phone_context.close()


def test_unknown_neuron_shows_a_message(page):
    page.goto("/#/neuron/201025/99")
    page.wait_for_selector(".error")
    assert "unknown neuron" in page.inner_text(".error")
    _no_script_errors(page, allowed=("404",))


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("neurons=201025/99", "unknown neuron"),
        ("neurons=201025/10,201025/10", "listed twice"),
        ("neurons=201025/1,201025/2,201025/3,201025/4,201025/5", "choose 1 to 4 neurons"),
    ],
)
def test_synthesis_shows_the_servers_validation_message(page, query, message):
    page.goto(f"/#/synthesize?{query}&steps=5")
    page.wait_for_selector("#syn-start")
    page.click("#syn-start")
    page.wait_for_selector("#syn-status .error")
    text = page.inner_text("#syn-status .error")
    assert message in text and "connection was lost" not in text
    assert page.is_enabled("#syn-start")
    _no_script_errors(page, allowed=("400", "404"))


def test_short_synthesis_streams_and_offers_download(page):
    page.goto("/#/synthesize?neurons=201025/10&steps=15&seed=2")
    page.wait_for_selector("#syn-start")
    assert page.input_value("#syn-steps") == "15"
    page.click("#syn-start")
    page.wait_for_selector("#syn-results .result-image")
    assert "Done" in page.inner_text("#syn-status")
    caption = page.inner_text("#syn-results .thumb span")
    assert caption.startswith("201025/10 · output") and caption.endswith(" z")
    assert "z-scored units" in page.inner_text("#syn-results")
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
    # the server was started without a public repository: no Colab link, and it says why
    assert "open in Colab" not in page.inner_text("#tutorial-list")
    assert "no public copy" in page.inner_text("#no-colab")
    page.click("#tutorial-list a:has-text('Load a session')")
    page.wait_for_selector(".nb-cell pre")
    assert "print(1 + 1)" in page.inner_text(".nb-cell pre")
    assert page.locator(".nb-cell pre.output").first.inner_text() == "2\n"
    _no_script_errors(page)


#: Every page of the explorer, with what shows that it finished drawing.
PAGES = [
    ("/#/", "#gallery-cards .card"),
    ("/#/neuron/201025/10", "#network canvas.kernel"),
    ("/#/neuron/211022/0", "#network canvas.kernel"),
    ("/#/neuron/190923/5", "#network canvas.kernel"),
    ("/#/synthesize", "#syn-start"),
    ("/#/try", "#try-file"),
    ("/#/sessions", "#sessions-table tbody tr"),
    ("/#/session/201025", "img.figure"),
    ("/#/tutorials", "#tutorial-list a"),
    ("/#/tutorial/01_load_data", ".nb-cell pre"),
    ("/#/about", "h1"),
    ("/#/nowhere", "h1"),
]


def _overflow(page) -> int:
    return page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )


@pytest.mark.parametrize(("path", "ready"), PAGES, ids=[p for p, _ in PAGES])
def test_no_page_overflows_a_phone_screen(phone, path, ready):
    phone.goto(path)
    phone.wait_for_selector(ready)
    assert _overflow(phone) <= 0, f"{path} is wider than 375 px"
    words = phone.inner_text("main").split()
    assert "null" not in words and "undefined" not in words  # no absent part shown as text
    if path == "/#/try":  # every tab
        for tab in phone.locator(".tabs button").all():
            tab.click()
            assert _overflow(phone) <= 0, tab.inner_text()
    if path == "/#/neuron/201025/10":  # and after switching a filter off
        phone.locator('canvas.kernel[data-layer="layer2"][data-index="1"]').click()
        phone.wait_for_selector("#filter-panel svg circle.after")
        assert _overflow(phone) <= 0
    _no_script_errors(phone)


def test_wording_for_students(page):
    page.goto("/#/")
    page.wait_for_selector("#gallery-cards .card")
    heading = page.inner_text("h1")
    assert "three monkeys" in heading and "a monkey's" not in heading
    page.goto("/#/neuron/190923/5")  # not built: says so without addressing the site's owner
    page.wait_for_selector("#build-hint")
    body = page.inner_text("main")
    assert "whoever runs this site" not in body.lower()
    assert "site build --neurons 190923/5" in page.inner_text("#build-hint")
    _no_script_errors(page)


def test_damaged_model_file_disables_only_its_neuron(browser, damaged_data_dir, site_cache,
                                                     notebooks_dir, data_dir, tmp_path):
    from v4compact.web.app import create_app
    from v4compact.web.server import running_server

    from .conftest import MISSING, TRUNCATED

    app = create_app(data_dir=damaged_data_dir, cache_dir=site_cache,
                     notebooks_dir=notebooks_dir)
    with running_server(app) as url:
        context, page = _new_page(browser, url)
        page.goto("/#/")
        page.wait_for_selector("#gallery-cards .card")
        assert page.locator("#gallery-cards .card").count() == 219
        marked = page.locator(f'.card[data-neuron="{TRUNCATED}"]')
        assert marked.get_attribute("data-health") == "corrupt"
        assert f"v4compact data fetch compact-models:{TRUNCATED}" in marked.inner_text()
        assert MISSING in page.inner_text("#gallery-disabled")
        page.goto(f"/#/neuron/{TRUNCATED}")
        page.wait_for_selector("#neuron-health")
        assert "switched off" in page.inner_text("#neuron-health")
        photo = tmp_path / "photo.jpg"
        with zipfile.ZipFile(data_dir / "data_V4_responses/images/images_201025.zip") as zf:
            photo.write_bytes(zf.read(sorted(n for n in zf.namelist() if n.endswith(".jpg"))[5]))
        page.goto("/#/try")
        page.set_input_files("#try-file", str(photo))
        # the first upload loads the 216 usable models (minutes on a loaded 2-core machine)
        page.wait_for_selector("#response-bars .bar, #try-status .error", timeout=300_000)
        assert page.locator("#try-status .error").count() == 0, page.inner_text("#try-status")
        assert page.locator("#response-bars .bar").count() == 216
        assert "3 are switched off" in page.inner_text("#try-missing")
        _no_script_errors(page)
        context.close()


def test_the_shipped_tutorials_fit_a_phone_screen(browser, data_dir, tmp_path):
    """The real, executed notebooks (wide code lines, tables, figures) on a 375 px screen."""
    from v4compact.web.app import create_app
    from v4compact.web.server import running_server

    notebooks = Path(__file__).resolve().parents[2] / "notebooks"
    names = sorted(p.stem for p in notebooks.glob("*.ipynb"))
    assert len(names) >= 5
    app = create_app(data_dir=data_dir, cache_dir=tmp_path, notebooks_dir=notebooks)
    with running_server(app) as url:
        context, phone = _new_page(browser, url, width=375, height=740)
        for name in names:
            phone.goto(f"/#/tutorial/{name}")
            phone.wait_for_selector(".nb-cell pre")
            assert phone.locator(".nb-cell img").count() > 0, f"{name} shows no figure"
            assert _overflow(phone) <= 0, f"tutorial {name} is wider than 375 px"
        _no_script_errors(phone)
        context.close()
