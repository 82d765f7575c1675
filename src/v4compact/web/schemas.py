"""Pydantic models of the explorer's JSON API (what each route returns)."""

from __future__ import annotations

import dataclasses
import typing

from pydantic import BaseModel, Field, create_model

from ..data.catalog import SessionInfo
from ..data.datasets import RELEASE_DATASET
from ..models.calibration import SPIKE_UNITS
from ..models.zoo import COMPACT

#: Units of the compact models' outputs (the zoo's), shown with every output.
MODEL_UNITS = COMPACT.units


class Health(BaseModel):
    """Server status (no file-system paths: visitors must not learn the server's folders)."""

    status: str = "ok"
    version: str
    neurons_built: int = Field(description="neurons with precomputed assets in the cache")
    neurons_available: int = Field(description="neurons whose model files are usable")
    neurons_disabled: list[str] = Field(
        description="ids of neurons whose model files are missing or damaged"
    )
    jobs: dict[str, int]


class BuildProgress(BaseModel):
    """The background site build of ``v4compact serve`` (``enabled`` false with --no-build)."""

    enabled: bool
    running: bool = False
    ready: int = Field(description="neurons whose pages are built")
    total: int = Field(description="all modelled neurons (219)")
    queued: int = 0
    computing: list[str] = []
    failed: dict[str, str] = Field(default_factory=dict,
                                   description="neuron id -> why its build failed")
    settings: dict | None = None
    seconds: float | None = Field(default=None, description="since the build started")


class HeldOut(BaseModel):
    """Held-out performance of a neuron's compact model, as ``v4compact evaluate`` reports it."""

    metric: str = Field(description="the evaluation's metric name: 'raw_r2', 'r2_er', ...")
    label: str = Field(description="what the metric is, in words")
    value: float
    ci_low: float | None = Field(default=None, description="95% bootstrap interval, low end")
    ci_high: float | None = Field(default=None, description="95% bootstrap interval, high end")
    num_images: int
    model_id: str = ""
    note: str = ""


class Calibration(BaseModel):
    """A neuron's affine map from model outputs to spike counts (fitted on the first half)."""

    slope: float = Field(description=f"{SPIKE_UNITS} per unit of model output")
    intercept: float = Field(description=f"{SPIKE_UNITS} at a model output of 0")
    units: str = SPIKE_UNITS


class PreferredImage(BaseModel):
    """One synthesized preferred image."""

    seed: int
    response: float = Field(description=f"model output for the image, in {MODEL_UNITS}")
    url: str


class NeuronCard(BaseModel):
    """A gallery card."""

    neuron_id: str = Field(description="'session/index', e.g. '201025/10'")
    session_id: int
    neuron: int
    animal: str
    dataset: str = Field(default=RELEASE_DATASET, description="the dataset of the neuron")
    area: str = Field(default="V4", description="brain area of the neuron")
    num_filters: list[int] | None = None
    total_filters: int | None = None
    heldout: HeldOut | None = None
    preferred_url: str | None = None
    built: bool = False
    status: str = Field(
        default="ready",
        description="'ready' (built), 'computing' or 'queued' (the server's background "
        "builder is on it: ask again), 'failed' (the build failed: see build_hint), "
        "'waiting' (the builder has not reached it yet) or 'not built' (no builder)",
    )
    health: str = Field(
        default="ok", description="'ok', 'missing' or 'corrupt': can the model be used"
    )
    problem: str = Field(default="", description="what is wrong and the command that fixes it")


class NeuronDetail(NeuronCard):
    """Everything the neuron page shows that comes from the asset cache."""

    preferred: list[PreferredImage] = []
    heldout_points: dict[str, list[float] | list[int] | None] | None = Field(
        default=None,
        description="image_indices, measured (spikes per 100 ms), predicted (z-scored "
        "units), predicted_spikes (calibrated, spikes per 100 ms, or null)",
    )
    natural: dict[str, list[dict]] | None = None
    calibration: Calibration | None = None
    model_units: str = MODEL_UNITS
    settings: dict | None = None
    build_hint: str = ""


class MadeCard(BaseModel):
    """A gallery card of a model made by ``make-compact`` (``serve --made RUN``)."""

    neuron_id: str = Field(description="'mylab:s01/7' (or '201025/10' for a release neuron)")
    session_id: str
    neuron: int
    dataset: str
    area: str = Field(description="brain area ('' when the session is not on this server)")
    animal: str = ""
    num_filters: list[int]
    total_filters: int
    num_parameters: int | None = None
    scores: dict[str, float] = Field(
        description="from the run's report: heldout_raw_r2_step2 (the made model), "
        "teacher_heldout_raw_r2, released_heldout_raw_r2 (held-out raw R^2 on the real "
        "responses), teacher_r2_distilled / teacher_r2_step2 (fidelity to the teacher: raw "
        "R^2 on held-out corpus images)"
    )


class MadeDetail(MadeCard):
    """A made model's page: its scores, where it came from, and held-out predictions."""

    filters_before: list[int] = []
    released_filters: list[int] | None = None
    provenance: dict = Field(description="teacher, preset, passes, student width, corpus "
                             "images and shards, pruning settings, run folder name")
    heldout_points: dict[str, list[float] | list[int]] | None = Field(
        default=None,
        description="image_indices, measured (the session's units, averaged over repeats), "
        "predicted (z-scored units), on the session's held-out images; null when the "
        "session or its images are not on this server",
    )
    heldout_r2: float | None = Field(
        default=None, description="raw R^2 of those predictions against the measured responses")
    session_units: str = ""
    model_units: str = MODEL_UNITS
    note: str = ""


class NetworkLayer(BaseModel):
    """One layer of a compact network, as drawn on the neuron page."""

    name: str
    kind: str
    num_filters: int
    kernels: list[list[list[list[float]]]] = Field(
        description="per filter, a (height, width, channels) kernel; channels is 3 for layer0 "
        "(RGB) and 1 for depthwise kernels"
    )
    kernel_range: float = Field(description="max |weight| in the layer, for colour scaling")
    pointwise: list[list[float]] | None = Field(
        default=None, description="(filters_out, filters_in) 1x1 mixing weights, if any"
    )


class Network(BaseModel):
    """A neuron's compact network, layer by layer."""

    neuron_id: str
    num_filters: list[int]
    num_parameters: int
    layers: list[NetworkLayer]
    readout_map: list[list[float]] = Field(description="(28, 28) summed |readout weight| map")
    readout_channel_weight: list[float] = Field(description="per layer-4 filter readout energy")


class Ablation(BaseModel):
    """The effect of silencing one filter on the neuron's predictions.

    With the session's photos: ``before`` and ``after`` are the evaluation's score of the
    full and of the silenced model on the held-out half (the same metric and number as
    ``v4compact evaluate``); without them, the mean output on the preferred images.
    """

    neuron_id: str
    layer: str
    filter: int
    metric: str = Field(description="what before/after measure, in words")
    before: float
    after: float
    model_units: str = MODEL_UNITS
    predicted_before: list[float] = Field(description=f"full model, {MODEL_UNITS}")
    predicted_after: list[float] = Field(description=f"filter silenced, {MODEL_UNITS}")
    predicted_before_spikes: list[float] | None = Field(
        default=None, description=f"full model, calibrated to {SPIKE_UNITS}"
    )
    predicted_after_spikes: list[float] | None = Field(
        default=None, description=f"filter silenced, same calibration, {SPIKE_UNITS}"
    )
    measured: list[float] = Field(description=f"recorded responses, {SPIKE_UNITS}")
    mean_abs_change: float = Field(description=f"mean |after - before| prediction, {MODEL_UNITS}")


class NeuronResponse(BaseModel):
    """One neuron's response to an uploaded image."""

    neuron_id: str
    session_id: int
    response: float = Field(description=f"model output, {MODEL_UNITS}")
    zscore: float | None = Field(
        default=None,
        description="the output relative to the neuron's outputs for natural photos "
        "(0 typical, 2 unusually strong)",
    )


class PredictResult(BaseModel):
    """Responses of all modelled neurons to one image, sorted from strongest."""

    image_png: str = Field(description="data URL of the 112x112 image the models saw")
    responses: list[NeuronResponse]
    note: str


def _catalogue_fields() -> dict:
    """The catalogue row's fields (:class:`~v4compact.data.catalog.SessionInfo`) as pydantic
    field definitions, so the API restates none of them."""
    hints = typing.get_type_hints(SessionInfo)
    return {f.name: (hints[f.name], ...) for f in dataclasses.fields(SessionInfo)}


SessionSummary = create_model(
    "SessionSummary",
    __doc__="One recording session: the catalogue's row plus what this server has of it.",
    **_catalogue_fields(),
    has_models=(bool, Field(description="its neurons have compact models")),
    has_images=(bool, Field(description="its photos are in the server's data directory")),
    figure_url=(str | None, None),
)


class TutorialSummary(BaseModel):
    """A tutorial notebook."""

    name: str
    title: str
    colab_url: str | None = Field(
        description="'open in Colab' link, or null when the project has no public copy"
    )
    repository_note: str = Field(
        default="", description="why there is no Colab link, when there is none"
    )


class TutorialCell(BaseModel):
    """One notebook cell, reduced to what the page renders."""

    kind: str = Field(description="'markdown' or 'code'")
    source: str
    outputs: list[dict] = []


class Tutorial(TutorialSummary):
    """A tutorial notebook with its cells."""

    cells: list[TutorialCell]


class SynthesisOptions(BaseModel):
    """What the Synthesize page can ask for."""

    objectives: list[str]
    presets: list[str]
    max_steps: int
    default_steps: int
