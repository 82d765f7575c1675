"""Turn what a user passes as "images" into one ``(N, 112, 112, 3)`` pixel array.

Accepted: a uint8 or float array with pixels 0-255 — ``(N, H, W, 3)``, ``(N, H, W, 4)``
(RGBA, alpha dropped), ``(N, H, W)`` / ``(N, H, W, 1)`` (grayscale, copied to 3 channels) or
one such image without the leading ``N``; a path to an image file; a list of paths; a
folder (its image files in sorted name order). Images that are not 112x112 are resized
(bilinear, Pillow) with a warning. Anything else raises
:class:`~v4compact.errors.InvalidInputError` with a one-line message.

Note the one ambiguity: a 3-d array ``(A, B, C)`` with ``C`` in {1, 3, 4} is one image;
otherwise it is ``N`` grayscale images.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError
from ..images import IMAGE_SIZE

#: File extensions read from a folder.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def as_image_batch(images, size: int = IMAGE_SIZE) -> np.ndarray:
    """Convert user input to a batch of RGB images.

    Args:
        images: array-like, torch tensor (on any device, channels-last), path, list of
            paths or folder (see the module docstring).
        size: the spatial size the model takes.

    Returns:
        ``(N, size, size, 3)`` array: ``uint8`` when the input was uint8 or files, else
        ``float32``; pixel scale 0-255, not re-centred.

    Raises:
        InvalidInputError: wrong shape, dtype, or an unreadable or missing file.
    """
    if isinstance(images, str | os.PathLike):
        path = Path(images)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
            if not files:
                raise InvalidInputError(
                    f"folder {path} holds no image files ({', '.join(IMAGE_EXTENSIONS)})"
                )
            return _stack_files(files, size)
        return _stack_files([path], size)
    if isinstance(images, Sequence) and len(images) > 0 and all(
            isinstance(p, str | os.PathLike) for p in images):
        return _stack_files([Path(p) for p in images], size)
    if hasattr(images, "detach"):  # a torch tensor
        images = images.detach().cpu().numpy()
    try:
        arr = np.asarray(images)
    except (ValueError, TypeError) as err:
        raise InvalidInputError(f"images could not be read as an array ({err})") from None
    return _normalise_array(arr, size)


def _normalise_array(arr: np.ndarray, size: int) -> np.ndarray:
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.integer)
                                     or np.issubdtype(arr.dtype, np.floating)):
        raise InvalidInputError(
            f"images have dtype {arr.dtype}; pass uint8 or float pixels in 0-255"
        )
    if arr.ndim == 2:  # one grayscale image
        arr = arr[None, :, :, None]
    elif arr.ndim == 3:
        arr = arr[None] if arr.shape[-1] in (1, 3, 4) else arr[..., None]
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3, 4) or arr.shape[0] == 0 \
            or min(arr.shape[1:3]) < 1:
        raise InvalidInputError(
            f"images have shape {arr.shape}; expected (N, H, W, 3) RGB (or 1 = gray, 4 = RGBA "
            "channels), channels-last, pixels 0-255"
        )
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise InvalidInputError("images contain NaN or infinite values")
        if arr.min() >= 0 and 0 < arr.max() <= 1:
            warnings.warn(
                "float images lie within 0-1, but the models take pixels 0-255: multiply "
                "them by 255",
                UserWarning,
                stacklevel=3,
            )
        arr = arr.astype(np.float32, copy=False)
    elif arr.dtype != np.uint8:
        if arr.min() < 0 or arr.max() > 255:
            raise InvalidInputError(
                f"integer images of dtype {arr.dtype} range {arr.min()}..{arr.max()}; "
                "pixels must be 0-255"
            )
        arr = arr.astype(np.uint8)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    elif arr.shape[-1] == 4:
        arr = arr[..., :3]
    if arr.shape[1:3] != (size, size):
        warnings.warn(
            f"images of size {arr.shape[1]}x{arr.shape[2]} resized to {size}x{size}",
            UserWarning,
            stacklevel=3,
        )
        arr = _resize(arr, size)
    return np.ascontiguousarray(arr)


def _resize(arr: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    out = np.empty((arr.shape[0], size, size, 3), dtype=arr.dtype)
    for i, img in enumerate(arr):
        if arr.dtype == np.uint8:
            pil = Image.fromarray(img, mode="RGB").resize((size, size), Image.BILINEAR)
            out[i] = np.asarray(pil)
        else:
            channels = [np.asarray(Image.fromarray(img[..., c], mode="F")
                                   .resize((size, size), Image.BILINEAR)) for c in range(3)]
            out[i] = np.stack(channels, axis=-1)
    return out


def _stack_files(files: list[Path], size: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    images, resized = [], 0
    for path in files:
        if not path.is_file():
            raise InvalidInputError(f"image file {path} not found")
        try:
            with Image.open(path) as im:
                rgb = im.convert("RGB")
        except (UnidentifiedImageError, OSError) as err:
            reason = "not an image" if isinstance(err, UnidentifiedImageError) else str(err)
            raise InvalidInputError(f"cannot read {path} as an image ({reason})") from None
        if rgb.size != (size, size):
            rgb = rgb.resize((size, size), Image.BILINEAR)
            resized += 1
        images.append(np.asarray(rgb, dtype=np.uint8))
    if resized:
        warnings.warn(f"{resized} image file(s) resized to {size}x{size}", UserWarning,
                      stacklevel=3)
    return np.stack(images)
