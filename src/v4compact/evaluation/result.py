"""The result of an evaluation: one row per neuron, a tidy CSV, per-session summaries."""

from __future__ import annotations

import csv
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from ..errors import DataNotFoundError, InvalidInputError

#: Column order of the CSV written by :meth:`EvaluationResult.to_csv`.
CSV_COLUMNS = (
    "session", "neuron", "model", "metric", "value", "ci_low", "ci_high",
    "split", "num_images", "mapping", "note",
)
#: Human-readable names of the metrics, for tables and figure labels.
METRIC_LABELS = {
    "r2_er": "noise-corrected R² (r2_ER)",
    "raw_r2": "raw R² vs repeat-averaged responses",
    "split_half_r2": "split-half corrected R²",
    "skipped": "not scored",
}


@dataclass(frozen=True)
class NeuronScore:
    """One neuron scored (or skipped) for one model.

    Attributes:
        session: session id, e.g. 201025 (``"mylab:s01"`` for an imported session).
        neuron: neuron index within the session (row of the response arrays).
        model: model id (e.g. ``compact/201025/10``) or the user model's name.
        metric: ``"r2_er"``, ``"raw_r2"``, ``"split_half_r2"``, or ``"skipped"``.
        value: the metric on the evaluated images (NaN when skipped).
        ci_low: lower bound of the bootstrap confidence interval over images.
        ci_high: upper bound.
        split: ``"heldout"``, ``"fit"`` or ``"all"``.
        num_images: number of images scored.
        mapping: ``"direct"`` (model output is the neuron) or ``"ridge"``.
        note: why a neuron was skipped (empty otherwise).
    """

    session: int | str
    neuron: int
    model: str
    metric: str
    value: float
    ci_low: float = math.nan
    ci_high: float = math.nan
    split: str = "heldout"
    num_images: int = 0
    mapping: str = "direct"
    note: str = ""

    @property
    def neuron_id(self) -> str:
        """``"session/neuron"``."""
        return f"{self.session}/{self.neuron}"


def model_group(model: str) -> str:
    """Family used in summaries: every ``compact/<session>/<k>`` model counts as ``compact``."""
    return "compact" if model.startswith("compact/") else model


@dataclass
class EvaluationResult:
    """Scores of one or more models on the V4 recordings.

    Attributes:
        scores: one :class:`NeuronScore` per (model, neuron), skipped neurons included.
        provenance: where the numbers come from (data directory, versions, missing files).
    """

    scores: list[NeuronScore] = field(default_factory=list)
    provenance: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def scored(self) -> list[NeuronScore]:
        """The rows that carry a value (skipped neurons left out)."""
        return [s for s in self.scores if s.metric != "skipped"]

    @property
    def skipped(self) -> list[tuple[int, str, str]]:
        """Distinct ``(session, model group, reason)`` of everything not scored."""
        seen = {}
        for s in self.scores:
            if s.metric == "skipped":
                seen.setdefault((s.session, model_group(s.model), s.note), None)
        return list(seen)

    @property
    def models(self) -> list[str]:
        """Model ids in first-seen order."""
        return list(dict.fromkeys(s.model for s in self.scores))

    @property
    def sessions(self) -> list[int]:
        """Session ids in first-seen order."""
        return list(dict.fromkeys(s.session for s in self.scores))

    def values(self, model: str | None = None, session: int | str | None = None,
               metric: str | None = None) -> np.ndarray:
        """Scored values, float64 ``(rows,)``, optionally filtered (``model="compact"`` works)."""
        rows = [
            s for s in self.scored
            if (model is None or s.model == model or model_group(s.model) == model)
            and (session is None or str(s.session) == str(session))
            and (metric is None or s.metric == metric)
        ]
        return np.array([s.value for s in rows], dtype=np.float64)

    def summary(self) -> list[dict]:
        """Per (session, model group, metric): neurons, median, 25th and 75th percentiles.

        Returns:
            A list of dicts with keys ``session, model, metric, num_neurons, median, q25,
            q75``, in first-seen order.
        """
        groups: dict[tuple, list[float]] = {}
        for s in self.scored:
            groups.setdefault((s.session, model_group(s.model), s.metric), []).append(s.value)
        out = []
        for (session, model, metric), vals in groups.items():
            arr = np.asarray(vals, dtype=np.float64)
            arr = arr[np.isfinite(arr)]
            q25, med, q75 = np.percentile(arr, [25, 50, 75]) if arr.size else (np.nan,) * 3
            out.append(dict(session=session, model=model, metric=metric, num_neurons=len(vals),
                            median=float(med), q25=float(q25), q75=float(q75)))
        return out

    def format_summary(self) -> str:
        """The per-session summary as an aligned text table, skipped sessions listed below."""
        lines = [f"{'session':>8}  {'model':<40} {'metric':<14} {'neurons':>7} "
                 f"{'median':>7} {'IQR':>17}"]
        for row in self.summary():
            lines.append(
                f"{row['session']:>8}  {row['model']:<40} {row['metric']:<14} "
                f"{row['num_neurons']:>7} {row['median']:>7.3f} "
                f"[{row['q25']:>6.3f}, {row['q75']:>6.3f}]"
            )
        for session, model, reason in self.skipped:
            lines.append(f"{session:>8}  {model:<40} skipped: {reason}")
        return "\n".join(lines)

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write the tidy table, one row per (model, neuron), columns :data:`CSV_COLUMNS`."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
            writer.writeheader()
            for s in self.scores:
                row = asdict(s)
                for key in ("value", "ci_low", "ci_high"):
                    row[key] = "" if not math.isfinite(row[key]) else f"{row[key]:.6g}"
                writer.writerow(row)
        return path

    @classmethod
    def from_csv(cls, path: str | os.PathLike) -> EvaluationResult:
        """Read a table written by :meth:`to_csv` (provenance is not stored in the CSV)."""
        path = Path(path)
        if not path.is_file():
            raise DataNotFoundError(f"results file {path} not found; write it with "
                                    "'v4compact evaluate ... --out FILE'")
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            missing = set(CSV_COLUMNS) - set(reader.fieldnames or ())
            if missing:
                raise InvalidInputError(
                    f"{path} lacks columns {sorted(missing)}; it was not written by v4compact"
                )
            types = {f.name: f.type for f in fields(NeuronScore)}
            scores = []
            for row in reader:
                kwargs = {}
                for key in CSV_COLUMNS:
                    raw = row[key]
                    if key == "session":  # a release id (digits) or "dataset:session"
                        kwargs[key] = int(raw) if raw.isdigit() else raw
                    elif types[key] in ("int", int):
                        kwargs[key] = int(raw)
                    elif types[key] in ("float", float):
                        kwargs[key] = float(raw) if raw != "" else math.nan
                    else:
                        kwargs[key] = raw
                scores.append(NeuronScore(**kwargs))
        return cls(scores=scores, provenance={"results_file": str(path)})

    def extend(self, other: EvaluationResult) -> EvaluationResult:
        """Append another result's rows (provenance of ``self`` kept); returns self."""
        self.scores.extend(other.scores)
        return self
