"""Score models on held-out V4 responses: :func:`evaluate`.

Protocol (SYSTEM.md §2, §8): in a test session the first half of the images (file order)
fits any mapping and the second half is held out. Each neuron is scored with r2_ER when
the session's single-repeat responses are in the data directory, and otherwise with the
raw R^2 against the repeat-averaged responses; the metric is named in every row.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import os
import platform
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from ..data.catalog import MODEL_SESSIONS, session_sort_key
from ..errors import DataNotFoundError, InvalidInputError
from ..metrics import bootstrap_ci, r2_er, raw_r2, split_half_r2
from ..models.zoo import (
    COMPACT,
    FILE,
    SHARED,
    model_neuron_ids,
    parse_model_id,
    session_neuron_ids,
    split_neuron_id,
)
from .predictors import Predictor, ensemble_predictor, onnx_predictor, torch_predictor
from .result import EvaluationResult, NeuronScore

SPLITS = ("heldout", "fit", "all")
METRICS = ("auto", "r2_er", "raw_r2", "split_half_r2")
MAPPINGS = ("auto", "direct", "ridge")
_METRIC_FNS = {"r2_er": r2_er, "raw_r2": raw_r2, "split_half_r2": split_half_r2}


def shared_model_ids(teachers=None, num_filters=None) -> list[str]:
    """Ids ``shared/<teacher>/<F>`` of the shared compact models (all 56 by default).

    Raises:
        UnknownModelError: a teacher or filter count that was not released.
    """
    return SHARED.ids(teachers, num_filters)


def compact_model_ids(sessions=None) -> list[str]:
    """Ids ``compact/<session>/<k>`` of every compact model of the given sessions.

    Raises:
        UnknownSessionError: a session without compact models.
    """
    if sessions is None:
        return COMPACT.ids()
    return [f"{COMPACT.name}/{nid}" for sid in _session_list(sessions)
            for nid in session_neuron_ids(sid)]


def _session_list(sessions) -> list[int | str]:
    """Canonical ids of release (``190923``) and imported (``"mylab:s01"``) sessions."""
    from ..data.catalog import parse_session_id

    if isinstance(sessions, (int, np.integer, str)):
        sessions = [sessions]
    return [parse_session_id(s) for s in sessions]


@dataclass
class _SessionData:
    """One session's arrays, loaded once per evaluation."""

    session: object
    images: np.ndarray | None = None
    skip_reason: str = ""
    cache: dict = field(default_factory=dict)


def _load(sid: int, data_dir, store: dict) -> _SessionData:
    from ..data.session import load_session

    if sid not in store:
        session = load_session(sid, data_dir=data_dir)
        entry = _SessionData(session)
        try:
            entry.images = np.asarray(session.images)
        except DataNotFoundError as err:
            entry.skip_reason = str(err)
        store[sid] = entry
    return store[sid]


def _indices(session, split: str) -> np.ndarray:
    fit, held = session.heldout_split()
    return {"heldout": held, "fit": fit, "all": np.arange(session.num_images)}[split]


def _resolve(model, *, name, neuron_ids, batch_size, device, data_dir, sessions) -> list:
    """Expand ``model`` into a list of zero-argument callables returning a :class:`Predictor`."""
    import torch

    if isinstance(model, Predictor):
        return [lambda: model]
    if isinstance(model, torch.nn.Module):
        pred = torch_predictor(model, name=name, neuron_ids=neuron_ids,
                               batch_size=batch_size, device=device)
        return [lambda: pred]
    if isinstance(model, str | os.PathLike):
        from ..models.teachers.runs import is_run_dir

        if is_run_dir(model):  # a folder written by 'v4compact train ensemble'
            return [_run_loader(model, name, batch_size, device, data_dir)]
    user_file = FILE.match(model) if isinstance(model, str) else None
    if user_file is not None and user_file["path"].suffix.lower() == ".onnx":
        model = user_file["path"]  # the zoo's file:<path> id of an ONNX file: score the file
    if isinstance(model, os.PathLike) or (isinstance(model, str) and model.endswith(".onnx")):
        return [lambda: onnx_predictor(model, name=name, neuron_ids=neuron_ids,
                                       batch_size=batch_size)]
    if isinstance(model, str):
        if model == "compact":
            return [_population_loader(sid, batch_size, device, data_dir)
                    for sid in _session_list(sessions if sessions is not None
                                             else MODEL_SESSIONS)]
        if model == "shared":
            ids = shared_model_ids()
        else:
            ids = [model]
        return [_registry_loader(i, batch_size, device, data_dir) for i in ids]
    if isinstance(model, Iterable):
        out = []
        for item in model:
            out += _resolve(item, name=None, neuron_ids=None, batch_size=batch_size,
                            device=device, data_dir=data_dir, sessions=sessions)
        return out
    raise InvalidInputError(
        f"cannot evaluate a {type(model).__name__}; give a model id, 'compact', 'shared', "
        "a torch.nn.Module or the path of an .onnx file"
    )


def _registry_loader(model_id: str, batch_size: int, device, data_dir):
    def load() -> Predictor:
        from ..models.teachers.ensemble import Ensemble
        from ..models.zoo import load_model

        kwargs = {"data_dir": data_dir}
        if device is not None:
            kwargs["device"] = device
        model = load_model(model_id, **kwargs)
        if isinstance(model, Ensemble):
            return ensemble_predictor(model, batch_size=batch_size)
        return torch_predictor(model, batch_size=batch_size, device=device)

    family, fields = parse_model_id(model_id)
    if family is COMPACT:
        load.compact_neuron = tuple(fields.values())  # known without loading
    load.model_id = model_id
    return load


def _run_loader(run_dir, name, batch_size: int, device, data_dir):
    """The members of a training run folder, mapped by one ridge each (averaged)."""
    def load() -> Predictor:
        from ..models.teachers.runs import load_trained_ensemble

        ensemble = load_trained_ensemble(run_dir, device=device or "cpu", data_dir=data_dir)
        return ensemble_predictor(ensemble, name=name, batch_size=batch_size)

    return load


def _population_loader(session_id: int, batch_size: int, device, data_dir):
    """All compact models of one session as one fused population (one pass over the
    session's images for all of them); each column keeps its own model id in the results."""
    neuron_ids = session_neuron_ids(session_id)

    def load() -> Predictor:
        from ..models.formats.loaders import load_compact_population

        kwargs = {"data_dir": data_dir}
        if device is not None:
            kwargs["device"] = device
        population = load_compact_population(neuron_ids, **kwargs)
        pred = torch_predictor(population, batch_size=batch_size, device=device)
        pred.column_models = [f"{COMPACT.name}/{nid}" for nid in population.neuron_ids]
        return pred

    load.compact_neurons = [split_neuron_id(nid) for nid in neuron_ids]  # known without loading
    load.model_ids = [f"{COMPACT.name}/{nid}" for nid in neuron_ids]
    return load


def _columns(pred: Predictor, sid: int, k_out: int, num_neurons: int, mapping: str):
    """``(mapping, [(column, neuron)])`` for one session, or ``("ridge", None)``."""
    ids = pred.neuron_ids
    if ids is None and mapping != "ridge":
        canonical = model_neuron_ids()
        if k_out == len(canonical):
            ids = canonical
        elif k_out == num_neurons:
            ids = [f"{sid}/{k}" for k in range(num_neurons)]
        elif mapping == "direct":
            raise InvalidInputError(
                f"{pred.name} has {k_out} outputs, but session {sid} has {num_neurons} "
                "neurons; pass neuron_ids=[...] or use mapping='ridge'"
            )
    if ids is None:
        return "ridge", None
    if len(ids) != k_out:
        raise InvalidInputError(
            f"{pred.name} has {k_out} outputs but {len(ids)} neuron ids were given"
        )
    cols = []
    for col, nid in enumerate(ids):
        s, k = split_neuron_id(nid)
        if s == sid:
            cols.append((col, k))
    return "direct", cols


def _model_sessions(pred: Predictor, sessions) -> list[int]:
    """The sessions to score ``pred`` on: the requested ones it has neurons in.

    Raises:
        InvalidInputError: none of the requested sessions has a neuron of the model.
    """
    from ..data.catalog import list_sessions

    if pred.neuron_ids is None:
        if sessions is not None:
            return _session_list(sessions)
        return [s.session_id for s in list_sessions(split="test")]
    own = list(dict.fromkeys(split_neuron_id(i)[0] for i in pred.neuron_ids))
    if sessions is None:
        return own
    requested = _session_list(sessions)
    chosen = [sid for sid in requested if sid in own]
    if not chosen:
        raise InvalidInputError(
            f"{pred.name} predicts no neuron of session {', '.join(map(str, requested))}; "
            f"choose sessions among {sorted(own)}"
        )
    return chosen


def evaluate(
    model,
    sessions=None,
    split: str = "heldout",
    data_dir=None,
    *,
    metric: str = "auto",
    mapping: str = "auto",
    neuron_ids: list[str] | None = None,
    name: str | None = None,
    num_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    batch_size: int = 64,
    device=None,
    progress: bool = True,
) -> EvaluationResult:
    """Score one or more models, neuron by neuron, on the held-out half of test sessions.

    Args:
        model: what to score: a model id (``"compact/201025/10"``,
            ``"shared/from_ensemble_model/200"``), ``"compact"`` (every compact model of
            the selected sessions), ``"shared"`` (all 56 shared compact models), a list of
            those, a ``torch.nn.Module``, the path of an ``.onnx`` file, ``"ensemble"`` (the
            released members) or a training run folder (``v4compact train ensemble --out``);
            an ensemble is mapped by one cross-validated ridge per member fitted on the
            first half, predictions averaged. A user module /
            ONNX file takes re-centred float32 ``(N, 3, 112, 112)`` images (pixels 0-255
            minus :data:`v4compact.images.IMAGE_MEAN`) and returns ``(N, K)`` (or any
            ``(N, ...)``, flattened).
        sessions: session ids to score, release (``201025``) or imported (``"mylab:s01"``)
            (default: the sessions of the model's neurons; for a user model without
            ``neuron_ids``, the five test sessions). To score a model's columns on an
            imported copy of their neurons, pass the module with ``neuron_ids`` naming the
            imported neurons (``["mylab:s01/10"]``).
        split: ``"heldout"`` (second half of the images, the default and the only one
            allowed with a ridge mapping), ``"fit"`` (first half) or ``"all"``.
        data_dir: data directory (default: ``$V4COMPACT_DATA``, then the cache).
        metric: ``"auto"`` (r2_er where single-repeat responses exist, else raw R^2 against
            repeat-averaged responses), or force ``"r2_er"``, ``"split_half_r2"`` (sessions
            without single-repeat responses are then skipped) or ``"raw_r2"``.
        mapping: for user models: ``"direct"`` (output columns are neurons: ``neuron_ids``,
            or 219 columns in the shared models' order, or one column per neuron of each
            session), ``"ridge"`` (outputs are features, mapped to neurons by
            cross-validated ridge fitted on the first half), or ``"auto"`` (direct when the
            output count matches as above, else ridge).
        neuron_ids: ``"session/neuron"`` of each output column of a user model.
        name: the name written in the ``model`` column for a user model.
        num_boot: bootstrap resamples of the held-out images for the confidence interval
            (0: no interval).
        ci: coverage of the interval.
        seed: seed of the bootstrap and of the ridge folds.
        batch_size: images per forward pass.
        device: torch device for the models (default: the model's own / CPU).
        progress: show a progress bar over models.

    Returns:
        An :class:`EvaluationResult`: one row per (model, neuron), including rows with
        ``metric == "skipped"`` and the reason for neurons that could not be scored
        (e.g. session 211022, whose images are not in the data copy).
    """
    from .. import __version__
    from ..config import data_dir as resolve_data_dir
    from ..config import data_dir_source

    if split not in SPLITS:
        raise InvalidInputError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if metric not in METRICS:
        raise InvalidInputError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    if mapping not in MAPPINGS:
        raise InvalidInputError(f"unknown mapping {mapping!r}; choose one of {', '.join(MAPPINGS)}")
    loaders = _resolve(model, name=name, neuron_ids=neuron_ids, batch_size=batch_size,
                       device=device, data_dir=data_dir, sessions=sessions)
    store: dict[int, _SessionData] = {}
    # (session, metric) -> list of (model name, neuron, mapping, prediction over images)
    pending: dict[tuple[int, str], list] = {}
    scores: list[NeuronScore] = []
    bar = tqdm(loaders, desc="evaluating", unit="model", disable=not progress or len(loaders) < 2)
    for load in bar:
        known = getattr(load, "compact_neurons", None)
        if known is None and getattr(load, "compact_neuron", None) is not None:
            known, load.model_ids = [load.compact_neuron], [load.model_id]
        if known and (sessions is None or known[0][0] in _session_list(sessions)):
            entry = _load(known[0][0], data_dir, store)
            if entry.skip_reason:  # no images: skip without loading the model files
                scores += [NeuronScore(sid, k, model_id, "skipped", math.nan, split=split,
                                       mapping="", note=entry.skip_reason)
                           for (sid, k), model_id in zip(known, load.model_ids, strict=True)]
                continue
        pred = load()
        for sid in _model_sessions(pred, sessions):
            entry = _load(sid, data_dir, store)
            session = entry.session
            wanted = _wanted_neurons(pred, sid, session.num_neurons)
            chosen = _choose_metric(metric, session)
            reason = entry.skip_reason or (
                "" if chosen != "missing-raw" else
                f"{metric} needs single-repeat responses, which are not in the data directory "
                f"for session {sid}; use metric='raw_r2'"
            )
            if reason:
                scores += [NeuronScore(sid, k, pred.name, "skipped",
                                       math.nan, split=split, mapping="", note=reason)
                           for k in wanted]
                continue
            used, columns = _predict_session(pred, entry, split, mapping, seed)
            for k, values in columns:
                pending.setdefault((sid, chosen), []).append(
                    (pred.model_of(f"{sid}/{k}"), k, used, values))
    bar.close()
    for (sid, chosen), items in pending.items():
        scores += _score(store[sid].session, chosen, items, split, num_boot, ci, seed)
    order = {m: i for i, m in enumerate(dict.fromkeys(s.model for s in scores))}
    scores.sort(key=lambda s: (order[s.model], session_sort_key(s.session), s.neuron))
    import torch

    provenance = {
        "data_dir": str(resolve_data_dir(data_dir)),
        "data_dir_source": data_dir_source(data_dir),
        "v4compact": __version__,
        "numpy": np.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "split": split,
        "num_boot": num_boot,
        "ci": ci,
        "seed": seed,
        "missing": sorted({e.skip_reason for e in store.values() if e.skip_reason}),
    }
    return EvaluationResult(scores=scores, provenance=provenance)


def _wanted_neurons(pred: Predictor, sid: int, num_neurons: int) -> list[int]:
    if pred.neuron_ids is None:
        return list(range(num_neurons))
    return [k for s, k in map(split_neuron_id, pred.neuron_ids) if s == sid]


def _choose_metric(metric: str, session) -> str:
    if metric == "auto":
        return "r2_er" if session.has_raw_responses else "raw_r2"
    if metric in ("r2_er", "split_half_r2") and not session.has_raw_responses:
        return "missing-raw"
    return metric


def _predict_session(pred: Predictor, entry: _SessionData, split: str, mapping: str, seed: int):
    """``(mapping used, [(neuron, prediction over the evaluated images)])``."""
    from ..mapping.ridge import RidgeMapping

    session = entry.session
    idx = _indices(session, split)
    if pred.fit_predict is not None:
        if split != "heldout":
            raise InvalidInputError(
                f"{pred.name} is mapped to neurons on the first half, so only "
                f"split='heldout' can be scored (got {split!r})"
            )
        fit, held = session.heldout_split()
        mapped = pred.fit_predict(session, entry.images, fit, held)
        return "ridge", [(k, mapped[:, k]) for k in range(session.num_neurons)]
    if pred.neuron_ids is not None:
        outputs = pred.predict(entry.images[idx])
        _, cols = _columns(pred, session.session_id, outputs.shape[1], session.num_neurons,
                           "direct")
        return "direct", [(k, outputs[:, c]) for c, k in cols]
    key = ("outputs", pred.name, id(pred))
    if key not in entry.cache:
        entry.cache.clear()  # keep one user model's outputs per session at a time
        entry.cache[key] = pred.predict(entry.images)
    outputs = entry.cache[key]
    used, cols = _columns(pred, session.session_id, outputs.shape[1], session.num_neurons, mapping)
    if used == "direct":
        return "direct", [(k, outputs[idx, c]) for c, k in cols]
    if split != "heldout":
        raise InvalidInputError(
            f"a ridge mapping is fitted on the first half, so only split='heldout' can be "
            f"scored with it (got {split!r})"
        )
    fit, held = session.heldout_split()
    ridge = RidgeMapping(seed=seed).fit(outputs[fit], session.responses[:, fit].T)
    mapped = ridge.predict(outputs[held])
    return "ridge", [(k, mapped[:, k]) for k in range(session.num_neurons)]


def _score(session, metric: str, items: list, split: str, num_boot: int, ci: float, seed: int):
    """Score all pending predictions of one session in one batch (neurons stacked)."""
    scores = score_predictions(
        session, [k for _, k, _, _ in items], np.stack([v for _, _, _, v in items]),
        metric=metric, split=split, model_ids=[name for name, _, _, _ in items],
        num_boot=num_boot, ci=ci, seed=seed,
    )
    return [dataclasses.replace(score, mapping=used)
            for score, (_, _, used, _) in zip(scores, items, strict=True)]


def score_predictions(
    session,
    neurons,
    predictions,
    *,
    metric: str = "auto",
    split: str = "heldout",
    model_ids: list[str] | None = None,
    num_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> list[NeuronScore]:
    """Score given predictions of a session's neurons exactly as :func:`evaluate` does.

    :func:`evaluate` computes its numbers with this function, so predictions made elsewhere
    (e.g. one fused-population pass over a session, as the explorer's site build does) give
    the same scores as ``v4compact evaluate``.

    Args:
        session: the recording :class:`~v4compact.data.session.Session`.
        neurons: ``(K,)`` neuron indices within the session (rows of its responses).
        predictions: float ``(K, M)`` predictions (any units: the metrics are correlations)
            for the ``M`` images of ``split``, in image order.
        metric: ``"auto"`` (r2_er where single-repeat responses exist, else raw R^2),
            ``"r2_er"``, ``"raw_r2"`` or ``"split_half_r2"``.
        split: ``"heldout"``, ``"fit"`` or ``"all"``: which images ``predictions`` cover.
        model_ids: the ``model`` of each row (default ``compact/<session>/<k>``).
        num_boot: bootstrap resamples of the images (0: no interval).
        ci: coverage of the interval.
        seed: seed of the bootstrap.

    Returns:
        One :class:`NeuronScore` per neuron (``mapping="direct"``), in the given order.

    Raises:
        InvalidInputError: an unknown split or metric, predictions of the wrong shape, or a
            metric that needs single-repeat responses the data directory lacks.
    """
    if split not in SPLITS:
        raise InvalidInputError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if metric not in METRICS:
        raise InvalidInputError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    chosen = _choose_metric(metric, session)
    if chosen == "missing-raw":
        raise InvalidInputError(
            f"{metric} needs single-repeat responses, which are not in the data directory "
            f"for session {session.session_id}; use metric='raw_r2'"
        )
    idx = _indices(session, split)
    neurons = np.asarray(neurons, dtype=int).reshape(-1)
    predictions = np.asarray(predictions)
    if predictions.shape != (len(neurons), len(idx)):
        raise InvalidInputError(
            f"predictions of shape {predictions.shape} do not match {len(neurons)} neurons x "
            f"{len(idx)} {split} images of session {session.session_id}; pass (neurons, images)"
        )
    if model_ids is None:
        model_ids = [f"{COMPACT.name}/{session.session_id}/{int(k)}" for k in neurons]
    if chosen == "raw_r2":
        target = session.responses[neurons][:, idx]
    else:
        target = session.raw_responses[neurons][:, idx]
    fn = _METRIC_FNS[chosen]
    if num_boot > 0:
        value, low, high = bootstrap_ci(fn, target, predictions, num_boot=num_boot, ci=ci,
                                        seed=seed)
    else:
        value = fn(target, predictions)
        low = high = np.full(len(neurons), np.nan)
    return [
        NeuronScore(session.session_id, int(k), name, chosen, float(v), float(lo), float(hi),
                    split=split, num_images=len(idx), mapping="direct")
        for name, k, v, lo, hi in zip(model_ids, neurons, value, low, high, strict=True)
    ]
