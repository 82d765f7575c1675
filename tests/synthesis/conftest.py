"""Fixtures of the synthesis tests: real compact models and their natural-image range."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def compact_2(data_dir):
    """The compact model of neuron 201025/2 (the figure-2a neuron)."""
    from v4compact.models.formats.loaders import load_compact_model

    return load_compact_model(201025, 2, data_dir=data_dir)


@pytest.fixture(scope="session")
def compact_10(data_dir):
    """The compact model of neuron 201025/10."""
    from v4compact.models.formats.loaders import load_compact_model

    return load_compact_model(201025, 10, data_dir=data_dir)


@pytest.fixture(scope="session")
def session_201025(data_dir):
    from v4compact.data.session import load_session

    return load_session(201025, data_dir=data_dir)


@pytest.fixture(scope="session")
def heldout_images(session_201025):
    """uint8 (600, 112, 112, 3): the held-out (second) half of session 201025."""
    _, held = session_201025.heldout_split()
    return np.asarray(session_201025.images[held])


@pytest.fixture(scope="session")
def natural_range(compact_2, compact_10, heldout_images):
    """Model response range over the held-out natural images: id -> (min, max)."""
    out = {}
    for model in (compact_2, compact_10):
        pred = model.predict(heldout_images, batch_size=150)
        out[model.neuron_ids[0]] = (float(pred.min()), float(pred.max()))
    return out
