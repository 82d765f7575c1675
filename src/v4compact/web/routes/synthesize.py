"""``/api/synthesize``: live preferred-stimulus synthesis, streamed as server-sent events.

The stream sends ``progress`` events (step, current images as PNG data URLs, scores) and
one final ``done`` event (the best images with their responses and the provenance, the PNGs
carrying the provenance in their text chunks) or ``error``. Closing the stream (leaving the
page) cancels the job within one optimisation step.
"""

from __future__ import annotations

import asyncio
import json

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from ...errors import InvalidInputError, V4CompactError
from ...models.zoo import split_neuron_id
from ...synthesis import list_presets
from ..http_errors import status_for
from ..jobs import CancelToken
from ..live import MAX_NEURONS, MAX_STEPS, OBJECTIVES, LiveRequest, run_live
from ..schemas import SynthesisOptions
from ..state import parse_neuron
from .deps import data_url, explorer

router = APIRouter(prefix="/api", tags=["synthesize"])

#: Progress events buffered per stream (older ones are dropped if the client is slow).
MAX_BUFFERED_EVENTS = 8
#: Kind of the live synthesis jobs in the worker pool (they have their own quota).
JOB_KIND = "synthesis"


@router.get("/synthesis/options", response_model=SynthesisOptions)
def options() -> SynthesisOptions:
    """Objectives, presets and step limits the Synthesize page offers."""
    return SynthesisOptions(
        objectives=list(OBJECTIVES), presets=list_presets(), max_steps=MAX_STEPS, default_steps=100
    )


def parse_request(
    neurons: str, objective: str, preset: str, seed: int, steps: int, layer: str, filter_index: int
) -> LiveRequest:
    """Validate the query of a synthesis request (raises library errors -> 4xx)."""
    ids = [part.strip() for part in neurons.split(",") if part.strip()]
    if not 1 <= len(ids) <= MAX_NEURONS:
        raise InvalidInputError(f"choose 1 to {MAX_NEURONS} neurons, got {len(ids)}")
    parsed = []
    for nid in ids:
        sid, _, idx = nid.partition("/")
        s, k = parse_neuron(sid, idx)
        parsed.append(f"{s}/{k}")
    if len(set(parsed)) != len(parsed):
        raise InvalidInputError("a neuron is listed twice; list each neuron once")
    if objective not in OBJECTIVES:
        raise InvalidInputError(f"unknown objective {objective[:30]!r}; choose {OBJECTIVES}")
    if objective == "filter" and len(parsed) != 1:
        raise InvalidInputError("the 'filter' objective works on one neuron's network at a time")
    if preset not in list_presets():
        raise InvalidInputError(
            f"unknown preset {preset[:30]!r}; choose one of {', '.join(list_presets())}"
        )
    if not 1 <= steps <= MAX_STEPS:
        raise InvalidInputError(f"steps must be between 1 and {MAX_STEPS}, got {steps}")
    if not 0 <= seed < 2**31:
        raise InvalidInputError(f"seed must be between 0 and {2**31 - 1}, got {seed}")
    return LiveRequest(tuple(parsed), objective, preset, seed, steps, layer, filter_index)


def _model_for(state, request: LiveRequest):
    if len(request.neuron_ids) == 1:
        return state.compact_model(*split_neuron_id(request.neuron_ids[0]))
    return state.population_subset(request.neuron_ids)


def _sse(event: str, payload: dict) -> bytes:
    return f"event: {event}\ndata: {json.dumps(payload)}\n\n".encode()


@router.get("/synthesize/stream")
async def synthesize_stream(
    request: Request,
    neurons: str = Query(..., max_length=200, description="comma-separated neuron ids"),
    objective: str = Query("maximize", max_length=20),
    preset: str = Query("upstream", max_length=40),
    seed: int = Query(0),
    steps: int = Query(100),
    layer: str = Query("layer4", max_length=30),
    filter_index: int = Query(0, ge=0, le=10_000),
) -> StreamingResponse:
    """Synthesize preferred images live; the response is a ``text/event-stream``.

    Validation errors are answered as ordinary JSON 4xx before the stream starts.
    """
    state = explorer(request)
    live = parse_request(neurons, objective, preset, seed, steps, layer, filter_index)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue(maxsize=MAX_BUFFERED_EVENTS)
    token = CancelToken(state.pool.time_limit_s)

    def put(item: bytes) -> None:  # runs on the event loop
        if queue.full():
            queue.get_nowait()  # drop the oldest progress frame, keep the newest
        queue.put_nowait(item)

    def emit(step: int, images: np.ndarray, scores: np.ndarray) -> None:  # worker thread
        payload = {
            "step": step,
            "steps": live.steps,
            "images": [data_url(img) for img in images],
            "scores": [float(s) for s in scores],
        }
        loop.call_soon_threadsafe(put, _sse("progress", payload))

    def job():
        model = _model_for(state, live)
        return run_live(model, live, token, emit, device=state.device)

    def done_payload(result) -> dict:
        prov = dict(result.provenance)
        prov.update({"neurons": list(live.neuron_ids), "objective_choice": live.objective})
        prov_text = json.dumps(prov, default=str)
        images = []
        for i, nid in enumerate(live.neuron_ids):
            response = (
                float(result.target_responses[i])
                if result.target_responses is not None
                else float(np.asarray(result.responses)[i].reshape(-1)[0])
            )
            images.append(
                {
                    "neuron_id": nid,
                    "response": response,
                    "png": data_url(result.images[i], info={"v4compact-provenance": prov_text}),
                }
            )
        return {"images": images, "provenance": prov}

    async def events():
        task = asyncio.ensure_future(state.pool.run(job, token=token, kind=JOB_KIND))
        try:
            yield _sse("start", {"steps": live.steps, "neurons": list(live.neuron_ids)})
            while True:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait(
                    {getter, task}, timeout=10, return_when=asyncio.FIRST_COMPLETED
                )
                if getter in done:
                    yield getter.result()
                else:
                    getter.cancel()
                if task in done:
                    while not queue.empty():
                        yield queue.get_nowait()
                    try:
                        result = task.result()
                    except V4CompactError as err:
                        yield _sse("error", {"detail": str(err), "status": status_for(err)})
                    except Exception as err:  # never leave the page waiting on a broken stream
                        detail = f"synthesis failed ({type(err).__name__}: {err})"
                        yield _sse("error", {"detail": detail[:300], "status": 500})
                    else:
                        yield _sse("done", done_payload(result))
                    return
                if not done:
                    yield b": keep-alive\n\n"
        finally:
            if not task.done():
                token.cancel("client disconnected")
                task.cancel()

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )
