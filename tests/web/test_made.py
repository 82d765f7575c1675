"""Made models in the explorer: a lab's neurons distilled by make-compact, listed beside the
release's 219 (dataset and area filters) with a page each (scores, provenance, network)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from v4compact.cli import main
from v4compact.errors import InvalidInputError
from v4compact.training.made import find_made_models, read_made_run

from .conftest import MADE_NEURONS


@pytest.fixture(scope="module")
def made_client(made_app):
    with TestClient(made_app, base_url="http://127.0.0.1") as client:
        yield client


def test_read_made_run_gives_the_reports_rows_with_provenance(made_run):
    report = json.loads((made_run / "report.json").read_text())
    made = read_made_run(made_run)
    assert [m.neuron_id for m in made] == list(MADE_NEURONS)
    for model, row in zip(made, report["neurons"], strict=True):
        assert (model.dataset, model.session_id) == ("lab", "lab:s1")
        assert model.neuron == int(row["neuron"].rsplit("/", 1)[1])
        assert model.num_filters == row["filters_after"]
        assert model.model_path.is_file()
        assert model.scores["heldout_raw_r2_step2"] == row["heldout_raw_r2_step2"]
        assert model.provenance["teacher"] == report["teacher"]
        assert model.provenance["corpus_shards"] == ["images_210305.zip"]
        assert model.provenance["student_width"] == [4] * 5


def test_made_folders_that_are_not_finished_runs_are_refused(tmp_path, made_run):
    with pytest.raises(InvalidInputError, match="does not exist; give the --out folder"):
        read_made_run(tmp_path / "nope")
    with pytest.raises(InvalidInputError, match="has no report.json"):
        read_made_run(tmp_path)
    (tmp_path / "report.json").write_text("{not json")
    with pytest.raises(InvalidInputError, match="is not a make-compact report"):
        read_made_run(tmp_path)
    with pytest.raises(InvalidInputError, match="was made in both"):
        find_made_models([made_run, made_run])


def test_serve_refuses_a_bad_made_folder_with_one_line(tmp_path, capsys):
    assert main(["serve", "--made", str(tmp_path), "--port", "1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"error: made-models folder {tmp_path.resolve()} has no report.json; give "
                   "the --out folder of a finished 'v4compact make-compact' run")


def test_gallery_lists_made_models_with_dataset_and_area(made_client, lab_datasets):
    release = made_client.get("/api/neurons").json()
    assert len(release) == 219
    assert {(c["dataset"], c["area"]) for c in release} == {("cowley2023", "V4")}
    made = made_client.get("/api/made").json()
    assert [c["neuron_id"] for c in made] == list(MADE_NEURONS)
    for card in made:
        assert (card["dataset"], card["area"], card["session_id"]) == ("lab", "V4", "lab:s1")
        assert card["animal"]  # from the imported session's neuron table
        assert card["total_filters"] == sum(card["num_filters"])
        assert np.isfinite(card["scores"]["heldout_raw_r2_step2"])


def test_the_sessions_page_lists_the_release_beside_imported_sessions(made_client,
                                                                      lab_datasets):
    response = made_client.get("/api/sessions")
    assert response.status_code == 200, response.text
    assert len(response.json()) == 50  # the release's; lab:s1 has its made models' pages


def test_made_model_page_scores_provenance_and_network(made_client, lab_datasets, made_run):
    from v4compact.data.session import load_session

    report = {r["neuron"]: r for r in json.loads((made_run / "report.json").read_text())
              ["neurons"]}
    detail = made_client.get("/api/made/lab:s1/3")
    assert detail.status_code == 200, detail.text
    detail = detail.json()
    _, heldout = load_session("lab:s1").heldout_split()
    points = detail["heldout_points"]
    assert points["image_indices"] == heldout.tolist()
    assert len(points["measured"]) == len(points["predicted"]) == len(heldout)
    # the page's raw R^2, computed by the server now, is the one make-compact reported
    assert detail["heldout_r2"] == pytest.approx(report["lab:s1/3"]["heldout_raw_r2_step2"],
                                                 abs=1e-3)
    assert detail["provenance"]["teacher"].startswith("backbone:compact/201025/10:layer4")
    assert detail["provenance"]["preset"] and detail["provenance"]["corpus_images"] > 0
    assert detail["session_units"] and detail["model_units"] == "z-scored units"
    network = made_client.get("/api/made/lab:s1/3/network").json()
    assert network["neuron_id"] == "lab:s1/3"
    assert network["num_filters"] == detail["num_filters"]


def test_a_made_model_whose_session_is_elsewhere_still_has_its_page(made_run, site_cache,
                                                                    data_dir):
    from v4compact.web.app import create_app

    # lab:s1 is not findable by this server (no lab_datasets): scores, provenance, a note
    app = create_app(data_dir=data_dir, cache_dir=site_cache, made=[made_run])
    with TestClient(app, base_url="http://127.0.0.1") as client:
        detail = client.get("/api/made/lab:s1/0").json()
    assert detail["heldout_points"] is None and "not on this server" in detail["note"]
    assert detail["provenance"]["teacher"]


@pytest.mark.parametrize("path", ["/api/made/lab:s1/9", "/api/made/lab:s2/0",
                                  "/api/made/201025/10/network"])
def test_unknown_made_models_are_404_with_one_line(made_client, path):
    response = made_client.get(path)
    assert response.status_code == 404
    assert "\n" not in response.json()["detail"]
    assert "v4compact serve --made RUN" in response.json()["detail"]
