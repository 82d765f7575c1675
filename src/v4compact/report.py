"""``v4compact report``: one self-contained HTML page on how this copy of the models performs.

The page holds the per-session summaries (median, IQR, metric named), the figures
(Fig. 1h, Fig. 3d, SNR distributions; embedded as base64 PNG, so the page is one file), the
shared models' mean performance per teacher and filter count, the reasons for everything
skipped, and the data provenance (data directory, package versions, which release files
were present or missing). The per-neuron tables are written next to it as CSV files.
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path

import numpy as np

from .data.catalog import MODEL_SESSIONS
from .errors import InvalidInputError
from .evaluation import (
    METRIC_LABELS,
    EvaluationResult,
    evaluate,
    shared_model_ids,
)
from .models.zoo import ENSEMBLE, SHARED


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _fmt(value) -> str:
    if isinstance(value, float):
        return "" if not np.isfinite(value) else f"{value:.3f}"
    return str(value)


def _summary_rows(result: EvaluationResult) -> list[list]:
    rows = [[r["session"], r["model"], METRIC_LABELS.get(r["metric"], r["metric"]),
             r["num_neurons"], r["median"], f"[{r['q25']:.3f}, {r['q75']:.3f}]"]
            for r in result.summary()]
    rows += [[sid, model, "skipped", "", "", reason] for sid, model, reason in result.skipped]
    return rows


def _metric_names(result: EvaluationResult) -> str:
    return ", ".join(METRIC_LABELS.get(m, m) for m in sorted({s.metric for s in result.scored}))


def _shared_pivot(result: EvaluationResult) -> tuple[list[str], list[list]]:
    cells: dict[tuple[str, int], list[float]] = {}
    metrics = set()
    for s in result.scored:
        fields = SHARED.match(s.model)
        if fields is not None:
            cells.setdefault((fields["teacher"], fields["num_filters"]), []).append(s.value)
            metrics.add(s.metric)
    teachers = list(dict.fromkeys(t for t, _ in cells))
    filters = sorted({f for _, f in cells})
    header = ["teacher \\ F"] + [str(f) for f in filters]
    rows = [[t] + [float(np.nanmean(cells[(t, f)])) if (t, f) in cells else "" for f in filters]
            for t in teachers]
    return header, rows


def _provenance(data_dir, results: dict[str, EvaluationResult], sessions) -> list[list]:
    import datetime
    import platform

    import torch

    from . import __version__
    from .config import data_dir as resolve
    from .config import data_dir_source
    from .data import paths

    root = resolve(data_dir)
    rows = [
        ["data directory", f"{root} (from {data_dir_source(data_dir)})"],
        ["report written", datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")],
        ["versions", f"v4compact {__version__}, torch {torch.__version__}, numpy "
                     f"{np.__version__}, python {platform.python_version()}"],
    ]
    for label, result in results.items():
        prov = result.provenance
        if "results_file" in prov:
            rows.append([f"{label} results", f"read from {prov['results_file']}"])
        else:
            rows.append([f"{label} results", f"computed {prov.get('date', '')}, split "
                         f"{prov.get('split')}, {prov.get('num_boot')} bootstrap resamples, "
                         f"seed {prov.get('seed')}"])
    for sid in sessions:
        for label, rel in (("images", paths.images_zip(sid)),
                           ("single-repeat responses", paths.responses_raw(sid))):
            present = (root / rel).is_file()
            rows.append([f"{sid} {label}", f"{'present' if present else 'MISSING'}: {rel}"])
    members = ENSEMBLE.files(ENSEMBLE.name)
    present = sum((root / rel).is_file() for rel in members)
    rows.append(["ensemble members",
                 f"{present} of {len(members)} present ({paths.ENSEMBLE_DIR}/)"])
    return rows


def _load(value, name: str):
    if value is None or isinstance(value, EvaluationResult):
        return value
    if isinstance(value, (str, os.PathLike)):
        return EvaluationResult.from_csv(value)
    if isinstance(value, (list, tuple)) and value:
        merged = _load(value[0], name)
        for item in value[1:]:
            merged.extend(_load(item, name))
        if all(isinstance(v, (str, os.PathLike)) for v in value):
            merged.provenance["results_file"] = ", ".join(str(v) for v in value)
        return merged
    raise InvalidInputError(
        f"{name} must be an EvaluationResult, a CSV path, a list of those, or None"
    )


_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:0.9em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f0f0f0} td:first-child,th:first-child{text-align:left}
img{max-width:100%} .note{color:#a00} code{background:#f4f4f4;padding:0 3px}
"""


def build_report(
    out_dir: str | os.PathLike,
    *,
    data_dir=None,
    sessions=MODEL_SESSIONS,
    compact=None,
    shared=None,
    teachers=None,
    num_filters=None,
    num_boot: int = 1000,
    seed: int = 0,
    device=None,
    progress: bool = True,
) -> Path:
    """Evaluate the released models (or reuse given results) and write the HTML report.

    Args:
        out_dir: folder to write ``index.html``, ``compact.csv`` and ``shared.csv`` into.
        data_dir: data directory (default: ``$V4COMPACT_DATA``, then the cache).
        sessions: model sessions to evaluate (default: all four; 211022 is reported as
            skipped when its images are missing).
        compact: results of ``evaluate("compact")`` to reuse instead of recomputing: an
            EvaluationResult, the path of its CSV, or a list of those (merged).
        shared: results of the shared models, likewise.
        teachers: teachers of the shared models to evaluate (default: all 7).
        num_filters: filter counts of the shared models to evaluate (default: all 8).
        num_boot: bootstrap resamples for the confidence intervals.
        seed: seed of the bootstrap.
        device: torch device for the models.
        progress: show progress bars.

    Returns:
        The path of ``index.html``.
    """
    from . import __version__
    from .figures.performance import ENSEMBLE_NOTE, fig1h, fig3d, snr_distribution

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sessions = [int(s) for s in sessions]
    kwargs = dict(data_dir=data_dir, num_boot=num_boot, seed=seed, device=device,
                  progress=progress)
    compact = _load(compact, "compact") or evaluate("compact", sessions=sessions, **kwargs)
    shared = _load(shared, "shared") or evaluate(
        shared_model_ids(teachers, num_filters), sessions=sessions, **kwargs)
    compact.to_csv(out / "compact.csv")
    shared.to_csv(out / "shared.csv")
    figures = {
        "Fig. 1h — compact models, held-out performance per neuron": fig1h(compact),
        "Fig. 3d — shared compact models vs number of early filters": fig3d(shared),
        "SNR distribution per session": snr_distribution(data_dir=data_dir),
    }
    metrics = sorted({s.metric for s in compact.scored + shared.scored})
    metric_text = "; ".join(f"<code>{m}</code> = {html.escape(METRIC_LABELS.get(m, m))}"
                            for m in metrics)
    pivot_header, pivot_rows = _shared_pivot(shared)
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>v4compact report</title><style>{_STYLE}</style></head><body>",
        "<h1>v4compact: how this copy of the V4 compact models performs</h1>",
        f"<p>Generated by v4compact {html.escape(__version__)}. Every neuron is scored on "
        "the held-out second half of its test session's images. Metric: r2_ER "
        "(noise-corrected) where single-repeat responses are in the data directory, "
        "otherwise raw R² against the repeat-averaged responses. Metrics used here: "
        f"{metric_text}.</p>",
        "<h2>Compact models: per-session summary</h2>",
        _table(["session", "model", "metric", "neurons", "median", "IQR / reason"],
               _summary_rows(compact)),
        f"<p class='note'>{html.escape(ENSEMBLE_NOTE)}</p>",
        "<h2>Shared compact models: mean over neurons per teacher and filter count</h2>",
        f"<p>Metric: {html.escape(_metric_names(shared))}; sessions "
        f"{', '.join(map(str, sorted({s.session for s in shared.scored})))}.</p>",
        _table(pivot_header, pivot_rows),
        "<h2>Figures</h2>",
    ]
    for title, fig in figures.items():
        parts.append(f"<h3>{html.escape(title)}</h3><img alt='{html.escape(title)}' "
                     f"src='data:image/png;base64,{_png(fig)}'>")
    parts += [
        "<h2>Data provenance</h2>",
        _table(["item", "value"],
               _provenance(data_dir, {"compact": compact, "shared": shared}, sessions)),
        "<h2>Per-neuron results</h2><p>Full tables: <a href='compact.csv'>compact.csv</a>, "
        "<a href='shared.csv'>shared.csv</a> (columns session, neuron, model, metric, value, "
        "ci_low, ci_high, ...).</p><details><summary>compact models</summary>",
        _table(["session", "neuron", "model", "metric", "value", "95% CI"],
               [[s.session, s.neuron, s.model, s.metric, s.value,
                 f"[{_fmt(s.ci_low)}, {_fmt(s.ci_high)}]" if s.metric != "skipped" else s.note]
                for s in compact.scores]),
        "</details></body></html>",
    ]
    path = out / "index.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
