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
wins. :func:`parse_session_id` and :func:`split_neuron_ref` are the one parser of these ids.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
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


def parse_session_id(value) -> int | str:
    """The canonical id of a session of any dataset.

    Args:
        value: a release id (``190923``, ``"190923"``, ``"cowley2023:190923"``) or a user id
            (``"mylab:s01"``).

    Returns:
        ``int`` for a release session (checked against the catalogue), ``"dataset:session"``
        for a user session (its form checked; :func:`find_session` says whether it exists).

    Raises:
        UnknownSessionError: an unknown release session or a malformed user id.
    """
    from .catalog import session_info

    if is_user_session_id(value):
        dataset, _, session = value.partition(":")
        if dataset == RELEASE_DATASET:
            return session_info(session).session_id
        try:
            return ":".join(parse_name(value))
        except InvalidInputError as err:
            raise UnknownSessionError(str(err)) from None
    return session_info(value).session_id


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
    known = [s.session_id for s in user_sessions(data_dir) if s.dataset == dataset]
    have = f"dataset {dataset} has {', '.join(known)}; " if known else ""
    raise UnknownSessionError(
        f"unknown session {session_id!r} ({have}searched {', '.join(map(str, searched))}); "
        f"import it with: v4compact data import SOURCE --name {session_id}"
    )


@dataclass(frozen=True)
class DatasetInfo:
    """One registered dataset.

    Attributes:
        name: ``cowley2023`` or a user dataset's name.
        kind: ``"release"`` or ``"imported"``.
        folder: the folder of an imported dataset (``None`` for the release).
        num_sessions: sessions found.
    """

    name: str
    kind: str
    folder: Path | None
    num_sessions: int


def _manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def user_sessions(data_dir: str | os.PathLike | None = None):
    """Catalogue records (:class:`~v4compact.data.catalog.SessionInfo`) of every imported
    session, from the manifests only (no array is read), sorted by id; the first root
    holding an id wins."""
    found: dict = {}
    for root in roots(data_dir):
        if not root.is_dir():
            continue
        for manifest_path in sorted(root.glob(f"*/*/{MANIFEST}")):
            manifest = _manifest(manifest_path.parent)
            if not manifest or manifest.get("id") in found:
                continue
            found[manifest["id"]] = session_info_from_manifest(manifest)
    return [found[k] for k in sorted(found)]


def session_info_from_manifest(manifest: dict):
    """The catalogue record (:class:`~v4compact.data.catalog.SessionInfo`) of an imported
    session, from its manifest (split ``"imported"``)."""
    from .catalog import SessionInfo

    return SessionInfo(
        session_id=manifest["id"], animal=manifest.get("animal") or "", split="imported",
        num_neurons=int(manifest["num_neurons"]), num_images=int(manifest["num_images"]),
        median_repeats=int(manifest.get("median_repeats") or 1),
        image_types=manifest.get("image_types", ""), dataset=manifest["dataset"])


def list_datasets(data_dir: str | os.PathLike | None = None) -> list[DatasetInfo]:
    """The release and every imported dataset found in the roots."""
    from .catalog import list_sessions

    out = [DatasetInfo(RELEASE_DATASET, "release", None,
                       len(list_sessions(dataset=RELEASE_DATASET)))]
    counts: dict[str, int] = {}
    for info in user_sessions(data_dir):
        counts[info.dataset] = counts.get(info.dataset, 0) + 1
    for name, count in sorted(counts.items()):
        folder = next(r / name for r in roots(data_dir) if (r / name).is_dir())
        out.append(DatasetInfo(name, "imported", folder, count))
    return out


def expand_neurons(patterns, data_dir: str | os.PathLike | None = None) -> list[str]:
    """Neuron ids of any dataset, with shell-style patterns expanded.

    Args:
        patterns: ids and patterns: ``"201025/10"``, ``"mylab:s01/7"``, ``"mylab:s01/*"``,
            ``"201025/1?"``, ``"mylab:*/*"`` (the session part may be a pattern too).
        data_dir: data directory (where imported sessions are looked for).

    Returns:
        Neuron ids in the order given, each pattern's matches in (session, neuron) order,
        without duplicates.

    Raises:
        InvalidInputError: a pattern that matches no neuron (the message names the
            sessions looked at).
    """
    import fnmatch

    from .catalog import list_sessions

    out: list[str] = []
    for pattern in [patterns] if isinstance(patterns, str) else patterns:
        text = str(pattern).strip()
        if not any(c in text for c in "*?["):
            out.append(text)
            continue
        session_part, sep, neuron_part = text.rpartition("/")
        if not sep:
            raise InvalidInputError(f"bad neuron pattern {text!r}; write SESSION/NEURON, e.g. "
                                    "'mylab:s01/*' or '201025/*'")
        infos = [i for i in list_sessions(data_dir=data_dir)
                 if fnmatch.fnmatchcase(str(i.session_id), session_part)
                 or (i.dataset == RELEASE_DATASET
                     and fnmatch.fnmatchcase(f"{RELEASE_DATASET}:{i.session_id}",
                                             session_part))]
        found = [f"{i.session_id}/{k}" for i in infos for k in range(i.num_neurons)
                 if fnmatch.fnmatchcase(str(k), neuron_part)]
        if not found:
            looked = ", ".join(str(i.session_id) for i in infos) or "no session matches"
            raise InvalidInputError(f"neuron pattern {text!r} matches no neuron (sessions: "
                                    f"{looked}); list them with: v4compact data sessions")
        out += found
    return list(dict.fromkeys(out))
