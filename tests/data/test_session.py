"""load_session on the real data: images, responses, raw responses, split, SNR, errors."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

import v4compact
from v4compact import images as image_ops
from v4compact.data import paths
from v4compact.metrics import snr


@pytest.fixture(scope="module")
def session_190923():
    return v4compact.load_session(190923)


def test_190923_images_equal_the_jpegs_pixel_for_pixel(session_190923, data_dir):
    session = session_190923
    images = np.asarray(session.images)
    assert images.shape == (1200, 112, 112, 3) and images.dtype == np.uint8
    with zipfile.ZipFile(data_dir / paths.images_zip(190923)) as archive:
        for k in range(1200):
            jpeg = archive.read(f"images_190923/image{k + 1:04d}.jpg")
            expected = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
            assert np.array_equal(images[k], expected), f"image {k} differs"
    np.testing.assert_array_equal(session.image(17), images[17])
    chunks = list(session.iter_images(chunk_size=500))
    assert [len(c) for c in chunks] == [500, 500, 200]
    np.testing.assert_array_equal(np.concatenate(chunks), images)


def test_190923_responses_equal_the_npy(session_190923, data_dir):
    expected = np.load(data_dir / paths.responses_averaged(190923))
    assert session_190923.responses.dtype == np.float64
    assert session_190923.responses.shape == (33, 1200)
    np.testing.assert_array_equal(session_190923.responses, expected)


def test_metadata_ids_and_heldout_split(session_190923):
    s = session_190923
    assert (s.session_id, s.animal, s.split, s.num_neurons, s.num_images) == (
        190923, "WE", "test", 33, 1200)
    assert s.info == v4compact.session_info(190923)
    assert s.neuron_ids[0] == "190923/0" and s.neuron_ids[-1] == "190923/32"
    fit, heldout = s.heldout_split()
    np.testing.assert_array_equal(fit, np.arange(600))
    np.testing.assert_array_equal(heldout, np.arange(600, 1200))
    odd = v4compact.load_session("210325").heldout_split()
    assert len(odd[0]) + len(odd[1]) == 640 and odd[1][0] == odd[0][-1] + 1


def test_201016_raw_responses_keep_their_nan_padding(data_dir):
    session = v4compact.load_session(201016)
    expected = np.load(data_dir / paths.responses_raw(201016))
    raw = session.raw_responses
    assert raw.shape == (82, 600, expected.shape[2]) and raw.dtype == np.float64
    np.testing.assert_array_equal(np.isnan(raw), np.isnan(expected))
    assert np.isnan(raw).any()
    np.testing.assert_array_equal(raw[~np.isnan(raw)], expected[~np.isnan(expected)])
    # padding is trailing: once a repeat is NaN, the later ones are too
    nan = np.isnan(raw)
    assert not np.any(nan[..., :-1] & ~nan[..., 1:])


def test_210325_raw_nanmean_agrees_with_averaged():
    session = v4compact.load_session(210325)
    np.testing.assert_allclose(np.nanmean(session.raw_responses, axis=2), session.responses,
                               rtol=1e-12, atol=1e-12)


def _snr_by_the_formula(raw):
    """SYSTEM.md §2 written out neuron by neuron, image by image."""
    out = []
    for neuron in raw:
        trials = [row[~np.isnan(row)] for row in neuron]
        n = np.median([len(t) for t in trials])
        m = len(trials)
        s2 = np.mean([np.var(t, ddof=1) for t in trials])
        d2 = np.var([np.mean(t) for t in trials])
        out.append((d2 - (m - 1) / m * s2 / n) / s2)
    return np.array(out)


def test_snr_follows_the_formula_on_real_raw_responses():
    session = v4compact.load_session(210325)
    raw = session.raw_responses
    assert np.all(np.sum(~np.isnan(raw), axis=2) >= 2)  # every image has a variance
    np.testing.assert_allclose(session.snr(), _snr_by_the_formula(raw), rtol=1e-10)


def test_snr_recovers_a_known_signal_to_noise_ratio():
    rng = np.random.default_rng(3)
    neurons, images, repeats = 4, 2000, 10
    signal_sd = np.array([0.5, 1.0, 2.0, 0.0])
    signal = rng.normal(size=(neurons, images, 1)) * signal_sd[:, None, None]
    raw = signal + rng.normal(size=(neurons, images, repeats))
    raw[:, ::3, 7:] = np.nan  # uneven repeats, padded like the release
    estimate = snr(raw)
    np.testing.assert_allclose(estimate, signal_sd**2, atol=0.08)


def test_missing_images_of_190924_raise_naming_the_zip(data_dir):
    session = v4compact.load_session(190924)
    assert not session.has_images
    with pytest.raises(v4compact.DataNotFoundError) as err:
        session.images  # noqa: B018 - the property access is what raises
    message = str(err.value)
    assert paths.images_zip(190924) in message
    assert str(data_dir) in message
    assert "v4compact data fetch images:190924" in message
    assert "\n" not in message
    assert isinstance(err.value, FileNotFoundError)


def test_missing_raw_responses_of_190923_raise_naming_the_file(session_190923):
    assert not session_190923.has_raw_responses
    for access in (lambda s: s.raw_responses, lambda s: s.snr()):
        with pytest.raises(v4compact.DataNotFoundError) as err:
            access(session_190923)
        assert paths.responses_raw(190923) in str(err.value)
        assert "v4compact data fetch raw-responses:190923" in str(err.value)


def test_explicit_data_dir_wins_and_appears_in_the_fetch_command(tmp_path):
    with pytest.raises(v4compact.DataNotFoundError) as err:
        v4compact.load_session(190923, data_dir=tmp_path)
    message = str(err.value)
    assert str(tmp_path) in message and "from argument" in message
    assert f"--data-dir {tmp_path}" in message


def test_sessions_without_released_images_say_so():
    session = v4compact.load_session(201016)
    with pytest.raises(v4compact.DataNotFoundError, match="public release has no such file"):
        session.images  # noqa: B018


def test_unknown_session_is_rejected_with_the_valid_ids():
    with pytest.raises(v4compact.UnknownSessionError, match="190923"):
        v4compact.load_session(999999)


def test_truncated_responses_raise_corrupt_data(tmp_path, data_dir):
    target = tmp_path / paths.responses_averaged(190923)
    target.parent.mkdir(parents=True)
    np.save(target, np.load(data_dir / paths.responses_averaged(190923))[:, :10])
    with pytest.raises(v4compact.CorruptDataError, match=r"\(33, 10\)"):
        v4compact.load_session(190923, data_dir=tmp_path)
    target.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(v4compact.CorruptDataError, match="not a readable .npy"):
        v4compact.load_session(190923, data_dir=tmp_path)


def test_image_helpers_delegate_to_v4compact_images(session_190923):
    s = session_190923
    first = np.asarray(s.images[:3])
    centred = s.recentered_images(slice(0, 3))
    assert centred.dtype == np.float32
    np.testing.assert_allclose(centred, first.astype(np.float32) - image_ops.IMAGE_MEAN)
    np.testing.assert_allclose(s.uncenter(centred), first, atol=1e-4)
    np.testing.assert_array_equal(s.grayscale_images([0, 1]), image_ops.grayscale(first[:2]))
    gaudy = s.gaudy_images(2)
    np.testing.assert_array_equal(gaudy, image_ops.gaudy(first[2]))
    assert set(np.unique(gaudy)) <= {0, 255}
    assert s.recentered_images().shape == (1200, 112, 112, 3)
