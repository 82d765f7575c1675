"""Fixtures of the explorer tests: a small asset cache built once, and an app over it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from v4compact.web.server import CHROMIUM, launch_chromium

#: Neurons of the small test site: one whose session has its photos in the data copy and
#: one whose session has none (211022), so both kinds of page are exercised.
SITE_NEURONS = ("201025/10", "211022/0")
#: Held-out photos used by the quick build (the full build uses all 600).
HELDOUT_IMAGES = 120


@pytest.fixture(scope="session")
def site_cache(tmp_path_factory, data_dir) -> Path:
    """A site cache for :data:`SITE_NEURONS` built with few steps (quick)."""
    from v4compact.web.assets import SiteSettings
    from v4compact.web.sitebuild import build_site

    cache = tmp_path_factory.mktemp("site")
    settings = SiteSettings(
        steps=5, seeds=2, max_heldout_images=HELDOUT_IMAGES, stats_images=10, num_natural=4
    )
    report = build_site(
        cache, data_dir=data_dir, neurons=list(SITE_NEURONS), settings=settings,
        sessions=False, progress=False,
    )
    assert not report.failed, report.failed
    return cache


@pytest.fixture(scope="session")
def notebooks_dir(tmp_path_factory) -> Path:
    """A folder with one small tutorial notebook (nbformat 4 JSON)."""
    folder = tmp_path_factory.mktemp("notebooks")
    notebook = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {},
        "cells": [
            {
                "cell_type": "markdown",
                "metadata": {},
                "source": ["# Load a session\n", "Some *text*."],
            },
            {
                "cell_type": "code",
                "metadata": {},
                "execution_count": 1,
                "source": ["print(1 + 1)"],
                "outputs": [{"output_type": "stream", "name": "stdout", "text": ["2\n"]}],
            },
        ],
    }
    (folder / "01_load_data.ipynb").write_text(json.dumps(notebook))
    (folder / "not a notebook.txt").write_text("ignored")
    return folder


@pytest.fixture(scope="session")
def app(site_cache, notebooks_dir, data_dir):
    """The explorer app over the real data and the small site cache."""
    from v4compact.web.app import create_app

    return create_app(
        data_dir=data_dir, cache_dir=site_cache, notebooks_dir=notebooks_dir, max_workers=2,
        repo_url="https://github.com/example/v4compact",
    )


@pytest.fixture(scope="session")
def client(app):
    """A TestClient of :func:`app` (lifespan run once for the session)."""
    from fastapi.testclient import TestClient

    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        yield test_client


#: Neurons whose files the damaged copy breaks: a truncated model, a garbage filter-count
#: file, and a model file that is missing.
TRUNCATED, GARBLED, MISSING = "201025/3", "190923/2", "210225/1"


@pytest.fixture(scope="session")
def damaged_data_dir(tmp_path_factory, data_dir) -> Path:
    """A copy of the data directory (symbolic links) with three neurons' files damaged."""
    from v4compact.data import paths

    root = tmp_path_factory.mktemp("damaged_data")
    for source in data_dir.rglob("*"):
        if source.is_file():
            link = root / source.relative_to(data_dir)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(source)
    truncated = root / paths.compact_model(*map(int, TRUNCATED.split("/")))
    content = truncated.read_bytes()
    truncated.unlink()
    truncated.write_bytes(content[: len(content) // 2])
    garbled = root / paths.nums_filters(*map(int, GARBLED.split("/")))
    garbled.unlink()
    garbled.write_bytes(b"this is not a numpy file")
    (root / paths.compact_model(*map(int, MISSING.split("/")))).unlink()
    return root


#: Neurons of the made-models run: two neurons of 210325 imported as a lab's session.
MADE_NEURONS = ("lab:s1/0", "lab:s1/3")


@pytest.fixture(scope="session")
def made_run(tmp_path_factory, data_dir) -> Path:
    """A finished tiny ``make-compact`` run for :data:`MADE_NEURONS` (210325 exported to NWB
    and imported as ``lab:s1`` into ``<run>/../datasets``; a backbone teacher mapped on its
    fit half). The datasets folder is registered only by :func:`lab_datasets`."""
    from v4compact import export_session, import_session
    from v4compact.data import datasets
    from v4compact.training.distill import DistillConfig
    from v4compact.training.recipe import make_compact

    root = tmp_path_factory.mktemp("made")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datasets, "_EXTRA_ROOTS", [])
        nwb = export_session(210325, root / "210325.nwb", data_dir=data_dir)
        import_session(nwb, "lab:s1", area="V4", out=root / "datasets", data_dir=data_dir)
        config = DistillConfig(num_filters=(4,) * 5, batch_size=16, passes=1,
                               holdout_images=8, num_workers=0)
        make_compact("backbone:compact/201025/10:layer4", list(MADE_NEURONS),
                     [data_dir / "data_V4_responses/images/images_210305.zip"], root / "run",
                     config, max_images_per_shard=40, data_dir=data_dir)
    return root / "run"


@pytest.fixture
def lab_datasets(made_run, monkeypatch) -> Path:
    """The made run's imported session (``lab:s1``) findable during one test."""
    from v4compact.data import datasets

    root = made_run.parent / "datasets"
    monkeypatch.setattr(datasets, "_EXTRA_ROOTS", [root])
    return root


@pytest.fixture(scope="module")
def made_app(made_run, site_cache, notebooks_dir, data_dir):
    """The explorer app with the made models of :func:`made_run`, one per test module (a
    closed TestClient shuts its workers down); tests that open a made model's page also need
    :func:`lab_datasets`."""
    from v4compact.web.app import create_app

    return create_app(data_dir=data_dir, cache_dir=site_cache, notebooks_dir=notebooks_dir,
                      max_workers=2, made=[made_run])


@pytest.fixture(scope="module")
def browser():
    """Headless Debian chromium through Playwright, one per test module."""
    if not Path(CHROMIUM).exists():
        pytest.fail("browser tests need Debian's chromium: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


def static_server(folder: Path):
    """A real ``python -m http.server`` serving ``folder`` on a free loopback port (no
    project code in the server); a context manager yielding ``http://127.0.0.1:<port>``."""
    from v4compact.web.server import serve_folder

    return serve_folder(folder)
