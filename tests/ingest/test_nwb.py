"""NWB in and out, on real files written by pynwb from real sessions."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from v4compact import export_session, import_session, load_session
from v4compact.ingest import SessionImportWarning
from v4compact.ingest.nwb import validate_nwb
from v4compact.ingest.rawform import LAYOUTS, write_image_folder, write_spike_nwb


def _same(a, b):
    """Imported session ``b`` equals session ``a``: averaged bit-exact, pixels, split, repeats."""
    assert np.array_equal(a.responses, b.responses)
    assert np.array_equal(np.asarray(a.images), np.asarray(b.images))
    for x, y in zip(a.heldout_split(), b.heldout_split(), strict=True):
        assert np.array_equal(x, y)
    assert a.has_raw_responses == b.has_raw_responses
    if a.has_raw_responses:
        assert a.raw_responses.shape == b.raw_responses.shape
        assert np.array_equal(a.raw_responses, b.raw_responses, equal_nan=True)


@pytest.mark.parametrize("sid", [210325, 201025])
def test_export_validates_and_imports_back_identically(sid, data_dir, tmp_path):
    session = load_session(sid, data_dir=data_dir)
    path = export_session(sid, tmp_path / f"{sid}.nwb", data_dir=data_dir)
    assert validate_nwb(path) == []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        back = import_session(path, f"roundtrip:s{sid}", out=tmp_path / "datasets",
                              data_dir=data_dir)
    # a session without repeats is legal, with a warning saying what it cannot give
    assert [("no repeats" in str(w.message)) for w in caught] == (
        [] if session.has_raw_responses else [True])
    _same(session, back)
    assert back.session_id == f"roundtrip:s{sid}" and back.dataset == "roundtrip"
    assert [n.area for n in back.neurons] == ["V4"] * session.num_neurons
    if not session.has_raw_responses:
        return
    # an imported session exports and imports again to the same session
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SessionImportWarning)
        again = import_session(export_session(back, tmp_path / "again.nwb"),
                               "roundtrip:again", out=tmp_path / "datasets")
    _same(back, again)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_spike_times_of_210325_give_back_every_count(layout, s210325, tmp_path):
    path = write_spike_nwb(s210325, tmp_path / f"{layout}.nwb", layout=layout, seed=3)
    assert validate_nwb(path) == []
    images = write_image_folder(s210325, tmp_path / "images") if layout == "external" else None
    imported = import_session(path, f"lab:{layout}", images=images, out=tmp_path / "ds")
    assert np.array_equal(imported.raw_responses, s210325.raw_responses, equal_nan=True)
    np.testing.assert_allclose(imported.responses, s210325.responses, rtol=0, atol=1e-12)
    assert np.array_equal(np.asarray(imported.images), np.asarray(s210325.images))
    np.testing.assert_array_equal(imported.snr(), s210325.snr())
    from v4compact.metrics import r2_er

    rng = np.random.default_rng(0)
    prediction = s210325.responses + rng.normal(0, 0.5, s210325.responses.shape)
    np.testing.assert_array_equal(r2_er(imported.raw_responses, prediction),
                                  r2_er(s210325.raw_responses, prediction))
    assert imported.window_ms == (50.0, 150.0)
    assert imported.manifest["split_rule"] == "first-half"


def test_the_window_decides_what_is_counted(spike_nwb, tmp_path):
    """Spontaneous spikes lie outside 50-150 ms: a wider window counts them too."""
    path = spike_nwb
    wide = import_session(path, "lab:wide", window_ms=(0, 400), out=tmp_path / "ds")
    narrow = import_session(path, "lab:narrow", out=tmp_path / "ds")
    assert np.nansum(wide.raw_responses) > np.nansum(narrow.raw_responses)
    assert wide.window_ms == (0.0, 400.0) and wide.units == "spike counts in 400 ms"


def test_cli_import_export_verify_and_list(spike_nwb, tmp_path, capsys, monkeypatch):
    from v4compact.cli import main

    path = spike_nwb
    out = tmp_path / "ds"
    assert main(["data", "import", str(path), "--name", "mylab:s01", "--area", "IT",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "imported mylab:s01: 50 neurons, 640 images" in text and "SNR: median" in text
    monkeypatch.setenv("V4COMPACT_DATASETS", str(out))
    assert main(["data", "sessions", "--dataset", "mylab"]) == 0
    assert "mylab:s01" in capsys.readouterr().out
    assert main(["data", "info", "mylab:s01"]) == 0
    assert "areas: IT" in capsys.readouterr().out
    assert main(["data", "verify", "mylab:s01"]) == 0
    capsys.readouterr()
    assert main(["data", "export", "mylab:s01", "--out", str(tmp_path / "x.nwb")]) == 0
    assert "valid NWB" in capsys.readouterr().out
    # a damaged file is found by verify
    np.save(out / "mylab" / "s01" / "responses.npy", np.zeros((50, 640)))
    assert main(["data", "verify", "mylab:s01"]) == 1
    assert "responses.npy" in capsys.readouterr().err
