"""Parametric stimulus generators."""

from __future__ import annotations

import numpy as np
import pytest

from v4compact.errors import InvalidInputError
from v4compact.experiments.stimuli import bar, color_patch, dot, grating, make_stimuli


def test_dot_geometry_and_colour():
    img = dot(size=40, x=10, y=-20, color=(255, 0, 0))
    assert img.dtype == np.uint8 and img.shape == (112, 112, 3)
    assert tuple(img[55 - 20, 55 + 10]) == (255, 0, 0)  # near the centre of the dot
    assert tuple(img[0, 0]) == (128, 128, 128)
    red = (img[..., 0].astype(float) - 128) / 127
    assert red.sum() == pytest.approx(np.pi * 20 ** 2, rel=0.03)


def test_bar_orientation_and_grating_mean():
    horizontal = bar(orientation=0, length=80, width=6)
    vertical = bar(orientation=90, length=80, width=6)
    np.testing.assert_array_equal(np.rot90(horizontal), vertical)
    g = grating(orientation=0, frequency=4, contrast=1.0)
    assert abs(g.astype(float).mean() - 128) < 2.5 and g.max() >= 250
    stripes_vary_along_x = g[56, :, 0].std() > g[:, 56, 0].std()
    assert stripes_vary_along_x
    patch = color_patch((0, 0, 255), size=112)
    assert np.all(patch[..., 2] == 255) and np.all(patch[..., 0] == 0)


def test_make_stimuli_and_errors():
    stack = make_stimuli("dot", "size", [4, 8, 16], color=(0, 255, 0))
    assert stack.shape == (3, 112, 112, 3)
    assert (stack[..., 1] > 200).sum() < (stack[2][..., 1] > 200).sum() * 3
    with pytest.raises(InvalidInputError, match="unknown stimulus"):
        make_stimuli("star", "size", [1])
    with pytest.raises(InvalidInputError, match="no parameter 'radius'"):
        make_stimuli("dot", "radius", [1])
    with pytest.raises(InvalidInputError, match="RGB"):
        dot(color=(300, 0, 0))
