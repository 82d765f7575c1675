"""``/api/sessions``: the recording sessions, their figures and their images."""

from __future__ import annotations

import dataclasses
import re

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response

from ...data import paths
from ...data.catalog import list_sessions, session_info
from ...data.datasets import RELEASE_DATASET
from ...errors import UnknownSessionError
from .. import assets
from ..schemas import SessionSummary
from .deps import IMMUTABLE, explorer, png_response

router = APIRouter(prefix="/api/sessions", tags=["sessions"])

# ASCII digits only (``\d`` also matches other scripts' digits, which int() accepts)
_SESSION_RE = re.compile(r"^[0-9]{6}$")
_IMAGE_RE = re.compile(r"^(0|[1-9][0-9]{0,4})\.png$")  # one spelling per image


def _session_id(value: str) -> int:
    if not _SESSION_RE.fullmatch(value):
        raise UnknownSessionError(f"unknown session {value[:20]!r}; session ids have six digits")
    return session_info(int(value)).session_id


def _summary(request: Request, info) -> SessionSummary:
    state = explorer(request)
    has_images = (state.data_dir / paths.images_zip(info.session_id)).is_file()
    return SessionSummary(
        **dataclasses.asdict(info),
        has_models=info.has_models,
        has_images=has_images,
        figure_url=f"/api/sessions/{info.session_id}/figure.png",
    )


@router.get("", response_model=list[SessionSummary])
def sessions(request: Request) -> list[SessionSummary]:
    """All 50 recording sessions of the release with their metadata (imported sessions have
    no session page: their made models have theirs, ``/api/made``)."""
    return [_summary(request, info) for info in list_sessions(dataset=RELEASE_DATASET)]


@router.get("/{session_id}", response_model=SessionSummary)
def session(request: Request, session_id: str) -> SessionSummary:
    """One session's metadata (404 for an unknown id)."""
    return _summary(request, session_info(_session_id(session_id)))


@router.get("/{session_id}/figure.png", response_class=FileResponse)
async def session_figure(request: Request, session_id: str) -> FileResponse:
    """The session figure (images and the neuron x image response heatmap), from the cache.

    Drawn by the library's ``figures.session.plot_session`` the first time it is asked for.
    """
    sid = _session_id(session_id)
    state = explorer(request)
    path = assets.session_figure_path(state.cache_dir, sid)
    if not path.is_file():
        path = await state.pool.run(
            assets.build_session_figure, sid, state.cache_dir, state.data_dir
        )
    return FileResponse(path, media_type="image/png", headers=IMMUTABLE)


@router.get("/{session_id}/images/{image_name}")
def session_image(request: Request, session_id: str, image_name: str) -> Response:
    """One image shown in a session, ``uint8`` 112x112 PNG; ``image_name`` is ``<index>.png``."""
    sid = _session_id(session_id)
    if not _IMAGE_RE.fullmatch(image_name):
        raise UnknownSessionError(
            f"unknown image {image_name[:30]!r}; ask for /api/sessions/{sid}/images/<index>.png"
        )
    index = int(image_name[:-4])
    info = session_info(sid)
    if index >= info.num_images:
        raise UnknownSessionError(
            f"session {sid} has images 0 to {info.num_images - 1}, not {index}"
        )
    return png_response(explorer(request).session(sid).image(index))
