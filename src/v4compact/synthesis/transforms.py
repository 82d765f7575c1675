"""Seeded random image transforms for robust synthesis (lucent style).

A transform is a callable ``t(images, generator) -> images`` on float ``(N, C, H, W)``
pixel tensors; the output has the same shape (the compact models need 112x112). The random
draws come from the ``torch.Generator`` passed in (a CPU generator), never from the global
RNG, so a run is reproducible from its seed. Chain transforms with :func:`compose`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from ..errors import InvalidInputError

__all__ = ["Transform", "compose", "jitter", "random_rotate", "random_scale"]

Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _choice(values: Sequence[float], generator: torch.Generator) -> float:
    i = int(torch.randint(len(values), (1,), generator=generator))
    return float(values[i])


def jitter(pixels: int) -> Transform:
    """Shift the whole batch by a random integer offset in ``[-pixels, pixels]`` per axis.

    The image is reflected at the borders, so the size stays the same.
    """
    if pixels < 0:
        raise InvalidInputError(f"jitter needs pixels >= 0, got {pixels}")

    def transform(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if pixels == 0:
            return images
        dy, dx = (torch.randint(-pixels, pixels + 1, (2,), generator=generator)).tolist()
        padded = F.pad(images, (pixels, pixels, pixels, pixels), mode="reflect")
        h, w = images.shape[-2:]
        return padded[..., pixels + dy: pixels + dy + h, pixels + dx: pixels + dx + w]

    transform.__name__ = f"jitter({pixels})"
    return transform


def _affine(images: torch.Tensor, angle_deg: float, scale: float) -> torch.Tensor:
    theta = math.radians(angle_deg)
    cos, sin = math.cos(theta) / scale, math.sin(theta) / scale
    mat = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]], dtype=images.dtype,
                       device=images.device)
    grid = F.affine_grid(mat.expand(images.shape[0], 2, 3), list(images.shape),
                         align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection",
                         align_corners=False)


def random_scale(scales: Sequence[float]) -> Transform:
    """Zoom about the centre by a factor drawn from ``scales`` (1.0 = unchanged)."""
    scales = [float(s) for s in scales]
    if not scales or min(scales) <= 0:
        raise InvalidInputError(f"random_scale needs positive scales, got {scales}")

    def transform(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        s = _choice(scales, generator)
        return images if s == 1.0 else _affine(images, 0.0, s)

    transform.__name__ = f"random_scale({min(scales):g}..{max(scales):g})"
    return transform


def random_rotate(angles: Sequence[float]) -> Transform:
    """Rotate about the centre by an angle (degrees) drawn from ``angles``."""
    angles = [float(a) for a in angles]
    if not angles:
        raise InvalidInputError("random_rotate needs at least one angle (degrees)")

    def transform(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        a = _choice(angles, generator)
        return images if a == 0.0 else _affine(images, a, 1.0)

    transform.__name__ = f"random_rotate({min(angles):g}..{max(angles):g})"
    return transform


def compose(transforms: Sequence[Transform]) -> Transform:
    """Apply ``transforms`` in order, all drawing from the same generator."""
    transforms = list(transforms)

    def transform(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        for t in transforms:
            images = t(images, generator)
        return images

    transform.__name__ = "compose(" + ", ".join(getattr(t, "__name__", "?")
                                                 for t in transforms) + ")"
    return transform
