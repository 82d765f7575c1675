"""The checksummed registry of every file of the public release, and named groups of files.

The registry (``registry.tsv``, shipped in the package and built by
``scripts/build_package_data.py`` from the release manifest) pins the release to one commit.
Each file has its git blob SHA-1 (always known) and, where it was measured from a local copy,
its size and SHA-256.

Every file belongs to one *kind* (``images``, ``responses``, ``compact-models`` ...); kinds are
also the names of fetch groups, and a group name may carry a selector after a colon:
``images:190923``, ``compact-models:201025/10``, ``shared-models:from_resnet50``. See
:func:`resolve` and ``docs/data.md`` for the full list.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from ..errors import InvalidInputError
from . import paths

#: Commit of ``cowleygroup/V4_compact_models`` that the registry describes.
RELEASE_COMMIT = "f4552ad9d34a466ebc66658f72a08a8e5038f1cf"
#: Environment variable that overrides the download base URL (e.g. a mirror or a test server).
BASE_URL_ENV_VAR = "V4COMPACT_BASE_URL"
_DEFAULT_BASE_URL = "https://raw.githubusercontent.com/cowleygroup/V4_compact_models/{commit}/"

#: Kinds of files, in display order, with a short description (each is also a fetch group).
KINDS: dict[str, str] = {
    "images": "session images (zip of JPEGs)",
    "responses": "repeat-averaged responses",
    "raw-responses": "single-repeat responses",
    "compact-models": "compact models, Keras 3 .keras",
    "nums-filters": "filters per layer of each compact model",
    "compact-models-torch": "compact models, PyTorch port .pt",
    "compact-models-weights-h5": "compact models, Keras .weights.h5",
    "compact-models-npy": "compact models, weight-list .npy",
    "compact-models-h5": "compact models, legacy Keras 2 .h5",
    "compact-model-summaries": "compact model summaries .txt",
    "shared-models": "shared compact models",
    "ensemble-members": "trained ensemble-model members",
    "docs": "readme files and the ensemble summary",
}

#: Groups made of several kinds (``all`` is every file).
AGGREGATES: dict[str, tuple[str, ...]] = {
    "sessions": ("responses", "raw-responses"),
    "session": ("images", "responses", "raw-responses"),
    "compact-models": ("compact-models", "nums-filters"),
    "compact-models-all": (
        "compact-models",
        "nums-filters",
        "compact-models-torch",
        "compact-models-weights-h5",
        "compact-models-npy",
        "compact-models-h5",
        "compact-model-summaries",
    ),
}

_COMPACT_KIND = {
    "models_keras": "compact-models",
    "nums_filters": "nums-filters",
    "models_torch": "compact-models-torch",
    "model_weights_h5": "compact-models-weights-h5",
    "model_weights_npy": "compact-models-npy",
    "models_h5": "compact-models-h5",
    "model_summaries": "compact-model-summaries",
}
_SESSION_FILE = re.compile(r"(?:images|responses)_(\d{6})\.(?:zip|npy)$")
_COMPACT_FILE = re.compile(r"compact_model_(\d{6})_neuron(\d+)\.")
_MEMBER_FILE = re.compile(r"ensemble_model_member(\d+)\.keras$")


@dataclass(frozen=True)
class RegistryEntry:
    """One released file.

    Attributes:
        path: release-relative path (``/``-separated).
        git_blob_sha1: SHA-1 of ``b"blob <size>\\0" + content`` (what git stores), hex.
        size_bytes: size in bytes, or ``None`` where not measured.
        sha256: SHA-256 hex, or ``None`` where not measured.
        kind: one of :data:`KINDS`.
        selector: what a ``kind:selector`` group matches (session id, ``session/neuron``,
            teacher, member index), or ``""``.
    """

    path: str
    git_blob_sha1: str
    size_bytes: int | None
    sha256: str | None
    kind: str
    selector: str


def classify(path: str) -> tuple[str, str]:
    """The kind and selector of a release path (see :class:`RegistryEntry`)."""
    parts = path.split("/")
    name = parts[-1]
    if parts[0] == paths.RESPONSES_DIR and len(parts) == 3:
        match = _SESSION_FILE.search(name)
        sid = match.group(1) if match else ""
        kind = {"images": "images", "responses_repeat_averaged": "responses",
                "responses_raw": "raw-responses"}.get(parts[1])
        if kind:
            return kind, sid
    if parts[0] == paths.COMPACT_DIR and len(parts) == 3 and parts[1] in _COMPACT_KIND:
        match = _COMPACT_FILE.search(name)
        selector = f"{match.group(1)}/{match.group(2)}" if match else ""
        return _COMPACT_KIND[parts[1]], selector
    if parts[0] == paths.SHARED_DIR and len(parts) == 3:
        return "shared-models", parts[1]
    match = _MEMBER_FILE.search(name)
    if parts[0] == paths.ENSEMBLE_DIR and match:
        return "ensemble-members", match.group(1)
    return "docs", ""


@lru_cache(maxsize=1)
def load_registry() -> dict[str, RegistryEntry]:
    """Every file of the pinned release: release path -> :class:`RegistryEntry`."""
    text = resources.files("v4compact.data").joinpath("registry.tsv").read_text()
    out: dict[str, RegistryEntry] = {}
    for row in csv.DictReader(text.splitlines(), delimiter="\t"):
        kind, selector = classify(row["path"])
        out[row["path"]] = RegistryEntry(
            path=row["path"],
            git_blob_sha1=row["git_blob_sha1"].lower(),
            size_bytes=int(row["size_bytes"]) if row["size_bytes"] else None,
            sha256=row["sha256"].lower() or None,
            kind=kind,
            selector=selector,
        )
    return out


def base_url(explicit: str | None = None) -> str:
    """Download base URL: argument, then ``$V4COMPACT_BASE_URL``, then the pinned GitHub commit.

    Returns:
        The URL, always ending in ``/``; a release path appended to it gives the file's URL.
    """
    url = explicit or os.environ.get(BASE_URL_ENV_VAR) or _DEFAULT_BASE_URL.format(
        commit=RELEASE_COMMIT
    )
    return url if url.endswith("/") else url + "/"


def group_names() -> list[str]:
    """Names accepted by :func:`resolve` without a selector."""
    return ["all", *sorted(set(KINDS) | set(AGGREGATES))]


def resolve(what: str) -> list[RegistryEntry]:
    """The registry entries of a fetch group.

    Args:
        what: ``all``; a kind or aggregate name (see :func:`group_names`), optionally followed by
            ``:selector`` (``images:190923``, ``session:190923``, ``compact-models:201025``,
            ``compact-models:201025/10``, ``shared-models:from_vgg19``, ``ensemble-members:3``);
            or a release-relative file path.

    Returns:
        Matching entries, sorted by path (never empty).

    Raises:
        InvalidInputError: unknown group name, or a selector that matches no released file.
        UnknownSessionError: a session selector that is not one of the 50 sessions.
    """
    registry = load_registry()
    what = what.strip()
    if what in registry:
        return [registry[what]]
    name, _, selector = what.partition(":")
    if name == "all" and not selector:
        return sorted(registry.values(), key=lambda e: e.path)
    kinds = AGGREGATES.get(name) or ((name,) if name in KINDS else None)
    if kinds is None:
        raise InvalidInputError(
            f"unknown data group {what!r}; choose one of {', '.join(group_names())} "
            "(optionally with ':SESSION'), or a release file path"
        )
    if selector and re.fullmatch(r"\d{6}(/\d+)?", selector):
        from .catalog import session_info

        session_info(selector.split("/")[0])  # raises UnknownSessionError listing valid ids
    out = [
        e for e in registry.values()
        if e.kind in kinds and (
            not selector or e.selector == selector or e.selector.startswith(selector + "/")
        )
    ]
    if not out:
        raise InvalidInputError(
            f"nothing in the public release matches {what!r} (the release has no such file)"
        )
    return sorted(out, key=lambda e: e.path)


def file_sha256(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def file_git_blob_sha1(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Git blob SHA-1 hex digest: SHA-1 of ``b"blob <size>\\0" + content``."""
    digest = hashlib.sha1()
    digest.update(b"blob %d\0" % Path(path).stat().st_size)
    with open(path, "rb") as fh:
        while block := fh.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def check_file(path: str | os.PathLike, entry: RegistryEntry, verify: bool = True) -> str | None:
    """Why a local copy of ``entry`` is bad, or ``None`` when it is good.

    Args:
        path: the local file (must exist).
        entry: its registry entry.
        verify: hash the content (SHA-256 where known, else the git blob SHA-1); without it,
            only the size is compared (where known).

    Returns:
        ``None`` if the file is good, else a short reason ("size 10 bytes, expected 12").
    """
    size = Path(path).stat().st_size
    if entry.size_bytes is not None and size != entry.size_bytes:
        return f"size {size} bytes, expected {entry.size_bytes}"
    if not verify:
        return None
    if entry.sha256:
        actual = file_sha256(path)
        if actual != entry.sha256:
            return f"SHA-256 {actual[:12]}..., expected {entry.sha256[:12]}..."
        return None
    actual = file_git_blob_sha1(path)
    if actual != entry.git_blob_sha1:
        return f"git blob SHA-1 {actual[:12]}..., expected {entry.git_blob_sha1[:12]}..."
    return None
