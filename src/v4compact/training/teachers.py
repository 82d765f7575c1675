"""Teachers: anything that maps images to the responses of the neurons to distill.

A :class:`Teacher` is a callable ``uint8 images (N, 112, 112, 3) -> float32 (N, K)`` with a
``neuron_ids`` list naming its K columns and a ``spec`` naming what it is. Build one with
:func:`load_teacher` from:

- a model id of the zoo - ``shared/from_ensemble_model/200`` (the neuron's column of a
  shared compact model), ``population``, ``compact/201025/10``, ``file:model.onnx`` - or a
  ``.onnx`` path; the columns of the requested neurons are taken;
- ``backbone:<spec>`` - a task-driven backbone (:func:`v4compact.load_backbone`, e.g.
  ``backbone:resnet50`` or ``backbone:shared/from_ensemble_model/200:layer3``) with a
  cross-validated ridge mapping per session fitted on the first half of the session
  (SYSTEM.md §7) to the z-scored responses;
- ``ensemble`` (the released members) or ``ensemble:<RUN_DIR>`` (a run of
  ``v4compact train ensemble``) - one ridge per member from its embedding, predictions
  averaged (SYSTEM.md §7);
- a ``torch.nn.Module`` taking re-centred ``(N, 3, 112, 112)`` images, or an
  :class:`~v4compact.models.formats.onnx.OnnxModel` (:func:`teacher_from_model`).

Models run through the one predict path (:func:`v4compact.models.predict.predict`).
Teachers fitted to z-scored responses (every released model, the mapped teachers here)
answer in z-scored units, and so do the students distilled from them.

:class:`TeacherCache` computes each image's responses once: one float32 memory-mapped
``.npy`` file ``(images, K)`` per shard (NaN rows: not computed yet), shared by every pass
(distillation and retraining) and by every process of a ``torchrun`` job.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError, UnknownNeuronError

__all__ = ["Teacher", "TeacherCache", "load_teacher", "teacher_from_model"]


class Teacher:
    """Images -> responses of K neurons.

    Args:
        respond: ``uint8 (N, 112, 112, 3) -> float (N, K)``.
        neuron_ids: name of each column (``"session/neuron"`` for recorded neurons).
        spec: what the teacher is (shown in provenance, part of the cache key).
        units: the units of the responses.
        source: the spec :func:`load_teacher` builds this teacher from again (``None`` for
            a teacher made from a Python object).

    Attributes:
        neuron_ids, spec, units, source: as given.
    """

    def __init__(self, respond: Callable[[np.ndarray], np.ndarray], neuron_ids: Sequence[str],
                 spec: str, units: str = "z-scored units", source: str | None = None) -> None:
        self._respond = respond
        self.neuron_ids = [str(n) for n in neuron_ids]
        self.spec = str(spec)
        self.units = units
        self.source = source
        if not self.neuron_ids:
            raise InvalidInputError(f"teacher {spec} has no neurons; choose at least one")

    def __repr__(self) -> str:
        return f"Teacher({self.spec!r}, neurons={len(self.neuron_ids)})"

    @property
    def key(self) -> str:
        """Identity for the cache: the spec and the neuron columns."""
        text = json.dumps([self.spec, self.neuron_ids])
        return hashlib.sha1(text.encode()).hexdigest()[:16]

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """uint8 images ``(N, 112, 112, 3)`` -> float32 ``(N, K)`` responses."""
        out = np.asarray(self._respond(images), dtype=np.float32).reshape(len(images), -1)
        if out.shape[1] != len(self.neuron_ids):
            raise InvalidInputError(f"teacher {self.spec} returned {out.shape[1]} columns for "
                                    f"{len(self.neuron_ids)} neurons")
        return out


def _canonical(neuron) -> str:
    from ..models.zoo import split_neuron_id

    try:
        session, index = split_neuron_id(neuron)
    except (InvalidInputError, UnknownNeuronError, ValueError):
        return str(neuron)
    return f"{session}/{index}"


def _columns(available: Sequence[str], neurons: Sequence | None, spec: str) -> list[int]:
    names = [_canonical(n) for n in available]
    if neurons is None:
        return list(range(len(names)))
    out = []
    for neuron in neurons:
        name = _canonical(neuron)
        if name not in names:
            raise UnknownNeuronError(f"teacher {spec} has no neuron {neuron}; choose among its "
                                     f"{len(names)} outputs, e.g. {', '.join(names[:3])}")
        out.append(names.index(name))
    return out


def teacher_from_model(model, neurons: Sequence | None = None, spec: str | None = None,
                       batch_size: int = 64) -> Teacher:
    """A teacher from a model object: columns of its outputs.

    Args:
        model: a :class:`~v4compact.models.nets.base.V4Model`, any ``torch.nn.Module`` taking
            re-centred ``(N, 3, 112, 112)`` images, or an
            :class:`~v4compact.models.formats.onnx.OnnxModel`; it runs where its parameters are.
        neurons: neuron ids of the columns to take (``None``: all), matched against
            ``model.neuron_ids`` (``"201025/10"``; for a model without neuron ids, the
            column names ``"output<i>"``).
        spec: the teacher's name (default: ``model.model_id`` or the class name).
        batch_size: images per forward pass.

    Raises:
        UnknownNeuronError: a neuron the model does not predict.
    """
    from ..models.predict import predict

    available = list(getattr(model, "neuron_ids", []) or [])
    if not available:
        if neurons is None:
            raise InvalidInputError("the model has no neuron_ids; pass neurons=['output0', ...]"
                                    " naming its columns")
        available = [f"output{i}" for i in range(1 + max(
            int(str(n).removeprefix("output")) for n in neurons))]
    columns = _columns(available, neurons, spec or "model")
    name = spec or getattr(model, "model_id", "") or type(model).__name__

    def respond(images: np.ndarray) -> np.ndarray:
        out = predict(model, images, batch_size=batch_size)
        return out.reshape(len(images), -1)[:, columns]

    return Teacher(respond, [_canonical(available[c]) for c in columns], name)


def load_teacher(spec, neurons: Sequence | None = None, device="cpu",
                 data_dir: str | os.PathLike | None = None, batch_size: int = 64,
                 penalty: str | float = "cv") -> Teacher:
    """Build a teacher from a spec (see the module docstring for the forms).

    Args:
        spec: a model id, ``backbone:<spec>``, ``ensemble[:RUN_DIR]``, a ``.onnx`` path, a
            :class:`Teacher` (returned as is) or a model object.
        neurons: the neurons to distill, of any dataset (``"201025/10"``, ``"mylab:s01/7"``,
            patterns such as ``"mylab:s01/*"``; ``None``: every output of a model teacher;
            required for mapped teachers, which are fitted on each session's fit half).
        device: torch device the teacher runs on.
        data_dir: data directory (models, sessions for the mappings).
        batch_size: images per forward pass.
        penalty: ridge penalty of the mapped teachers (``"cv"``, ``"heuristic"`` or a number).

    Returns:
        A :class:`Teacher` whose ``neuron_ids`` follow ``neurons``.

    Raises:
        UnknownModelError, DataNotFoundError: an unknown id or a missing file.
        UnknownNeuronError: a neuron the teacher does not predict.
    """
    if isinstance(spec, Teacher):
        return spec
    if neurons is not None:
        from ..data.catalog import expand_neurons

        neurons = expand_neurons(neurons, data_dir)
    if not isinstance(spec, str | os.PathLike):
        return teacher_from_model(spec, neurons, batch_size=batch_size)
    text = str(spec).strip()
    if text.startswith("backbone:") or text == "ensemble" or text.startswith("ensemble:"):
        if not neurons:
            raise InvalidInputError(f"teacher {text} is mapped to recorded neurons; name them, "
                                    "e.g. --neurons 201025/10")
        teacher = _mapped_teacher(text, neurons, device, data_dir, batch_size, penalty)
    else:
        from ..models.zoo import load_model

        model_id = f"file:{text}" if text.lower().endswith(".onnx") and ":" not in text \
            else text
        model = load_model(model_id, device=device, data_dir=data_dir)
        teacher = teacher_from_model(model, neurons, spec=text, batch_size=batch_size)
    teacher.source = text
    return teacher


def _mapped_teacher(spec: str, neurons: Sequence, device, data_dir, batch_size: int,
                    penalty) -> Teacher:
    """Features (one array per ensemble member, or one for a backbone) -> ridge per session
    and member, fitted on the first half of each session's images, averaged over members."""
    members, names = mapped_committee(spec, neurons, device=device, data_dir=data_dir,
                                      batch_size=batch_size, penalty=penalty)

    def respond(images: np.ndarray) -> np.ndarray:
        return members(images).mean(axis=0)

    return Teacher(respond, names, f"{spec} + ridge({penalty})")


def mapped_committee(spec: str, neurons: Sequence, *, device="cpu", data_dir=None,
                     batch_size: int = 64, penalty: str | float = "cv", bootstrap: int = 0,
                     seed: int = 0, fit_indices: dict | None = None):
    """The members of a mapped teacher, each with its own ridge mappings.

    Args:
        spec: ``backbone:<spec>``, ``ensemble`` or ``ensemble:<RUN_DIR>``.
        neurons: neuron ids of any dataset (``"201025/10"``, ``"mylab:s01/7"``).
        bootstrap: for a backbone (one feature set): this many members, each a ridge fitted
            on a bootstrap resample of the fit images (seeded), so that a committee exists
            (query by bagging); 0: one member on all fit images.
        seed: seed of the resamples.
        fit_indices: ``{session id: image indices}`` to fit on instead of each session's
            fit half (the closed-loop measurement fits on chosen images).

    Returns:
        ``(members, neuron_ids)``: ``members(uint8 (N, 112, 112, 3))`` -> float64
        ``(M, N, K)`` predictions of every member in z-scored units.
    """
    from ..data.session import load_session
    from ..mapping.ridge import RidgeMapping
    from ..models.zoo import split_neuron_id
    from .ensemble import zscore_responses

    if spec.startswith("backbone:"):
        from ..models.teachers.backbones import load_backbone

        backbone = load_backbone(spec.removeprefix("backbone:"), device=device,
                                 data_dir=data_dir)

        def extract(images: np.ndarray) -> list[np.ndarray]:
            return [backbone.features(images, batch_size=batch_size)]
    else:
        run = spec.partition(":")[2]
        if run:
            from .ensemble import load_trained_ensemble

            ensemble = load_trained_ensemble(run, device=device, data_dir=data_dir)
        else:
            from ..models.teachers.ensemble import load_ensemble

            ensemble = load_ensemble(device=device, data_dir=data_dir)

        def extract(images: np.ndarray) -> list[np.ndarray]:
            return list(ensemble.embeddings(images, batch_size=batch_size))

    pairs = [split_neuron_id(n) for n in neurons]
    rng = np.random.default_rng(seed)
    groups: list[tuple[list[int], list[tuple[int, RidgeMapping]]]] = []
    num_members = 0
    for session_id in dict.fromkeys(s for s, _ in pairs):
        session = load_session(session_id, data_dir)
        fit = np.asarray((fit_indices or {}).get(session_id, session.heldout_split()[0]))
        columns = [k for s, k in pairs if s == session_id]
        targets = zscore_responses(session.responses)[fit][:, columns]
        features = extract(np.asarray(session.images[fit]))
        if bootstrap and len(features) == 1:
            draws = [rng.integers(0, len(fit), len(fit)) for _ in range(bootstrap)]
            mappings = [(0, RidgeMapping(penalty=penalty).fit(features[0][d], targets[d]))
                        for d in draws]
        else:
            mappings = [(m, RidgeMapping(penalty=penalty).fit(f, targets))
                        for m, f in enumerate(features)]
        num_members = len(mappings)
        places = [i for i, (s, _) in enumerate(pairs) if s == session_id]
        groups.append((places, mappings))

    def members(images: np.ndarray) -> np.ndarray:
        features = extract(images)
        out = np.empty((num_members, len(images), len(pairs)), dtype=np.float64)
        for places, mappings in groups:
            for m, (source, mapping) in enumerate(mappings):
                out[m][:, places] = mapping.predict(features[source])
        return out

    return members, [f"{s}/{k}" for s, k in pairs]


# -- the cache --------------------------------------------------------------------------------
class TeacherCache:
    """Teacher responses on disk, computed once per image.

    Layout: ``<root>/<teacher>-<key>/teacher.json`` (spec and neuron ids) and one
    ``<shard key>.npy`` per shard: float32 ``(images in the shard, K)``, NaN rows not yet
    computed. Processes of a ``torchrun`` job write disjoint rows of the same files.

    Args:
        root: the cache folder.
        teacher: the :class:`Teacher` whose responses are cached.

    Attributes:
        folder: this teacher's folder.
        seconds: time spent in the teacher (for throughput reports).
        computed, reused: images computed / read from the cache so far.
    """

    def __init__(self, root: str | os.PathLike, teacher: Teacher) -> None:
        self.teacher = teacher
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", teacher.spec)[:40].strip("_") or "teacher"
        self.folder = Path(root) / f"{slug}-{teacher.key}"
        self._arrays: dict[str, np.memmap] = {}
        self.seconds = 0.0
        self.computed = 0
        self.reused = 0

    def prepare(self, shards, is_main: bool = True) -> None:
        """Create the missing shard files (call on the main process, then a barrier)."""
        if not is_main:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        info = self.folder / "teacher.json"
        if not info.is_file():
            info.write_text(json.dumps({"spec": self.teacher.spec,
                                        "neuron_ids": self.teacher.neuron_ids,
                                        "units": self.teacher.units}, indent=1))
        for shard in shards:
            path = self._path(shard)
            if path.is_file():
                continue
            temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            array = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.float32,
                                              shape=(len(shard), len(self.teacher.neuron_ids)))
            array[:] = np.nan
            array.flush()
            del array
            os.replace(temporary, path)

    def _path(self, shard) -> Path:
        return self.folder / f"{shard.key}.npy"

    def _array(self, shard) -> np.memmap:
        if shard.key not in self._arrays:
            path = self._path(shard)
            if not path.is_file():
                raise InvalidInputError(f"teacher cache {path} missing; call prepare() first")
            self._arrays[shard.key] = np.load(path, mmap_mode="r+")
        return self._arrays[shard.key]

    def responses(self, shard, indices: np.ndarray, images=None) -> np.ndarray:
        """Teacher responses of images of one shard, computing (and storing) missing ones.

        Args:
            shard: the :class:`~v4compact.training.corpus.Shard`.
            indices: int image indices within the shard ``(n,)``.
            images: uint8 ``(n, 112, 112, 3)`` of those indices (numpy or tensor), or
                ``None`` to decode the missing ones from the shard.

        Returns:
            float32 ``(n, K)``.
        """
        indices = np.asarray(indices, dtype=np.int64)
        array = self._array(shard)
        out = np.array(array[indices], dtype=np.float32)
        missing = np.flatnonzero(np.isnan(out).any(axis=1))
        self.reused += len(indices) - len(missing)
        if len(missing):
            if images is None:
                batch = np.stack([shard.image(int(indices[m])) for m in missing])
            else:
                batch = np.asarray(images)[missing]
            start = time.perf_counter()
            out[missing] = self.teacher(batch)
            self.seconds += time.perf_counter() - start
            self.computed += len(missing)
            array[indices[missing]] = out[missing]
        return out

    def flush(self) -> None:
        """Write the computed rows to disk (before a checkpoint)."""
        for array in self._arrays.values():
            array.flush()
