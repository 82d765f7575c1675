"""Made models: what a ``make-compact`` run folder holds, read back as records.

A run of :func:`~v4compact.training.recipe.make_compact` leaves ``RUN/report.json`` (one row
per neuron: filters, fidelity, held-out raw R^2 of student, teacher and released model) and
``RUN/models/*.keras`` (each with its provenance inside). :func:`read_made_run` turns one
folder into :class:`MadeModel` records and :func:`find_made_models` several folders into one
index keyed by neuron id, which the explorer (``v4compact serve --made RUN``) shows beside the
release's 219 neurons.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..data.datasets import RELEASE_DATASET, split_neuron_ref
from ..errors import InvalidInputError

__all__ = ["MadeModel", "find_made_models", "read_made_run"]

#: Report columns copied onto a record: held-out raw R^2 on the real responses (z-scored
#: model outputs against repeat-averaged responses) and fidelity to the teacher.
SCORE_KEYS = ("heldout_raw_r2_step2", "teacher_heldout_raw_r2", "released_heldout_raw_r2",
              "teacher_r2_distilled", "teacher_r2_step2")


@dataclass(frozen=True)
class MadeModel:
    """One compact model made by ``make-compact``.

    Attributes:
        neuron_id: the neuron it predicts (``"mylab:s01/7"``, or ``"201025/10"`` for a
            release neuron made again).
        session_id: its session (``"mylab:s01"`` or ``"201025"``).
        neuron: the row of the neuron in its session's responses, 0-based.
        dataset: the dataset name (``"cowley2023"`` for the release).
        model_path: the ``.keras`` file (outputs in z-scored units).
        run_dir: the run folder it came from.
        num_filters: filters per layer after pruning (5 ints).
        filters_before: filters per layer before pruning.
        released_filters: the released model's ``nums_filters`` (release neurons only).
        num_parameters: parameters after pruning.
        scores: :data:`SCORE_KEYS` that the report holds: held-out raw R^2 of the student
            (``heldout_raw_r2_step2``), its teacher and the released model, fidelity to the
            teacher (raw R^2 on held-out corpus images) after distillation and retraining.
        provenance: teacher, preset, corpus (images, shards), pruning settings, the seed of
            the student and the v4compact version that made it.
    """

    neuron_id: str
    session_id: str
    neuron: int
    dataset: str
    model_path: Path
    run_dir: Path
    num_filters: list[int]
    filters_before: list[int] = field(default_factory=list)
    released_filters: list[int] | None = None
    num_parameters: int | None = None
    scores: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)


def _split(neuron_id: str, report: Path) -> tuple[str, str, int]:
    """``(dataset, session_id, neuron)`` of a report's neuron id."""
    try:
        user = split_neuron_ref(neuron_id)
        if user is not None:
            session_id, index = user
            return session_id.partition(":")[0], session_id, index
        session, _, index = str(neuron_id).partition("/")
        return RELEASE_DATASET, str(int(session)), int(index)
    except (InvalidInputError, ValueError) as error:
        raise InvalidInputError(f"{report} names neuron {neuron_id!r}, which is not a neuron "
                                f"id ({error}); make the models again") from None


def read_made_run(run_dir: str | os.PathLike) -> list[MadeModel]:
    """The made models of one ``make-compact`` run folder, in the report's order.

    Args:
        run_dir: the folder given to ``make-compact --out``.

    Returns:
        One :class:`MadeModel` per row of ``run_dir/report.json``.

    Raises:
        InvalidInputError: the folder has no report (the run has not finished), the report
            is not JSON, or a model file it names is missing.
    """
    run_dir = Path(run_dir).expanduser().resolve()
    report_path = run_dir / "report.json"
    if not report_path.is_file():
        what = "does not exist" if not run_dir.is_dir() else "has no report.json"
        raise InvalidInputError(f"made-models folder {run_dir} {what}; give the --out folder "
                                "of a finished 'v4compact make-compact' run")
    try:
        report = json.loads(report_path.read_text())
        rows = report["neurons"]
    except (ValueError, KeyError, TypeError) as error:
        raise InvalidInputError(f"{report_path} is not a make-compact report ({error}); "
                                "run make-compact again") from None
    run = _run_settings(run_dir)
    made = []
    for row in rows:
        dataset, session_id, index = _split(row["neuron"], report_path)
        path = run_dir / row["model_file"]
        if not path.is_file():
            raise InvalidInputError(f"{report_path} names {path}, which is missing; copy the "
                                    "whole run folder, or run make-compact again")
        made.append(MadeModel(
            neuron_id=row["neuron"], session_id=session_id, neuron=index, dataset=dataset,
            model_path=path, run_dir=run_dir,
            num_filters=[int(n) for n in row["filters_after"]],
            filters_before=[int(n) for n in row.get("filters_before") or []],
            released_filters=row.get("released_filters"),
            num_parameters=row.get("parameters_after"),
            scores={k: row[k] for k in SCORE_KEYS if row.get(k) is not None},
            provenance=_provenance(report, run, run_dir),
        ))
    return made


def _run_settings(run_dir: Path) -> dict:
    """The run's ``run.json`` (settings, corpus), or ``{}`` when it is absent or unreadable."""
    try:
        return json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        return {}


def _provenance(report: dict, run: dict, run_dir: Path) -> dict:
    """What made the models of a run: teacher, corpus, preset, pruning."""
    config = run.get("config") or {}
    corpus = run.get("corpus") or {}
    return {
        "teacher": report.get("teacher"),
        "units": report.get("units"),
        "preset": config.get("preset"),
        "passes": config.get("passes"),
        "student_width": config.get("num_filters"),
        "corpus_images": corpus.get("images"),
        "corpus_shards": [Path(s["path"]).name for s in corpus.get("shards") or []],
        "pruning": {"threshold": report.get("threshold"),
                    "convention": report.get("convention")},
        "run": run_dir.name,
    }


def find_made_models(run_dirs: Iterable[str | os.PathLike]) -> dict[str, MadeModel]:
    """The made models of several run folders, keyed by neuron id.

    Raises:
        InvalidInputError: a folder is not a finished run (see :func:`read_made_run`), or two
            folders hold a model of the same neuron (the explorer shows one per neuron).
    """
    found: dict[str, MadeModel] = {}
    for run_dir in run_dirs:
        for model in read_made_run(run_dir):
            if model.neuron_id in found:
                raise InvalidInputError(
                    f"neuron {model.neuron_id} was made in both {found[model.neuron_id].run_dir} "
                    f"and {model.run_dir}; give only one of the two runs")
            found[model.neuron_id] = model
    return found
