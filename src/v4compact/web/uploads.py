"""Validate and decode images uploaded to the explorer (pure Pillow + numpy, no web framework).

Nothing about an upload is trusted: not its file name, not its declared content type. The
bytes are sniffed and decoded by Pillow, with limits on the byte size and the pixel count
(decompression bombs), and rejected with a one-line :class:`UploadError` that carries the
HTTP status the web layer should answer with.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import InvalidInputError
from ..images import IMAGE_SIZE

#: Largest accepted upload, in bytes (10 MiB).
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
#: Largest accepted image, in pixels (width x height); bigger files are decompression bombs.
MAX_PIXELS = 40_000_000
#: Smallest accepted side length, in pixels.
MIN_SIDE = 16
#: Image formats the explorer decodes (Pillow format names).
ALLOWED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "BMP")


class UploadError(InvalidInputError):
    """An uploaded file that cannot be used; ``status_code`` is the HTTP status to answer."""

    def __init__(self, message: str, status_code: int = 422):
        super().__init__(message)
        self.status_code = status_code


def human_size(num_bytes: int) -> str:
    """``10485760`` -> ``"10 MB"``, ``1000`` -> ``"1 kB"`` (binary units, rounded)."""
    if num_bytes >= 1024 * 1024:
        value = num_bytes / (1024 * 1024)
        return f"{value:.0f} MB" if value >= 10 else f"{value:.1f} MB"
    return f"{max(1, round(num_bytes / 1024))} kB"


def check_size(num_bytes: int, max_bytes: int = MAX_UPLOAD_BYTES) -> None:
    """Raise :class:`UploadError` (413) if ``num_bytes`` is over the limit, or 400 if empty."""
    if num_bytes > max_bytes:
        raise UploadError(
            f"the upload is too large ({human_size(num_bytes)}); "
            f"send an image of at most {human_size(max_bytes)}",
            status_code=413,
        )
    if num_bytes == 0:
        raise UploadError("the upload is empty; choose an image file", status_code=400)


def decode_image(
    data: bytes,
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = MAX_PIXELS,
    min_side: int = MIN_SIDE,
) -> Image.Image:
    """Sniff and fully decode uploaded bytes into an RGB Pillow image.

    Args:
        data: the raw bytes of the upload.
        max_bytes: byte limit (413 above it).
        max_pixels: pixel-count limit, checked from the header before decoding (413 above it).
        min_side: smallest accepted width and height in pixels (422 below it).

    Returns:
        The decoded image in mode ``"RGB"`` (transparency composited on white).

    Raises:
        UploadError: with status 400 (empty), 413 (too large), 415 (not an image of an
            allowed format) or 422 (truncated, corrupt or too small).
    """
    check_size(len(data), max_bytes)
    with warnings.catch_warnings():
        # Pillow warns (instead of failing) between MAX_IMAGE_PIXELS and twice that; we
        # check the size ourselves below, so the warning is noise here.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS))
        except UnidentifiedImageError:
            raise UploadError(
                "the upload is not an image Pillow can read; send a JPEG, PNG, GIF, WebP or BMP "
                "file",
                status_code=415,
            ) from None
        except Image.DecompressionBombError:
            raise UploadError(
                f"the image has too many pixels; send one of at most {max_pixels:,} pixels",
                status_code=413,
            ) from None
        width, height = image.size
        if width * height > max_pixels:
            raise UploadError(
                f"the image is {width}x{height} pixels, more than {max_pixels:,}; "
                "send a smaller image",
                status_code=413,
            )
        if min(width, height) < min_side:
            raise UploadError(
                f"the image is only {width}x{height} pixels; send one at least "
                f"{min_side}x{min_side} pixels (the models see 112x112)",
                status_code=422,
            )
        try:
            image.load()
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
            raise UploadError(
                f"the image could not be decoded ({_short(err)}); it may be truncated or "
                "corrupt, try saving it again",
                status_code=422,
            ) from None
    if image.mode in ("RGBA", "LA", "P", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def to_model_input(image: Image.Image, size: int = IMAGE_SIZE) -> np.ndarray:
    """Centre-crop an image to a square and resize it to what the models see.

    Args:
        image: an RGB Pillow image of any size.
        size: output side length in pixels (112 for the compact models).

    Returns:
        ``uint8`` array ``(size, size, 3)``, channels-last RGB, pixel scale 0-255.
    """
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    square = image.crop((left, top, left + side, top + side))
    resized = square.resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(resized, dtype=np.uint8).copy()


def load_upload(data: bytes, max_bytes: int = MAX_UPLOAD_BYTES) -> np.ndarray:
    """Validate, decode, crop and resize an upload in one call.

    Args:
        data: the raw bytes of the upload.
        max_bytes: byte limit.

    Returns:
        ``uint8`` array ``(112, 112, 3)``.

    Raises:
        UploadError: see :func:`decode_image`.
    """
    return to_model_input(decode_image(data, max_bytes=max_bytes))


def _short(err: Exception) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text[:120]
