"""Performance figures of the paper, drawn from evaluation results (SYSTEM.md §12).

- :func:`fig1h` — held-out performance of every compact model, per session (with the
  ensemble model's values for comparison when they are given);
- :func:`fig3d` — shared compact models: performance against the number of early filters,
  one curve per teacher, mean ± s.e.m. over neurons;
- :func:`snr_distribution` — the unbiased SNR of every neuron, per session.

Each function returns a ``matplotlib.figure.Figure`` that is not attached to pyplot (no
global state); save it with ``fig.savefig(path)``. The metric of every number is named on
the axes, and what is missing from the data copy is written on the figure.
"""

from __future__ import annotations

import os
from textwrap import fill

import numpy as np
from matplotlib.figure import Figure

from ..evaluation.result import METRIC_LABELS, EvaluationResult
from ..models.zoo import SHARED, SHARED_TEACHERS

#: Fig. 3d colours, one per teacher, in the zoo's teacher order (SYSTEM.md §5).
TEACHER_COLOURS = dict(zip(SHARED_TEACHERS, ("tab:blue", "tab:cyan", "tab:gray", "tab:orange",
                                             "tab:red", "tab:green", "tab:purple"), strict=True))
ENSEMBLE_NOTE = (
    "Ensemble-model values not available: the 25 trained ensemble members "
    "(data_ensemble_model/ensemble_model_member<k>.keras) are not in this data copy, "
    "so only the compact models are shown."
)


def _metric_label(metrics) -> str:
    metrics = sorted(set(metrics))
    return " / ".join(METRIC_LABELS.get(m, m) for m in metrics) or "no scored neurons"


def _as_result(result) -> EvaluationResult:
    if isinstance(result, EvaluationResult):
        return result
    return EvaluationResult.from_csv(result)


def fig1h(result, ensemble=None, ensemble_label: str = "ensemble model") -> Figure:
    """Held-out performance of the compact models, one column of neurons per session.

    Args:
        result: an :class:`~v4compact.evaluation.EvaluationResult` (or the path of its CSV)
            of the compact models, e.g. ``evaluate("compact")``. Skipped sessions are shown
            with their reason.
        ensemble: optional result of the ensemble model on the same neurons. When given,
            a second panel plots compact against ensemble per neuron (the paper's Fig. 1h);
            when not, the figure says that the ensemble values are not available.
        ensemble_label: what the ensemble is, written on the figure (e.g. a training run
            drawn because the released members are absent).

    Returns:
        A ``Figure``.
    """
    result = _as_result(result)
    compact = [s for s in result.scores if s.model.startswith("compact/")]
    sessions = list(dict.fromkeys(s.session for s in compact))
    fig = Figure(figsize=(11 if ensemble is not None else 8, 5), layout="constrained")
    axes = fig.subplots(1, 2 if ensemble is not None else 1, squeeze=False)[0]
    ax = axes[0]
    rng = np.random.default_rng(0)  # jitter only
    metrics = set()
    for x, sid in enumerate(sessions):
        rows = [s for s in compact if s.session == sid]
        scored = [s for s in rows if s.metric != "skipped"]
        if not scored:
            ax.text(x, 0.5, f"skipped\n({len(rows)} neurons):\nimages not in\nthe data copy",
                    ha="center", va="center", fontsize=8, color="tab:red",
                    transform=ax.get_xaxis_transform())
            continue
        values = np.array([s.value for s in scored])
        metrics.update(s.metric for s in scored)
        ax.scatter(x + rng.uniform(-0.18, 0.18, len(values)), values, s=12, alpha=0.6,
                   color="tab:blue", edgecolor="none")
        median = float(np.nanmedian(values))
        ax.hlines(median, x - 0.3, x + 0.3, color="k", lw=2)
        ax.text(x + 0.32, median, f"{median:.2f}", va="center", fontsize=8)
    ax.set_xticks(range(len(sessions)),
                  [f"{sid}\n(n={sum(s.session == sid for s in compact)})" for sid in sessions])
    ax.set_xlim(-0.6, len(sessions) - 0.3)
    ax.set_xlabel("test session")
    ax.set_ylabel(f"held-out {_metric_label(metrics)}")
    ax.set_title("Compact models, per neuron (bar: median)")
    ax.grid(axis="y", alpha=0.3)
    if ensemble is None:
        fig.text(0.5, -0.02, ENSEMBLE_NOTE, ha="center", va="top", fontsize=8, wrap=True,
                 color="tab:red")
    else:
        ensemble = _as_result(ensemble)
        ens = {s.neuron_id: s.value for s in ensemble.scored}
        pairs = [(ens[s.neuron_id], s.value) for s in compact
                 if s.metric != "skipped" and s.neuron_id in ens]
        ax2 = axes[1]
        if pairs:
            e, c = np.array(pairs).T
            ax2.scatter(e, c, s=12, alpha=0.6)
            top = float(np.nanmax([e.max(), c.max(), 1.0]))
            ax2.plot([0, top], [0, top], "k--", lw=1)
        ax2.set_xlabel(fill(f"{ensemble_label}; "
                            f"{_metric_label(s.metric for s in ensemble.scored)}", 70),
                       fontsize=8)
        ax2.set_ylabel("compact model")
        ax2.set_title(f"Compact vs ensemble ({len(pairs)} neurons)")
    fig.suptitle("Fig. 1h: held-out performance of the compact models")
    return fig


def fig3d(result) -> Figure:
    """Shared compact models: performance against the number of early filters, per teacher.

    Args:
        result: an :class:`~v4compact.evaluation.EvaluationResult` (or its CSV path) with
            rows of ``shared/<teacher>/<F>`` models, e.g. ``evaluate("shared")``.

    Returns:
        A ``Figure``: x = filters in layers 0-2 (log scale), y = mean ± s.e.m. over the
        scored neurons (all sessions pooled), one curve per teacher.
    """
    result = _as_result(result)
    table: dict[str, dict[int, np.ndarray]] = {}
    metrics = set()
    sessions = set()
    for s in result.scored:
        fields = SHARED.match(s.model)
        if fields is None:
            continue
        table.setdefault(fields["teacher"], {}).setdefault(fields["num_filters"], []).append(
            s.value)
        metrics.add(s.metric)
        sessions.add(s.session)
    fig = Figure(figsize=(9.5, 5.5), layout="constrained")
    ax = fig.subplots()
    order = [t for t in TEACHER_COLOURS if t in table]
    for teacher in order:
        filters = sorted(table[teacher])
        means, sems = [], []
        for f in filters:
            vals = np.asarray(table[teacher][f], dtype=np.float64)
            vals = vals[np.isfinite(vals)]
            means.append(vals.mean())
            sems.append(vals.std(ddof=1) / np.sqrt(len(vals)) if len(vals) > 1 else 0.0)
        ax.errorbar(filters, means, yerr=sems, marker="o", ms=4, capsize=3,
                    color=TEACHER_COLOURS.get(teacher), label=teacher)
    if not table:
        ax.text(0.5, 0.5, "no shared-model results", ha="center", transform=ax.transAxes)
    ax.set_xscale("log")
    ticks = sorted({f for t in table.values() for f in t})
    if ticks:
        ax.set_xticks(ticks, [str(f) for f in ticks])
        ax.minorticks_off()
    ax.set_xlabel("number of filters in layers 0-2 (F)")
    ax.set_ylabel(f"held-out {_metric_label(metrics)}\n(mean ± s.e.m. over neurons)")
    if table:
        ax.legend(title="teacher", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3)
    counts = {len(v) for t in table.values() for v in t.values()}
    ax.set_title(
        f"Fig. 3d: shared compact models; sessions {', '.join(map(str, sorted(sessions)))}"
        + (f", {max(counts)} neurons" if counts else "")
    )
    return fig


def snr_values(sessions=None, data_dir: str | os.PathLike | None = None):
    """Unbiased SNR per neuron of every session whose single-repeat responses are present.

    Args:
        sessions: session ids (default: all 50).
        data_dir: data directory.

    Returns:
        ``(values, missing)``: ``{session: float64 (neurons,)}`` and the sorted ids of the
        requested sessions without single-repeat responses in the data directory.
    """
    from ..data.catalog import list_sessions
    from ..data.session import load_session
    from ..metrics import snr

    ids = [s.session_id for s in list_sessions()] if sessions is None else [int(s) for s in
                                                                           sessions]
    values, missing = {}, []
    for sid in ids:
        session = load_session(sid, data_dir=data_dir)
        if session.has_raw_responses:
            values[sid] = snr(session.raw_responses)
        else:
            missing.append(sid)
    return values, sorted(missing)


def snr_distribution(sessions=None, data_dir: str | os.PathLike | None = None,
                     threshold: float = 0.15) -> Figure:
    """Histogram of the unbiased SNR (SYSTEM.md §2) of every neuron, one panel per session.

    Args:
        sessions: session ids (default: all 50; those without single-repeat responses are
            listed on the figure instead of drawn).
        data_dir: data directory.
        threshold: inclusion threshold drawn as a dashed line (0.15).

    Returns:
        A ``Figure``.
    """
    from ..data.catalog import MODEL_SESSIONS

    values, missing = snr_values(sessions, data_dir)
    panels = max(len(values), 1)
    fig = Figure(figsize=(4.2 * panels, 4.2), layout="constrained")
    axes = fig.subplots(1, panels, squeeze=False)[0]
    for ax, (sid, vals) in zip(axes, values.items(), strict=False):
        finite = vals[np.isfinite(vals)]
        ax.hist(finite, bins=20, color="tab:blue", alpha=0.8)
        ax.axvline(threshold, color="k", ls="--", lw=1)
        ax.set_xlim(left=min(0.0, float(finite.min())) if finite.size else 0.0)
        above = np.mean(finite >= threshold) if finite.size else np.nan
        ax.set_title(f"session {sid}: {len(vals)} neurons\nmedian {np.median(finite):.2f}, "
                     f"{above:.0%} >= {threshold:g}")
        ax.set_xlabel("unbiased SNR (signal var / trial noise var)")
        ax.set_ylabel("neurons")
    if not values:
        axes[0].text(0.5, 0.5, "no session with single-repeat responses", ha="center",
                     transform=axes[0].transAxes)
    if missing:
        tests = [s for s in missing if s in MODEL_SESSIONS]
        note = (f"SNR needs single-repeat responses, which this data copy lacks for "
                f"{len(missing)} session(s)")
        if tests:
            note += f", including the model sessions {', '.join(map(str, tests))}"
        fig.text(0.5, -0.02, note + ".", ha="center", va="top", fontsize=8, color="tab:red",
                 wrap=True)
    fig.suptitle("SNR distribution per session")
    return fig
