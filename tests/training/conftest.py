"""Shared fixtures of the distillation tests: a two-zip corpus and a two-neuron teacher."""

from __future__ import annotations

import pytest

import v4compact
from v4compact.training.corpus import open_corpus
from v4compact.training.teachers import teacher_from_model


@pytest.fixture(scope="module")
def corpus(data_dir):
    """24 images of each of two session zips (210305, 210224: training sessions)."""
    folder = data_dir / "data_V4_responses/images"
    return open_corpus([folder / "images_210305.zip", folder / "images_210224.zip"],
                       max_images_per_shard=24)


@pytest.fixture(scope="module")
def teacher(data_dir):
    """The released compact models of 201025/10 and /40 as one teacher."""
    population = v4compact.load_compact_population(["201025/10", "201025/40"])
    return teacher_from_model(population, ["201025/10", "201025/40"])
