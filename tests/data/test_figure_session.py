"""The session figure: drawn from real data, with and without the images."""

from __future__ import annotations

import subprocess
import sys

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

import v4compact
from v4compact.cli import main
from v4compact.figures.session import image_mosaic, normalized_responses, plot_session


def _texts(figure: Figure) -> str:
    return " ".join(t.get_text() for t in figure.findobj(matplotlib.text.Text))


def test_figure_with_images_draws_grid_and_normalized_heatmap():
    session = v4compact.load_session(190923)
    figure = plot_session(session)
    assert isinstance(figure, Figure)
    grid_axes, heat_axes = figure.axes[:2]
    mosaic = grid_axes.images[0].get_array()
    assert mosaic.shape[2] == 3 and mosaic.shape[1] > mosaic.shape[0]
    heat = heat_axes.images[0]
    expected = session.responses / session.responses.std(axis=1, keepdims=True)
    np.testing.assert_allclose(heat.get_array(), expected, rtol=1e-12)
    assert heat.get_clim()[1] == pytest.approx(np.percentile(expected, 95))
    assert "190923" in _texts(figure)


def test_figure_without_images_still_draws_the_heatmap_and_says_so():
    session = v4compact.load_session(190924)
    figure = plot_session(session)
    grid_axes, heat_axes = figure.axes[:2]
    assert not grid_axes.images
    assert heat_axes.images[0].get_array().shape == (25, 1200)
    assert "not in the data directory" in _texts(figure)


def test_helpers():
    responses = np.array([[1.0, 3.0], [2.0, 2.0]])
    np.testing.assert_allclose(normalized_responses(responses), [[1.0, 3.0], [0.0, 0.0]])
    tiles = np.stack([np.full((2, 2, 3), v, np.uint8) for v in (10, 20, 30)])
    mosaic = image_mosaic(tiles, columns=2, gap=1)
    assert mosaic.shape == (5, 5, 3)
    assert mosaic[0, 0, 0] == 10 and mosaic[0, 3, 0] == 20 and mosaic[3, 0, 0] == 30
    assert mosaic[3, 3, 0] == 255  # empty slot stays white


@pytest.mark.parametrize("suffix", [".png", ".pdf"])
def test_cli_writes_png_or_pdf(tmp_path, suffix, data_dir, capsys):
    out = tmp_path / f"fig{suffix}"
    status = main(["plot", "session", "190923", "--out", str(out), "--data-dir", str(data_dir)])
    assert status == 0, capsys.readouterr().err
    head = out.read_bytes()[:8]
    if suffix == ".png":
        assert head.startswith(b"\x89PNG")
        with Image.open(out) as image:
            assert image.size[0] >= 1200 and image.size[1] >= 800
            pixels = np.asarray(image.convert("RGB"))
        assert pixels.std() > 20  # not a blank canvas
    else:
        assert head.startswith(b"%PDF")


def test_cli_without_images_warns_on_stderr(tmp_path, data_dir, capsys):
    out = tmp_path / "fig.png"
    status = main(["plot", "session", "190924", "--out", str(out), "--data-dir", str(data_dir)])
    err = capsys.readouterr().err
    assert status == 0, err
    assert out.exists()
    assert "images of session 190924 are not in" in err
    assert "v4compact data fetch images:190924" in err


def test_plotting_leaves_no_pyplot_state(data_dir, tmp_path):
    code = (
        "import sys, v4compact\n"
        "from v4compact.figures.session import plot_session\n"
        "plot_session(v4compact.load_session(190924)).savefig(sys.argv[1])\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n"
    )
    env = {"V4COMPACT_DATA": str(data_dir), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "f.png")],
                            capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
