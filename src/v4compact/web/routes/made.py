"""``/api/made``: models made by ``make-compact`` (``v4compact serve --made RUN``).

Made models are the compact models a lab distils for its own neurons (or for release neurons
made again). The gallery lists them beside the release's 219, with their dataset and brain
area; a made model's page shows its scores from the run's report, where it came from (teacher,
corpus, preset, pruning) and, when its session's images are on this server, its predictions
on the session's held-out half.
"""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter, Request

from ...errors import V4CompactError
from ...metrics import raw_r2
from ..network import describe_network
from ..schemas import MadeCard, MadeDetail, Network
from .deps import explorer

router = APIRouter(prefix="/api/made", tags=["made models"])


def _session(state, entry):
    """The entry's session on this server, or None (not imported here)."""
    try:
        return state.session(entry.session_id)
    except V4CompactError:
        return None


def _card_fields(entry, session) -> dict:
    """A card's fields; ``session`` (or None) gives the neuron's area and animal."""
    area = animal = ""
    if session is not None and entry.neuron < session.num_neurons:
        info = session.neurons[entry.neuron]
        area, animal = info.area, info.animal
    return {
        "neuron_id": entry.neuron_id, "session_id": entry.session_id, "neuron": entry.neuron,
        "dataset": entry.dataset, "area": area, "animal": animal,
        "num_filters": entry.num_filters, "total_filters": sum(entry.num_filters),
        "num_parameters": entry.num_parameters,
        "scores": {k: float(v) for k, v in entry.scores.items()},
    }


@router.get("", response_model=list[MadeCard])
def made_models(request: Request) -> list[MadeCard]:
    """Every made model this server was started with, as gallery cards (sorted by id)."""
    state = explorer(request)
    return [MadeCard(**_card_fields(state.made[k], _session(state, state.made[k])))
            for k in sorted(state.made)]


@router.get("/{session_id}/{neuron}", response_model=MadeDetail)
async def made_model(request: Request, session_id: str, neuron: str) -> MadeDetail:
    """One made model: card, provenance, and its held-out predictions (computed here)."""
    state = explorer(request)
    entry = state.made_entry(session_id, neuron)

    def job() -> dict:
        session = _session(state, entry)
        detail = {**_card_fields(entry, session), "filters_before": entry.filters_before,
                  "released_filters": entry.released_filters, "provenance": entry.provenance}
        if session is None:
            detail["note"] = (f"session {entry.session_id} is not on this server, so the "
                              "model's predictions on its held-out half cannot be drawn")
        elif not session.has_images:
            detail["note"] = (f"session {entry.session_id} has no images on this server, so "
                              "the model's predictions on its held-out half cannot be drawn")
        else:
            _, heldout = session.heldout_split()
            model = state.made_model(entry)
            predicted = np.asarray(model.predict(session.images[heldout]),
                                   dtype=np.float64).reshape(-1)
            measured = np.asarray(session.responses[entry.neuron, heldout], dtype=np.float64)
            detail["heldout_points"] = {"image_indices": heldout.tolist(),
                                        "measured": measured.round(5).tolist(),
                                        "predicted": predicted.round(5).tolist()}
            detail["heldout_r2"] = float(raw_r2(measured, predicted))
            detail["session_units"] = session.units
        return detail

    return MadeDetail(**await state.pool.run(lambda: state.memo(("made", entry.neuron_id), job)))


@router.get("/{session_id}/{neuron}/network", response_model=Network)
async def made_network(request: Request, session_id: str, neuron: str) -> dict:
    """The made model layer by layer (as the release neurons' network)."""
    state = explorer(request)
    entry = state.made_entry(session_id, neuron)

    def job():
        return state.memo(("made-network", entry.neuron_id),
                          lambda: describe_network(state.made_model(entry), entry.neuron_id))

    return await state.pool.run(job)
