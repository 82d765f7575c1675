"""Tuning curves: a model's response as a function of one stimulus parameter."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from ..models.predict import predict
from ..models.zoo import Z_SCORED_UNITS
from ..synthesis.objectives import resolve_columns
from .stimuli import make_stimuli
from .table import ExperimentResult, Table

__all__ = ["tuning_curve"]

#: At most this many neurons get a line in the figure (the table has them all).
MAX_LINES = 10


def _is_numeric(values) -> bool:
    return all(np.ndim(v) == 0 and isinstance(v, int | float | np.number) for v in values)


def tuning_curve(
    model,
    kind: str,
    parameter: str,
    values: Sequence,
    neurons=None,
    *,
    device=None,
    batch_size: int = 64,
    **fixed,
) -> ExperimentResult:
    """Response to parametric stimuli as one parameter varies.

    Args:
        model: a compact, shared or population model.
        kind: stimulus generator (``"dot"``, ``"bar"``, ``"grating"``, ``"color_patch"``;
            see :mod:`~v4compact.experiments.stimuli`).
        parameter: the generator argument to vary (e.g. ``"size"``, ``"x"``,
            ``"orientation"``, ``"color"``).
        values: its values (numbers, or RGB triples for colours).
        neurons: output columns or neuron ids (default: all outputs).
        device: where to run (default: the model's device).
        batch_size: images per forward pass.
        **fixed: the generator's other arguments (e.g. ``color=(255, 0, 0)``).

    Returns:
        An :class:`ExperimentResult`: ``table`` rows ``(neuron, parameter value, response)``,
        ``summary`` rows per neuron (preferred value, max and min response, modulation
        depth max-min), a figure of response vs value, and the stimuli.
    """
    values = list(values)
    images = make_stimuli(kind, parameter, values, **fixed)
    ids = list(getattr(model, "neuron_ids", []) or [])
    cols = resolve_columns(model, neurons if neurons is not None
                           else list(range(int(getattr(model, "num_outputs", 1)))))
    out = predict(model, images, batch_size=batch_size,
                  device=device).reshape(len(images), -1)[:, cols]
    names = [ids[c] if ids else c for c in cols]
    label = [v if np.ndim(v) == 0 else "(" + ",".join(f"{float(x):g}" for x in v) + ")"
             for v in values]
    rows = [{"neuron": names[k], "stimulus": kind, "parameter": parameter, "value": label[i],
             "response": float(out[i, k])}
            for k in range(len(cols)) for i in range(len(values))]
    summary = []
    for k, name in enumerate(names):
        r = out[:, k]
        summary.append({"neuron": name, "preferred_value": label[int(np.argmax(r))],
                        "max_response": float(r.max()), "min_response": float(r.min()),
                        "modulation": float(r.max() - r.min())})
    fig = _figure(kind, parameter, values, label, names, out, images)
    info = {"stimulus": kind, "parameter": parameter, "values": label, "fixed": fixed,
            "model_id": getattr(model, "model_id", type(model).__name__)}
    return ExperimentResult(Table(rows, f"tuning_{kind}_{parameter}"),
                            Table(summary, "summary"), fig, images, info)


def _figure(kind, parameter, values, label, names, out, images) -> Figure:
    numeric = _is_numeric(values)
    n = len(values)
    thumbs = min(n, 12)
    fig = Figure(figsize=(max(6.0, 0.6 * thumbs), 5.2))
    gs = fig.add_gridspec(2, thumbs, height_ratios=[4, 1], hspace=0.35, left=0.12,
                          right=0.97, top=0.92, bottom=0.04)
    ax = fig.add_subplot(gs[0, :])
    x = np.asarray(values, dtype=float) if numeric else np.arange(n)
    for k, name in enumerate(names[:MAX_LINES]):
        ax.plot(x, out[:, k], marker="o", ms=3, lw=1.2, label=str(name))
    if not numeric:
        ax.set_xticks(x)
        ax.set_xticklabels(label, rotation=45, ha="right", fontsize=7)
    ax.set_xlabel(parameter)
    ax.set_ylabel(f"model response ({Z_SCORED_UNITS})")
    extra = f" (first {MAX_LINES} of {len(names)} neurons)" if len(names) > MAX_LINES else ""
    ax.set_title(f"{kind}: response vs {parameter}{extra}", fontsize=10)
    if len(names) <= MAX_LINES:
        ax.legend(fontsize=7, frameon=False)
    picks = np.linspace(0, n - 1, thumbs).round().astype(int)
    for j, i in enumerate(picks):
        thumb = fig.add_subplot(gs[1, j])
        thumb.imshow(images[i], interpolation="nearest")
        thumb.set_axis_off()
        thumb.set_title(str(label[i]), fontsize=6)
    return fig
