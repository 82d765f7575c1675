"""The V4 explorer: a FastAPI app and a plain HTML/JS front-end over the public library API.

Start it with ``v4compact serve``; precompute its assets with ``v4compact site build``.
``create_app`` is the app factory (see :mod:`v4compact.web.app`).
"""

from __future__ import annotations

__all__ = ["create_app"]


def __getattr__(name: str):
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module 'v4compact.web' has no attribute {name!r}")
