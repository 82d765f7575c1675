"""The model families: every kind of model the package knows, its ids, files and facts.

In the spirit of timm's registered factories, each family of models has one frozen config
(a :class:`ModelFamily` subclass) that states what the rest of the package needs to know
without loading anything: the id form and its parsing, the release files of each id and
the ``v4compact data fetch`` group that brings them, the neurons of the output columns, the
input convention (size, channel means, resize policy) and the output units. The function
that builds a family's models is registered separately with :func:`register_factory` by the
module the family names (:attr:`ModelFamily.factory_module`), which :func:`factory` imports
by name when a model is first loaded: so a family can be listed, checked and fetched before
its loader exists, and this bottom layer of :mod:`v4compact.models` imports no loader.

=============  ======================================  ===================================
family         ids                                     fetch group
=============  ======================================  ===================================
``compact``    ``compact/<session>/<neuron>`` (219)    ``compact-models:<session>/<neuron>``
``shared``     ``shared/<teacher>/<F>`` (56)           ``shared-models:<teacher>``
``population`` ``population`` (the 219 compact fused)  ``compact-models``
``ensemble``   ``ensemble``, ``ensemble/member<k>``    ``ensemble-members[:<k>]``
``file``       ``file:<path>`` (a user's model file)   none: the file is the user's
=============  ======================================  ===================================

This module does not import torch: listing models, parsing ids and checking files work on
any machine, with or without data, and stay fast.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..data import local, paths
from ..errors import (
    DataNotFoundError,
    InvalidInputError,
    UnknownModelError,
    UnknownNeuronError,
    UnknownSessionError,
)
from ..images import IMAGE_MEAN, IMAGE_SIZE
from .ids import (
    COMPACT_FAMILY,
    RESIZE_POLICY,
    Z_SCORED_UNITS,
    as_index,
    check_neuron,
    model_neuron_ids,
    show_value,
)

#: Teachers of the shared compact models (release folder names), in the order of SYSTEM.md §5.
SHARED_TEACHERS: tuple[str, ...] = (
    "from_ensemble_model",
    "linear_from_ensemble_model",
    "from_V4data_direct_fit",
    "from_resnet50",
    "from_resnet50_robust",
    "from_vgg19",
    "from_cornets",
)
#: Filter counts F of layers 0-2 of the released shared compact models.
SHARED_NUM_FILTERS: tuple[int, ...] = (5, 10, 25, 35, 50, 75, 100, 200)
#: Trained ensemble-model members in the release (member k was seeded with 31490 + k).
NUM_ENSEMBLE_MEMBERS = 25


# -- families ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelFamily:
    """What the package knows about one family of models, before loading any.

    Subclasses implement the id grammar (:meth:`ids`, :meth:`parse`, :meth:`format_id`), the
    files (:meth:`files`, :meth:`fetch_group_of`) and :meth:`neuron_ids`.

    Attributes:
        name: the family name, the first part of its ids (``"compact"``).
        id_form: the id grammar shown to users, e.g. ``"compact/<session>/<neuron>"``.
        description: one line saying what the models are.
        id_fields: the keyword arguments :meth:`parse` returns and the family's factory takes
            (besides ``device`` and ``data_dir``).
        fetch_group: the ``v4compact data fetch`` group that brings every file of the family
            (``None`` when its files are the user's own).
        factory_module: the module whose import registers the family's factory with
            :func:`register_factory`.
        input_size: side of the square images the model takes (pixels).
        channel_mean: RGB means subtracted from 0-255 pixels to make the model's input.
        resize: how an image of another size becomes input (:data:`RESIZE_POLICY`).
        units: units of the outputs (:data:`Z_SCORED_UNITS` for released models).
    """

    name: str
    id_form: str
    description: str
    id_fields: tuple[str, ...]
    fetch_group: str | None
    factory_module: str
    input_size: int = IMAGE_SIZE
    channel_mean: tuple[float, ...] = tuple(IMAGE_MEAN.tolist())
    resize: str = RESIZE_POLICY
    units: str = Z_SCORED_UNITS

    def ids(self) -> list[str]:
        """Every released id of the family, in canonical order (``[]`` for user files)."""
        raise NotImplementedError

    def parse(self, model_id: str) -> dict:
        """The factory's keyword arguments named by ``model_id`` (keys :attr:`id_fields`).

        Raises:
            UnknownModelError: not an id of this family (one line naming the id form).
        """
        raise NotImplementedError

    def format_id(self, **fields) -> str:
        """The id of the model that :meth:`parse` describes with ``fields`` (its inverse)."""
        raise NotImplementedError

    def match(self, model_id: str) -> dict | None:
        """:meth:`parse`'s fields when ``model_id`` is a model of this family, else ``None``."""
        try:
            return self.parse(model_id)
        except (UnknownModelError, UnknownSessionError, UnknownNeuronError):
            return None

    def files(self, model_id: str) -> list[str]:
        """Release-relative paths of the files the model is built from."""
        raise NotImplementedError

    def fetch_group_of(self, model_id: str) -> str | None:
        """The narrowest ``v4compact data fetch`` group that brings the model's files."""
        raise NotImplementedError

    def neuron_ids(self, model_id: str) -> list[str]:
        """``"session/neuron"`` of each output column of the model, or ``[]`` where the
        columns are not recorded neurons or are known only once the model is loaded."""
        raise NotImplementedError

    def unknown(self, model_id, detail: str = "") -> UnknownModelError:
        """The one-line error for an id that this family does not have."""
        why = f" ({detail})" if detail else ""
        return UnknownModelError(
            f"unknown {self.name} model {show_value(model_id)}{why}; use {self.id_form}"
        )

    def local_files(self, model_id: str, data_dir: str | os.PathLike | None = None) -> list[Path]:
        """The model's files in the data directory.

        Raises:
            DataNotFoundError: a file is missing; the message names it, the directory and
                the command that fetches it.
        """
        group = self.fetch_group_of(model_id)
        return [local.require(rel, data_dir, group) for rel in self.files(model_id)]


@dataclass(frozen=True)
class CompactFamily(ModelFamily):
    """The 219 compact models, one per neuron of the four model sessions (SYSTEM.md §4).

    Id ``compact/<session>/<neuron>``; one output, the neuron ``<session>/<neuron>``. Files:
    the Keras 3 ``.keras`` model and its ``nums_filters`` array (the release's other formats
    of the same model are :func:`v4compact.data.paths.compact_model` ``(..., fmt)``).
    """

    name: str = COMPACT_FAMILY
    id_form: str = "compact/<session>/<neuron>"
    description: str = "one V4 neuron: 5 conv layers with a few filters each, dense readout"
    id_fields: tuple[str, ...] = ("session_id", "neuron")
    fetch_group: str | None = "compact-models"
    factory_module: str = "v4compact.models.formats.loaders"

    def ids(self) -> list[str]:
        return [f"{self.name}/{nid}" for nid in model_neuron_ids()]

    def parse(self, model_id: str) -> dict:
        parts = str(model_id).split("/")
        if len(parts) != 3 or parts[0] != self.name:
            raise self.unknown(model_id)
        sid, k = check_neuron(parts[1], parts[2])
        return {"session_id": sid, "neuron": k}

    def format_id(self, session_id, neuron) -> str:
        sid, k = check_neuron(session_id, neuron)
        return f"{self.name}/{sid}/{k}"

    def files(self, model_id: str) -> list[str]:
        sid, k = self.parse(model_id).values()
        return [paths.compact_model(sid, k), paths.nums_filters(sid, k)]

    def fetch_group_of(self, model_id: str) -> str:
        sid, k = self.parse(model_id).values()
        return f"{self.fetch_group}:{sid}/{k}"

    def neuron_ids(self, model_id: str) -> list[str]:
        sid, k = self.parse(model_id).values()
        return [f"{sid}/{k}"]


@dataclass(frozen=True)
class SharedFamily(ModelFamily):
    """The 56 shared compact models: one network, 219 outputs (SYSTEM.md §5).

    Id ``shared/<teacher>/<F>``: F filters in layers 0-2 (100 in layers 3-4), a factorized
    readout to the 219 model neurons in canonical order. The ``linear_from_ensemble_model``
    teacher's models have no ReLUs. File: one Keras 3 ``.keras`` per id.

    Attributes:
        teachers: the teachers (release folder names).
        num_filters: the released filter counts F.
    """

    name: str = "shared"
    id_form: str = "shared/<teacher>/<F>"
    description: str = "one network for the 219 neurons, factorized readout"
    id_fields: tuple[str, ...] = ("teacher", "num_filters")
    fetch_group: str | None = "shared-models"
    factory_module: str = "v4compact.models.formats.loaders"
    teachers: tuple[str, ...] = SHARED_TEACHERS
    num_filters: tuple[int, ...] = SHARED_NUM_FILTERS

    def ids(self, teachers=None, num_filters=None) -> list[str]:
        """Ids of the released models, optionally of some teachers / filter counts only.

        Raises:
            UnknownModelError: a teacher or filter count that was not released.
        """
        teachers = self.teachers if teachers is None else tuple(teachers)
        counts = self.num_filters if num_filters is None else tuple(num_filters)
        return [self.format_id(t, f) for t in teachers for f in counts]

    def parse(self, model_id: str) -> dict:
        parts = str(model_id).split("/")
        if len(parts) != 3 or parts[0] != self.name:
            raise self.unknown(model_id)
        return self._check(parts[1], parts[2])

    def _check(self, teacher, num_filters) -> dict:
        if teacher not in self.teachers:
            raise UnknownModelError(
                f"unknown teacher {show_value(teacher)}; choose one of {', '.join(self.teachers)}"
            )
        f = as_index(num_filters)
        if f not in self.num_filters:
            raise UnknownModelError(
                f"no shared model with {show_value(num_filters)} filters; choose one of "
                f"{', '.join(map(str, self.num_filters))}"
            )
        return {"teacher": teacher, "num_filters": f}

    def format_id(self, teacher, num_filters) -> str:
        fields = self._check(teacher, num_filters)
        return f"{self.name}/{fields['teacher']}/{fields['num_filters']}"

    def files(self, model_id: str) -> list[str]:
        return [paths.shared_model(**self.parse(model_id))]

    def fetch_group_of(self, model_id: str) -> str:
        return f"{self.fetch_group}:{self.parse(model_id)['teacher']}"

    def neuron_ids(self, model_id: str) -> list[str]:
        self.parse(model_id)
        return model_neuron_ids()


@dataclass(frozen=True)
class PopulationFamily(ModelFamily):
    """All 219 compact models fused into one module (one forward pass for every neuron).

    Id ``population``; outputs: the 219 model neurons in canonical order. Files: those of
    every compact model.
    """

    name: str = "population"
    id_form: str = "population"
    description: str = "the 219 compact models fused into one module"
    id_fields: tuple[str, ...] = ()
    fetch_group: str | None = "compact-models"
    factory_module: str = "v4compact.models.formats.loaders"

    def ids(self) -> list[str]:
        return [self.name]

    def parse(self, model_id: str) -> dict:
        if model_id != self.name:
            raise self.unknown(model_id)
        return {}

    def format_id(self) -> str:
        return self.name

    def files(self, model_id: str) -> list[str]:
        self.parse(model_id)
        return [rel for cid in COMPACT.ids() for rel in COMPACT.files(cid)]

    def fetch_group_of(self, model_id: str) -> str:
        self.parse(model_id)
        return self.fetch_group

    def neuron_ids(self, model_id: str) -> list[str]:
        self.parse(model_id)
        return model_neuron_ids()


@dataclass(frozen=True)
class EnsembleFamily(ModelFamily):
    """The ensemble model, the compact models' teacher (SYSTEM.md §6).

    Ids ``ensemble`` (the mean of all members) and ``ensemble/member<k>`` (k = 0-24, member
    k seeded with 31490 + k). Files: ``data_ensemble_model/ensemble_model_member<k>.keras``;
    the loader is :func:`v4compact.models.teachers.ensemble.load_ensemble_model`. Its outputs, like
    the compact models', are in z-scored units; it takes the same re-centred 112x112 input
    (it resizes to 224 internally).

    Attributes:
        num_members: the trained members in the release.
    """

    name: str = "ensemble"
    id_form: str = "ensemble or ensemble/member<k> (k = 0-24)"
    description: str = "the teacher: ResNet50 features and 25 trained readout networks"
    id_fields: tuple[str, ...] = ("member",)
    fetch_group: str | None = "ensemble-members"
    factory_module: str = "v4compact.models.teachers.ensemble"
    num_members: int = NUM_ENSEMBLE_MEMBERS

    def ids(self) -> list[str]:
        return [self.name, *(self.format_id(k) for k in range(self.num_members))]

    def parse(self, model_id: str) -> dict:
        if model_id == self.name:
            return {"member": None}
        head, _, tail = str(model_id).partition("/")
        k = as_index(tail.removeprefix("member")) if tail.startswith("member") else None
        if head != self.name or k is None or k >= self.num_members:
            raise self.unknown(model_id)
        return {"member": k}

    def format_id(self, member: int | None = None) -> str:
        if member is None:
            return self.name
        k = as_index(member)
        if k is None or k >= self.num_members:
            raise self.unknown(f"{self.name}/member{member}")
        return f"{self.name}/member{k}"

    def _members(self, model_id: str) -> range:
        member = self.parse(model_id)["member"]
        return range(self.num_members) if member is None else range(member, member + 1)

    def files(self, model_id: str) -> list[str]:
        return [paths.ensemble_member(k) for k in self._members(model_id)]

    def fetch_group_of(self, model_id: str) -> str:
        member = self.parse(model_id)["member"]
        return self.fetch_group if member is None else f"{self.fetch_group}:{member}"

    def neuron_ids(self, model_id: str) -> list[str]:
        """``[]``: the outputs are the members' padded readout columns (training-session
        neurons), not the 219 model neurons; the loaded model names them ``output<i>``.
        Its embeddings are mapped to neurons by a ridge (SYSTEM.md §7)."""
        self.parse(model_id)
        return []


@dataclass(frozen=True)
class FileFamily(ModelFamily):
    """A user's model file: ``file:<path>``.

    ``<path>`` is a file written by ``v4compact export`` / :func:`v4compact.export_model`
    (``.onnx``, ``.safetensors``, TorchScript ``.pt``), any TorchScript module, or a compact
    model's ``.keras`` file (e.g. made by ``v4compact make-compact``); the model
    takes re-centred float32 ``(N, 3, 112, 112)`` images like every model of the package and
    returns ``(N, K)``. Its output units and neuron ids are whatever the file says. A
    ``torch.nn.Module`` object needs no id: pass it to :func:`v4compact.evaluate` directly.

    Attributes:
        prefix: what starts the id.
        suffixes: the file suffixes read.
    """

    name: str = "file"
    id_form: str = ("file:<path of a .onnx, .safetensors, TorchScript .pt or compact-model "
                    ".keras file>")
    description: str = "a user's model file (ONNX, safetensors, TorchScript or compact .keras)"
    id_fields: tuple[str, ...] = ("path",)
    fetch_group: str | None = None
    factory_module: str = "v4compact.models.formats.loaders"
    units: str = "the file's own units (z-scored units for exports of released models)"
    prefix: str = "file:"
    suffixes: tuple[str, ...] = (".onnx", ".safetensors", ".pt", ".keras")

    def ids(self) -> list[str]:
        return []

    def parse(self, model_id: str) -> dict:
        text = str(model_id)
        if not text.startswith(self.prefix) or len(text) == len(self.prefix):
            raise self.unknown(model_id)
        path = Path(text[len(self.prefix):]).expanduser()
        if path.suffix.lower() not in self.suffixes:
            raise self.unknown(model_id, f"a model file ends in {', '.join(self.suffixes)}")
        return {"path": path}

    def format_id(self, path) -> str:
        return self.prefix + str(path)

    def files(self, model_id: str) -> list[str]:
        return [str(self.parse(model_id)["path"])]

    def fetch_group_of(self, model_id: str) -> None:
        self.parse(model_id)
        return None

    def neuron_ids(self, model_id: str) -> list[str]:
        """Not known before the file is read: the loaded model's ``neuron_ids`` say."""
        self.parse(model_id)
        return []

    def local_files(self, model_id: str, data_dir: str | os.PathLike | None = None) -> list[Path]:
        """The user's file (``data_dir`` is not searched).

        Raises:
            DataNotFoundError: the file does not exist.
        """
        path = self.parse(model_id)["path"]
        if not path.is_file():
            raise DataNotFoundError(
                f"model file {path} not found; give the path of a model file "
                f"({', '.join(self.suffixes)}), e.g. one written by v4compact export"
            )
        return [path]


COMPACT = CompactFamily()
SHARED = SharedFamily()
POPULATION = PopulationFamily()
ENSEMBLE = EnsembleFamily()
FILE = FileFamily()
#: Every family, by name, in listing order.
FAMILIES: dict[str, ModelFamily] = {f.name: f for f in (COMPACT, SHARED, POPULATION, ENSEMBLE,
                                                        FILE)}


def family_of(model_id: str) -> ModelFamily:
    """The family an id belongs to (by its first part: ``compact/...``, ``file:...``).

    Raises:
        UnknownModelError: no family has ids of that form.
    """
    text = str(model_id)
    if text.startswith(FILE.prefix):
        return FILE
    family = FAMILIES.get(text.split("/")[0])
    if family is None or family is FILE:
        forms = " | ".join(f.id_form for f in FAMILIES.values())
        raise UnknownModelError(
            f"unknown model id {show_value(model_id)}; ids are {forms} (see v4compact models list)"
        )
    return family


def parse_model_id(model_id: str) -> tuple[ModelFamily, dict]:
    """``(family, fields)`` of a model id; ``family.format_id(**fields) == model_id``.

    Raises:
        UnknownModelError, UnknownSessionError, UnknownNeuronError: no such model.
    """
    family = family_of(model_id)
    return family, family.parse(model_id)


# -- factories ---------------------------------------------------------------------------------
_FACTORIES: dict[str, Callable] = {}


def _family(name: str) -> ModelFamily:
    if name not in FAMILIES:
        raise UnknownModelError(f"no model family {name!r}; choose one of {', '.join(FAMILIES)}")
    return FAMILIES[name]


def register_factory(family: str) -> Callable[[Callable], Callable]:
    """Decorator registering the function that builds a family's models.

    The function takes the family's :attr:`~ModelFamily.id_fields` and the keywords
    ``device`` and ``data_dir``, and returns a :class:`~v4compact.models.nets.base.V4Model`::

        @register_factory("ensemble")
        def load_ensemble_model(member=None, device="cpu", data_dir=None): ...

    The family's config names the module (:attr:`~ModelFamily.factory_module`) that
    :func:`load_model` imports to find it.

    Raises:
        UnknownModelError: an unknown family.
        InvalidInputError: a function whose signature does not take the family's fields, or
            a second factory for the same family.
    """
    config_ = _family(family)

    def decorate(factory: Callable) -> Callable:
        try:
            inspect.signature(factory).bind(
                **dict.fromkeys(config_.id_fields), device="cpu", data_dir=None)
        except TypeError as err:
            raise InvalidInputError(
                f"{factory.__qualname__} cannot be the {family} factory ({err}); it must take "
                f"{', '.join((*config_.id_fields, 'device', 'data_dir'))}"
            ) from None
        old = _FACTORIES.get(family)
        same = old is not None and (old.__module__, old.__qualname__) == (
            factory.__module__, factory.__qualname__)
        if old is not None and not same:  # the same one again: a module re-imported
            raise InvalidInputError(
                f"the {family} family already has the factory {old.__module__}."
                f"{old.__qualname__}; remove one of the two registrations"
            )
        _FACTORIES[family] = factory
        return factory

    return decorate


def factory(family: str) -> Callable:
    """The registered factory of a family (importing its :attr:`~ModelFamily.factory_module`).

    Raises:
        UnknownModelError: an unknown family, or one whose module registers no factory.
    """
    config_ = _family(family)
    if family not in _FACTORIES:
        importlib.import_module(config_.factory_module)
    if family not in _FACTORIES:
        raise UnknownModelError(
            f"no loader of {family} models is registered; {config_.factory_module} must "
            f"decorate one with @register_factory({family!r})"
        )
    return _FACTORIES[family]
