"""The batched site build and the server that builds behind: same pages as the library's
per-neuron calls, atomic files, a build that resumes after ``kill -9``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

#: Two neurons of one session, built in one batch.
NEURONS = ("201025/3", "201025/10")
SETTINGS = {"steps": 3, "seeds": 2, "max_heldout_images": 40, "stats_images": 30,
            "num_natural": 4}


@pytest.fixture(scope="module")
def batched_cache(tmp_path_factory, data_dir):
    from v4compact.web.assets import SiteSettings
    from v4compact.web.sitebuild import StageTimes, build_site

    cache = tmp_path_factory.mktemp("batched")
    times = StageTimes()
    report = build_site(cache, data_dir=data_dir, neurons=list(NEURONS),
                        settings=SiteSettings(**SETTINGS), sessions=False, progress=False,
                        times=times)
    assert sorted(report.built) == sorted(NEURONS) and not report.failed
    assert times.total > 0 and all(times.seconds[s] > 0 for s in ("load", "predict", "synthesis"))
    return cache


def test_batched_build_equals_the_library_neuron_by_neuron(batched_cache, data_dir):
    """Score = ``evaluate``, calibration = ``fit_calibration``, rankings = ``rank_images``,
    preferred images = ``synthesize`` of each neuron's model alone."""
    from v4compact import evaluate
    from v4compact.data.session import load_session
    from v4compact.models.calibration import fit_calibration
    from v4compact.models.formats.loaders import load_compact_model
    from v4compact.synthesis import synthesize
    from v4compact.synthesis.natural import rank_images

    session = load_session(201025, data_dir=data_dir)
    _, heldout = session.heldout_split()
    shown = heldout[:SETTINGS["max_heldout_images"]]
    scores = evaluate([f"compact/{n}" for n in NEURONS], sessions=[201025], data_dir=data_dir,
                      progress=False).scores
    for neuron_id, score in zip(NEURONS, scores, strict=True):
        sid, idx = map(int, neuron_id.split("/"))
        folder = batched_cache / "neurons" / f"{sid}_{idx}"
        summary = json.loads((folder / "summary.json").read_text())
        page = summary["heldout"]
        assert page["model_id"] == score.model and page["metric"] == score.metric
        assert page["num_images"] == score.num_images == 600
        for key in ("value", "ci_low", "ci_high"):
            assert page[key] == pytest.approx(getattr(score, key), abs=1e-6)

        model = load_compact_model(sid, idx, data_dir=data_dir).eval()
        calibration = fit_calibration(model, data_dir=data_dir)
        assert summary["calibration"]["slope"] == pytest.approx(calibration.slope[0], rel=1e-5)
        assert summary["calibration"]["intercept"] == pytest.approx(
            calibration.intercept[0], rel=1e-5, abs=1e-6)

        ranking = rank_images(model, f"session:{sid}", neuron=0, indices=shown,
                              data_dir=data_dir)
        points = json.loads((folder / "heldout.json").read_text())
        assert points["image_indices"] == [int(i) for i in shown]
        np.testing.assert_allclose(points["predicted"], ranking.predicted, atol=2e-5)
        np.testing.assert_allclose(points["measured"], ranking.measured, atol=1e-5)
        top = [e["image"] for e in summary["natural"]["top_predicted"]]
        assert top == [int(shown[i]) for i in ranking.order[:SETTINGS["num_natural"]]]
        stats = summary["natural_stats"]
        assert stats["num_images"] == SETTINGS["stats_images"]

        alone = synthesize(model, seeds=SETTINGS["seeds"], steps=SETTINGS["steps"],
                           progress=False)
        for start, entry in enumerate(summary["preferred"]):
            with Image.open(folder / entry["file"]) as png:
                pixels = np.asarray(png.convert("RGB")).astype(int)
            assert np.abs(pixels - alone.images[start].astype(int)).max() <= 1  # float rounding
            assert entry["response"] == pytest.approx(alone.target_responses[start], rel=1e-3)


def test_score_predictions_is_what_evaluate_uses(data_dir):
    from v4compact import evaluate
    from v4compact.data.session import load_session
    from v4compact.evaluation import score_predictions
    from v4compact.models.formats.loaders import load_compact_model

    session = load_session(201025, data_dir=data_dir)
    _, heldout = session.heldout_split()
    model = load_compact_model(201025, 7, data_dir=data_dir)
    predicted = model.predict(np.asarray(session.images[heldout]))
    (mine,) = score_predictions(session, [7], np.asarray(predicted).reshape(1, -1), num_boot=50)
    (theirs,) = evaluate(model, sessions=[201025], neuron_ids=["201025/7"], num_boot=50,
                         data_dir=data_dir, progress=False).scores
    assert mine.metric == theirs.metric and mine.num_images == theirs.num_images == 600
    for key in ("value", "ci_low", "ci_high"):
        assert getattr(mine, key) == pytest.approx(getattr(theirs, key), abs=1e-7)


def test_a_rebuild_skips_current_neurons(batched_cache, data_dir):
    from v4compact.web.assets import SiteSettings
    from v4compact.web.sitebuild import build_site

    before = {p: p.stat().st_mtime_ns for p in batched_cache.rglob("*") if p.is_file()}
    report = build_site(batched_cache, data_dir=data_dir, neurons=list(NEURONS),
                        settings=SiteSettings(**SETTINGS), sessions=False, progress=False)
    assert report.built == [] and sorted(report.skipped) == sorted(NEURONS)
    after = {p: p.stat().st_mtime_ns for p in batched_cache.rglob("*") if p.is_file()
             if p.name != "site.json" and p.name != "population_stats.json"}
    assert all(before[p] == t for p, t in after.items())
    assert not list(batched_cache.rglob("*.tmp"))


# --- the server: serve first, build behind ------------------------------------------------
def _serve(cache: Path, data_dir: Path, port: int) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "v4compact", "serve", "--port", str(port),
        "--data-dir", str(data_dir), "--cache-dir", str(cache),
        "--site-steps", "2", "--site-seeds", "1", "--site-heldout-images", "20",
    ]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _wait(condition, timeout: float, process: subprocess.Popen, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited while waiting for {what}: "
                        f"{process.stdout.read().decode()[-2000:]}")
        try:
            value = condition()
        except httpx.HTTPError:
            value = None
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"no {what} within {timeout} s")


def _check_cache_is_whole(cache: Path) -> set[str]:
    """Every summary.json parses and names files that decode; returns the built neurons."""
    built = set()
    for summary_path in (cache / "neurons").glob("*/summary.json"):
        summary = json.loads(summary_path.read_text())
        assert summary["model_key"] and summary["synthesis_key"], summary_path
        for entry in summary["preferred"]:
            with Image.open(summary_path.parent / entry["file"]) as png:
                assert png.convert("RGB").size == (112, 112)
        if summary["heldout"] is not None:
            points = json.loads((summary_path.parent / "heldout.json").read_text())
            assert len(points["predicted"]) == 20
        built.add(summary["neuron_id"])
    return built


def test_serve_answers_at_once_builds_behind_and_resumes_after_kill(tmp_path, data_dir):
    from v4compact.web.server import free_port

    cache = tmp_path / "cache"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    launched = time.monotonic()
    server = _serve(cache, data_dir, port)
    try:
        index = _wait(lambda: httpx.get(url + "/", timeout=5), 60, server, "first page")
        first_page_s = time.monotonic() - launched
        assert index.status_code == 200 and first_page_s < 30, first_page_s
        # an unbuilt neuron: answered at once, "computing" (or queued), then ready
        page = httpx.get(url + "/api/neurons/210225/4", timeout=30)
        assert page.status_code == 200
        assert page.json()["status"] in ("computing", "queued", "waiting", "ready")
        assert page.json()["build_hint"] or page.json()["status"] == "ready"
        ready = _wait(lambda: (d := httpx.get(url + "/api/neurons/210225/4", timeout=30).json())
                      ["status"] == "ready" and d, 120, server, "the visited neuron")
        assert ready["heldout"]["num_images"] == 600 and len(ready["preferred"]) == 1
        progress = httpx.get(url + "/api/build", timeout=30).json()
        assert progress["enabled"] and progress["total"] == 219 and progress["ready"] >= 1
        # wait for a background batch to be written, then kill -9 mid-build
        _wait(lambda: httpx.get(url + "/api/build", timeout=30).json()["ready"] >= 2, 120,
              server, "a background batch")
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
    done = _check_cache_is_whole(cache)
    assert "210225/4" in done and len(done) >= 2
    stamps = {n: (cache / "neurons" / n.replace("/", "_") / "summary.json").stat().st_mtime_ns
              for n in done}

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = _serve(cache, data_dir, port)
    try:
        _wait(lambda: httpx.get(url + "/api/build", timeout=5).json()["ready"] > len(done),
              120, server, "the resumed build")
        # the neurons built before the kill were not built again
        for neuron_id, stamp in stamps.items():
            path = cache / "neurons" / neuron_id.replace("/", "_") / "summary.json"
            assert path.stat().st_mtime_ns == stamp, neuron_id
        cards = httpx.get(url + "/api/neurons", timeout=30).json()
        assert {c["neuron_id"] for c in cards if c["status"] == "ready"} >= done
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
    _check_cache_is_whole(cache)


def test_no_build_serves_only_what_is_there(tmp_path, data_dir):
    from v4compact.web.app import create_app
    from v4compact.web.server import running_server

    app = create_app(data_dir=data_dir, cache_dir=tmp_path)
    with running_server(app) as url:
        detail = httpx.get(url + "/api/neurons/201025/10", timeout=30).json()
        assert detail["status"] == "not built" and "site build" in detail["build_hint"]
        progress = httpx.get(url + "/api/build", timeout=30).json()
        assert progress == {**progress, "enabled": False, "ready": 0, "total": 219}
    assert not (tmp_path / "neurons").exists()
