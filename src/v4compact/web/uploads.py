"""Validate and decode images uploaded to the explorer (pure Pillow + numpy, no web framework).

The checks are the explorer's own; the pixels come from the package's one image path,
:func:`v4compact.models.inputs.as_image_batch`, so an upload is the same model input as the
same file on the command line or in Python.

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
from ..models.inputs import as_image_batch

#: Largest accepted upload, in bytes (10 MiB).
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
#: Largest accepted image, in pixels (width x height); bigger files are decompression bombs.
MAX_PIXELS = 40_000_000
#: Largest accepted decoded image, in bytes of the pixel array the image path works on: a few
#: kB of palette PNG can describe a 40-megapixel image, so the pixel count alone does not
#: bound memory. 64 MiB is an 8-bit 4096x4096 image; a decode then peaks at ~13 bytes per
#: pixel (~220 MB) in the image path.
MAX_DECODED_BYTES = 64 * 1024 * 1024
#: Pillow modes with more than 8 bits per sample (the image path works on them in float32).
_WIDE_MODES = ("I", "F", "I;16", "I;16L", "I;16B", "I;16N")
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


def decoded_bytes(image: Image.Image) -> int:
    """Bytes of the pixel array the image path makes of ``image`` (known from its header):
    4 per pixel for 8-bit images (RGBA, the widest), 12 for wider samples (float32 RGB)."""
    width, height = image.size
    return width * height * (12 if image.mode in _WIDE_MODES else 4)


def decode_image(
    data: bytes,
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = MAX_PIXELS,
    min_side: int = MIN_SIDE,
    max_decoded_bytes: int = MAX_DECODED_BYTES,
) -> Image.Image:
    """Sniff and fully decode uploaded bytes into a Pillow image.

    Args:
        data: the raw bytes of the upload.
        max_bytes: byte limit (413 above it).
        max_pixels: pixel-count limit, checked from the header before decoding (413 above it).
        min_side: smallest accepted width and height in pixels (422 below it).
        max_decoded_bytes: limit on :func:`decoded_bytes`, checked from the header before
            decoding (413 above it).

    Returns:
        The decoded image in its own mode (:func:`load_upload` turns it into model input).

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
                "the upload is not an image this site can read; send a JPEG, PNG, GIF, WebP or "
                "BMP file",
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
        if decoded_bytes(image) > max_decoded_bytes:
            raise UploadError(
                f"the image is {width}x{height} pixels, which takes "
                f"{human_size(decoded_bytes(image))} to decode, more than "
                f"{human_size(max_decoded_bytes)}; send a smaller copy (the models see "
                "112x112 pixels)",
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
    return image


def load_upload(data: bytes, max_bytes: int = MAX_UPLOAD_BYTES) -> np.ndarray:
    """Validate and decode an upload, then make it model input through the one image path.

    The pixels come from :func:`v4compact.models.inputs.as_image_batch`, exactly as for the
    same file given to ``v4compact predict`` or to ``predict`` in Python: transparency on
    white, centre-cropped to a square, bicubic resize to 112x112.

    Args:
        data: the raw bytes of the upload.
        max_bytes: byte limit.

    Returns:
        ``(112, 112, 3)`` pixels 0-255: ``uint8``, or ``float32`` for a 16-bit image.

    Raises:
        UploadError: see :func:`decode_image`.
    """
    image = decode_image(data, max_bytes=max_bytes)
    try:
        return as_image_batch(image, warn=False)[0]
    except InvalidInputError as err:  # e.g. a 32-bit image beyond the 16-bit range
        raise UploadError(str(err), status_code=422) from None


def _short(err: Exception) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text[:120]
