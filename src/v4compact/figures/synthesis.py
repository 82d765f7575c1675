"""Figures of preferred stimuli: the figure-2a contact sheet and natural-image rankings.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot (no global
state); save it with ``fig.savefig(path)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ..errors import InvalidInputError
from ..models.zoo import Z_SCORED_UNITS

__all__ = ["contact_sheet", "image_grid", "ranking_figure", "synthesis_figure"]


def _grid_axes(fig: Figure, gridspec, n: int, ncols: int):
    rows = math.ceil(n / ncols)
    sub = gridspec.subgridspec(rows, ncols, wspace=0.05, hspace=0.35)
    axes = []
    for i in range(rows * ncols):
        ax = fig.add_subplot(sub[i // ncols, i % ncols])
        ax.set_axis_off()
        axes.append(ax)
    return axes


def image_grid(
    images: np.ndarray,
    titles: Sequence[str] | None = None,
    ncols: int | None = None,
    suptitle: str | None = None,
    cell_inches: float = 1.5,
) -> Figure:
    """A grid of images, each with an optional title.

    Args:
        images: uint8 ``(N, H, W, 3)``.
        titles: one string per image.
        ncols: images per row (default: about square).
        suptitle: figure title.
        cell_inches: size of one cell.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or len(images) == 0:
        raise InvalidInputError(f"image_grid needs images (N, H, W, 3) with N >= 1, got "
                                f"{images.shape}")
    n = len(images)
    ncols = ncols or math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    extra = 0.4 if suptitle else 0.0
    fig = Figure(figsize=(ncols * cell_inches, nrows * (cell_inches + 0.25) + extra))
    gs = fig.add_gridspec(1, 1, left=0.02, right=0.98, bottom=0.02,
                          top=1 - (extra + 0.1) / fig.get_figheight())
    axes = _grid_axes(fig, gs[0], n, ncols)
    for i in range(n):
        axes[i].imshow(images[i], interpolation="nearest")
        if titles is not None:
            axes[i].set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return fig


def contact_sheet(
    images: np.ndarray,
    responses: Sequence[float],
    ncols: int = 3,
    title: str | None = None,
    reference: float | None = None,
) -> Figure:
    """Figure 2a: synthesized images, each titled with the response it elicits.

    Args:
        images: uint8 ``(N, 112, 112, 3)``, e.g. the 9 starts of one neuron.
        responses: the model response to each image, in z-scored units.
        ncols: images per row (figure 2a: 3).
        title: figure title (e.g. the neuron id and preset).
        reference: a reference response (e.g. the max over natural images) named in the
            title for comparison.
    """
    responses = np.asarray(responses, dtype=float)
    if len(responses) != len(images):
        raise InvalidInputError(f"contact_sheet got {len(images)} images but "
                                f"{len(responses)} responses; give one response per image")
    titles = [f"{r:.2f}" for r in responses]
    if reference is not None:
        title = f"{title or ''}  (natural max {reference:.2f})".strip()
    title = f"{title}; responses in {Z_SCORED_UNITS}" if title else f"responses in {Z_SCORED_UNITS}"
    return image_grid(images, titles=titles, ncols=ncols, suptitle=title)


def synthesis_figure(result, neuron=None, ncols: int = 3, reference: float | None = None):
    """Contact sheet of one neuron's images in a :class:`SynthesisResult`.

    Args:
        result: a synthesis result (from ``synthesize``).
        neuron: which target to show (default: the first).
        ncols: images per row.
        reference: natural-image reference response for the title.
    """
    if result.target_ids is None:
        return contact_sheet(result.images, result.scores, ncols=ncols, reference=reference)
    target = result.target_ids[0] if neuron is None else neuron
    keep = [i for i, t in enumerate(result.target_ids) if t == target]
    if not keep:
        raise InvalidInputError(f"the result has no images of neuron {target!r}; choose one "
                                f"of {sorted(set(map(str, result.target_ids)))[:5]}")
    preset = result.provenance.get("preset", {}).get("name", "")
    steps = result.provenance.get("steps", "")
    sign = "min" if result.provenance.get("minimize") else "max"
    title = f"{target} ({preset}, {steps} steps, {sign})"
    return contact_sheet(result.images[keep], result.target_responses[keep], ncols=ncols,
                         title=title, reference=reference)


def ranking_figure(ranking, k: int = 16, ncols: int = 8) -> Figure:
    """Top-k and bottom-k images of a natural-image ranking, each titled with its response.

    With measured responses (a recorded neuron), the top/bottom by measured response are
    shown in a second column of panels, side by side with the model's.

    Args:
        ranking: a :class:`~v4compact.synthesis.natural.Ranking`.
        k: images per panel.
        ncols: images per row within a panel.
    """
    images = ranking.collection.images
    panels = [("predicted: top", ranking.top(k), ranking.predicted),
              ("predicted: bottom", ranking.bottom(k), ranking.predicted)]
    if ranking.measured is not None:
        panels += [("measured: top", ranking.measured_order[:k], ranking.measured),
                   ("measured: bottom", ranking.measured_order[::-1][:k], ranking.measured)]
    ncols = min(ncols, k)
    rows = math.ceil(k / ncols)
    side = 2 if ranking.measured is not None else 1
    cell = 1.1
    width = max(6.0, side * ncols * cell + 0.3 * side)
    height = 2 * rows * (cell + 0.3) + 1.6
    fig = Figure(figsize=(width, height))
    top = 1 - 0.7 / height
    outer = fig.add_gridspec(2, side, left=0.01, right=0.99, bottom=0.01, top=top - 0.35 / height,
                             wspace=0.06, hspace=0.1)
    order = [(0, 0), (1, 0), (0, 1), (1, 1)]
    for (label, idx, values), (r, c) in zip(panels, order, strict=False):
        sub = outer[r, c].subgridspec(2, 1, height_ratios=[0.5, rows * (cell + 0.3)],
                                      hspace=0.0)
        head = fig.add_subplot(sub[0])
        head.set_axis_off()
        head.text(0.0, 1.0, label, fontsize=9, fontweight="bold", va="top")
        axes = _grid_axes(fig, sub[1], len(idx), ncols)
        batch = np.asarray(images[np.asarray(idx)])
        for ax, i, img in zip(axes, idx, batch, strict=False):
            ax.imshow(img, interpolation="nearest")
            ax.set_title(f"{values[i]:.2f}", fontsize=7)
    source = ranking.collection.source
    if not source.startswith("session:"):
        source = Path(source).name
    title = f"{ranking.neuron_id} on {source} ({len(ranking.predicted)} images)"
    if ranking.correlation is not None:
        title += f"; r(predicted, measured) = {ranking.correlation:.2f}"
    fig.suptitle(title, fontsize=10, y=1 - 0.25 / height)
    return fig
