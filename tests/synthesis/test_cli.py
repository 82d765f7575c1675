"""``v4compact synthesize | rank | experiment`` end to end on the real models."""

from __future__ import annotations

import csv
import json

import numpy as np
from PIL import Image

from v4compact.cli import main


def test_synthesize_writes_images_sheet_responses_provenance(tmp_path, data_dir, capsys):
    out = tmp_path / "syn"
    rc = main(["synthesize", "compact/201025/2", "--seeds", "2", "--steps", "3", "--out",
               str(out), "--no-progress", "--snapshot-every", "3", "--data-dir", str(data_dir)])
    assert rc == 0
    pngs = sorted(p.name for p in out.glob("image_*.png"))
    assert pngs == ["image_201025-2_s0.png", "image_201025-2_s1.png"]
    assert np.asarray(Image.open(out / pngs[0])).shape == (112, 112, 3)
    assert (out / "contact_sheet_201025-2.png").stat().st_size > 1000
    rows = list(csv.DictReader((out / "responses.csv").open()))
    assert [r["target"] for r in rows] == ["201025/2", "201025/2"]
    assert json.loads((out / "responses.json").read_text())[1]["start"] == 1
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["model_id"] == "compact/201025/2" and prov["preset"]["name"] == "upstream"
    assert prov["steps"] == 3 and prov["seed"] == 0 and "v4compact_version" in prov
    assert np.load(out / "trajectory.npz")["snapshots"].shape == (1, 2, 112, 112, 3)
    assert "wrote" in capsys.readouterr().out


def test_synthesize_population_routes_each_neuron(tmp_path, data_dir):
    out = tmp_path / "pop"
    rc = main(["synthesize", "population", "--neurons", "201025/2", "190923/0", "--seeds",
               "1", "--steps", "2", "--minimize", "--out", str(out), "--no-progress",
               "--data-dir", str(data_dir)])
    assert rc == 0
    rows = list(csv.DictReader((out / "responses.csv").open()))
    assert [r["target"] for r in rows] == ["201025/2", "190923/0"]
    assert json.loads((out / "provenance.json").read_text())["minimize"] is True


def test_rank_and_experiments(tmp_path, data_dir, heldout_images):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(5):
        Image.fromarray(heldout_images[i]).save(folder / f"im{i}.png")
    fig = tmp_path / "rank.png"
    assert main(["rank", "compact/201025/2", "--images", str(folder), "--top", "3", "--out",
                 str(fig), "--data-dir", str(data_dir)]) == 0
    assert fig.stat().st_size > 1000
    assert len(list(csv.DictReader(fig.with_suffix(".csv").open()))) == 5
    assert main(["experiment", "gaudy", "compact/201025/2", "--images", str(folder), "--out",
                 str(tmp_path / "g"), "--data-dir", str(data_dir)]) == 0
    assert len(list(csv.DictReader((tmp_path / "g" / "gaudy.csv").open()))) == 5
    assert main(["experiment", "tuning", "compact/201025/2", "--stimulus", "grating",
                 "--parameter", "orientation", "--values", "0,45,90,135", "--set",
                 "frequency=6", "--out", str(tmp_path / "t"), "--data-dir",
                 str(data_dir)]) == 0
    summary = list(csv.DictReader((tmp_path / "t" / "tuning_grating_orientation_summary.csv")
                                  .open()))
    assert summary[0]["preferred_value"] in {"0.0", "45.0", "90.0", "135.0"}


def test_bad_input_is_a_one_line_error(tmp_path, data_dir, capsys):
    rc = main(["synthesize", "compact/201025/999", "--out", str(tmp_path), "--data-dir",
               str(data_dir)])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("error:") and err.count("\n") == 1
    rc = main(["synthesize", "population", "--neurons", "123456/1", "--out", str(tmp_path),
               "--data-dir", str(data_dir)])
    assert rc == 1 and "123456/1" in capsys.readouterr().err
    rc = main(["experiment", "tuning", "compact/201025/2", "--stimulus", "dot", "--parameter",
               "radius", "--values", "1,2", "--out", str(tmp_path), "--data-dir",
               str(data_dir)])
    assert rc == 1 and "no parameter 'radius'" in capsys.readouterr().err
