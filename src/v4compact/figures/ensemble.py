"""Fig. 1b of the paper (SYSTEM.md §12): :func:`fig1b`.

Held-out performance per neuron of a task-driven backbone + ridge against the ensemble
model, on the test sessions. Returns a ``matplotlib.figure.Figure`` not attached to pyplot;
the metric, the backbone and the ensemble's origin are written on the figure. (A training
run's curves: :func:`v4compact.training.ensemble.run_curves_figure`.)
"""

from __future__ import annotations

from textwrap import fill

import numpy as np
from matplotlib.figure import Figure

from ..evaluation.result import METRIC_LABELS, EvaluationResult

#: One colour per test session, in the order the sessions first appear.
SESSION_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")


def _as_result(result) -> EvaluationResult:
    return result if isinstance(result, EvaluationResult) else EvaluationResult.from_csv(result)


def fig1b(backbone_result, ensemble_result, backbone_label: str, ensemble_label: str) -> Figure:
    """Task-driven backbone + ridge versus the ensemble model, per neuron.

    Args:
        backbone_result: an :class:`~v4compact.evaluation.EvaluationResult` (or its CSV) of
            the backbone's features mapped by ridge on the fitting half, e.g.
            ``evaluate(backbone_predictor(load_backbone("resnet50", pool_to=7)), ...)``.
        ensemble_result: the ensemble's result on the same neurons (one ridge per member on
            the fitting half, predictions averaged).
        backbone_label: what the backbone is, written on the figure (e.g.
            ``"resnet50 conv4_block4_out, pooled to 7x7"``).
        ensemble_label: what the ensemble is (e.g. the released members, or a training run).

    Returns:
        A ``Figure``: one point per neuron scored by both (x: backbone, y: ensemble), one
        colour per session, the diagonal, and each session's medians in the legend.
    """
    backbone = {s.neuron_id: s for s in _as_result(backbone_result).scored}
    ensemble = {s.neuron_id: s for s in _as_result(ensemble_result).scored}
    shared = [n for n in backbone if n in ensemble and backbone[n].metric == ensemble[n].metric]
    fig = Figure(figsize=(7.5, 6.8), layout="constrained")
    ax = fig.subplots()
    sessions = list(dict.fromkeys(backbone[n].session for n in shared))
    metrics = sorted({backbone[n].metric for n in shared})
    for colour, sid in zip(SESSION_COLOURS * 2, sessions, strict=False):
        ids = [n for n in shared if backbone[n].session == sid]
        x = np.array([backbone[n].value for n in ids])
        y = np.array([ensemble[n].value for n in ids])
        label = (f"{sid} ({len(ids)} neurons, {METRIC_LABELS[backbone[ids[0]].metric]}): "
                 f"median {np.median(x):.2f} -> {np.median(y):.2f}")
        ax.scatter(x, y, s=14, alpha=0.7, color=colour, edgecolor="none", label=label)
    if shared:
        values = np.array([[backbone[n].value, ensemble[n].value] for n in shared])
        low, high = min(0.0, float(values.min())), max(1.0, float(values.max()))
        ax.plot([low, high], [low, high], "k--", lw=1)
        ax.legend(fontsize=7, loc="upper left", title="session: median backbone -> ensemble",
                  title_fontsize=7)
    else:
        ax.text(0.5, 0.5, "no neuron scored by both models", ha="center",
                transform=ax.transAxes)
    metric_text = " / ".join(METRIC_LABELS[m] for m in metrics) or "held-out score"
    ax.set_xlabel(fill(f"task-driven backbone + ridge: {backbone_label}; held-out "
                       f"{metric_text}", 80), fontsize=8)
    ax.set_ylabel(fill(f"{ensemble_label}; held-out {metric_text}", 80), fontsize=8)
    ax.set_aspect("equal", adjustable="datalim")
    ax.grid(alpha=0.3)
    fig.suptitle("Fig. 1b: task-driven DNN vs ensemble model, per neuron\n(ridge fitted on "
                 "the first half of each session, scored on the second)", fontsize=9)
    return fig

