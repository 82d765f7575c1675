"""The dataset registry: the release is one dataset, each lab's imported recordings another.

In the spirit of timm's registry, a dataset is a name plus a way to list and open its
sessions, and listing reads no response file. Two kinds are registered:

- ``cowley2023``, the public release (:data:`RELEASE_DATASET`): its 50 sessions keep their
  six-digit ids (``190923``; also accepted as ``cowley2023:190923``) and its neurons their
  ``<session>/<k>`` ids (``201025/10``);
- user datasets, one per folder ``<root>/<dataset>/`` of sessions imported by
  :func:`v4compact.import_session`. A user session id is ``<dataset>:<session>``
  (``mylab:s01``), a user neuron id ``<dataset>:<session>/<k>`` (``mylab:s01/7``). The colon
  makes them unable to collide with a release id (digits only) or a model id
  (``compact/...``, ``file:<path>`` - ``file`` is a reserved dataset name).

Roots searched for user datasets, in order: ``<data dir>/datasets`` (:data:`DATASETS_DIR`),
then the folders of ``$V4COMPACT_DATASETS`` (``os.pathsep``-separated), then folders given
to :func:`register_folder`. The first root holding ``<dataset>/<session>/manifest.json``
wins. :func:`parse_name` and :func:`split_neuron_ref` are the one parser of these ids
(:func:`v4compact.data.catalog.parse_session_id` adds the release's catalogue).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

from .. import config
from ..errors import InvalidInputError, UnknownSessionError

#: Name of the release's dataset.
RELEASE_DATASET = "cowley2023"
#: Sub-folder of the data directory holding imported datasets.
DATASETS_DIR = "datasets"
#: Environment variable with more roots of imported datasets (``os.pathsep``-separated).
DATASETS_ENV_VAR = "V4COMPACT_DATASETS"
#: The manifest file of an imported session (its presence makes a folder a session).
MANIFEST = "manifest.json"
#: Names no user dataset may take: the release, and the model families' id prefixes.
RESERVED_NAMES = frozenset({RELEASE_DATASET, "release", "compact", "shared", "population",
                            "ensemble", "file"})

_DATASET_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_SESSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_EXTRA_ROOTS: list[Path] = []


def check_dataset_name(name: str) -> str:
    """A valid, unreserved user dataset name, or a one-line error saying what is allowed."""
    if not isinstance(name, str) or not _DATASET_NAME.fullmatch(name):
        raise InvalidInputError(
            f"bad dataset name {name!r}; use 1-32 characters: a lower-case letter, then "
            "lower-case letters, digits, '-' or '_' (e.g. 'mylab')"
        )
    if name in RESERVED_NAMES:
        raise InvalidInputError(
            f"dataset name {name!r} is reserved; choose another, e.g. 'mylab'"
        )
    return name


def check_session_name(name: str) -> str:
    """A valid session name within a dataset (``s01``, ``2024-03-01``)."""
    if not isinstance(name, str) or not _SESSION_NAME.fullmatch(name) or ".." in name:
        raise InvalidInputError(
            f"bad session name {name!r}; use 1-64 letters, digits, '.', '-' or '_', starting "
            "with a letter or digit (e.g. 's01')"
        )
    return name


def parse_name(full: str) -> tuple[str, str]:
    """``"mylab:s01"`` -> ``("mylab", "s01")``, both checked (the form ``--name`` takes)."""
    dataset, sep, session = str(full).partition(":")
    if not sep:
        raise InvalidInputError(
            f"bad session name {full!r}; write DATASET:SESSION, e.g. 'mylab:s01'"
        )
    return check_dataset_name(dataset), check_session_name(session)


def is_user_session_id(value) -> bool:
    """True for the ``dataset:session`` form (not checked further)."""
    return isinstance(value, str) and ":" in value


def split_neuron_ref(neuron_id) -> tuple[str, int] | None:
    """``"mylab:s01/7"`` -> ``("mylab:s01", 7)``; ``None`` when not of the user form.

    Raises:
        InvalidInputError: a user-form id with a bad dataset, session or neuron index.
    """
    text = str(neuron_id)
    if ":" not in text.partition("/")[0]:
        return None
    session, sep, index = text.rpartition("/")
    if not sep or not re.fullmatch(r"0|[1-9][0-9]*", index):
        raise InvalidInputError(
            f"bad neuron id {text!r}; use '<dataset>:<session>/<neuron>', e.g. 'mylab:s01/7'"
        )
    dataset, name = parse_name(session)
    if dataset == RELEASE_DATASET:
        raise InvalidInputError(f"bad neuron id {text!r}; release neurons are written "
                                f"'{name}/{index}'")
    return f"{dataset}:{name}", int(index)


# -- where user datasets live ------------------------------------------------------------------
def register_folder(path: str | os.PathLike) -> Path:
    """Add a folder of datasets (``<path>/<dataset>/<session>/``) to the roots searched."""
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise InvalidInputError(f"dataset folder {root} does not exist; give an existing folder")
    if root not in _EXTRA_ROOTS:
        _EXTRA_ROOTS.append(root)
    return root


def roots(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """The folders searched for user datasets, in order (existing or not)."""
    out = [config.data_dir(data_dir) / DATASETS_DIR]
    out += [Path(p).expanduser() for p in os.environ.get(DATASETS_ENV_VAR, "").split(os.pathsep)
            if p]
    out += _EXTRA_ROOTS
    return list(dict.fromkeys(out))


def default_root(data_dir: str | os.PathLike | None = None) -> Path:
    """Where an import writes unless told otherwise: ``<data dir>/datasets``."""
    return config.data_dir(data_dir) / DATASETS_DIR


def find_session(session_id: str, data_dir: str | os.PathLike | None = None) -> Path:
    """The folder of an imported session.

    Raises:
        UnknownSessionError: no root holds it; the message lists what was searched and how to
            import or register it.
    """
    dataset, session = parse_name(session_id)
    searched = roots(data_dir)
    for root in searched:
        folder = root / dataset / session
        if (folder / MANIFEST).is_file():
            return folder
    known = sorted({m["id"] for _, m in manifests(data_dir) if m.get("dataset") == dataset})
    have = f"dataset {dataset} has {', '.join(known)}; " if known else ""
    raise UnknownSessionError(
        f"unknown session {session_id!r} ({have}searched {', '.join(map(str, searched))}); "
        f"import it with: v4compact data import SOURCE --name {session_id}"
    )


def _manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def manifests(data_dir: str | os.PathLike | None = None) -> Iterator[tuple[Path, dict]]:
    """``(session folder, manifest dict)`` of every imported session found in the roots, in
    root order and then by path; an unreadable manifest is passed over, and an id already
    found in an earlier root is not given again (the first root holding an id wins)."""
    seen: set[str] = set()
    for root in roots(data_dir):
        if not root.is_dir():
            continue
        for manifest_path in sorted(root.glob(f"*/*/{MANIFEST}")):
            manifest = _manifest(manifest_path.parent)
            if not manifest or manifest.get("id") in seen:
                continue
            seen.add(manifest["id"])
            yield manifest_path.parent, manifest
