"""The explorer's JSON API on the real data, through FastAPI's TestClient."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import v4compact
from v4compact.data.session import load_session
from v4compact.metrics import raw_r2
from v4compact.models.formats.loaders import load_compact_model

from .conftest import GARBLED, HELDOUT_IMAGES, MISSING, SITE_NEURONS, TRUNCATED


@pytest.fixture(scope="module")
def model_201025_10(data_dir):
    return load_compact_model(201025, 10, data_dir=data_dir)


@pytest.fixture(scope="module")
def photo_bytes(data_dir) -> bytes:
    with zipfile.ZipFile(data_dir / "data_V4_responses/images/images_201025.zip") as zf:
        name = sorted(n for n in zf.namelist() if n.endswith(".jpg"))[3]
        return zf.read(name)


def _png_pixels(content: bytes) -> np.ndarray:
    return np.array(Image.open(io.BytesIO(content)).convert("RGB"))


def _predict_one(model, pixels: np.ndarray) -> float:
    return float(np.asarray(model.predict(pixels[None])).reshape(-1)[0])


# --- meta, security ----------------------------------------------------------------------
def test_health_reports_built_neurons(client):
    body = client.get("/api/health").json()
    assert body["status"] == "ok" and body["neurons_built"] == len(SITE_NEURONS)
    assert body["neurons_available"] == 219 and body["neurons_disabled"] == []
    assert body["jobs"]["workers"] == 2


def test_health_and_errors_reveal_no_server_paths(client, data_dir, site_cache, notebooks_dir):
    folders = [str(data_dir), str(site_cache), str(notebooks_dir), str(Path.home())]
    health = client.get("/api/health")
    # a missing file of the data directory: the library's message names the folder searched
    missing = client.get("/api/sessions/211022/images/0.png")
    assert missing.status_code == 404
    assert "v4compact data fetch images:211022" in missing.json()["detail"]
    unbuilt = client.get("/api/neurons/211022/0")  # its held-out note names a fetch command
    for response in (health, missing, unbuilt):
        for folder in folders:
            assert folder not in response.text, (response.url, folder)


def test_security_headers_on_pages_and_errors(client):
    for path in ("/", "/api/neurons/999999/0", "/static/app.js"):
        headers = client.get(path).headers
        assert "default-src 'self'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["x-frame-options"] == "DENY"


def test_openapi_schema_lists_the_routes(client):
    schema = client.get("/api/openapi.json").json()
    assert "/api/predict" in schema["paths"]
    assert "/api/neurons/{session_id}/{neuron}" in schema["paths"]


def test_index_serves_the_single_page_app(client):
    response = client.get("/")
    assert response.status_code == 200 and "/static/app.js" in response.text


# --- gallery and neuron pages ------------------------------------------------------------
def test_gallery_lists_all_219_neurons(client):
    cards = client.get("/api/neurons").json()
    assert len(cards) == 219
    assert len({c["neuron_id"] for c in cards}) == 219
    by_id = {c["neuron_id"]: c for c in cards}
    assert by_id["201025/10"]["num_filters"] == [50, 39, 3, 6, 3]
    assert by_id["201025/10"]["built"] and by_id["201025/10"]["preferred_url"]
    assert not by_id["190923/0"]["built"] and by_id["190923/0"]["num_filters"]


def test_neuron_score_is_the_evaluation_number(client, data_dir, tmp_path):
    """The page, v4compact.evaluate and the CLI's CSV give the same number for 201025/10."""
    from v4compact.cli import main
    from v4compact.evaluation import EvaluationResult

    page = client.get("/api/neurons/201025/10").json()["heldout"]
    evaluated = v4compact.evaluate(
        "compact/201025/10", sessions=[201025], data_dir=data_dir, progress=False
    ).scores[0]
    csv = tmp_path / "scores.csv"
    assert main(["evaluate", "compact/201025/10", "--sessions", "201025", "--out", str(csv),
                 "--quiet"]) == 0
    (row,) = EvaluationResult.from_csv(csv).scores
    assert page["metric"] == evaluated.metric == row.metric == "raw_r2"
    # the page scores with evaluate's own code (score_predictions) on the predictions of the
    # session's fused population, which 'evaluate compact --sessions' also uses; the single
    # model's forward pass differs from it by float32 rounding only (~1e-8 here)
    assert page["value"] == pytest.approx(evaluated.value, abs=1e-6)
    assert page["value"] == pytest.approx(row.value, rel=1e-5)  # the CSV keeps 6 digits
    assert page["ci_low"] == pytest.approx(evaluated.ci_low, abs=1e-6)
    assert page["ci_high"] == pytest.approx(evaluated.ci_high, abs=1e-6)
    assert page["num_images"] == evaluated.num_images == 600  # the whole held-out half
    assert page["model_id"] == "compact/201025/10"


def test_scatter_points_name_their_units(client, data_dir, model_201025_10):
    from v4compact.models.calibration import fit_calibration

    detail = client.get("/api/neurons/201025/10").json()
    assert detail["model_units"] == "z-scored units"
    session = load_session(201025, data_dir=data_dir)
    _, heldout = session.heldout_split()
    heldout = heldout[:HELDOUT_IMAGES]
    predicted = model_201025_10.predict(np.asarray(session.images[heldout]))
    points = detail["heldout_points"]
    assert points["image_indices"] == heldout.tolist()
    np.testing.assert_allclose(points["measured"], session.responses[10, heldout], atol=1e-4)
    np.testing.assert_allclose(points["predicted"], predicted, atol=1e-3)
    # calibrated predictions (spikes per 100 ms): the library's calibration of this model
    calibration = fit_calibration(model_201025_10, data_dir=data_dir)
    spikes = np.asarray(calibration.apply(predicted[:, None])).reshape(-1)
    np.testing.assert_allclose(points["predicted_spikes"], spikes, atol=1e-3)
    assert detail["calibration"]["units"] == "spikes per 100 ms"
    assert detail["calibration"]["slope"] == pytest.approx(float(calibration.slope[0]), rel=1e-6)
    # on the same scale as the measured spike counts, unlike the raw z-scored outputs
    measured = np.asarray(points["measured"])
    assert abs(np.mean(points["predicted_spikes"]) - measured.mean()) < 0.25 * measured.mean()
    assert abs(np.mean(points["predicted"]) - measured.mean()) > 0.5 * measured.mean()
    # an affine map leaves the squared correlation unchanged
    assert raw_r2(measured, np.asarray(points["predicted_spikes"])) == pytest.approx(
        raw_r2(measured, predicted), abs=1e-5)
    top = detail["natural"]["top_predicted"][0]
    assert top["predicted_spikes"] == pytest.approx(
        float(calibration.apply(np.array([[top["predicted"]]])).reshape(-1)[0]), abs=1e-6)


def test_natural_rankings_are_ordered(client):
    natural = client.get("/api/neurons/201025/10").json()["natural"]
    top = [item["measured"] for item in natural["top_measured"]]
    bottom = [item["predicted"] for item in natural["bottom_predicted"]]
    assert top == sorted(top, reverse=True) and bottom == sorted(bottom)
    assert min(i["predicted"] for i in natural["top_predicted"]) > max(bottom)


def test_preferred_image_response_matches_the_model(client, model_201025_10):
    detail = client.get("/api/neurons/201025/10").json()
    assert len(detail["preferred"]) == 2
    first = detail["preferred"][0]
    response = client.get(first["url"])
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    pixels = _png_pixels(response.content)
    assert pixels.shape == (112, 112, 3)
    assert _predict_one(model_201025_10, pixels) == pytest.approx(first["response"], abs=1e-3)


def test_neuron_without_session_photos_explains_why(client):
    detail = client.get("/api/neurons/211022/0").json()
    assert detail["heldout"] is None and detail["natural"] is None
    assert "211022" in detail["build_hint"] and "fetch" in detail["build_hint"]
    assert len(detail["preferred"]) == 2
    assert detail["calibration"] is None


def test_fetch_hints_name_groups_that_exist(client):
    """Every ``v4compact data fetch`` command the explorer shows resolves to release files."""
    from v4compact.data.registry import resolve

    hints = [client.get("/api/neurons/211022/0").json()["build_hint"],
             client.get("/api/sessions/211022/images/0.png").json()["detail"]]
    groups = [h.split("v4compact data fetch ", 1)[1].split()[0].rstrip(".;") for h in hints]
    assert groups == ["images:211022", "images:211022"]
    assert all(resolve(group) for group in groups)


def test_unbuilt_neuron_says_how_to_build(client):
    detail = client.get("/api/neurons/190923/5").json()
    assert not detail["built"] and "site build --neurons 190923/5" in detail["build_hint"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/neurons/201025/89",
        "/api/neurons/201025/-1",
        "/api/neurons/190924/0",
        "/api/neurons/abc/0",
        "/api/neurons/201025/10/preferred/7.png",
        "/api/neurons/201025/10/preferred/..%2Fsummary.json",
        "/api/neurons/201025/10/preferred/%2E%2E%2F%2E%2E%2Fsite.json",
        "/api/neurons/..%2F..%2F..%2Fetc%2Fpasswd/0",
        "/api/sessions/999999",
        "/api/sessions/201025/images/1200.png",
        "/api/sessions/201025/images/..%2F..%2Fsessions.csv",
        "/api/tutorials/..%2F..%2Fpyproject",
        "/static/..%2F..%2Fapp.py",
        "/static/../../../../etc/passwd",
        # other scripts' digits are not numbers (int("١") would be 1)
        "/api/neurons/201025/\u0661",
        "/api/neurons/\uff12\uff10\uff11\uff10\uff12\uff15/10",
        "/api/neurons/201025/1\u0660/network",
        "/api/sessions/\uff12\uff10\uff11\uff10\uff12\uff15",
        "/api/sessions/201025/images/\u0667.png",
        "/api/neurons/201025/10/preferred/\u0661.png",
        # one spelling per id: leading zeros name nothing
        "/api/neurons/201025/010",
        "/api/neurons/0201025/10",
        "/api/neurons/201025/010/network",
        "/api/sessions/0201025",
        "/api/sessions/201025/images/07.png",
        "/api/neurons/201025/10/preferred/00.png",
    ],
)
def test_unknown_ids_and_traversal_are_404(client, path):
    response = client.get(path)
    assert response.status_code == 404, (path, response.text)
    assert isinstance(response.json()["detail"], str)


def test_a_neuron_id_with_leading_zeros_says_how_to_write_it(client):
    response = client.get("/api/neurons/201025/010")
    assert response.status_code == 404
    assert "write '10'" in response.json()["detail"]


def test_network_has_every_filter(client):
    network = client.get("/api/neurons/201025/10/network").json()
    assert network["num_filters"] == [50, 39, 3, 6, 3]
    assert [layer["num_filters"] for layer in network["layers"]] == [50, 39, 3, 6, 3]
    assert np.asarray(network["layers"][0]["kernels"]).shape == (50, 5, 5, 3)
    assert np.asarray(network["layers"][2]["kernels"]).shape == (3, 5, 5, 1)
    assert np.asarray(network["readout_map"]).shape == (28, 28)


@pytest.mark.parametrize(("layer", "filter_index"), [("layer0", 3), ("layer4", 2)])
def test_activation_map_png(client, layer, filter_index):
    url = f"/api/neurons/201025/10/activation.png?layer={layer}&filter={filter_index}&image=s650"
    response = client.get(url)
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert _png_pixels(response.content).shape == (112, 112, 3)
    preferred = client.get(url.replace("s650", "p1"))
    assert preferred.status_code == 200


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("layer=layer9&filter=0&image=s1", 400),
        ("layer=layer2&filter=3&image=s1", 400),
        ("layer=layer0&filter=0&image=../x", 400),
        ("layer=layer0&filter=0&image=s99999", 400),
        ("layer=layer0&filter=0&image=p9", 404),
        ("layer=layer0&filter=0&image=s\u0667", 400),
        ("layer=layer0&filter=\u0661&image=s1", 422),
        ("layer=layer0&image=s1", 422),
    ],
)
def test_activation_rejects_bad_queries(client, query, status):
    response = client.get(f"/api/neurons/201025/10/activation.png?{query}")
    assert response.status_code == status, response.text
    assert isinstance(response.json()["detail"], str)


def test_ablation_changes_predictions_as_the_model_says(client, data_dir, model_201025_10):
    result = client.get("/api/neurons/201025/10/ablation?layer=layer4&filter=0").json()
    detail = client.get("/api/neurons/201025/10").json()
    assert result["before"] == detail["heldout"]["value"]
    assert "raw R" in result["metric"] and "600 photos" in result["metric"]
    assert len(result["predicted_after"]) == HELDOUT_IMAGES
    assert result["mean_abs_change"] > 0
    # independent check: zero filter 0's readout weights, which silences it in the readout
    import copy

    import torch

    silenced = copy.deepcopy(model_201025_10)
    with torch.no_grad():
        weight = silenced.readout.weight.view(28, 28, 3)
        weight[:, :, 0] = 0
    session = load_session(201025, data_dir=data_dir)
    images = np.asarray(session.images[detail["heldout_points"]["image_indices"]])
    np.testing.assert_allclose(result["predicted_after"], silenced.predict(images), atol=1e-3)
    # the score after is the evaluation's score of the silenced model
    after = v4compact.evaluate(silenced, sessions=[201025], data_dir=data_dir, num_boot=0,
                               progress=False).scores[0]
    assert result["after"] == pytest.approx(after.value, abs=1e-6)
    # and the spike-count version of the predictions uses the neuron's calibration
    slope, intercept = detail["calibration"]["slope"], detail["calibration"]["intercept"]
    np.testing.assert_allclose(result["predicted_after_spikes"],
                               slope * np.asarray(result["predicted_after"]) + intercept,
                               atol=1e-3)


def test_ablation_without_photos_uses_preferred_images(client):
    result = client.get("/api/neurons/211022/0/ablation?layer=layer0&filter=0").json()
    assert result["metric"] == "mean model output on the preferred images (z-scored units)"
    assert len(result["predicted_before"]) == 2 and result["measured"] == []
    assert result["predicted_before_spikes"] is None  # no photos here: no calibration


# --- sessions ----------------------------------------------------------------------------
def test_sessions_list_all_50(client):
    sessions = client.get("/api/sessions").json()
    assert len(sessions) == 50
    by_id = {s["session_id"]: s for s in sessions}
    assert by_id[201025]["has_images"] and by_id[201025]["has_models"]
    assert not by_id[211022]["has_images"]


def test_session_image_is_the_release_image(client, data_dir):
    content = client.get("/api/sessions/201025/images/7.png").content
    expected = load_session(201025, data_dir=data_dir).image(7)
    np.testing.assert_array_equal(_png_pixels(content), expected)


def test_session_figure_is_drawn_and_cached(client, site_cache):
    response = client.get("/api/sessions/210224/figure.png")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(response.content)).size[0] > 400
    assert (site_cache / "sessions" / "210224.png").is_file()


# --- predictions on uploads --------------------------------------------------------------
def test_predict_upload_gives_all_neurons(client, photo_bytes, model_201025_10):
    response = client.post("/api/predict", files={"image": ("x.jpg", photo_bytes, "image/jpeg")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["responses"]) == 219
    assert body["image_png"].startswith("data:image/png;base64,")
    # the statistics come with each built neuron: the two of the test site have z-scores;
    # while the others have none, the list is sorted by the outputs (one scale in the chart)
    # and the note says when the comparison with each neuron's range appears
    assert {r["neuron_id"] for r in body["responses"] if r["zscore"] is not None} == set(
        SITE_NEURONS)
    outputs = [r["response"] for r in body["responses"]]
    assert outputs == sorted(outputs, reverse=True)
    assert "once every neuron's page is built" in body["note"]
    item = next(r for r in body["responses"] if r["neuron_id"] == "201025/10")
    pixels = np.array(Image.open(io.BytesIO(photo_bytes)).convert("RGB"))
    assert item["response"] == pytest.approx(_predict_one(model_201025_10, pixels), abs=0.05)


def _truncated_jpeg(photo_bytes: bytes) -> bytes:
    return photo_bytes[: len(photo_bytes) // 2]


def _one_pixel_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("make", "status", "phrase"),
    [
        (lambda p: b"hello, I am a text file" * 50, 415, "not an image"),
        (lambda p: b"\x00" * (20 * 1024 * 1024), 413, "too large"),
        (lambda p: _one_pixel_png(), 422, "1x1"),
        (_truncated_jpeg, 422, "truncated"),
    ],
    ids=["not-an-image", "20MB", "1x1", "truncated-jpeg"],
)
def test_bad_uploads_get_clear_4xx(client, photo_bytes, make, status, phrase):
    data = make(photo_bytes)
    # the extension and content type claim a JPEG: only the content decides
    response = client.post("/api/predict", files={"image": ("photo.jpg", data, "image/jpeg")})
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert phrase in detail and "\n" not in detail


def test_predict_without_file_is_422(client):
    response = client.post("/api/predict", data={"other": "x"})
    assert response.status_code == 422 and "image" in response.json()["detail"]


# --- synthesis ---------------------------------------------------------------------------
def _events(text: str) -> list[tuple[str, dict]]:
    out = []
    for block in text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in lines:
            out.append((lines["event"], json.loads(lines["data"])))
    return out


def test_synthesis_options(client):
    body = client.get("/api/synthesis/options").json()
    assert "upstream" in body["presets"] and "maximize" in body["objectives"]


def test_synthesis_stream_ends_with_image_and_provenance(client, model_201025_10):
    url = "/api/synthesize/stream?neurons=201025/10&steps=4&seed=3&preset=upstream"
    with client.stream("GET", url) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join(response.iter_text())
    events = _events(text)
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and "progress" in kinds
    steps = [data["step"] for kind, data in events if kind == "progress"]
    assert steps == sorted(steps) and steps[-1] == 4
    done = events[-1][1]
    assert done["provenance"]["seed"] == 3 and done["provenance"]["steps"] == 4
    image = done["images"][0]
    png = Image.open(io.BytesIO(__import__("base64").b64decode(image["png"].split(",", 1)[1])))
    assert json.loads(png.text["v4compact-provenance"])["neurons"] == ["201025/10"]
    pixels = np.array(png.convert("RGB"))
    assert _predict_one(model_201025_10, pixels) == pytest.approx(image["response"], abs=1e-3)


def test_synthesis_of_two_neurons_and_a_filter(client):
    two = client.get("/api/synthesize/stream?neurons=201025/10,211022/0&steps=2").text
    done = _events(two)[-1]
    assert done[0] == "done" and [i["neuron_id"] for i in done[1]["images"]] == [
        "201025/10", "211022/0"]
    one = client.get(
        "/api/synthesize/stream?neurons=201025/10&steps=2&objective=filter&layer=layer2"
        "&filter_index=1"
    ).text
    assert _events(one)[-1][0] == "done"


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("neurons=201025/99", 404),
        ("neurons=", 400),
        ("neurons=201025/10&steps=0", 400),
        ("neurons=201025/10&steps=100000", 400),
        ("neurons=201025/10&preset=magic", 400),
        ("neurons=201025/10&objective=explode", 400),
        ("neurons=201025/10,201025/10", 400),
        ("neurons=201025/1,201025/2,201025/3,201025/4,201025/5", 400),
    ],
)
def test_synthesis_rejects_bad_requests(client, query, status):
    response = client.get(f"/api/synthesize/stream?{query}")
    assert response.status_code == status, response.text
    assert isinstance(response.json()["detail"], str)


def test_filter_objective_reports_a_bad_layer_in_the_stream(client):
    text = client.get(
        "/api/synthesize/stream?neurons=201025/10&steps=2&objective=filter&layer=layer7"
    ).text
    kind, data = _events(text)[-1]
    assert kind == "error" and "layer7" in data["detail"]


# --- tutorials ---------------------------------------------------------------------------
def test_tutorials_without_a_public_repository_say_so(notebooks_dir, site_cache, data_dir,
                                                     monkeypatch):
    from fastapi.testclient import TestClient

    from v4compact import config
    from v4compact.web.app import create_app

    monkeypatch.delenv(config.REPO_URL_ENV_VAR, raising=False)
    assert config.repository_url() is None  # no public copy of the project exists yet
    app = create_app(data_dir=data_dir, cache_dir=site_cache, notebooks_dir=notebooks_dir)
    with TestClient(app, base_url="http://127.0.0.1") as local:
        (book,) = local.get("/api/tutorials").json()
        assert book["colab_url"] is None
        assert book["repository_note"] == config.NO_PUBLIC_COPY
        assert "no public copy" in book["repository_note"]
        assert local.get("/api/tutorials/01_load_data").json()["colab_url"] is None


def test_tutorials_are_listed_with_colab_links(client):
    books = client.get("/api/tutorials").json()
    assert [b["name"] for b in books] == ["01_load_data"]
    assert books[0]["title"] == "Load a session"
    assert books[0]["colab_url"] == (
        "https://colab.research.google.com/github/example/v4compact/blob/main/notebooks/"
        "01_load_data.ipynb"
    )


def test_tutorial_cells(client):
    book = client.get("/api/tutorials/01_load_data").json()
    assert [c["kind"] for c in book["cells"]] == ["markdown", "code"]
    assert book["cells"][1]["outputs"] == [{"kind": "text", "text": "2\n"}]
    assert client.get("/api/tutorials/02_missing").status_code == 404


# --- one bad model file disables only its own neuron ------------------------------------------
@pytest.fixture(scope="module")
def damaged_client(damaged_data_dir, site_cache, notebooks_dir):
    from fastapi.testclient import TestClient

    from v4compact.web.app import create_app

    app = create_app(data_dir=damaged_data_dir, cache_dir=site_cache,
                     notebooks_dir=notebooks_dir)
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        yield test_client


def test_gallery_marks_each_damaged_neuron_and_says_how_to_refetch(damaged_client,
                                                                    damaged_data_dir):
    response = damaged_client.get("/api/neurons")
    assert response.status_code == 200
    cards = {c["neuron_id"]: c for c in response.json()}
    assert len(cards) == 219
    assert cards[TRUNCATED]["health"] == cards[GARBLED]["health"] == "corrupt"
    assert cards[MISSING]["health"] == "missing"
    from v4compact.data.registry import resolve

    for neuron_id in (TRUNCATED, GARBLED, MISSING):
        problem = cards[neuron_id]["problem"]
        assert problem.endswith(f"v4compact data fetch compact-models:{neuron_id}")
        assert str(damaged_data_dir) not in problem and "\n" not in problem
        group = problem.rsplit(" ", 1)[1]  # a group the release has: it fetches both files
        assert {entry.kind for entry in resolve(group)} == {"compact-models", "nums-filters"}
    assert cards[GARBLED]["num_filters"] is None
    assert sum(c["health"] == "ok" for c in cards.values()) == 216
    assert cards["201025/10"]["built"] and cards["201025/10"]["heldout"]
    health = damaged_client.get("/api/health").json()
    assert health["neurons_available"] == 216
    assert health["neurons_disabled"] == [GARBLED, TRUNCATED, MISSING]


def test_damaged_neuron_page_loads_and_live_routes_refuse_in_one_line(damaged_client):
    detail = damaged_client.get(f"/api/neurons/{TRUNCATED}")
    assert detail.status_code == 200 and detail.json()["health"] == "corrupt"
    for path in (f"/api/neurons/{TRUNCATED}/network",
                 f"/api/neurons/{GARBLED}/ablation?layer=layer0&filter=0"):
        response = damaged_client.get(path)
        assert response.status_code == 503, response.text
        assert "re-fetch it with: v4compact data fetch" in response.json()["detail"]
    missing = damaged_client.get(f"/api/neurons/{MISSING}/network")
    assert missing.status_code == 404 and "fetch it with" in missing.json()["detail"]
    assert damaged_client.get("/api/neurons/201025/10/network").status_code == 200


def test_try_your_image_answers_for_every_other_neuron(damaged_client, photo_bytes):
    response = damaged_client.post(
        "/api/predict", files={"image": ("x.jpg", photo_bytes, "image/jpeg")}
    )
    assert response.status_code == 200, response.text
    ids = [r["neuron_id"] for r in response.json()["responses"]]
    assert len(ids) == 216 and not {TRUNCATED, GARBLED, MISSING} & set(ids)
