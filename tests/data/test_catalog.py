"""The shipped session catalogue against the real files of the data copy."""

from __future__ import annotations

import csv

import numpy as np
import pytest

import v4compact
from v4compact.data import paths
from v4compact.data.catalog import MODEL_SESSIONS, VALIDATION_SESSION


def test_fifty_sessions_with_the_documented_splits():
    sessions = v4compact.list_sessions()
    assert len(sessions) == 50
    assert len({s.session_id for s in sessions}) == 50
    splits = [s.split for s in sessions]
    assert splits.count("train") == 44
    assert splits.count("validation") == 1
    assert [s.session_id for s in v4compact.list_sessions(split="validation")] == [
        VALIDATION_SESSION
    ]
    test_ids = {s.session_id for s in v4compact.list_sessions(split="test")}
    assert test_ids == set(MODEL_SESSIONS) | {210325}
    model_neurons = sum(v4compact.session_info(s).num_neurons for s in MODEL_SESSIONS)
    assert model_neurons == 219


def test_filters_combine_and_reject_unknown_values():
    we_test = v4compact.list_sessions(split="test", animal="we")
    assert [s.session_id for s in we_test] == [190923]
    assert {s.animal for s in v4compact.list_sessions()} == {"WE", "PE", "RA"}
    with pytest.raises(v4compact.UnknownSessionError, match="train"):
        v4compact.list_sessions(split="tests")
    with pytest.raises(v4compact.UnknownSessionError, match="WE"):
        v4compact.list_sessions(animal="XX")


def test_catalogue_matches_the_data_copys_table(data_dir):
    with open(data_dir / "sessions.csv", newline="") as fh:
        rows = {int(r["session_id"]): r for r in csv.DictReader(fh)}
    assert set(rows) == {s.session_id for s in v4compact.list_sessions()}
    for info in v4compact.list_sessions():
        row = rows[info.session_id]
        assert (info.animal, info.split) == (row["animal"], row["split"])
        assert (info.num_neurons, info.num_images) == (int(row["num_neurons"]),
                                                        int(row["num_images"]))


def test_counts_match_the_files_of_every_session_present(data_dir):
    checked = {"responses": 0, "raw": 0, "images": 0}
    for info in v4compact.list_sessions():
        averaged = data_dir / paths.responses_averaged(info.session_id)
        if averaged.exists():
            shape = np.load(averaged, mmap_mode="r").shape
            assert shape == (info.num_neurons, info.num_images), info.session_id
            checked["responses"] += 1
        raw = data_dir / paths.responses_raw(info.session_id)
        if raw.exists():
            shape = np.load(raw, mmap_mode="r").shape
            assert shape[:2] == (info.num_neurons, info.num_images), info.session_id
            checked["raw"] += 1
        if (data_dir / paths.images_zip(info.session_id)).exists():
            session = v4compact.load_session(info.session_id)
            assert len(session.images) == info.num_images  # counts JPEGs in the zip
            checked["images"] += 1
    # the copy documents 50 averaged, 2 raw and 12 image files
    assert checked == {"responses": 50, "raw": 2, "images": 12}


def test_unknown_session_lists_the_valid_ids():
    with pytest.raises(v4compact.UnknownSessionError) as err:
        v4compact.session_info(123)
    message = str(err.value)
    assert "123" in message and "190923" in message and "211103" in message
    assert "\n" not in message
