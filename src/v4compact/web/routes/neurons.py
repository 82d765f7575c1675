"""``/api/neurons``: the gallery, the neuron pages, filters, activation maps and ablations."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response
from PIL import Image

from ...data import paths
from ...data.catalog import session_info
from ...errors import InvalidInputError, UnknownNeuronError
from ...models.zoo import split_neuron_id
from .. import assets
from ..ablation import check_filter, silenced_copy
from ..network import describe_network
from ..schemas import (
    MODEL_UNITS,
    Ablation,
    Calibration,
    HeldOut,
    Network,
    NeuronCard,
    NeuronDetail,
    PreferredImage,
)
from ..state import parse_neuron
from .deps import IMMUTABLE, explorer, png_response

router = APIRouter(prefix="/api/neurons", tags=["neurons"])

# ASCII digits only (``\d`` also matches other scripts' digits)
_PREFERRED_RE = re.compile(r"^(0|[1-9][0-9]?)\.png$")  # one spelling per image
_IMAGE_REF_RE = re.compile(r"^([sp])([0-9]{1,5})$")


def _num_filters(data_dir: Path, session_id: int, neuron: int) -> list[int] | None:
    """Filters per layer from the neuron's ``nums_filters`` file (call only when healthy)."""
    path = data_dir / paths.nums_filters(session_id, neuron)
    return [int(n) for n in np.load(path, allow_pickle=False).reshape(-1)]


def _heldout(summary: dict | None) -> HeldOut | None:
    heldout = (summary or {}).get("heldout")
    if not heldout or "label" not in heldout:  # absent, or from an older asset version
        return None
    clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
             for k, v in heldout.items()}
    return HeldOut(**clean)


def _card(state, neuron_id: str, summary: dict | None, health, cls=NeuronCard) -> NeuronCard:
    sid, idx = split_neuron_id(neuron_id)
    num_filters = (summary or {}).get("num_filters")
    if num_filters is None and health.ok:
        num_filters = _num_filters(state.data_dir, sid, idx)
    preferred = (summary or {}).get("preferred") or []
    if summary is not None:
        status = "ready"
    elif state.builder is not None:
        status = state.builder.status(neuron_id)
    else:
        status = "not built"
    return cls(
        neuron_id=neuron_id,
        session_id=sid,
        neuron=idx,
        animal=session_info(sid).animal,
        num_filters=num_filters,
        total_filters=sum(num_filters) if num_filters else None,
        heldout=_heldout(summary),
        preferred_url=f"/api/neurons/{sid}/{idx}/preferred/0.png" if preferred else None,
        built=summary is not None,
        status=status,
        health=health.state,
        problem=state.public_message(health.problem),
    )


@router.get("", response_model=list[NeuronCard])
def neurons(request: Request) -> list[NeuronCard]:
    """All 219 modelled neurons as gallery cards (precomputed parts read from the cache).

    A neuron whose model files are missing or damaged keeps its card, marked with its
    ``health`` and the ``problem`` (including the command that re-fetches the files).
    """
    state = explorer(request)
    return [
        _card(state, neuron_id, assets.read_summary(state.cache_dir, *split_neuron_id(neuron_id)),
              health)
        for neuron_id, health in state.health_report().items()
    ]


@router.get("/{session_id}/{neuron}", response_model=NeuronDetail)
def neuron(request: Request, session_id: str, neuron: str) -> NeuronDetail:
    """One neuron: card, held-out scatter points, natural-image rankings, preferred images.

    Always HTTP 200. A neuron not built yet has ``status`` ``"computing"`` or ``"queued"``
    when the server builds in the background (asking for it moves it to the front of the
    queue; ask again until ``status`` is ``"ready"``), ``"failed"`` with the reason in
    ``build_hint``, or ``"not built"`` (``serve --no-build``).
    """
    state = explorer(request)
    sid, idx = parse_neuron(session_id, neuron)
    summary = assets.read_summary(state.cache_dir, sid, idx)
    detail = _card(state, f"{sid}/{idx}", summary, state.neuron_health(sid, idx),
                   cls=NeuronDetail)
    if summary is None:
        if state.builder is not None and detail.health == "ok":
            # first in the builder's queue; the page polls until the status is "ready"
            detail.status = state.builder.request(sid, idx)
            detail.build_hint = (
                state.public_message(state.builder.problem(f"{sid}/{idx}"))
                if detail.status == "failed" else
                "Computing this neuron's pictures and scores now (usually a few seconds); "
                "the page fills in by itself."
            )
        else:
            detail.build_hint = (
                "This neuron's pictures and scores have not been computed on this server "
                f"yet; they appear after 'v4compact site build --neurons {sid}/{idx}' (or "
                "while 'v4compact serve' runs without --no-build)."
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
    if detail.heldout is not None:
        detail.heldout_points = assets.read_heldout(state.cache_dir, sid, idx)
        detail.natural = summary.get("natural")
        calibration = summary.get("calibration")
        detail.calibration = Calibration(**calibration) if calibration else None
    detail.settings = summary.get("synthesis_settings")
    if summary.get("heldout_note"):
        detail.build_hint = state.public_message(summary["heldout_note"])
    return detail


@router.get("/{session_id}/{neuron}/preferred/{name}", response_class=FileResponse)
def preferred_image(request: Request, session_id: str, neuron: str, name: str) -> FileResponse:
    """A precomputed preferred image, ``<start>.png`` (only names from the validated form)."""
    state = explorer(request)
    sid, idx = parse_neuron(session_id, neuron)
    match = _PREFERRED_RE.fullmatch(name)
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
    match = _IMAGE_REF_RE.fullmatch(ref)
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
    """Switch one filter off and compare with the full model.

    Where the neuron was scored (its session's photos are here), the silenced model is
    scored by :func:`v4compact.evaluate` exactly like the full one (same metric, held-out
    half), and its predictions on the neuron page's scatter photos are returned in z-scored
    units and calibrated to spikes per 100 ms. Otherwise the comparison is the mean model
    output on the neuron's preferred images.
    """
    state = explorer(request)
    sid, idx = parse_neuron(session_id, neuron)

    def compute() -> dict:
        from ...evaluation import evaluate

        model = state.compact_model(sid, idx)
        check_filter(model, layer, filter)
        silenced = silenced_copy(model, layer, filter)
        summary = assets.read_summary(state.cache_dir, sid, idx) or {}
        heldout = _heldout(summary)
        points = assets.read_heldout(state.cache_dir, sid, idx) if heldout else None
        if points:
            # the full model's predictions are the scatter's (computed by the site build)
            indices = np.asarray(points["image_indices"], dtype=int)
            images = np.asarray(state.session(sid).images[indices])
            before = np.asarray(points["predicted"], dtype=np.float64)
            before_spikes = points.get("predicted_spikes")
            measured = [float(v) for v in points["measured"]]
            scored = evaluate(silenced, sessions=[sid], data_dir=state.data_dir,
                              device=state.device, num_boot=0, progress=False).scores[0]
            metric = f"{heldout.label}, held-out half ({heldout.num_images} photos)"
            score_before, score_after = heldout.value, scored.value
        else:
            starts = [p["start"] for p in summary.get("preferred") or []]
            if not starts:
                raise InvalidInputError(
                    f"neuron {sid}/{idx} has no photos or preferred images on this server; "
                    f"they appear after 'v4compact site build --neurons {sid}/{idx}'"
                )
            images = np.stack([_reference_image(state, sid, idx, f"p{s}") for s in starts])
            before = np.asarray(model.predict(images), dtype=np.float64).reshape(-1).round(5)
            before_spikes = None
            measured = []
            metric = f"mean model output on the preferred images ({MODEL_UNITS})"
        # rounded like the stored predictions, so a filter without effect changes nothing
        after = np.asarray(silenced.predict(images), dtype=np.float64).reshape(-1).round(5)
        if not points:
            score_before, score_after = float(before.mean()), float(after.mean())
        return {
            "neuron_id": f"{sid}/{idx}",
            "layer": layer,
            "filter": int(filter),
            "metric": metric,
            "before": score_before,
            "after": score_after,
            "predicted_before": before.tolist(),
            "predicted_after": after.tolist(),
            "predicted_before_spikes": before_spikes,
            "predicted_after_spikes": _spikes(f"{sid}/{idx}", summary.get("calibration"), after)
            if before_spikes else None,
            "measured": measured,
            "mean_abs_change": float(np.abs(after - before).mean()),
        }

    def job():
        return state.memo(("ablation", sid, idx, layer, int(filter)), compute)

    return Ablation(**await state.pool.run(job))


def _spikes(neuron_id: str, calibration: dict | None, outputs: np.ndarray) -> list[float]:
    """Model outputs (z-scored units) in spikes per 100 ms with the neuron's calibration."""
    from ...models.calibration import Calibration as SpikeCalibration

    mapping = SpikeCalibration(
        neuron_ids=[neuron_id],
        slope=np.array([calibration["slope"]]),
        intercept=np.array([calibration["intercept"]]),
    )
    return mapping.apply(outputs).astype(np.float64).round(5).tolist()
