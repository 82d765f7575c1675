"""``/api/health`` and ``/api/build``: is the server up, which neurons can it serve, how busy
is it, how far its background build is."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ... import __version__
from ...models.zoo import model_neuron_ids
from .. import assets
from ..schemas import BuildProgress, Health
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


@router.get("/build", response_model=BuildProgress)
def build(request: Request) -> BuildProgress:
    """How many neuron pages are ready, and what the background builder is doing."""
    state = explorer(request)
    if state.builder is not None:
        return BuildProgress(**state.builder.progress())
    return BuildProgress(enabled=False, ready=len(assets.built_neurons(state.cache_dir)),
                         total=len(model_neuron_ids()))
