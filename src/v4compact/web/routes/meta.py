"""``/api/health``: is the server up, which neurons can it serve, how busy is it."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ... import __version__
from .. import assets
from ..schemas import Health
from .deps import explorer

router = APIRouter(prefix="/api", tags=["meta"])


@router.get("/health", response_model=Health)
def health(request: Request) -> Health:
    """Server status, usable and disabled neurons, and worker-pool counters (no paths)."""
    state = explorer(request)
    health = state.health_report()
    return Health(
        version=__version__,
        neurons_built=len(assets.built_neurons(state.cache_dir)),
        neurons_available=sum(h.ok for h in health.values()),
        neurons_disabled=[nid for nid, h in health.items() if not h.ok],
        jobs=state.pool.stats(),
    )
