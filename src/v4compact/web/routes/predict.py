"""``/api/predict``: the responses of all 219 modelled neurons to one uploaded image."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, File, Request, UploadFile

from ...images import to_uint8
from ...models.zoo import split_neuron_id
from .. import assets
from ..schemas import NeuronResponse, PredictResult
from ..uploads import check_size, load_upload
from .deps import data_url, explorer

router = APIRouter(prefix="/api", tags=["predict"])


#: Time allowed to load the 219 compact models on the first request (seconds).
MODEL_LOAD_LIMIT_S = 900.0
#: Kind of the upload predictions in the worker pool (quick: never behind syntheses).
JOB_KIND = "predict"


def predict_population(state, model, data: bytes) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode an upload and run the library's 219-neuron population model on it.

    Returns:
        ``(image uint8 (112, 112, 3), responses float32 (219,), neuron ids)``.
    """
    image = load_upload(data, max_bytes=state.max_upload_bytes)
    responses = np.asarray(model.predict(image[None], device=state.device)).reshape(-1)
    return image, responses, list(model.neuron_ids)


@router.post("/predict", response_model=PredictResult)
async def predict(request: Request, image: Annotated[UploadFile, File()]) -> PredictResult:
    """Upload an image (JPEG, PNG, GIF, WebP or BMP, at most 10 MB) and get every neuron's
    response, strongest first.

    The image is centre-cropped to a square and resized to 112x112, like the images the
    monkeys saw. Where the site assets hold a neuron's typical response range, its response
    is also given as a z-score (how unusual the response is for that neuron); when every
    neuron has one, the list is sorted by them, else by the outputs themselves.
    """
    state = explorer(request)
    data = await image.read(state.max_upload_bytes + 1)
    check_size(len(data), state.max_upload_bytes)
    # loading the models (once) has its own, longer limit than the prediction itself
    if state.population_loaded:
        model = state.population()
    else:
        model = await state.pool.run(
            state.population, time_limit_s=MODEL_LOAD_LIMIT_S, kind=JOB_KIND
        )
    pixels, responses, neuron_ids = await state.pool.run(
        predict_population, state, model, data, kind=JOB_KIND
    )
    stats = assets.population_stats(state.cache_dir)
    items = []
    for neuron_id, value in zip(neuron_ids, responses, strict=True):
        z = None
        if stats and neuron_id in stats:
            mean, std = stats[neuron_id]
            z = float((value - mean) / std) if std > 0 else None
        items.append(
            NeuronResponse(
                neuron_id=neuron_id,
                session_id=split_neuron_id(neuron_id)[0],
                response=float(value),
                zscore=z,
            )
        )
    if items and all(r.zscore is not None for r in items):
        items.sort(key=lambda r: -r.zscore)
        note = (
            "Bars compare each neuron's response with its usual response to natural photos "
            "(0 = typical, 2 = unusually strong, below 0 = weaker than usual)"
        )
    else:
        items.sort(key=lambda r: -r.response)
        note = (
            "Bars show each model's output in z-scored units (0 is about the neuron's average "
            "response to natural photos, 1 is one standard deviation above it), not spikes"
        )
        if stats:  # the background build has measured the usual range of some neurons only
            note += ("; once every neuron's page is built, bars compare each response with "
                     "that neuron's usual range")
    return PredictResult(image_png=data_url(to_uint8(pixels)), responses=items, note=note)
