"""The factories of the zoo's families: the released models and the user's model files.

Each loader is registered with :func:`v4compact.models.families.register_factory`, so
:func:`v4compact.load_model` reaches it by id; the ids, files, fetch groups and neuron
order are the families' (:mod:`v4compact.models.families`). Every loader takes ``data_dir=None``
(resolved by :func:`v4compact.config.data_dir`) and ``device="cpu"``; a missing file raises
:class:`~v4compact.errors.DataNotFoundError` naming the ``v4compact data fetch`` command that
gets it. Outputs of the released models are in z-scored units (SYSTEM.md §9).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ... import config
from ...data import local, paths
from ...errors import CorruptDataError, InvalidInputError, ModelFormatError
from ..families import COMPACT, FILE, POPULATION, SHARED, register_factory
from ..ids import model_neuron_ids, parse_neuron_id
from ..nets.compact import CompactModel
from ..nets.shared import SharedCompactModel
from .keras_io import FORMAT_ALIASES, FORMATS, read_model_file


@register_factory(COMPACT.name)
def load_compact_model(session_id: int | str | os.PathLike, neuron: int | str | None = None,
                       device: torch.device | str = "cpu",
                       data_dir: str | os.PathLike | None = None,
                       format: str = "keras") -> CompactModel:
    """Load one neuron's compact model from the release files, or from a model file.

    ``load_compact_model(path)`` (no neuron) reads a compact-model file of any release
    format, e.g. a ``.keras`` file made by ``v4compact make-compact``: its ``model_id`` is
    ``"file:<path>"``, its neuron id and ``provenance`` come from the file's
    ``metadata.json`` when it has them.

    Args:
        session_id: one of the test sessions 190923, 201025, 210225, 211022; or the path of
            a compact-model file (then ``neuron`` is left out).
        neuron: 0-based neuron index within the session.
        device: torch device for the parameters.
        data_dir: data directory (default: :func:`v4compact.config.data_dir`).
        format: file to read: ``"keras"`` (default), ``"weights-h5"``, ``"npy"``, ``"torch"``
            (``.pt``) or ``"h5"`` (legacy Keras 2). All give the same model.

    Returns:
        A :class:`CompactModel` in inference mode, ``model_id`` ``"compact/<session>/<neuron>"``,
        one output in z-scored units.

    Raises:
        UnknownSessionError: a session without compact models.
        UnknownNeuronError: a neuron index outside the session's range.
        DataNotFoundError: the file is not in the data directory.
        ModelFormatError: the file is not a valid model, or disagrees with ``nums_filters``.
    """
    if neuron is None:
        return _load_compact_file(Path(session_id), device)
    model_id = COMPACT.format_id(session_id, neuron)
    sid, k = COMPACT.parse(model_id).values()
    fmt = FORMAT_ALIASES.get(format, format)
    if fmt not in FORMATS:
        raise InvalidInputError(
            f"unknown model format {format!r}; choose one of {', '.join(FORMATS)}"
        )
    if fmt == "keras":
        path, filters_path = COMPACT.local_files(model_id, data_dir)
    else:  # the release's other formats: their own fetch groups; nums_filters checked if there
        path = local.require(paths.compact_model(sid, k, fmt), data_dir)
        filters_path = config.data_dir(data_dir) / paths.nums_filters(sid, k)
    expected = (_read_num_filters(filters_path, paths.nums_filters(sid, k), data_dir)
                if filters_path.is_file() else None)
    weights = read_model_file(path, fmt, num_filters=expected)
    model = CompactModel.from_weights(weights, model_id=model_id, neuron_id=f"{sid}/{k}")
    return model.to(_device(device))


def _load_compact_file(path: Path, device: torch.device | str) -> CompactModel:
    """A compact model from a file of any release format (see :func:`load_compact_model`)."""
    from .keras_writer import read_keras_metadata

    weights = read_model_file(path)
    provenance = read_keras_metadata(path) if weights.format == "keras" else {}
    model = CompactModel.from_weights(weights, model_id=FILE.format_id(path),
                                      neuron_id=str(provenance.get("neuron_id", path.stem)))
    model.provenance = provenance
    return model.to(_device(device))


def _read_num_filters(path: Path, release_path: str, data_dir) -> list[int]:
    """The five filter counts of the ``nums_filters`` file ``path`` (``release_path`` in the
    release).

    Raises:
        CorruptDataError: the file is not an integer array of 5 (named, with its fetch).
    """
    try:
        with open(path, "rb") as file:
            # numpy takes any other content for a pickle and says so: name the real problem
            if file.read(6) != b"\x93NUMPY":
                raise ValueError("not a .npy file")
        counts = np.load(path, allow_pickle=False)
        if counts.shape != (5,) or not np.issubdtype(counts.dtype, np.integer):
            raise ValueError(f"holds {counts.dtype} {counts.shape}, not 5 integers")
    except (ValueError, OSError, EOFError) as err:
        fetch = paths.fetch_command(local.fetch_group_of(release_path), data_dir)
        raise CorruptDataError(
            f"{path} is not a filter-count file ({' '.join(str(err).split('. ')[0].split())}); "
            f"delete it and fetch it again: {fetch}"
        ) from None
    return counts.tolist()


@register_factory(SHARED.name)
def load_shared_model(teacher: str, num_filters: int | str,
                      device: torch.device | str = "cpu",
                      data_dir: str | os.PathLike | None = None) -> SharedCompactModel:
    """Load a shared compact model (219 outputs in canonical neuron order).

    Args:
        teacher: one of :data:`~v4compact.models.zoo.SHARED_TEACHERS`, e.g.
            ``"from_ensemble_model"``.
        num_filters: filters of layers 0-2, one of
            :data:`~v4compact.models.zoo.SHARED_NUM_FILTERS`.
        device: torch device for the parameters.
        data_dir: data directory (default: :func:`v4compact.config.data_dir`).

    Returns:
        A :class:`SharedCompactModel` in inference mode, ``model_id``
        ``"shared/<teacher>/<F>"``, ``neuron_ids`` from
        :func:`~v4compact.models.zoo.model_neuron_ids`, outputs in z-scored units.

    Raises:
        UnknownModelError: an unknown teacher or filter count.
        DataNotFoundError: the file is not in the data directory.
        ModelFormatError: the file is not a valid shared compact model.
    """
    model_id = SHARED.format_id(teacher, num_filters)
    (path,) = SHARED.local_files(model_id, data_dir)
    weights = read_model_file(path, "keras")
    neuron_ids = SHARED.neuron_ids(model_id)
    if weights.num_outputs != len(neuron_ids):
        raise ModelFormatError(
            f"{path.name}: {weights.num_outputs} outputs, expected {len(neuron_ids)}; re-fetch "
            f"it with: {paths.fetch_command(SHARED.fetch_group_of(model_id), data_dir)}"
        )
    model = SharedCompactModel.from_weights(weights, model_id=model_id, neuron_ids=neuron_ids)
    return model.to(_device(device))


def _device(device: torch.device | str) -> torch.device:
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise InvalidInputError(f"invalid device {device!r} ({err})") from None


@register_factory(POPULATION.name)
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
        A :class:`~v4compact.models.engines.population.CompactPopulation` (``model_id``
        ``"population"``), columns in canonical order (sessions 190923, 201025, 210225,
        211022; neurons in index order) named by ``.neuron_ids``, in z-scored units.

    Raises:
        UnknownSessionError, UnknownNeuronError: a neuron that has no compact model.
        InvalidInputError: an empty selection, a malformed id or a neuron given twice.
        DataNotFoundError: a model file is not in the data directory.
    """
    from ..engines.population import CompactPopulation

    pairs = [parse_neuron_id(n) for n in
             (model_neuron_ids() if neurons is None else _as_list(neurons))]
    if not pairs:
        raise InvalidInputError("no neurons selected; pass None for all 219 or a list of ids")
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


@register_factory(FILE.name)
def load_file_model(path: str | os.PathLike, device: torch.device | str = "cpu",
                    data_dir: str | os.PathLike | None = None):
    """Load a user's model file (the ``file:<path>`` ids of the zoo).

    Args:
        path: a ``.onnx``, ``.safetensors`` or TorchScript ``.pt`` file, or a compact
            model's ``.keras`` file (see :class:`~v4compact.models.zoo.FileFamily`).
        device: torch device (safetensors and TorchScript; ONNX runs on the CPU).
        data_dir: not searched: the path is the user's own (relative to the working folder).

    Returns:
        What :func:`v4compact.load_exported` returns for the file, its ``model_id`` set to
        ``"file:<path>"`` when the file names none.

    Raises:
        DataNotFoundError: the file does not exist.
        ModelFormatError: the file is not a readable model of its format.
    """
    from .export import load_exported

    model_id = FILE.format_id(path)
    (local,) = FILE.local_files(model_id, data_dir)
    if local.suffix.lower() == ".keras":
        return _load_compact_file(local, device)
    model = load_exported(local, device=_device(device))
    if not getattr(model, "model_id", ""):
        model.model_id = model_id
    return model

