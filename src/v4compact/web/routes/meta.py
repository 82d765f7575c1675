"""``/api/health``: is the server up, where is its data, how busy is it."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ... import __version__
from .. import assets
from ..schemas import Health
from .deps import explorer

router = APIRouter(prefix="/api", tags=["meta"])


@router.get("/health", response_model=Health)
def health(request: Request) -> Health:
    """Server status, data and cache folders, and worker-pool counters."""
    state = explorer(request)
    return Health(
        version=__version__,
        data_dir=str(state.data_dir),
        cache_dir=str(state.cache_dir),
        neurons_built=len(assets.built_neurons(state.cache_dir)),
        jobs=state.pool.stats(),
    )
