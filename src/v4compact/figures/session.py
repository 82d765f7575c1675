"""A session at a glance: a grid of its images and the neuron x image response heatmap.

This is the figure of the release's first script. The heatmap shows every neuron's
repeat-averaged responses divided by that neuron's standard deviation over images, with the
colour scale capped at the 95th percentile, so that every neuron's pattern is visible whatever
its firing rate.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ..data.session import Session


def normalized_responses(responses: np.ndarray) -> np.ndarray:
    """Each neuron's responses divided by its s.d. over images.

    Args:
        responses: float ``(neurons, images)``.

    Returns:
        float64 ``(neurons, images)``; a neuron with zero s.d. is left as 0.
    """
    responses = np.asarray(responses, dtype=np.float64)
    sd = responses.std(axis=1, keepdims=True)
    safe = np.where(sd > 0, sd, 1.0)
    return np.where(sd > 0, responses / safe, 0.0)


def image_mosaic(images: np.ndarray, columns: int, gap: int = 2) -> np.ndarray:
    """Tile ``uint8 (n, h, w, 3)`` images into one ``uint8`` picture, white gaps between them."""
    n, h, w, _ = images.shape
    rows = -(-n // columns)
    out = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap, 3), 255, dtype=np.uint8)
    for k in range(n):
        r, c = divmod(k, columns)
        out[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = images[k]
    return out


def plot_session(session: Session, num_images: int = 48, columns: int = 16) -> Figure:
    """Draw the image grid (when the images are present) above the response heatmap.

    Args:
        session: a loaded session (:func:`v4compact.load_session`).
        num_images: images shown in the grid, evenly spaced over the session.
        columns: images per row of the grid.

    Returns:
        A ``matplotlib.figure.Figure`` (not attached to pyplot); save it with ``savefig``.
        When the images are missing, the grid is replaced by a note saying so.
    """
    rows = -(-min(num_images, session.num_images) // columns)
    grid_height = 12.0 * rows / columns  # inches at the figure's 12-inch width
    figure = Figure(figsize=(12, grid_height + 5.5), layout="constrained")
    grid_axes, heat_axes = figure.subplots(2, 1, height_ratios=[grid_height, 5.0])
    info = session.info
    figure.suptitle(
        f"Session {session.session_id}  ({info.animal}, {info.split}):  "
        f"{session.num_neurons} neurons x {session.num_images} images,  "
        f"median {info.median_repeats} repeats",
        fontsize=13,
    )

    grid_axes.set_axis_off()
    if session.has_images:
        count = min(num_images, session.num_images)
        indices = np.unique(np.linspace(0, session.num_images - 1, count).round().astype(int))
        grid_axes.imshow(image_mosaic(np.asarray(session.images[indices]), columns),
                         interpolation="lanczos")
        grid_axes.set_title(
            f"{len(indices)} of {session.num_images} images, evenly spaced "
            f"(image {indices[0]} to {indices[-1]}); types: {info.image_types}",
            fontsize=10,
        )
    else:
        grid_axes.text(
            0.5, 0.5,
            f"Images of session {session.session_id} are not in the data directory\n"
            f"(fetch them with: v4compact data fetch images:{session.session_id})",
            ha="center", va="center", fontsize=12, color="0.3", transform=grid_axes.transAxes,
        )

    heat = normalized_responses(session.responses)
    upper = float(np.percentile(heat, 95))
    lower = min(0.0, float(np.percentile(heat, 5)))
    mesh = heat_axes.imshow(heat, aspect="auto", interpolation="nearest", cmap="magma",
                            vmin=lower, vmax=upper)
    heat_axes.set_xlabel("image index")
    heat_axes.set_ylabel("neuron")
    title = (
        "Repeat-averaged responses, each neuron divided by its s.d. "
        f"(colour limit = 95th percentile, {upper:.2f})"
    )
    if session.split == "test":
        half = session.num_images // 2
        heat_axes.axvline(half - 0.5, color="white", linestyle="--", linewidth=1.2)
        title += f"\ndashed line: fit half (images 0-{half - 1}) | held-out half"
    heat_axes.set_title(title, fontsize=10)
    colorbar = figure.colorbar(mesh, ax=heat_axes, shrink=0.9, pad=0.01)
    colorbar.set_label("response / s.d.")
    return figure
