"""The model registry: stable ids, listing, and one-line loaders.

Model ids:

=====================================  ==========================================================
``compact/<session>/<neuron>``         one neuron's compact model, e.g. ``compact/201025/10``
                                       (sessions 190923, 201025, 210225, 211022; neurons
                                       0-based, in the order of the session's response files)
``shared/<teacher>/<F>``               a shared compact model (219 outputs), e.g.
                                       ``shared/from_ensemble_model/200``; F = filters of
                                       layers 0-2
``population``                         all 219 compact models fused into one module
=====================================  ==========================================================

Every loader takes ``data_dir=None`` (resolved by :func:`v4compact.config.data_dir`) and
``device="cpu"``; a missing file raises :class:`~v4compact.errors.DataNotFoundError` naming
the ``v4compact data fetch`` command that gets it.
"""

from __future__ import annotations

import fnmatch
import os

import numpy as np
import torch

from .. import config
from ..data import paths
from ..data.catalog import MODEL_SESSIONS, session_info
from ..errors import (
    InvalidInputError,
    UnknownModelError,
    UnknownNeuronError,
    UnknownSessionError,
)
from .compact import CompactModel
from .keras_io import FORMAT_ALIASES, read_model_file
from .shared import SharedCompactModel

#: Teachers of the shared compact models, in the order of SYSTEM.md §5.
SHARED_TEACHERS = paths.SHARED_TEACHERS
#: Filter counts of layers 0-2 of the released shared compact models.
SHARED_NUM_FILTERS = paths.SHARED_NUM_FILTERS
#: ``v4compact data fetch`` group of each compact-model format.
_FETCH_GROUPS = {"keras": "compact-models", "torch": "compact-models-torch",
                 "weights-h5": "compact-models-weights-h5", "npy": "compact-models-npy",
                 "h5": "compact-models-h5"}


def model_neuron_ids() -> list[str]:
    """The 219 model neurons in canonical order: ``["190923/0", ..., "211022/41"]``."""
    return [f"{sid}/{k}" for sid in MODEL_SESSIONS
            for k in range(session_info(sid).num_neurons)]


def list_models(pattern: str | None = None,
                data_dir: str | os.PathLike | None = None) -> list[str]:
    """Ids of the models whose files are in the data directory.

    Args:
        pattern: shell-style filter, e.g. ``"compact/201025/*"`` or ``"shared/*/200"``.
        data_dir: data directory (default: :func:`v4compact.config.data_dir`).

    Returns:
        Ids in canonical order: compact models (session, neuron), shared models (teacher,
        filters), then ``"population"`` when all 219 compact models are present.
    """
    root = config.data_dir(data_dir)
    compact = [f"compact/{nid}" for nid in model_neuron_ids()
               if (root / paths.compact_model(*map(int, nid.split("/")))).is_file()]
    ids = list(compact)
    ids += [f"shared/{t}/{f}" for t in SHARED_TEACHERS for f in SHARED_NUM_FILTERS
            if (root / paths.shared_model(t, f)).is_file()]
    if len(compact) == len(model_neuron_ids()):
        ids.append("population")
    if pattern is not None:
        ids = [i for i in ids if fnmatch.fnmatchcase(i, pattern)]
    return ids


def load_model(model_id: str, device: torch.device | str = "cpu",
               data_dir: str | os.PathLike | None = None):
    """Load any model by id (see the module docstring for the id forms).

    Args:
        model_id: e.g. ``"compact/201025/10"``, ``"shared/from_vgg19/50"``, ``"population"``.
        device: torch device for the parameters.
        data_dir: data directory (default: :func:`v4compact.config.data_dir`).

    Returns:
        A :class:`~v4compact.models.base.V4Model` in inference mode.

    Raises:
        UnknownModelError: an id of none of the forms above.
    """
    parts = str(model_id).strip("/").split("/")
    if parts[0] == "compact" and len(parts) == 3:
        return load_compact_model(parts[1], parts[2], device=device, data_dir=data_dir)
    if parts[0] == "shared" and len(parts) == 3:
        return load_shared_model(parts[1], parts[2], device=device, data_dir=data_dir)
    if parts == ["population"] and "load_compact_population" in globals():
        return globals()["load_compact_population"](device=device, data_dir=data_dir)
    raise UnknownModelError(
        f"unknown model id {model_id!r}; use compact/<session>/<neuron>, "
        "shared/<teacher>/<filters> or population (see v4compact.list_models())"
    )


def load_compact_model(session_id: int | str, neuron: int | str,
                       device: torch.device | str = "cpu",
                       data_dir: str | os.PathLike | None = None,
                       format: str = "keras") -> CompactModel:
    """Load one neuron's compact model from the release files.

    Args:
        session_id: one of the test sessions 190923, 201025, 210225, 211022.
        neuron: 0-based neuron index within the session.
        device: torch device for the parameters.
        data_dir: data directory (default: :func:`v4compact.config.data_dir`).
        format: file to read: ``"keras"`` (default), ``"weights-h5"``, ``"npy"``, ``"torch"``
            (``.pt``) or ``"h5"`` (legacy Keras 2). All give the same model.

    Returns:
        A :class:`CompactModel` in inference mode, ``model_id`` ``"compact/<session>/<neuron>"``.

    Raises:
        UnknownSessionError: a session without compact models.
        UnknownNeuronError: a neuron index outside the session's range.
        DataNotFoundError: the file is not in the data directory.
        ModelFormatError: the file is not a valid model, or disagrees with ``nums_filters``.
    """
    sid, k = _check_neuron(session_id, neuron)
    fmt = FORMAT_ALIASES.get(format, format)
    if fmt not in _FETCH_GROUPS:
        raise InvalidInputError(
            f"unknown model format {format!r}; choose one of {', '.join(_FETCH_GROUPS)}"
        )
    path = paths.require(paths.compact_model(sid, k, fmt), data_dir, _FETCH_GROUPS[fmt])
    filters_path = config.data_dir(data_dir) / paths.nums_filters(sid, k)
    expected = np.load(filters_path).tolist() if filters_path.is_file() else None
    weights = read_model_file(path, fmt, num_filters=expected)
    model = CompactModel.from_weights(weights, model_id=f"compact/{sid}/{k}",
                                      neuron_id=f"{sid}/{k}")
    return model.to(_device(device))


def load_shared_model(teacher: str, num_filters: int | str,
                      device: torch.device | str = "cpu",
                      data_dir: str | os.PathLike | None = None) -> SharedCompactModel:
    """Load a shared compact model (219 outputs in canonical neuron order).

    Args:
        teacher: one of :data:`SHARED_TEACHERS`, e.g. ``"from_ensemble_model"``.
        num_filters: filters of layers 0-2, one of :data:`SHARED_NUM_FILTERS`.
        device: torch device for the parameters.
        data_dir: data directory (default: :func:`v4compact.config.data_dir`).

    Returns:
        A :class:`SharedCompactModel` in inference mode, ``model_id``
        ``"shared/<teacher>/<F>"``, ``neuron_ids`` from :func:`model_neuron_ids`.

    Raises:
        UnknownModelError: an unknown teacher or filter count.
        DataNotFoundError: the file is not in the data directory.
        ModelFormatError: the file is not a valid shared compact model.
    """
    if teacher not in SHARED_TEACHERS:
        raise UnknownModelError(
            f"unknown teacher {teacher!r}; choose one of {', '.join(SHARED_TEACHERS)}"
        )
    try:
        nf = int(num_filters)
    except (TypeError, ValueError):
        nf = None
    if nf not in SHARED_NUM_FILTERS:
        raise UnknownModelError(
            f"no shared model with {num_filters!r} filters; choose one of "
            f"{', '.join(map(str, SHARED_NUM_FILTERS))}"
        )
    path = paths.require(paths.shared_model(teacher, nf), data_dir, "shared-models")
    weights = read_model_file(path, "keras")
    neuron_ids = model_neuron_ids()
    if weights.num_outputs != len(neuron_ids):
        from ..errors import ModelFormatError

        raise ModelFormatError(
            f"{path.name}: {weights.num_outputs} outputs, expected {len(neuron_ids)}; re-fetch "
            "it with: v4compact data fetch shared-models"
        )
    model = SharedCompactModel.from_weights(weights, model_id=f"shared/{teacher}/{nf}",
                                            neuron_ids=neuron_ids)
    return model.to(_device(device))


def _check_neuron(session_id, neuron) -> tuple[int, int]:
    try:
        sid = int(session_id)
    except (TypeError, ValueError):
        sid = None
    if sid not in MODEL_SESSIONS:
        raise UnknownSessionError(
            f"session {session_id!r} has no compact models; choose one of "
            f"{', '.join(map(str, MODEL_SESSIONS))}"
        )
    count = session_info(sid).num_neurons
    try:
        k = int(neuron)
    except (TypeError, ValueError):
        k = None
    if k is None or not 0 <= k < count or isinstance(neuron, bool):
        raise UnknownNeuronError(
            f"neuron {neuron!r} does not exist in session {sid}, which has {count} neurons "
            f"(0-{count - 1})"
        )
    return sid, k


def _device(device: torch.device | str) -> torch.device:
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise InvalidInputError(f"invalid device {device!r} ({err})") from None


def load_compact_population(neurons=None, device: torch.device | str = "cpu",
                            data_dir: str | os.PathLike | None = None,
                            progress: bool = False):
    """Load compact models and fuse them into one module (one forward pass for all).

    Args:
        neurons: ``None`` for all 219 model neurons, or a list of neuron ids
            (``"201025/10"``, ``"compact/201025/10"``) or ``(session, neuron)`` pairs.
        device: torch device for the fused weights.
        data_dir: data directory (default: :func:`v4compact.config.data_dir`).
        progress: show a progress bar while the model files are read.

    Returns:
        A :class:`~v4compact.models.population.CompactPopulation` (``model_id``
        ``"population"``), columns in canonical order (sessions 190923, 201025, 210225,
        211022; neurons in index order) named by ``.neuron_ids``.

    Raises:
        UnknownSessionError, UnknownNeuronError: a neuron that has no compact model.
        InvalidInputError: an empty selection, a malformed id or a neuron given twice.
        DataNotFoundError: a model file is not in the data directory.
    """
    from .population import CompactPopulation

    pairs = [_parse_neuron(n) for n in
             (model_neuron_ids() if neurons is None else _as_list(neurons))]
    if not pairs:
        raise InvalidInputError("no neurons selected; pass None for all 219 or a list of ids")
    pairs = [_check_neuron(s, k) for s, k in pairs]
    if len(set(pairs)) != len(pairs):
        dup = sorted({f"{s}/{k}" for s, k in pairs if pairs.count((s, k)) > 1})
        raise InvalidInputError(f"neurons given twice: {', '.join(dup)}; give each once")
    if progress:
        from tqdm.auto import tqdm

        pairs = tqdm(pairs, desc="loading compact models", unit="model")
    models = [load_compact_model(s, k, data_dir=data_dir) for s, k in pairs]
    return CompactPopulation(models).to(_device(device))


def _as_list(neurons) -> list:
    if isinstance(neurons, str) or (
        isinstance(neurons, tuple) and len(neurons) == 2
        and not any("/" in str(part) for part in neurons)
    ):
        return [neurons]  # one id or one (session, neuron) pair
    try:
        return list(neurons)
    except TypeError:
        raise InvalidInputError(
            f"neurons must be None or a list of ids like '201025/10', got {neurons!r}"
        ) from None


def _parse_neuron(neuron) -> tuple:
    if isinstance(neuron, tuple | list) and len(neuron) == 2:
        return neuron[0], neuron[1]
    text = str(neuron)
    text = text[len("compact/"):] if text.startswith("compact/") else text
    session, sep, index = text.partition("/")
    if not sep or "/" in index:
        raise InvalidInputError(
            f"bad neuron id {neuron!r}; use '<session>/<neuron>', e.g. '201025/10'"
        )
    return session, index
