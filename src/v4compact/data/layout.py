"""The on-disk layout of an imported session: written once, atomically; re-opened; verified.

One session is one folder ``<root>/<dataset>/<session>/`` (``root`` is ``<data dir>/datasets``
unless an import was given another folder):

================== ===========================================================================
file               content
================== ===========================================================================
manifest.json      id, dataset, session, counts, animal, units, response window, split rule,
                   the source file (path, SHA-256), the import settings, and the size and
                   SHA-256 of every other file (written last: its presence means complete)
responses.npy      float64 ``(neurons, images)``: responses averaged over repeats
raw_responses.npy  float64 ``(neurons, images, repeats)``, trailing NaN (only with repeats)
images.npy         uint8 ``(images, 112, 112, 3)``: the images after the one image path
                   (centre crop + bicubic resize of other sizes); absent when none were given
neurons.csv        ``index,name,area,animal,channel``: one row per neuron (row of responses)
images.csv         ``index,name,type,source,heldout``: one row per image (``heldout`` 0/1)
================== ===========================================================================

:func:`write_session` builds the folder under a temporary name beside the target and renames
it into place, so a reader never sees half a session and a failed import leaves nothing.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..errors import CorruptDataError, InvalidInputError
from .datasets import MANIFEST
from .registry import file_sha256

#: Layout name and version written into every manifest.
LAYOUT = "v4compact-session"
LAYOUT_VERSION = 1
NEURON_COLUMNS = ("index", "name", "area", "animal", "channel")
IMAGE_COLUMNS = ("index", "name", "type", "source", "heldout")


def _csv_text(columns, rows) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buffer.getvalue()


def check_free(root: str | os.PathLike, dataset: str, session: str,
               overwrite: bool = False) -> Path:
    """The folder ``root/dataset/session``, unless a session is there and ``overwrite`` is
    False.

    Raises:
        InvalidInputError: the session exists and ``overwrite`` is False.
    """
    target = Path(root) / dataset / session
    if (target / MANIFEST).exists() and not overwrite:
        raise InvalidInputError(
            f"session {dataset}:{session} already exists in {target}; pass --overwrite "
            "(overwrite=True) to replace it, or choose another --name"
        )
    return target


def write_session(
    root: str | os.PathLike,
    dataset: str,
    session: str,
    *,
    responses: np.ndarray,
    raw_responses: np.ndarray | None,
    images: np.ndarray | None,
    neurons: list[dict],
    image_rows: list[dict],
    heldout: np.ndarray,
    meta: dict,
    overwrite: bool = False,
) -> Path:
    """Write one session folder atomically.

    Args:
        root: folder of datasets; the session goes to ``root/dataset/session``.
        dataset, session: the two parts of the id (already checked).
        responses: float64 ``(neurons, images)``.
        raw_responses: float64 ``(neurons, images, repeats)`` or ``None``.
        images: uint8 ``(images, 112, 112, 3)`` or ``None``.
        neurons: one dict per neuron with keys ``name, area, animal, channel``.
        image_rows: one dict per image with keys ``name, type, source``.
        heldout: bool ``(images,)``, True for held-out images.
        meta: more manifest fields (``animal``, ``units``, ``window_ms``, ``split_rule``,
            ``source``, ``settings``, ``warnings``...).
        overwrite: replace an existing session of that id.

    Returns:
        The session folder.

    Raises:
        InvalidInputError: the session exists and ``overwrite`` is False.
    """
    target = check_free(root, dataset, session, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{session}.", suffix=".tmp", dir=target.parent))
    try:
        np.save(temporary / "responses.npy", np.asarray(responses, dtype=np.float64))
        if raw_responses is not None:
            np.save(temporary / "raw_responses.npy", np.asarray(raw_responses, dtype=np.float64))
        if images is not None:
            np.save(temporary / "images.npy", np.asarray(images, dtype=np.uint8))
        (temporary / "neurons.csv").write_text(_csv_text(NEURON_COLUMNS, [
            (k, n.get("name", ""), n.get("area", ""), n.get("animal", ""),
             "" if n.get("channel") is None else n["channel"])
            for k, n in enumerate(neurons)]))
        (temporary / "images.csv").write_text(_csv_text(IMAGE_COLUMNS, [
            (i, r.get("name", ""), r.get("type", ""), r.get("source", ""), int(bool(h)))
            for i, (r, h) in enumerate(zip(image_rows, heldout, strict=True))]))
        files = {p.name: {"bytes": p.stat().st_size, "sha256": file_sha256(p)}
                 for p in sorted(temporary.iterdir())}
        repeats = _repeat_counts(raw_responses)
        types = {}
        for row in image_rows:
            types[row.get("type") or "unspecified"] = types.get(row.get("type") or
                                                                "unspecified", 0) + 1
        from .. import __version__

        manifest = {
            "layout": LAYOUT, "layout_version": LAYOUT_VERSION,
            "id": f"{dataset}:{session}", "dataset": dataset, "session": session,
            "role": "imported",
            "num_neurons": int(responses.shape[0]), "num_images": int(responses.shape[1]),
            "max_repeats": int(raw_responses.shape[2]) if raw_responses is not None else 1,
            "median_repeats": int(np.median(repeats)) if repeats is not None else 1,
            "num_heldout": int(np.sum(heldout)),
            "image_types": ", ".join(f"{k} ({v})" for k, v in types.items()),
            "has_images": images is not None,
            "created": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "v4compact": __version__,
            **meta,
            "files": files,
        }
        (temporary / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        old = None
        if target.exists():
            old = target.with_name(f".{session}.old.{os.getpid()}")
            os.replace(target, old)
        os.replace(temporary, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return target


def _repeat_counts(raw: np.ndarray | None) -> np.ndarray | None:
    """Repeats per image (any neuron non-NaN), int ``(images,)``."""
    if raw is None:
        return None
    return (~np.isnan(raw)).any(axis=0).sum(axis=1)


def read_manifest(folder: str | os.PathLike) -> dict:
    """The manifest of a session folder.

    Raises:
        CorruptDataError: missing, unreadable, or not this layout.
    """
    path = Path(folder) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CorruptDataError(f"{path} is not a readable manifest ({err}); import the session "
                               "again") from err
    if manifest.get("layout") != LAYOUT or int(manifest.get("layout_version", 0)) > LAYOUT_VERSION:
        raise CorruptDataError(
            f"{path} is not a {LAYOUT} manifest of version <= {LAYOUT_VERSION}; import the "
            "session again with this version of v4compact"
        )
    return manifest


def read_table(path: Path) -> list[dict]:
    """Rows of ``neurons.csv`` / ``images.csv`` as dicts of strings."""
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def verify_session(folder: str | os.PathLike) -> list[str]:
    """What is wrong with a session folder: ``[]`` when every file matches its manifest."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    problems = []
    for name, entry in manifest["files"].items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif path.stat().st_size != entry["bytes"]:
            problems.append(f"{name} is {path.stat().st_size} bytes, expected {entry['bytes']}")
        elif file_sha256(path) != entry["sha256"]:
            problems.append(f"{name} has SHA-256 {file_sha256(path)[:12]}..., expected "
                            f"{entry['sha256'][:12]}...")
    return problems
