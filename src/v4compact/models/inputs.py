"""The one image path: whatever a user calls "images" -> model input.

:func:`as_image_batch` turns files, folders, lists of paths, Pillow images, numpy arrays and
torch tensors of any size, mode and dtype into one ``(N, 112, 112, 3)`` array of pixels
0-255; :func:`to_model_input` turns that into the re-centred ``(N, 3, 112, 112)`` tensor the
models take. The CLI (``v4compact predict``), the explorer's uploads
(:mod:`v4compact.web.uploads`), :func:`v4compact.models.predict.predict`, evaluation and
synthesis all go through these two functions, so one photo is one model input everywhere.

What is accepted:

- arrays / tensors, channels-last: ``(N, H, W, 3)`` RGB, ``(N, H, W, 4)`` RGBA,
  ``(N, H, W)`` / ``(N, H, W, 1)`` grayscale, or one such image without the leading ``N``
  (a 3-d array ``(A, B, C)`` with ``C`` in {1, 3, 4} is one image, otherwise ``N``
  grayscale images). dtypes: ``uint8`` (0-255); ``uint16`` (0-65535, **scaled** to 0-255 by
  dividing by 257, never clipped); other integers holding 0-255; floats holding 0-255.
- Pillow images of any mode: ``1``, ``L``, ``P``, ``RGB``, ``CMYK``, ``YCbCr``... are
  converted to RGB; modes with transparency (``RGBA``, ``LA``, ``PA``, ``P`` with a
  transparent colour) to RGBA; 16-bit ``I;16*`` and ``I`` images are scaled from 0-65535
  like ``uint16`` arrays; ``F`` images are float pixels 0-255. The EXIF orientation is
  applied (a phone photo is used upright, as viewers show it).
- a path to an image file, a folder (its image files, :data:`IMAGE_EXTENSIONS`, in sorted
  name order), or a list / tuple mixing paths, Pillow images and arrays.

Transparency is composited on white (what an image viewer or a web page shows). Then the
resize policy, :data:`v4compact.models.zoo.RESIZE_POLICY`: an image that is not 112x112 is
centre-cropped to its largest centred square and resized to 112x112 with Pillow's bicubic
filter, which antialiases when it shrinks (the filter widens with the reduction factor) -
for an 8-bit RGB image exactly ``PIL.ImageOps.fit(image, (112, 112), BICUBIC)``.
Cropping keeps the aspect ratio - squashing a 2:1 photo would distort every shape the
neurons are tuned to - and keeps the centre, where people put the subject of a photo; it
is also what the explorer did before there was one path. Images already 112x112 pass
through bit-identical. Anything else raises :class:`~v4compact.errors.InvalidInputError`
with a one-line message.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError
from ..images import IMAGE_MEAN, IMAGE_SIZE

#: File extensions read from a folder.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
#: 65535 / 255: a 16-bit pixel divided by this is the same brightness on the 0-255 scale.
_UINT16_PER_UINT8 = 257.0
#: Pillow modes holding 16-bit (or wider integer) samples, scaled like uint16 arrays.
_WIDE_INT_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N")
#: The EXIF tag saying how a camera held the picture (1 = upright).
_EXIF_ORIENTATION = 0x0112


def list_image_files(folder: str | os.PathLike) -> list[Path]:
    """The image files of a folder (:data:`IMAGE_EXTENSIONS`), in sorted name order.

    Raises:
        InvalidInputError: the folder holds no image file.
    """
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise InvalidInputError(
            f"folder {folder} holds no image files ({', '.join(IMAGE_EXTENSIONS)})"
        )
    return files


def as_image_batch(images, size: int = IMAGE_SIZE, *, warn: bool = True) -> np.ndarray:
    """Convert user input to a batch of RGB images the models can take.

    Args:
        images: an array or tensor (channels-last), a Pillow image, a path, a folder or a
            list of those (see the module docstring).
        size: the side of the square images the model takes (pixels).
        warn: warn (``UserWarning``) when images are cropped and resized, or when float
            pixels look like 0-1 instead of 0-255.

    Returns:
        ``(N, size, size, 3)`` channels-last RGB, pixel scale 0-255, not re-centred:
        ``uint8`` when every image was 8-bit (uint8 arrays, ordinary image files), else
        ``float32``.

    Raises:
        InvalidInputError: a wrong shape or dtype, NaNs, out-of-range integers, or a
            missing or unreadable file.
    """
    parts = _to_arrays(images, warn)
    resized = [(a.shape[0], a.shape[1:3]) for a in parts if a.shape[1:3] != (size, size)]
    if resized and warn:
        count = sum(n for n, _ in resized)
        sizes = ", ".join(sorted({f"{w}x{h}" for _, (h, w) in resized}))
        warnings.warn(
            f"{count} image(s) of size {sizes} centre-cropped to a square and resized to "
            f"{size}x{size}",
            UserWarning,
            stacklevel=2,
        )
    parts = [_fit(a, size) for a in parts]
    dtype = np.uint8 if all(a.dtype == np.uint8 for a in parts) else np.float32
    if len(parts) == 1:
        return np.ascontiguousarray(parts[0], dtype=dtype)
    return np.concatenate([a.astype(dtype, copy=False) for a in parts])


def to_model_input(images, device=None, dtype=None):
    """Images -> the re-centred tensor every model of the package takes.

    Args:
        images: anything :func:`as_image_batch` accepts; or a float tensor
            ``(N, 3, H, W)`` of channels-first pixels 0-255 (e.g. an image being
            optimised), which is re-centred in torch, keeping its autograd graph.
        device: torch device of the result (default: the tensor's own device, else CPU).
        dtype: floating dtype of the result (default ``torch.float32``).

    Returns:
        ``(N, 3, H, W)`` tensor: pixels 0-255 minus :data:`v4compact.images.IMAGE_MEAN`
        per channel (``H = W = 112`` for everything but channels-first tensors, which keep
        their size).
    """
    import torch

    dtype = torch.float32 if dtype is None else dtype
    if isinstance(images, torch.Tensor) and images.ndim == 4 and images.shape[1] == 3:
        x = images.to(device=images.device if device is None else device, dtype=dtype)
    else:
        batch = as_image_batch(images)
        if not batch.flags.writeable:  # torch.from_numpy warns on read-only memory
            batch = batch.copy()
        x = torch.from_numpy(batch).to(device="cpu" if device is None else device, dtype=dtype)
        x = x.permute(0, 3, 1, 2)  # a view: the memory stays channels-last
    return x - torch.as_tensor(IMAGE_MEAN, device=x.device, dtype=dtype).view(1, 3, 1, 1)


# -- reading ---------------------------------------------------------------------------------
def _to_arrays(images, warn: bool) -> list[np.ndarray]:
    """Each input as a ``(n, H, W, C)`` array (C in 1, 3, 4), uint8 or float32 0-255."""
    from PIL import Image

    if isinstance(images, str | os.PathLike):
        path = Path(images)
        files = list_image_files(path) if path.is_dir() else [path]
        return [_read_file(p) for p in files]
    if isinstance(images, Image.Image):
        return [_from_pil(images, "the image")]
    if isinstance(images, Sequence) and not isinstance(images, str | bytes) and images \
            and all(_is_item(i) for i in images):
        return [a for item in images for a in _to_arrays(item, warn)]
    if hasattr(images, "detach"):  # a torch tensor, on any device
        images = images.detach().cpu().numpy()
    try:
        arr = np.asarray(images)
    except (ValueError, TypeError) as err:
        raise InvalidInputError(f"images could not be read as an array ({err})") from None
    return [_from_array(arr, warn)]


def _is_item(value) -> bool:
    """True for what a list of images may hold: paths, Pillow images, arrays, tensors."""
    from PIL import Image

    if isinstance(value, np.ndarray) or hasattr(value, "detach"):
        return value.ndim >= 2  # not the rows of one image given as a list
    return isinstance(value, str | os.PathLike | Image.Image)


def _read_file(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise InvalidInputError(f"image file {path} not found")
    try:
        with Image.open(path) as image:
            return _from_pil(image, str(path))
    except Image.DecompressionBombError:
        raise InvalidInputError(
            f"{path} has more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels, too many to decode "
            "safely; save a smaller copy (the models see 112x112 pixels)"
        ) from None
    except (UnidentifiedImageError, OSError) as err:
        reason = "not an image" if isinstance(err, UnidentifiedImageError) else str(err)
        raise InvalidInputError(f"cannot read {path} as an image ({reason})") from None


def _from_pil(image, name: str) -> np.ndarray:
    """A Pillow image of any mode -> ``(1, H, W, C)`` uint8 / float32 pixels 0-255."""
    from PIL import ImageOps

    if image.getexif().get(_EXIF_ORIENTATION, 1) != 1:
        image = ImageOps.exif_transpose(image)
    if image.mode in _WIDE_INT_MODES:
        arr = np.asarray(image).astype(np.int64)
        if arr.min() < 0 or arr.max() > 65535:
            raise InvalidInputError(
                f"{name} is a {image.mode} image with values {arr.min()}..{arr.max()}; "
                "save it with 8 or 16 bits per channel"
            )
        arr = (arr / _UINT16_PER_UINT8).astype(np.float32)
    elif image.mode == "F":
        arr = np.asarray(image, dtype=np.float32)
    else:
        transparent = image.mode in ("RGBA", "LA", "PA", "La", "RGBa") \
            or "transparency" in image.info
        arr = np.asarray(image.convert("RGBA" if transparent else "RGB"))
    arr = arr if arr.ndim == 3 else arr[..., None]
    return arr[None]


def _from_array(arr: np.ndarray, warn: bool) -> np.ndarray:
    """A numeric array -> ``(n, H, W, C)`` uint8 / float32 pixels 0-255."""
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.integer)
                                     or np.issubdtype(arr.dtype, np.floating)):
        raise InvalidInputError(
            f"images have dtype {arr.dtype}; pass uint8, uint16 or float pixels"
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
        if warn and arr.min() >= 0 and 0 < arr.max() <= 1:
            warnings.warn(
                "float images lie within 0-1, but the models take pixels 0-255: multiply "
                "them by 255",
                UserWarning,
                stacklevel=4,
            )
        return arr.astype(np.float32, copy=False)
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        return (arr / _UINT16_PER_UINT8).astype(np.float32)
    if arr.min() < 0 or arr.max() > 255:
        raise InvalidInputError(
            f"integer images of dtype {arr.dtype} range {arr.min()}..{arr.max()}; pixels must "
            "be 0-255 (or a uint16 array, scaled from 0-65535)"
        )
    return arr.astype(np.uint8)


# -- fitting to the model's input --------------------------------------------------------------
def _fit(arr: np.ndarray, size: int) -> np.ndarray:
    """``(n, H, W, C)`` -> ``(n, size, size, 3)``: gray to RGB, alpha on white, crop, resize."""
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    elif arr.shape[-1] == 4:
        arr = _on_white(arr)
    height, width = arr.shape[1:3]
    if (height, width) == (size, size):
        return arr
    side = min(height, width)
    left, top = (width - side) // 2, (height - side) // 2
    box = (left, top, left + side, top + side)
    return np.stack([_resize(img, size, box) for img in arr])


def _on_white(rgba: np.ndarray) -> np.ndarray:
    """Composite ``(..., 4)`` RGBA (alpha on the pixel scale) on a white background, rounding
    like Pillow's ``alpha_composite``."""
    if rgba.dtype == np.uint8:
        # rgb * alpha + 255 * (255 - alpha) + 127 == 65152 - alpha * (255 - rgb): every term
        # fits in uint16, computed in place (a large upload costs 2 bytes per sample, not 12)
        out = np.subtract(255, rgba[..., :3], dtype=np.uint16)
        out *= rgba[..., 3:]
        np.subtract(65152, out, out=out)
        out //= 255
        return out.astype(np.uint8)
    alpha = rgba[..., 3:] / 255.0
    return (rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.float32)


def _resize(image: np.ndarray, size: int, box: tuple[int, int, int, int]) -> np.ndarray:
    """The ``box`` square of one ``(H, W, 3)`` image -> ``(size, size, 3)``, Pillow bicubic.

    Resampling the box out of the whole image (rather than cropping first) lets the filter
    see the pixels just outside the square, as ``PIL.ImageOps.fit`` does: the result equals
    ``ImageOps.fit(image, (size, size), Image.Resampling.BICUBIC)``.
    """
    from PIL import Image

    def resize(plane: np.ndarray) -> np.ndarray:
        return np.asarray(Image.fromarray(np.ascontiguousarray(plane))
                          .resize((size, size), Image.Resampling.BICUBIC, box=box))

    if image.dtype == np.uint8:
        return resize(image)
    # bicubic rings past the range at sharp edges; clamp like Pillow's 8-bit resize does
    return np.clip(np.stack([resize(image[..., c]) for c in range(3)], axis=-1), 0.0, 255.0)
