"""Teachers (model columns, backbone + ridge) and the teacher-response cache."""

from __future__ import annotations

import numpy as np
import pytest

import v4compact
from v4compact.errors import UnknownNeuronError
from v4compact.metrics import raw_r2
from v4compact.training.corpus import open_corpus
from v4compact.training.teachers import TeacherCache, load_teacher, teacher_from_model


@pytest.fixture(scope="module")
def images(data_dir) -> np.ndarray:
    return np.asarray(v4compact.load_session(210305).images[:6])


def test_a_model_id_teacher_answers_like_the_model(images):
    teacher = load_teacher("compact/201025/10", ["201025/10"])
    assert teacher.neuron_ids == ["201025/10"] and teacher.units == "z-scored units"
    assert teacher.source == "compact/201025/10"
    model = v4compact.load_compact_model(201025, 10)
    np.testing.assert_allclose(teacher(images)[:, 0], model.predict(images), atol=1e-6)


def test_columns_of_a_population_follow_the_requested_neurons(images):
    population = v4compact.load_compact_population(["201025/10", "201025/40"])
    teacher = teacher_from_model(population, ["201025/40", "201025/10"])
    both = population.predict(images)
    np.testing.assert_allclose(teacher(images), both[:, ::-1], atol=1e-6)
    with pytest.raises(UnknownNeuronError, match="no neuron 201025/41"):
        teacher_from_model(population, ["201025/41"])


def test_a_backbone_teacher_maps_features_to_the_neuron_by_ridge(data_dir):
    teacher = load_teacher("backbone:compact/201025/10:layer4", ["201025/10", "201025/40"])
    session = v4compact.load_session(201025)
    held = session.heldout_split()[1][::3]
    predicted = teacher(np.asarray(session.images[held]))
    assert predicted.shape == (200, 2)
    # fitted on the first half only, it predicts the held-out half of both neurons
    assert np.all(raw_r2(session.responses[[10, 40]][:, held], predicted.T) > 0.1)


def test_the_cache_computes_each_image_once(tmp_path, data_dir):
    corpus = open_corpus(data_dir / "data_V4_responses/images/images_210305.zip")
    shard = corpus.shards[0]
    teacher = load_teacher("compact/201025/10", ["201025/10"])
    cache = TeacherCache(tmp_path, teacher)
    cache.prepare(corpus.shards)
    first = cache.responses(shard, np.array([3, 5, 8]))
    again = cache.responses(shard, np.array([8, 3, 9]))
    assert (cache.computed, cache.reused) == (4, 2)  # only image 9 was new the second time
    np.testing.assert_array_equal(again[:2], first[[2, 0]])
    cache.flush()
    stored = np.load(cache.folder / f"{shard.key}.npy")
    assert stored.shape == (len(shard), 1)
    assert np.isfinite(stored[[3, 5, 8, 9]]).all() and np.isnan(stored[0]).all()
    np.testing.assert_allclose(stored[[3, 5, 8], 0], teacher(np.stack(
        [shard.image(i) for i in (3, 5, 8)]))[:, 0], atol=1e-6)
