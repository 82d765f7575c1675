"""Regularisers and constraints for synthesis (torch, channels-first images).

Two kinds:

* **operations** on image or gradient tensors ``(N, C, H, W)`` in pixel units —
  :func:`gaussian_blur` (the upstream gradient blur and periodic image blur, sigma 1),
  :func:`clip_range` (valid range 0-255), :func:`to_grayscale`, :func:`limit_contrast`
  (a pixel-norm constraint: at most a given RMS contrast about the image's mean);
* **penalty objectives** added to an objective — :func:`total_variation`.
"""

from __future__ import annotations

import functools
import math

import torch

from ..errors import InvalidInputError
from .objectives import Objective, RenderContext

__all__ = [
    "clip_range",
    "gaussian_blur",
    "gaussian_kernel",
    "limit_contrast",
    "to_grayscale",
    "total_variation",
]

# ITU-R BT.601 luma, the weights of v4compact.images.grayscale.
_LUMA = (0.299, 0.587, 0.114)


def gaussian_kernel(sigma: float, truncate: float = 4.0) -> torch.Tensor:
    """Normalised 1-D Gaussian, radius ``int(truncate * sigma + 0.5)`` (scipy's choice).

    Returns:
        float32 tensor ``(2 * radius + 1,)`` summing to 1.
    """
    if sigma <= 0:
        raise InvalidInputError(f"blur sigma must be > 0, got {sigma}")
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).to(torch.float32)


def gaussian_blur(images: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Separable Gaussian blur over the two spatial axes, each channel on its own.

    Args:
        images: ``(N, C, H, W)`` float tensor (images or gradients).
        sigma: standard deviation in pixels (upstream uses 1).

    Returns:
        Tensor of the same shape; borders are mirror-reflected (torch ``"reflect"``, scipy
        ``"mirror"``).

    Each axis is one matrix product with a banded ``(H, H)`` / ``(W, W)`` matrix that holds
    the kernel and the reflection (:func:`blur_matrix`): 7-16x faster on the CPU than the
    two depthwise convolutions it replaces (measured on 3-657 images of 112x112; the
    upstream preset blurs every step's gradient), equal to float32 rounding.
    """
    h, w = images.shape[-2:]
    rows = blur_matrix(h, sigma).to(device=images.device, dtype=images.dtype)
    cols = rows if w == h else blur_matrix(w, sigma).to(device=images.device,
                                                        dtype=images.dtype)
    return rows @ images @ cols.T


@functools.lru_cache(maxsize=16)
def blur_matrix(size: int, sigma: float) -> torch.Tensor:
    """The 1-D Gaussian blur of a length-``size`` axis with mirror-reflected borders, as a
    matrix: ``blurred = M @ x``.

    Returns:
        float64 ``(size, size)``; row ``i`` holds :func:`gaussian_kernel` centred on ``i``,
        taps beyond an edge folded back inside (``-1 -> 1``, ``size -> size - 2``).
    """
    kernel = gaussian_kernel(sigma).double()
    radius = (kernel.numel() - 1) // 2
    if radius >= size:
        raise InvalidInputError(f"a blur of sigma {sigma} reaches {radius} pixels, more than "
                                f"an image side of {size}; use a smaller sigma")
    index = torch.arange(size)[:, None] + torch.arange(-radius, radius + 1)[None, :]
    index = index.abs()
    index = torch.where(index >= size, 2 * (size - 1) - index, index)
    matrix = torch.zeros(size, size, dtype=torch.float64)
    return matrix.scatter_add_(1, index, kernel.expand(size, -1).contiguous())


def clip_range(images: torch.Tensor, low: float = 0.0, high: float = 255.0) -> torch.Tensor:
    """Clamp pixels to the valid range (default 0-255)."""
    return images.clamp(low, high)


def to_grayscale(images: torch.Tensor) -> torch.Tensor:
    """Luminance (BT.601) copied to the three channels of ``(N, 3, H, W)`` pixels."""
    w = torch.tensor(_LUMA, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    lum = (images * w).sum(1, keepdim=True)
    return lum.expand_as(images)


def limit_contrast(images: torch.Tensor, max_rms: float) -> torch.Tensor:
    """Scale each image's deviation from its mean so its RMS contrast is at most ``max_rms``.

    The MEI-style norm constraint: the pixel vector about the image's own mean grey level
    is shrunk (never enlarged) to an L2 norm of ``max_rms * sqrt(pixels)``.

    Args:
        images: ``(N, C, H, W)`` pixels 0-255.
        max_rms: the largest RMS contrast allowed, in pixel units (e.g. 40).
    """
    if max_rms <= 0:
        raise InvalidInputError(f"max contrast must be > 0 pixel units, got {max_rms}")
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    dev = images - mean
    rms = dev.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt()
    factor = torch.clamp(max_rms / (rms + 1e-8), max=1.0)
    return mean + dev * factor


def total_variation(weight: float = 1.0, layer: str = "input") -> Objective:
    """Penalty objective: minus ``weight`` times the mean absolute neighbour difference.

    Args:
        weight: multiplier; the TV is in pixel units per pixel pair, so 0.01-0.1 against a
            neuron response of order 1-10 is a gentle prior.
        layer: where to measure it (the image by default).

    Returns:
        An objective (higher = smoother) to add to a response objective.
    """

    def fn(context: RenderContext) -> torch.Tensor:
        x = context.layer(layer)
        dh = (x[..., 1:, :] - x[..., :-1, :]).abs().mean(dim=(1, 2, 3))
        dw = (x[..., :, 1:] - x[..., :, :-1]).abs().mean(dim=(1, 2, 3))
        return -weight * (dh + dw)

    if not math.isfinite(weight):
        raise InvalidInputError(f"total_variation weight must be finite, got {weight}")
    return Objective(fn, f"-{weight:g}*tv[{layer}]")
