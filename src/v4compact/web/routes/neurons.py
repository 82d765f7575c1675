"""``/api/neurons``: the gallery, the neuron pages, filters, activation maps and ablations."""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response
from PIL import Image

from ... import config
from ...data import paths
from ...data.catalog import session_info
from ...errors import InvalidInputError, UnknownNeuronError
from .. import assets
from ..ablation import check_filter, predict_ablated
from ..network import describe_network
from ..schemas import Ablation, HeldOut, Network, NeuronCard, NeuronDetail, PreferredImage
from ..state import model_neuron_ids, parse_neuron
from .deps import IMMUTABLE, explorer, png_response

router = APIRouter(prefix="/api/neurons", tags=["neurons"])

_PREFERRED_RE = re.compile(r"^(\d{1,2})\.png$")
_IMAGE_REF_RE = re.compile(r"^([sp])(\d{1,5})$")


@lru_cache(maxsize=512)
def _num_filters(data_dir: str, session_id: int, neuron: int) -> tuple[int, ...] | None:
    path = config.data_dir(data_dir) / paths.nums_filters(session_id, neuron)
    if not path.is_file():
        return None
    return tuple(int(n) for n in np.load(path, allow_pickle=False).reshape(-1))


def _card(state, neuron_id: str, summary: dict | None, cls=NeuronCard) -> NeuronCard:
    sid, idx = (int(p) for p in neuron_id.split("/"))
    num_filters = summary.get("num_filters") if summary else None
    if num_filters is None:
        found = _num_filters(str(state.data_dir), sid, idx)
        num_filters = list(found) if found else None
    preferred = (summary or {}).get("preferred") or []
    heldout = (summary or {}).get("heldout")
    return cls(
        neuron_id=neuron_id,
        session_id=sid,
        neuron=idx,
        animal=session_info(sid).animal,
        num_filters=num_filters,
        total_filters=sum(num_filters) if num_filters else None,
        heldout=HeldOut(**heldout) if heldout else None,
        preferred_url=f"/api/neurons/{sid}/{idx}/preferred/0.png" if preferred else None,
        built=summary is not None,
    )


@router.get("", response_model=list[NeuronCard])
def neurons(request: Request) -> list[NeuronCard]:
    """All 219 modelled neurons as gallery cards (precomputed parts read from the cache)."""
    state = explorer(request)
    cards = []
    for neuron_id in model_neuron_ids():
        sid, idx = neuron_id.split("/")
        cards.append(_card(state, neuron_id, assets.read_summary(state.cache_dir, sid, idx)))
    return cards


@router.get("/{session_id}/{neuron}", response_model=NeuronDetail)
def neuron(request: Request, session_id: str, neuron: str) -> NeuronDetail:
    """One neuron: card, held-out scatter points, natural-image rankings, preferred images."""
    state = explorer(request)
    sid, idx = parse_neuron(session_id, neuron)
    summary = assets.read_summary(state.cache_dir, sid, idx)
    detail = _card(state, f"{sid}/{idx}", summary, cls=NeuronDetail)
    if summary is None:
        detail.build_hint = (
            "This neuron's pictures and scores are not precomputed yet; run "
            f"'v4compact site build --neurons {sid}/{idx}' (the network below is live)."
        )
        return detail
    detail.preferred = [
        PreferredImage(
            seed=p["start"],
            response=p["response"],
            url=f"/api/neurons/{sid}/{idx}/preferred/{p['start']}.png",
        )
        for p in summary.get("preferred") or []
    ]
    points = assets.read_heldout(state.cache_dir, sid, idx)
    detail.heldout_points = points
    detail.natural = summary.get("natural")
    detail.settings = summary.get("synthesis_settings")
    if summary.get("heldout_note"):
        detail.build_hint = summary["heldout_note"]
    return detail


@router.get("/{session_id}/{neuron}/preferred/{name}", response_class=FileResponse)
def preferred_image(request: Request, session_id: str, neuron: str, name: str) -> FileResponse:
    """A precomputed preferred image, ``<start>.png`` (only names from the validated form)."""
    state = explorer(request)
    sid, idx = parse_neuron(session_id, neuron)
    match = _PREFERRED_RE.match(name)
    path = assets.preferred_path(state.cache_dir, sid, idx, int(match.group(1))) if match else None
    if path is None or not path.is_file():
        raise UnknownNeuronError(
            f"no preferred image {name[:30]!r} for neuron {sid}/{idx}; run 'v4compact site build'"
        )
    return FileResponse(path, media_type="image/png", headers=IMMUTABLE)


@router.get("/{session_id}/{neuron}/network", response_model=Network)
async def network(request: Request, session_id: str, neuron: str) -> dict:
    """The compact network layer by layer: every filter's kernel and the readout map."""
    state = explorer(request)
    sid, idx = parse_neuron(session_id, neuron)

    def job():
        return state.memo(
            ("network", sid, idx),
            lambda: describe_network(state.compact_model(sid, idx), f"{sid}/{idx}"),
        )

    return await state.pool.run(job)


def _reference_image(state, sid: int, idx: int, ref: str) -> np.ndarray:
    """``s<i>``: image ``i`` of the neuron's session; ``p<k>``: its preferred image ``k``."""
    match = _IMAGE_REF_RE.match(ref)
    if not match:
        raise InvalidInputError(
            f"unknown image {ref[:30]!r}; use s<index> (a session photo) or p<start> "
            "(a preferred image)"
        )
    number = int(match.group(2))
    if match.group(1) == "s":
        count = session_info(sid).num_images
        if number >= count:
            raise InvalidInputError(f"session {sid} has images 0 to {count - 1}, not {number}")
        return state.session(sid).image(number)
    path = assets.preferred_path(state.cache_dir, sid, idx, number)
    if not path.is_file():
        raise UnknownNeuronError(f"neuron {sid}/{idx} has no preferred image {number}")
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _colormap(values: np.ndarray) -> np.ndarray:
    from matplotlib import colormaps

    top = float(values.max())
    scaled = values / top if top > 0 else np.zeros_like(values)
    return (colormaps["magma"](scaled)[..., :3] * 255).astype(np.uint8)


@router.get("/{session_id}/{neuron}/activation.png")
async def activation(
    request: Request,
    session_id: str,
    neuron: str,
    layer: str = Query(..., max_length=20),
    filter: int = Query(..., ge=0, le=10_000),
    image: str = Query(..., max_length=8, description="s<index> or p<start>"),
) -> Response:
    """One filter's activation map on a picture, as a colour PNG (bright = strong)."""
    state = explorer(request)
    sid, idx = parse_neuron(session_id, neuron)

    def job():
        model = state.compact_model(sid, idx)
        check_filter(model, layer, filter)
        pixels = _reference_image(state, sid, idx, image)
        maps = model.activations(pixels[None], layer)[0, :, :, filter]
        return _colormap(np.asarray(maps, dtype=np.float32))

    rgb = await state.pool.run(job)
    return png_response(rgb, scale=max(1, 112 // rgb.shape[0]))


@router.get("/{session_id}/{neuron}/ablation", response_model=Ablation)
async def ablation(
    request: Request,
    session_id: str,
    neuron: str,
    layer: str = Query(..., max_length=20),
    filter: int = Query(..., ge=0, le=10_000),
) -> Ablation:
    """Switch one filter off and compare the predictions with the full model.

    On the held-out photos when the session's images are present (metric: raw R^2 against
    the measured responses); otherwise on the neuron's preferred images (mean response).
    """
    from ...metrics import raw_r2

    state = explorer(request)
    sid, idx = parse_neuron(session_id, neuron)

    def compute() -> dict:
        model = state.compact_model(sid, idx)
        check_filter(model, layer, filter)
        session = state.session(sid)
        if session.has_images:
            # the same photos as the neuron page's scatter (all held-out ones unless the
            # site was built with a limit)
            points = assets.read_heldout(state.cache_dir, sid, idx)
            if points:
                heldout = np.asarray(points["image_indices"], dtype=int)
            else:
                _, heldout = session.heldout_split()
            images = np.asarray(session.images[heldout])
            measured = np.asarray(session.responses[idx, heldout], dtype=np.float64)
            metric = "raw R^2 on held-out photos"
        else:
            summary = assets.read_summary(state.cache_dir, sid, idx) or {}
            starts = [p["start"] for p in summary.get("preferred") or []]
            if not starts:
                raise InvalidInputError(
                    f"neuron {sid}/{idx} has no photos or preferred images here; run "
                    f"'v4compact site build --neurons {sid}/{idx}' first"
                )
            images = np.stack([_reference_image(state, sid, idx, f"p{s}") for s in starts])
            measured = None
            metric = "mean response to preferred images"
        before = np.asarray(model.predict(images), dtype=np.float64).reshape(-1)
        after = np.asarray(
            predict_ablated(model, images, layer, filter), dtype=np.float64
        ).reshape(-1)
        if measured is not None:
            score_before, score_after = float(raw_r2(measured, before)), float(
                raw_r2(measured, after)
            )
        else:
            score_before, score_after = float(before.mean()), float(after.mean())
        return {
            "neuron_id": f"{sid}/{idx}",
            "layer": layer,
            "filter": int(filter),
            "metric": metric,
            "before": score_before,
            "after": score_after,
            "predicted_before": before.round(5).tolist(),
            "predicted_after": after.round(5).tolist(),
            "measured": [] if measured is None else measured.round(5).tolist(),
            "mean_abs_change": float(np.abs(after - before).mean()),
        }

    def job():
        return state.memo(("ablation", sid, idx, layer, int(filter)), compute)

    return Ablation(**await state.pool.run(job))
