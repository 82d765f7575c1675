"""The feature cache: computed once, reused, float16 error measured, safe against interruption."""

from __future__ import annotations

import numpy as np
import pytest
from torch import nn

import v4compact
from v4compact.errors import InvalidInputError
from v4compact.features import FeatureCache, session_features


@pytest.fixture(scope="module")
def backbone(data_dir):
    return v4compact.load_backbone("shared/from_ensemble_model/5:layer2")


@pytest.fixture(scope="module")
def images(data_dir):
    return np.asarray(v4compact.load_session(190923).images[:24])


def test_features_are_computed_once_and_reused(tmp_path, backbone, images):
    cache = FeatureCache(tmp_path, dtype="float32")
    first = cache.features(backbone, images, "first24", batch_size=10)
    path = cache.path(backbone, "first24")
    stamp = path.stat().st_mtime_ns
    again = cache.features(backbone, images, "first24")
    assert path.stat().st_mtime_ns == stamp  # read back, not recomputed
    assert isinstance(again, np.memmap) and not again.flags.writeable
    assert np.array_equal(first, backbone.features(images))
    assert sorted(p.name for p in path.parent.iterdir()) == ["backbone.json", "first24.npy"]
    with pytest.raises(InvalidInputError, match="hold 24 images, 10 were given"):
        cache.features(backbone, images[:10], "first24")


def test_float16_error_is_small(tmp_path, backbone, images):
    exact = FeatureCache(tmp_path, dtype="float32").features(backbone, images, "a")
    half = FeatureCache(tmp_path, dtype="float16").features(backbone, images, "a")
    assert half.dtype == np.float16
    difference = np.abs(half.astype(np.float32) - exact)
    assert np.all(difference <= np.abs(exact) * 2.0 ** -11 + 1e-7)  # float16 rounding
    assert difference.max() / exact.std() < 1e-2  # measured 4.6e-3 of the s.d.


class _Interrupted:
    """Images whose reading fails half-way (as a killed run would stop)."""

    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        if index.start >= 12:
            raise KeyboardInterrupt
        return self.images[index]


def test_interrupted_write_leaves_no_file(tmp_path, backbone, images):
    cache = FeatureCache(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        cache.features(backbone, _Interrupted(images), "broken", batch_size=6)
    folder = cache.folder(backbone)
    assert [p.name for p in folder.iterdir()] == ["backbone.json"]
    assert len(cache.features(backbone, images, "broken", batch_size=12)) == 24


def test_cache_keys_and_sessions(tmp_path, backbone, data_dir):
    cache = FeatureCache(tmp_path)
    pooled = v4compact.load_backbone("shared/from_ensemble_model/5:layer2", pool_to=7)
    assert cache.folder(pooled) != cache.folder(backbone)
    assert cache.folder(backbone) != FeatureCache(tmp_path, "float32").folder(backbone)
    with pytest.raises(InvalidInputError, match="no stable identity"):
        cache.folder(v4compact.load_backbone(nn.Identity()))
    session = v4compact.load_session(210325)
    feats = session_features(pooled, session, cache, batch_size=200)
    assert feats.shape == (session.num_images, 7, 7, 5)
    assert cache.path(pooled, "session210325").is_file()
