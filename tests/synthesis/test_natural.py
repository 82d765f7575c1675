"""Ranking natural images by predicted (and measured) response."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from v4compact.errors import DataNotFoundError, InvalidInputError
from v4compact.figures.synthesis import ranking_figure
from v4compact.synthesis.natural import load_image_collection, rank_images


def test_rank_session_images_with_measured_responses(compact_2, session_201025, data_dir):
    _, held = session_201025.heldout_split()
    ranking = rank_images(compact_2, "session:201025", "201025/2", indices=held[:120],
                          data_dir=data_dir)
    pred = ranking.predicted
    assert pred.shape == (120,)
    assert np.all(np.diff(pred[ranking.order]) <= 0)
    np.testing.assert_array_equal(ranking.bottom(3), ranking.order[::-1][:3])
    measured = session_201025.responses[2, held[:120]]
    np.testing.assert_allclose(ranking.measured, measured)
    assert ranking.correlation == pytest.approx(np.corrcoef(pred, measured)[0, 1])
    assert ranking.correlation > 0.2  # the model predicts held-out responses
    fig = ranking_figure(ranking, k=8)
    assert isinstance(fig, Figure) and sum(1 for ax in fig.axes if ax.images) == 32


def test_rank_folder_and_zip_agree_with_predict(compact_2, heldout_images, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    archive = tmp_path / "imgs.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(6):
            Image.fromarray(heldout_images[i]).save(folder / f"im{i}.png")
            Image.fromarray(heldout_images[i]).save(tmp_path / f"j{i}.jpg", quality=95)
            zf.write(tmp_path / f"j{i}.jpg", f"imgs/image{i + 1:04d}.jpg")
    ranking = rank_images(compact_2, str(folder))
    np.testing.assert_allclose(ranking.predicted, compact_2.predict(heldout_images[:6]),
                               rtol=1e-4, atol=1e-4)
    assert ranking.measured is None and ranking.collection.names[0] == "im0.png"
    zipped = rank_images(compact_2, archive)
    assert zipped.predicted.shape == (6,)
    np.testing.assert_allclose(zipped.predicted, ranking.predicted, atol=0.3)  # JPEG loss
    assert isinstance(ranking_figure(ranking, k=3), Figure)


def test_bad_sources(tmp_path):
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_image_collection(tmp_path / "missing")
    with pytest.raises(InvalidInputError, match="no image files"):
        load_image_collection(tmp_path)
    with pytest.raises(InvalidInputError, match="shape"):
        load_image_collection(np.zeros((2, 50, 50, 5), np.uint8))
