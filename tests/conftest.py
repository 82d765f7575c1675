"""Shared fixtures: the real data copy in ../shared/v4data, through the project's own setting."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if not os.environ.get("V4COMPACT_DATA"):
    os.environ["V4COMPACT_DATA"] = str((REPO.parent / "shared" / "v4data").resolve())
os.environ.setdefault("MPLBACKEND", "Agg")
# the fused population's per-machine tuning file (v4compact.models.engines.tuning) goes to a
# temporary folder, like everything else a test writes
os.environ.setdefault("V4COMPACT_TUNING",
                      str(Path(tempfile.mkdtemp(prefix="v4compact-tuning-")) / "tuning.json"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data directory (read-only): $V4COMPACT_DATA, default ../shared/v4data."""
    path = Path(os.environ["V4COMPACT_DATA"]).expanduser().resolve()
    if not (path / "sessions.csv").exists():
        pytest.fail(f"real data not found at {path}; set V4COMPACT_DATA to a copy of the release")
    return path


@pytest.fixture
def no_tf32():
    """float32 on CUDA as on the CPU for the duration of a test (no TF32)."""
    from v4compact.training.runtime import exact_float32

    with exact_float32():
        yield
