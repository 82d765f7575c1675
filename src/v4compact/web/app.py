"""The explorer's FastAPI app factory.

``create_app()`` returns an app that serves the JSON API under ``/api`` and the single-page
front-end (plain HTML/CSS/JS in ``static/``) at ``/``. Run it with ``v4compact serve`` or any
ASGI server::

    uvicorn --factory v4compact.web.app:create_app
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__, config
from ..errors import V4CompactError, one_line_message
from ..training.made import find_made_models
from .http_errors import status_for
from .jobs import ClientLimitError, JobPool, JobQueueFullError
from .middleware import (
    ClientAddressMiddleware,
    HostOriginMiddleware,
    RequestBodyMiddleware,
    SecurityHeadersMiddleware,
)
from .routes import ROUTERS
from .state import ExplorerState, default_cache_dir
from .uploads import MAX_UPLOAD_BYTES

STATIC_DIR = Path(str(resources.files("v4compact.web").joinpath("static")))
#: Seconds a client refused for load (HTTP 429 / 503) is told to wait before asking again.
RETRY_AFTER_S = 5


def _default_notebooks_dir() -> Path:
    # a source checkout keeps notebooks/ next to src/; an installed package has none
    return Path(__file__).resolve().parents[3] / "notebooks"


def create_app(
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    max_workers: int = 2,
    max_queue: int = 16,
    time_limit_s: float = 120.0,
    device: str = "cpu",
    notebooks_dir: str | os.PathLike | None = None,
    repo_url: str | None = None,
    max_upload_bytes: int = MAX_UPLOAD_BYTES,
    max_models: int = 8,
    preload: bool = False,
    allowed_hosts: Iterable[str] = (),
    build: bool = False,
    site_settings=None,
    made: Iterable[str | os.PathLike] = (),
) -> FastAPI:
    """Build the explorer app.

    Args:
        data_dir: data directory (default: ``$V4COMPACT_DATA``, else the per-user cache).
        cache_dir: site-asset cache written by ``v4compact site build`` (default: the per-user
            cache's ``site`` folder).
        max_workers: worker threads for live model work (predictions, synthesis, ablation).
        max_queue: jobs allowed to wait for a worker before requests get HTTP 503.
        time_limit_s: per-job time limit in seconds (HTTP 504 beyond it).
        device: torch device for live model work, e.g. ``"cpu"`` or ``"cuda"``.
        notebooks_dir: folder of tutorial notebooks (default: ``notebooks/`` of the checkout).
        repo_url: GitHub URL used in "open in Colab" links (default:
            :func:`v4compact.config.repository_url`; None: no public copy, no Colab links).
        max_upload_bytes: largest accepted request body (uploads), in bytes.
        max_models: compact models kept in memory at once (least recently used are dropped).
        preload: load the 219-neuron population model in the background at startup.
        allowed_hosts: host names besides 127.0.0.1, localhost and [::1] that the server
            answers to (requests naming any other host are refused, against DNS rebinding);
            give the names LAN users type when serving on a network on purpose.
        build: build the missing neurons of ``cache_dir`` in the background while serving
            (:class:`~v4compact.web.builder.SiteBuilder`; ``/api/build`` reports progress).
        site_settings: the :class:`~v4compact.web.assets.SiteSettings` of that build
            (default: ``SiteSettings()``, as ``v4compact site build``).
        made: ``make-compact`` run folders whose made models the gallery lists beside the
            release's neurons (:func:`v4compact.training.made.find_made_models`).

    Returns:
        The FastAPI application.
    """
    state = ExplorerState(
        data_dir=config.data_dir(data_dir),
        cache_dir=Path(cache_dir).expanduser().resolve() if cache_dir else default_cache_dir(),
        notebooks_dir=Path(notebooks_dir) if notebooks_dir else _default_notebooks_dir(),
        repo_url=(repo_url or config.repository_url() or "").rstrip("/") or None,
        device=device,
        pool=JobPool(max_workers=max_workers, max_queue=max_queue, time_limit_s=time_limit_s),
        max_models=max_models,
        max_upload_bytes=max_upload_bytes,
        made=find_made_models(made),
    )

    if build:
        from .assets import SiteSettings
        from .builder import SiteBuilder

        state.builder = SiteBuilder(
            state.cache_dir, state.data_dir, site_settings or SiteSettings(), device=device,
            busy=lambda: state.pool.stats()["running"] > 0,
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if state.builder is not None:
            state.builder.start()
        if preload:
            # load the 219-neuron population in the background, so the first visitor of
            # "Try your image" does not wait for it
            threading.Thread(target=_preload, args=(state,), daemon=True).start()
        yield
        if state.builder is not None:
            state.builder.stop()
        state.pool.shutdown()

    app = FastAPI(
        title="V4 explorer",
        version=__version__,
        description="Explore compact deep-network models of macaque V4 neurons.",
        lifespan=lifespan,
        # Swagger UI loads its scripts from a CDN, which the CSP forbids: serve the schema only
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.explorer = state
    _install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"cache-control": "no-cache"})

    # the last added runs first: headers on every answer, then who may ask, then the body;
    # the body limit leaves room for the multipart envelope around a maximal image
    app.add_middleware(
        RequestBodyMiddleware,
        max_bytes=max_upload_bytes + 64 * 1024,
        upload_limit=max_upload_bytes,
    )
    app.add_middleware(ClientAddressMiddleware)
    app.add_middleware(HostOriginMiddleware, allowed_hosts=allowed_hosts)
    app.add_middleware(SecurityHeadersMiddleware)
    return app


def _preload(state: ExplorerState) -> None:
    try:
        state.population()
    except V4CompactError as err:  # the page will say the same when it is used
        logging.getLogger(__name__).warning("could not preload the population model: %s", err)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(V4CompactError)
    async def library_error(request: Request, err: V4CompactError) -> JSONResponse:
        # library messages name the data directory: show visitors no server paths
        detail = request.app.state.explorer.public_message(str(err))
        # a refusal for load (busy, or this client's share taken) says when to ask again
        retry = isinstance(err, JobQueueFullError | ClientLimitError)
        headers = {"retry-after": str(RETRY_AFTER_S)} if retry else None
        return JSONResponse({"detail": detail}, status_code=status_for(err), headers=headers)

    def server_fault(request: Request, what: str) -> JSONResponse:
        """A 500 that says the fault is the server's (no path or traceback in it)."""
        detail = request.app.state.explorer.public_message(what)
        return JSONResponse({"detail": detail}, status_code=500)

    @app.exception_handler(OSError)
    async def system_error(request: Request, err: OSError) -> JSONResponse:
        # a file the server cannot read (permissions, a disk problem): the server's fault
        logging.getLogger(__name__).warning("%s: %s", request.url.path, one_line_message(err))
        return server_fault(request, f"the server could not use one of its files "
                            f"({one_line_message(err)}); the fault is the server's, not your "
                            "request's: its log has the details")

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, err: Exception) -> JSONResponse:
        # the server log gets the traceback (the error is re-raised after this answer)
        return server_fault(request, f"the server failed on this request "
                            f"({one_line_message(err)[:200]}); the server log has the details")

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError) -> JSONResponse:
        parts = []
        for item in err.errors():
            where = ".".join(str(p) for p in item.get("loc", ()) if p not in ("body", "query"))
            parts.append(f"{where}: {item.get('msg', 'invalid')}")
        detail = "invalid request: " + "; ".join(parts) if parts else "invalid request"
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        detail = err.detail
        if err.status_code == 404 and detail == "Not Found":
            detail = f"nothing at {request.url.path[:80]}; see /api/openapi.json for the routes"
        return JSONResponse({"detail": detail}, status_code=err.status_code)
