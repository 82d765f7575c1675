"""Fixtures of the experiment tests: one real compact model and real session images."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def compact_model(data_dir):
    from v4compact.models.formats.loaders import load_compact_model

    return load_compact_model(201025, 2, data_dir=data_dir)


@pytest.fixture(scope="session")
def some_images(data_dir):
    """uint8 (12, 112, 112, 3): held-out images of session 201025."""
    from v4compact.data.session import load_session

    session = load_session(201025, data_dir=data_dir)
    _, held = session.heldout_split()
    return np.asarray(session.images[held[:12]])
