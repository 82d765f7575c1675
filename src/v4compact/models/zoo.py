"""The model zoo: load any model by id, list the released models and their files' status.

The families (:mod:`.families`: id forms, files, fetch groups, neurons, units) and the neuron
ids (:mod:`.ids`) are re-exported here, so ``v4compact.models.zoo`` stays the one place a
user looks models up. :func:`load_model` finds a family's loader through the family's
registered factory, which the family's module registers when :func:`.families.factory`
first imports it by name: this module imports no network, engine or file format, so every
layer of the package may call it.

This module does not import torch.
"""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field

from .. import config
from ..data import paths
from .families import (
    COMPACT,
    ENSEMBLE,
    FAMILIES,
    FILE,
    NUM_ENSEMBLE_MEMBERS,
    POPULATION,
    SHARED,
    SHARED_NUM_FILTERS,
    SHARED_TEACHERS,
    CompactFamily,
    EnsembleFamily,
    FileFamily,
    ModelFamily,
    PopulationFamily,
    SharedFamily,
    factory,
    family_of,
    parse_model_id,
    register_factory,
)
from .ids import (
    RESIZE_POLICY,
    Z_SCORED_UNITS,
    canonical_key,
    check_neuron,
    model_neuron_ids,
    parse_neuron_id,
    session_neuron_ids,
    split_neuron_id,
)

__all__ = [
    "COMPACT", "ENSEMBLE", "FAMILIES", "FILE", "NUM_ENSEMBLE_MEMBERS", "POPULATION",
    "RESIZE_POLICY", "SHARED", "SHARED_NUM_FILTERS", "SHARED_TEACHERS", "Z_SCORED_UNITS",
    "CompactFamily", "EnsembleFamily", "FileFamily", "ModelFamily", "ModelStatus",
    "PopulationFamily", "SharedFamily", "canonical_key", "check_neuron", "factory",
    "family_of", "list_models", "load_model", "model_neuron_ids", "model_status",
    "parse_model_id", "parse_neuron_id", "register_factory", "session_neuron_ids",
    "split_neuron_id",
]


def load_model(model_id: str, device="cpu", data_dir: str | os.PathLike | None = None):
    """Load any model by id (see the module docstring for the id forms).

    Args:
        model_id: e.g. ``"compact/201025/10"``, ``"shared/from_vgg19/50"``, ``"population"``,
            ``"file:my_model.onnx"``.
        device: torch device for the parameters.
        data_dir: data directory (default: :func:`v4compact.config.data_dir`).

    Returns:
        A :class:`~v4compact.models.nets.base.V4Model` in inference mode (outputs in z-scored
        units for the released models), or the loaded user file.

    Raises:
        UnknownModelError, UnknownSessionError, UnknownNeuronError: no such model.
        DataNotFoundError: a file is missing (the message names the fetch command).
    """
    family, fields = parse_model_id(str(model_id).strip())
    return factory(family.name)(**fields, device=device, data_dir=data_dir)


# -- listing -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelStatus:
    """Whether a model's files are in the data directory.

    Attributes:
        model_id: the id.
        family: the family name.
        missing: release paths of its files that are not in the data directory.
        fetch_command: the command that fetches them (``None`` when nothing is missing).
    """

    model_id: str
    family: str
    missing: tuple[str, ...] = field(default=())
    fetch_command: str | None = None

    @property
    def present(self) -> bool:
        """True when every file of the model is in the data directory."""
        return not self.missing

    @property
    def status(self) -> str:
        """``"present"`` or ``"missing"``."""
        return "present" if self.present else "missing"


def _released_ids(pattern: str | None) -> list[tuple[ModelFamily, str]]:
    return [(f, i) for f in FAMILIES.values() for i in f.ids()
            if pattern is None or fnmatch.fnmatchcase(i, pattern)]


def model_status(pattern: str | None = None,
                 data_dir: str | os.PathLike | None = None) -> list[ModelStatus]:
    """Every released model id (optionally filtered) with its status in the data directory.

    Args:
        pattern: shell-style filter, e.g. ``"compact/201025/*"`` or ``"shared/*/200"``.
        data_dir: data directory (default: :func:`v4compact.config.data_dir`); it need not
            exist (everything is then missing).

    Returns:
        One :class:`ModelStatus` per id, in the order of :func:`list_models`.
    """
    root = config.data_dir(data_dir)
    out = []
    for family, model_id in _released_ids(pattern):
        missing = tuple(rel for rel in family.files(model_id) if not (root / rel).is_file())
        command = (paths.fetch_command(family.fetch_group_of(model_id), data_dir)
                   if missing else None)
        out.append(ModelStatus(model_id, family.name, missing, command))
    return out


def list_models(pattern: str | None = None, data_dir: str | os.PathLike | None = None, *,
                present_only: bool = False) -> list[str]:
    """Ids of every released model, on any machine (no data needed).

    Args:
        pattern: shell-style filter, e.g. ``"compact/201025/*"`` or ``"shared/*/200"``.
        data_dir: data directory, read only with ``present_only``.
        present_only: keep only the models whose files are all in the data directory.

    Returns:
        Ids in canonical order: the 219 compact models (session, neuron), the 56 shared
        models (teacher, filters), ``"population"``, ``"ensemble"`` and its 25 members.
        :func:`model_status` gives each id's status and fetch command.
    """
    if present_only:
        return [s.model_id for s in model_status(pattern, data_dir) if s.present]
    return [model_id for _, model_id in _released_ids(pattern)]
