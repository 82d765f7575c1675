"""Fixtures of the import tests: real release sessions, and roots of imported datasets that
live in a temporary folder and are forgotten after each test."""

from __future__ import annotations

import numpy as np
import pytest

from v4compact.data import datasets


@pytest.fixture(autouse=True)
def _forget_registered_roots(monkeypatch):
    """Folders registered by an import (``out=``) are dropped after the test."""
    monkeypatch.setattr(datasets, "_EXTRA_ROOTS", [])
    monkeypatch.delenv(datasets.DATASETS_ENV_VAR, raising=False)


@pytest.fixture(scope="session")
def s210325(data_dir):
    """Session 210325: 50 neurons, 640 images, single-repeat counts (up to 10 repeats)."""
    from v4compact.data.session import load_session

    session = load_session(210325, data_dir=data_dir)
    assert session.has_raw_responses and session.has_images
    return session


@pytest.fixture(scope="session")
def small_plain(tmp_path_factory, s210325):
    """20 images of 210325 as PNG files plus their (neurons, images, repeats) counts."""
    from PIL import Image

    root = tmp_path_factory.mktemp("plain")
    folder = root / "images"
    folder.mkdir()
    pixels = np.asarray(s210325.images[:20])
    for i, image in enumerate(pixels):
        Image.fromarray(image).save(folder / f"img{i:02d}.png")
    raw = np.array(s210325.raw_responses[:, :20, :])
    np.save(root / "raw.npy", raw)
    return folder, raw, pixels


@pytest.fixture(scope="session")
def spike_nwb(tmp_path_factory, s210325):
    """210325's counts as spike times in an NWB file (trials layout), written once."""
    from v4compact.ingest.rawform import write_spike_nwb

    return write_spike_nwb(s210325, tmp_path_factory.mktemp("nwb") / "s1.nwb",
                           layout="trials", seed=1)


@pytest.fixture(scope="session")
def nwb_201025(tmp_path_factory, data_dir):
    """Session 201025 (89 neurons, 1,200 images, no repeats in the data copy) exported to
    NWB once."""
    from v4compact import export_session

    return export_session(201025, tmp_path_factory.mktemp("nwb") / "201025.nwb",
                          data_dir=data_dir)
