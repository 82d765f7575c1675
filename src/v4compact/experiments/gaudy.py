"""Natural vs gaudy vs grayscale: the same images in three versions, through a model."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ..images import gaudy, grayscale
from ..models.predict import predict
from ..models.zoo import Z_SCORED_UNITS
from ..synthesis.natural import ImageCollection, load_image_collection
from ..synthesis.objectives import resolve_columns
from .table import ExperimentResult, Table

__all__ = ["CONDITIONS", "gaudy_experiment"]

CONDITIONS = ("natural", "gaudy", "grayscale")
MAX_NEURONS_SHOWN = 10


def gaudy_experiment(
    model,
    source,
    neurons=None,
    *,
    indices=None,
    blur_sigma: float = 0.0,
    device=None,
    batch_size: int = 64,
    data_dir=None,
) -> ExperimentResult:
    """Responses to natural images, their gaudy versions and their grayscale versions.

    Gaudy: each colour channel thresholded at its image mean to 0/255 (SYSTEM.md §2-3);
    grayscale: BT.601 luminance in all channels.

    Args:
        model: a compact, shared or population model.
        source: images (``"session:ID"``, a folder, a zip, an array or an ImageCollection).
        neurons: output columns or neuron ids (default: all outputs).
        indices: use only these images of the source (e.g. the held-out half).
        blur_sigma: Gaussian blur (pixels) before the gaudy threshold.
        device: where to run.
        batch_size: images per forward pass.
        data_dir: data directory for sessions.

    Returns:
        An :class:`ExperimentResult`: ``table`` rows ``(image, neuron, natural, gaudy,
        grayscale)``; ``summary`` per neuron: mean response per condition, fraction of images
        where gaudy > natural, response s.d. per condition; a figure (scatter of gaudy and
        grayscale vs natural, and mean responses per condition).
    """
    coll = source if isinstance(source, ImageCollection) else load_image_collection(
        source, data_dir=data_dir)
    idx = np.arange(len(coll)) if indices is None else np.asarray(indices, dtype=int)
    natural = np.asarray(coll.images[idx])
    versions = {"natural": natural, "gaudy": gaudy(natural, blur_sigma=blur_sigma),
                "grayscale": grayscale(natural)}
    ids = list(getattr(model, "neuron_ids", []) or [])
    cols = resolve_columns(model, neurons if neurons is not None
                           else list(range(int(getattr(model, "num_outputs", 1)))))
    names = [ids[c] if ids else c for c in cols]
    resp = {k: predict(model, v, batch_size=batch_size, device=device).reshape(len(v), -1)[:, cols]
            for k, v in versions.items()}
    rows = [{"image": coll.names[i], "index": int(i), "neuron": names[k],
             **{c: float(resp[c][j, k]) for c in CONDITIONS}}
            for k in range(len(cols)) for j, i in enumerate(idx)]
    summary = []
    for k, name in enumerate(names):
        row = {"neuron": name}
        row.update({f"mean_{c}": float(resp[c][:, k].mean()) for c in CONDITIONS})
        row.update({f"sd_{c}": float(resp[c][:, k].std()) for c in CONDITIONS})
        row["frac_gaudy_above_natural"] = float(np.mean(resp["gaudy"][:, k]
                                                        > resp["natural"][:, k]))
        summary.append(row)
    fig = _figure(resp, names, coll.source)
    info = {"source": coll.source, "num_images": len(idx), "blur_sigma": blur_sigma,
            "model_id": getattr(model, "model_id", type(model).__name__)}
    return ExperimentResult(Table(rows, "gaudy"), Table(summary, "summary"), fig,
                            versions["gaudy"][:16], info)


def _figure(resp: dict, names: list, source: str) -> Figure:
    fig = Figure(figsize=(11, 4))
    axes = [fig.add_subplot(1, 3, i + 1) for i in range(3)]
    shown = list(range(min(len(names), MAX_NEURONS_SHOWN)))
    for ax, cond in zip(axes[:2], ("gaudy", "grayscale"), strict=True):
        x = resp["natural"][:, shown].ravel()
        y = resp[cond][:, shown].ravel()
        ax.scatter(x, y, s=4, alpha=0.4)
        lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
        ax.plot([lo, hi], [lo, hi], color="k", lw=0.8)
        ax.set_xlabel(f"response to natural image ({Z_SCORED_UNITS})")
        ax.set_ylabel(f"response to {cond} version ({Z_SCORED_UNITS})")
        ax.set_title(f"{cond} vs natural", fontsize=10)
    means = np.array([[resp[c][:, k].mean() for c in ("natural", "gaudy", "grayscale")]
                      for k in shown])
    width = 0.8 / 3
    pos = np.arange(len(shown))
    for j, cond in enumerate(("natural", "gaudy", "grayscale")):
        axes[2].bar(pos + (j - 1) * width, means[:, j], width, label=cond)
    axes[2].set_xticks(pos)
    axes[2].set_xticklabels([str(names[k]) for k in shown], rotation=45, ha="right",
                            fontsize=7)
    axes[2].set_ylabel(f"mean response ({Z_SCORED_UNITS})")
    axes[2].legend(fontsize=7, frameon=False)
    more = f", first {len(shown)} of {len(names)} neurons" if len(names) > len(shown) else ""
    fig.suptitle(f"natural vs gaudy vs grayscale on {source}{more}", fontsize=10)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.22, top=0.86, wspace=0.3)
    return fig
