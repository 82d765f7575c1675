"""Pydantic models of the explorer's JSON API (what each route returns)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Health(BaseModel):
    """Server status."""

    status: str = "ok"
    version: str
    data_dir: str
    cache_dir: str
    neurons_built: int = Field(description="neurons with precomputed assets in the cache")
    jobs: dict[str, int]


class HeldOut(BaseModel):
    """Held-out performance of a neuron's compact model."""

    metric: str = Field(description="metric name, e.g. 'raw R^2'")
    value: float
    num_images: int
    note: str = ""


class PreferredImage(BaseModel):
    """One synthesized preferred image."""

    seed: int
    response: float = Field(description="model response (output units) to the image")
    url: str


class NeuronCard(BaseModel):
    """A gallery card."""

    neuron_id: str = Field(description="'session/index', e.g. '201025/10'")
    session_id: int
    neuron: int
    animal: str
    num_filters: list[int] | None = None
    total_filters: int | None = None
    heldout: HeldOut | None = None
    preferred_url: str | None = None
    built: bool = False


class NeuronDetail(NeuronCard):
    """Everything the neuron page shows that comes from the asset cache."""

    preferred: list[PreferredImage] = []
    heldout_points: dict[str, list[float] | list[int]] | None = None
    natural: dict[str, list[dict]] | None = None
    settings: dict | None = None
    build_hint: str = ""


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
    """The effect of silencing one filter on held-out predictions."""

    neuron_id: str
    layer: str
    filter: int
    metric: str
    before: float
    after: float
    predicted_before: list[float]
    predicted_after: list[float]
    measured: list[float]
    mean_abs_change: float


class NeuronResponse(BaseModel):
    """One neuron's response to an uploaded image."""

    neuron_id: str
    session_id: int
    response: float
    zscore: float | None = None


class PredictResult(BaseModel):
    """Responses of all modelled neurons to one image, sorted from strongest."""

    image_png: str = Field(description="data URL of the 112x112 image the models saw")
    responses: list[NeuronResponse]
    note: str


class SessionSummary(BaseModel):
    """One recording session."""

    session_id: int
    animal: str
    split: str
    num_neurons: int
    num_images: int
    median_repeats: int
    image_types: str
    has_models: bool
    has_images: bool
    figure_url: str | None = None


class TutorialSummary(BaseModel):
    """A tutorial notebook."""

    name: str
    title: str
    colab_url: str


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
