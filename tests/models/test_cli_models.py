"""``v4compact models list``, ``predict`` and ``export`` on the real data."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import v4compact
from v4compact.cli import main
from v4compact.models.formats.export import load_exported


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory, golden_images):
    """Three natural images written as PNG files (lossless, so predictions are comparable)."""
    folder = tmp_path_factory.mktemp("images")
    for i, image in enumerate(golden_images[:3]):
        Image.fromarray(image).save(folder / f"img{i}.png")
    return folder


def test_models_list(capsys, data_dir):
    assert main(["models", "list", "compact/201025/1*", "--data-dir", str(data_dir)]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    ids = [row[0] for row in rows]
    assert ids == v4compact.list_models("compact/201025/1*", data_dir=data_dir)
    assert {row[1] for row in rows} == {"present"}
    assert "compact/201025/10" in ids


def test_predict_csv_for_a_neuron_list(tmp_path, image_folder, golden_images, data_dir):
    out = tmp_path / "table.csv"
    argv = ["predict", "201025/10,190923/0", str(image_folder), "--out", str(out),
            "--data-dir", str(data_dir)]
    assert main(argv) == 0
    with open(out, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["image", "units", "190923/0", "201025/10"]
    assert [os.path.basename(r[0]) for r in rows[1:]] == ["img0.png", "img1.png", "img2.png"]
    assert {r[1] for r in rows[1:]} == {"z-scored units"}
    table = np.array([[float(v) for v in r[2:]] for r in rows[1:]])
    ref = np.stack([v4compact.load_compact_model(s, n, data_dir=data_dir)
                    .predict(golden_images[:3]) for s, n in ((190923, 0), (201025, 10))], 1)
    np.testing.assert_allclose(table, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def test_predict_npy_for_one_model_and_session_images(tmp_path, data_dir):
    out = tmp_path / "pred.npy"
    argv = ["predict", "compact/190923/3", "session:190923:heldout", "--out", str(out),
            "--batch-size", "300", "--no-progress", "--data-dir", str(data_dir)]
    assert main(argv) == 0
    pred = np.load(out)
    session = v4compact.load_session(190923, data_dir=data_dir)
    _, heldout = session.heldout_split()
    assert pred.shape == (len(heldout),)
    model = v4compact.load_compact_model(190923, 3, data_dir=data_dir)
    ref = model.predict(session.images[heldout[:4]])
    np.testing.assert_allclose(pred[:4], ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def test_export_cli_writes_a_loadable_file(tmp_path, data_dir, golden_images, capsys):
    out = tmp_path / "model.safetensors"
    argv = ["export", "201025/10", "--format", "safetensors", "--out", str(out),
            "--data-dir", str(data_dir)]
    assert main(argv) == 0
    assert "wrote" in capsys.readouterr().out
    model = load_exported(out)
    ref = v4compact.load_compact_model(201025, 10, data_dir=data_dir)
    np.testing.assert_array_equal(model.predict(golden_images[:2]),
                                  ref.predict(golden_images[:2]))


@pytest.mark.parametrize("argv, needle", [
    (["predict", "190923/500", "session:190923"], "does not exist"),
    (["predict", "190923/1", "no/such/image.png"], "not found"),
    (["predict", "not-a-model", "session:190923"], "bad model selector"),
    (["predict", "190923/1", "session:190923:middle"], "bad image set"),
    (["predict", "190923/1", "session:190923", "--out", "table.xlsx"], "use one of .csv, .npy"),
    (["export", "shared/from_nobody/5"], "unknown teacher"),
])
def test_bad_input_one_line_exit_1(argv, needle, capsys, data_dir):
    assert main([*argv, "--data-dir", str(data_dir)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and needle in err
    assert "\n" not in err


def test_python_dash_m_predict(tmp_path, image_folder, data_dir):
    out = tmp_path / "p.npy"
    env = {**os.environ, "V4COMPACT_DATA": str(data_dir)}
    done = subprocess.run(
        [sys.executable, "-m", "v4compact", "predict", "210225/5", str(image_folder / "img0.png"),
         "--out", str(out)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert np.load(out).shape == (1,)
    bad = subprocess.run([sys.executable, "-m", "v4compact", "predict", "210225/99", "x.png"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 1
    assert bad.stderr.strip().count("\n") == 0 and bad.stderr.startswith("error: ")
