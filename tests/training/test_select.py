"""``choose-images``: the closed loop's image choice, on real images and real neurons."""

from __future__ import annotations

import csv
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from v4compact.cli import main
from v4compact.errors import InvalidInputError
from v4compact.training.select import CRITERIA, score_images


def test_criteria_pick_what_they_say():
    rng = np.random.default_rng(0)
    predictions = rng.normal(0, 0.1, (5, 40, 3))
    predictions[:, 7] += rng.normal(0, 3, (5, 3))  # the committee disagrees on image 7
    predictions[:, 11] += 4.0  # every member predicts a strong response to image 11
    assert score_images(predictions, "disagreement", 1)[0][0] == 7
    assert score_images(predictions, "strongest", 1)[0][0] == 11
    chosen, values = score_images(predictions, "diverse", 5, seed=1)
    assert len(set(chosen.tolist())) == 5 and {7, 11} <= set(chosen.tolist())
    assert np.all(np.diff(values[1:]) <= 0)  # farthest-point distances shrink
    a, _ = score_images(predictions, "random", 10, seed=3)
    b, _ = score_images(predictions, "random", 10, seed=3)
    assert np.array_equal(a, b) and len(set(a.tolist())) == 10
    with pytest.raises(InvalidInputError, match="at least 2 members"):
        score_images(predictions[:1], "disagreement", 3)
    with pytest.raises(InvalidInputError, match="cannot choose 41 of 40"):
        score_images(predictions, "strongest", 41)
    assert CRITERIA[0] == "disagreement"


def test_choose_images_writes_jpegs_and_a_manifest(tmp_path, data_dir, capsys):
    pool = data_dir / "data_V4_responses/images/images_210305.zip"
    out = tmp_path / "next.zip"
    args = ["choose-images", "--model", "backbone:compact/201025/10:layer4", "--neurons",
            "201025/1?", "--pool", str(pool), "--count", "12", "--bootstrap", "4",
            "--seed", "5", "--out", str(out)]
    assert main(args) == 0
    assert "chose 12 of 400 images by disagreement for 10 neuron(s) (4 committee members)" \
        in capsys.readouterr().out
    with zipfile.ZipFile(out) as archive:
        names = sorted(archive.namelist())
        assert names[:2] == ["manifest.csv", "next_0001.jpg"] and len(names) == 14
        with archive.open("next_0001.jpg") as fh:
            assert Image.open(fh).size == (112, 112)
        settings = json.loads(archive.read("selection.json"))
    assert settings["criterion"] == "disagreement" and settings["members"] == 4
    rows = list(csv.DictReader(open(tmp_path / "next.csv")))
    values = [float(r["disagreement"]) for r in rows]
    assert len(rows) == 12 and values == sorted(values, reverse=True)
    assert len({r["member"] for r in rows}) == 12 and rows[0]["source"] == str(pool)
    # seeded: the same command chooses the same images
    first = [r["member"] for r in rows]
    assert main(args[:-1] + [str(tmp_path / "again.zip")]) == 0
    assert [r["member"] for r in csv.DictReader(open(tmp_path / "again.csv"))] == first


def test_a_model_that_is_no_committee_is_one_line(tmp_path, data_dir, capsys):
    pool = data_dir / "data_V4_responses/images/images_210305.zip"
    assert main(["choose-images", "--model", "compact/201025/10", "--neurons", "201025/10",
                 "--pool", str(pool), "--count", "3", "--out", str(tmp_path / "n.zip")]) == 1
    err = capsys.readouterr().err.strip()
    assert "is not a committee; give ensemble, ensemble:RUN_DIR or backbone:SPEC" in err
    assert "\n" not in err and not (tmp_path / "n.zip").exists()
