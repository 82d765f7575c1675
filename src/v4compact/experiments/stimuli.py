"""Parametric stimuli for in-silico experiments (numpy, uint8 ``(112, 112, 3)`` images).

Coordinates are in pixels of the 112x112 image with the origin at the image centre, x to
the right and y downwards; colours are RGB 0-255 triples; the background is mid-grey
(128) unless given. Angles are in degrees, counter-clockwise from horizontal.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import InvalidInputError
from ..images import IMAGE_SIZE

__all__ = ["GENERATORS", "bar", "color_patch", "dot", "grating", "make_stimuli"]

Color = Sequence[float]
GRAY = (128.0, 128.0, 128.0)


def _coords(size: int) -> tuple[np.ndarray, np.ndarray]:
    c = (size - 1) / 2.0
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    return x - c, y - c


def _color(value, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float32).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, 3)
    if arr.size != 3 or np.any(arr < 0) or np.any(arr > 255):
        raise InvalidInputError(f"{name} must be an RGB triple (or one gray level) in 0-255, "
                                f"got {value!r}")
    return arr


def _compose(mask: np.ndarray, color, background) -> np.ndarray:
    fg, bg = _color(color, "color"), _color(background, "background")
    img = bg[None, None, :] * (1 - mask[..., None]) + fg[None, None, :] * mask[..., None]
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _soft_edge(distance_inside: np.ndarray) -> np.ndarray:
    """Antialiased mask from a signed distance (positive inside), one-pixel ramp."""
    return np.clip(distance_inside + 0.5, 0.0, 1.0)


def dot(size: float = 20.0, x: float = 0.0, y: float = 0.0, color: Color = (255, 255, 255),
        background: Color = GRAY, image_size: int = IMAGE_SIZE) -> np.ndarray:
    """A filled disc.

    Args:
        size: diameter in pixels.
        x, y: centre offset from the image centre, pixels.
        color: RGB 0-255 of the disc.
        background: RGB 0-255 of the rest.
        image_size: side of the image.

    Returns:
        uint8 ``(image_size, image_size, 3)``.
    """
    if size < 0:
        raise InvalidInputError(f"dot size must be >= 0 pixels, got {size}")
    xx, yy = _coords(image_size)
    dist = np.sqrt((xx - x) ** 2 + (yy - y) ** 2)
    return _compose(_soft_edge(size / 2.0 - dist), color, background)


def bar(orientation: float = 0.0, length: float = 60.0, width: float = 8.0, x: float = 0.0,
        y: float = 0.0, color: Color = (255, 255, 255), background: Color = GRAY,
        image_size: int = IMAGE_SIZE) -> np.ndarray:
    """An oriented rectangle (bar).

    Args:
        orientation: angle of the long axis, degrees counter-clockwise from horizontal.
        length, width: sides in pixels.
        x, y: centre offset from the image centre, pixels.
        color, background: RGB 0-255.
        image_size: side of the image.
    """
    if length < 0 or width < 0:
        raise InvalidInputError(f"bar length and width must be >= 0, got {length}, {width}")
    xx, yy = _coords(image_size)
    t = np.deg2rad(orientation)
    u = (xx - x) * np.cos(t) - (yy - y) * np.sin(t)  # along the bar (y points down)
    v = (xx - x) * np.sin(t) + (yy - y) * np.cos(t)
    inside = np.minimum(length / 2.0 - np.abs(u), width / 2.0 - np.abs(v))
    return _compose(_soft_edge(inside), color, background)


def grating(orientation: float = 0.0, frequency: float = 4.0, phase: float = 0.0,
            contrast: float = 1.0, color: Color = (255, 255, 255), background: Color = GRAY,
            diameter: float | None = None, image_size: int = IMAGE_SIZE) -> np.ndarray:
    """A sinusoidal grating, optionally in a circular aperture.

    Args:
        orientation: orientation of the stripes, degrees (0 = horizontal stripes' normal
            along x, i.e. vertical stripes).
        frequency: cycles per image width.
        phase: phase in degrees.
        contrast: Michelson contrast 0-1 between ``background`` and ``color``.
        color: colour of the peaks (the troughs are mirrored about the background).
        background: mean colour (and outside the aperture).
        diameter: aperture diameter in pixels (None = full field).
        image_size: side of the image.
    """
    if not 0 <= contrast <= 1:
        raise InvalidInputError(f"grating contrast must be in [0, 1], got {contrast}")
    xx, yy = _coords(image_size)
    t = np.deg2rad(orientation)
    proj = xx * np.cos(t) - yy * np.sin(t)
    wave = np.sin(2 * np.pi * frequency * proj / image_size + np.deg2rad(phase))
    fg, bg = _color(color, "color"), _color(background, "background")
    img = bg + contrast * wave[..., None] * (fg - bg)
    if diameter is not None:
        mask = _soft_edge(diameter / 2.0 - np.sqrt(xx ** 2 + yy ** 2))[..., None]
        img = bg * (1 - mask) + img * mask
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def color_patch(color: Color = (255, 0, 0), size: float = 40.0, x: float = 0.0, y: float = 0.0,
                background: Color = GRAY, image_size: int = IMAGE_SIZE) -> np.ndarray:
    """A square patch of one colour.

    Args:
        color: RGB 0-255 of the patch.
        size: side in pixels (``image_size`` fills the image).
        x, y: centre offset from the image centre, pixels.
        background: RGB 0-255 around it.
        image_size: side of the image.
    """
    xx, yy = _coords(image_size)
    inside = np.minimum(size / 2.0 - np.abs(xx - x), size / 2.0 - np.abs(yy - y))
    return _compose(_soft_edge(inside), color, background)


#: Stimulus generators by name, for the experiment runner and the CLI.
GENERATORS = {"dot": dot, "bar": bar, "grating": grating, "color_patch": color_patch}


def make_stimuli(kind: str, parameter: str, values: Sequence, **fixed) -> np.ndarray:
    """One stimulus per value of a parameter, the other parameters fixed.

    Args:
        kind: ``"dot"``, ``"bar"``, ``"grating"`` or ``"color_patch"``.
        parameter: the argument of the generator to vary (e.g. ``"size"``, ``"x"``,
            ``"orientation"``, ``"color"``).
        values: the values it takes.
        **fixed: the generator's other arguments.

    Returns:
        uint8 ``(len(values), 112, 112, 3)``.
    """
    import inspect

    if kind not in GENERATORS:
        raise InvalidInputError(f"unknown stimulus {kind!r}; choose one of "
                                f"{', '.join(GENERATORS)}")
    gen = GENERATORS[kind]
    names = [p for p in inspect.signature(gen).parameters if p != "image_size"]
    bad = [p for p in [parameter, *fixed] if p not in names]
    if bad:
        raise InvalidInputError(f"stimulus {kind!r} has no parameter {bad[0]!r}; it takes "
                                f"{', '.join(names)}")
    if len(values) == 0:
        raise InvalidInputError(f"give at least one value of {parameter!r}")
    return np.stack([gen(**{**fixed, parameter: v}) for v in values])
