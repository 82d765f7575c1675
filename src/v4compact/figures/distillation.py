"""Distillation runs compared at equal compute: fidelity against student-images and time."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["fidelity_vs_compute"]

_METRICS = (("heldout_raw_r2", "held-out raw R^2 (real responses)"),
            ("teacher_r2", "raw R^2 vs teacher (held-out corpus)"))


def fidelity_vs_compute(runs: Mapping[str, str | os.PathLike], stage: str = "distill"):
    """Held-out raw R^2 (real responses) and raw R^2 against the teacher of every student of
    several runs, against the student-images trained on (left) and the training wall time
    (right). Outputs are in z-scored units; R^2 are raw R^2.

    Args:
        runs: label (e.g. the preset) -> run folder of ``distill`` / ``make-compact``.
        stage: ``"distill"`` or ``"prune"`` (the retraining's log).

    Returns:
        A matplotlib Figure (2 x 2 panels; one colour per run, one line style per neuron).
    """
    import matplotlib.pyplot as plt

    from ..errors import DataNotFoundError
    from ..training.runtime import read_metrics

    figure, axes = plt.subplots(2, 2, figsize=(11, 7.5), squeeze=False)
    styles = ["-", "--", ":", "-."]
    for colour, (label, folder) in enumerate(runs.items()):
        path = Path(folder) / stage / "metrics.csv"
        if not path.is_file():
            raise DataNotFoundError(f"{path} not found; give folders of distillation runs")
        rows = read_metrics(path)
        neurons = list(dict.fromkeys(r["neuron"] for r in rows))
        for k, neuron in enumerate(neurons):
            mine = [r for r in rows if r["neuron"] == neuron]
            for row_axes, (metric, _) in zip(axes, _METRICS, strict=True):
                points = [r for r in mine if r.get(metric) is not None and r[metric] == r[metric]]
                if not points:
                    continue
                for axis, x in zip(row_axes, ("student_images", "train_seconds"), strict=True):
                    xs = [r[x] / (60 if x == "train_seconds" else 1) for r in points
                          if r.get(x) is not None]
                    if len(xs) != len(points):
                        continue
                    axis.plot(xs, [r[metric] for r in points], styles[k % len(styles)],
                              color=f"C{colour}", marker=".", label=f"{label} {neuron}")
    for row_axes, (_, name) in zip(axes, _METRICS, strict=True):
        for axis, xlabel in zip(row_axes, ("student-images trained on",
                                           "training wall time (min)"), strict=True):
            axis.set_xlabel(xlabel)
            axis.set_ylabel(name)
            axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    figure.suptitle("distillation presets at equal compute (outputs in z-scored units)")
    figure.tight_layout()
    return figure
