"""Image conventions of the compact models (pure numpy, no torch).

Images are ``uint8`` arrays ``(N, 112, 112, 3)`` (channels-last RGB, pixel scale 0-255).
The compact and shared compact models take them re-centred: the per-channel mean of the
12-million-image distillation corpus is subtracted (SYSTEM.md §3).
"""

from __future__ import annotations

import numpy as np

#: Per-channel (R, G, B) mean subtracted before the compact models, in pixel units.
IMAGE_MEAN = np.array([116.222, 109.270, 100.381], dtype=np.float32)
#: Spatial size the compact models take.
IMAGE_SIZE = 112

# ITU-R BT.601 luma weights, the ones Pillow's "L" conversion uses.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def recenter(images: np.ndarray) -> np.ndarray:
    """Subtract the corpus mean: ``(..., 3)`` pixels 0-255 -> float32 re-centred pixels."""
    return np.asarray(images, dtype=np.float32) - IMAGE_MEAN


def uncenter(images: np.ndarray, clip: bool = True) -> np.ndarray:
    """Inverse of :func:`recenter`: ``(..., 3)`` re-centred -> float32 pixels 0-255.

    Args:
        images: re-centred images, channels-last.
        clip: clip to the valid range [0, 255].
    """
    out = np.asarray(images, dtype=np.float32) + IMAGE_MEAN
    return np.clip(out, 0.0, 255.0) if clip else out


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Round and clip float pixels 0-255 to ``uint8``."""
    return np.clip(np.rint(np.asarray(images, dtype=np.float32)), 0, 255).astype(np.uint8)


def grayscale(images: np.ndarray) -> np.ndarray:
    """Luminance copied to all three channels: ``(..., 3)`` -> same shape and dtype."""
    arr = np.asarray(images)
    lum = arr.astype(np.float32) @ _LUMA
    out = np.repeat(lum[..., None], 3, axis=-1)
    return to_uint8(out) if arr.dtype == np.uint8 else out.astype(arr.dtype, copy=False)


def gaudy(images: np.ndarray, blur_sigma: float = 0.0) -> np.ndarray:
    """The gaudy transform: per image and channel, pixel >= channel mean -> 255, else 0.

    Args:
        images: ``(N, H, W, 3)`` or ``(H, W, 3)`` pixels 0-255.
        blur_sigma: optional Gaussian blur (pixels) applied before thresholding.

    Returns:
        ``uint8`` array of the same shape with values in {0, 255}.
    """
    arr = np.asarray(images, dtype=np.float32)
    single = arr.ndim == 3
    if single:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        from .errors import InvalidInputError

        raise InvalidInputError(
            f"gaudy() needs images of shape (N, H, W, 3) or (H, W, 3), got {arr.shape}"
        )
    if blur_sigma > 0:
        from scipy.ndimage import gaussian_filter

        arr = gaussian_filter(arr, sigma=(0, blur_sigma, blur_sigma, 0))
    means = arr.mean(axis=(1, 2), keepdims=True)
    out = np.where(arr >= means, 255, 0).astype(np.uint8)
    return out[0] if single else out
