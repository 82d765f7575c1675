"""Shared helpers of the route modules: the app state and image encoding."""

from __future__ import annotations

import base64
import io

import numpy as np
from fastapi import Request
from fastapi.responses import Response
from PIL import Image

from ..state import ExplorerState

#: Cache header for content that never changes for a given URL.
IMMUTABLE = {"cache-control": "public, max-age=86400"}


def explorer(request: Request) -> ExplorerState:
    """The :class:`ExplorerState` of the app serving ``request``."""
    return request.app.state.explorer


def png_bytes(image: np.ndarray, scale: int = 1, info: dict[str, str] | None = None) -> bytes:
    """Encode a ``uint8`` ``(H, W, 3)`` or ``(H, W)`` array as PNG (nearest-neighbour upscaled).

    Args:
        image: the pixels.
        scale: integer upscaling factor (for tiny maps).
        info: text chunks to embed (e.g. provenance).
    """
    from PIL.PngImagePlugin import PngInfo

    pil = Image.fromarray(np.ascontiguousarray(image))
    if scale > 1:
        pil = pil.resize((pil.width * scale, pil.height * scale), Image.Resampling.NEAREST)
    meta = None
    if info:
        meta = PngInfo()
        for key, value in info.items():
            meta.add_text(key, value)
    buf = io.BytesIO()
    pil.save(buf, format="PNG", pnginfo=meta)
    return buf.getvalue()


def png_response(image: np.ndarray, scale: int = 1, cache: bool = True) -> Response:
    """A PNG HTTP response of an image array."""
    headers = IMMUTABLE if cache else {"cache-control": "no-store"}
    return Response(png_bytes(image, scale), media_type="image/png", headers=headers)


def data_url(image: np.ndarray, info: dict[str, str] | None = None) -> str:
    """A ``data:image/png;base64,...`` URL of an image array."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(image, info=info)).decode()
