"""Download release files into the data directory (pooch), and report what is there.

:func:`fetch` downloads named groups of files (see :mod:`v4compact.data.registry`) with
`pooch <https://www.fatiando.org/pooch>`_: retries with back-off, SHA-256 verification where
the registry knows it, and an atomic move into place, so an interrupted or corrupt download
never leaves a bad file behind. Files whose SHA-256 is not known are verified against their git
blob SHA-1. Transfers resume: bytes already received are kept in ``<file>.part`` next to the
target and the next attempt asks the server only for the rest (HTTP ``Range``). When the server
cannot be reached at all (no network, a wrong ``--base-url``), the first file stops the run
with one message, instead of every file being retried.

:func:`data_status` counts, per kind of file, what is present, missing or corrupt.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .. import config
from ..errors import CorruptDataError, DownloadError
from .registry import KINDS, RegistryEntry, check_file, load_registry, resolve
from .registry import base_url as _resolve_base_url

_CHUNK_SIZE = 1 << 16
_TIMEOUT_S = 60
#: Seconds to wait for a server to accept the connection (an unreachable one fails fast).
_CONNECT_TIMEOUT_S = 10


class _ServerUnreachable(Exception):
    """No connection to the server could be opened before any file came from it.

    Not a ``requests`` error and not a ``ValueError``, so pooch does not retry it.
    """


@dataclass
class _Contact:
    """Whether the server has answered at least once during this fetch."""

    answered: bool = False


class _ResumingDownloader:
    """A pooch downloader that resumes from ``<target>.part`` and checks size and git SHA-1.

    pooch calls it as ``downloader(url, output_file, pooch)`` with a temporary output file in the
    target's folder; it moves the completed part file there. A wrong size or git blob SHA-1
    deletes the part file and raises ``ValueError``, which pooch treats as a failed attempt.
    """

    def __init__(self, entry: RegistryEntry, target: Path, progress: bool, contact: _Contact):
        self.entry = entry
        self.part = target.with_name(target.name + ".part")
        self.progress = progress
        self.contact = contact

    def __call__(self, url: str, output_file: str, pooch_instance) -> None:
        import requests
        from tqdm.auto import tqdm

        have = self.part.stat().st_size if self.part.exists() else 0
        if self.entry.size_bytes is not None and have > self.entry.size_bytes:
            self.part.unlink()
            have = 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            response = requests.get(url, headers=headers, stream=True,
                                    timeout=(_CONNECT_TIMEOUT_S, _TIMEOUT_S))
        except requests.ConnectionError as err:
            if not self.contact.answered:  # never reached: retrying every file cannot help
                raise _ServerUnreachable(_connection_reason(err)) from err
            raise
        self.contact.answered = True
        with response:
            if response.status_code == 416 and have:  # part already complete (or stale)
                response.close()
                self._finish(output_file)
                return
            response.raise_for_status()
            resumed = have > 0 and response.status_code == 206
            if not resumed:
                have = 0
            remaining = int(response.headers.get("content-length", 0)) or None
            total = have + remaining if remaining is not None else self.entry.size_bytes
            with (
                open(self.part, "ab" if resumed else "wb") as out,
                tqdm(
                    total=total, initial=have, unit="B", unit_scale=True, leave=False,
                    desc=Path(self.entry.path).name, disable=not self.progress,
                    file=sys.stderr,
                ) as bar,
            ):
                for chunk in response.iter_content(chunk_size=_CHUNK_SIZE):
                    out.write(chunk)
                    bar.update(len(chunk))
        self._finish(output_file)

    def _finish(self, output_file: str) -> None:
        problem = _problem(self.part, self.entry, hash_blob=self.entry.sha256 is None)
        if problem:
            self.part.unlink(missing_ok=True)
            raise ValueError(f"{self.entry.path}: {problem}")
        os.replace(self.part, output_file)  # pooch checks SHA-256 and moves it into place


def _connection_reason(err: Exception) -> str:
    """``"Connection refused"`` out of requests' long nested connection-error text."""
    match = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(err))
    if match:
        return match.group(1).strip()
    return "connect timeout" if "timeout" in str(err).lower() else "connection failed"


def _problem(path: Path, entry: RegistryEntry, hash_blob: bool) -> str | None:
    size = path.stat().st_size
    if entry.size_bytes is not None and size != entry.size_bytes:
        return f"size {size} bytes, expected {entry.size_bytes}"
    if hash_blob:
        return check_file(path, entry, verify=True)
    return None


@contextmanager
def _quiet_pooch():
    """pooch logs every download at INFO to stderr; we draw our own progress instead."""
    import pooch

    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def fetch(
    what: str | Iterable[str] = "sessions",
    data_dir: str | os.PathLike | None = None,
    base_url: str | None = None,
    progress: bool = True,
    retries: int = 3,
) -> list[Path]:
    """Download release files into the data directory, verified, skipping good local copies.

    Args:
        what: one group name or several (``sessions``, ``images``, ``images:190923``,
            ``session:190923``, ``compact-models``, ``compact-models:201025/10``,
            ``shared-models``, ``ensemble-members``, ``all``, a release path ...; see
            :func:`v4compact.data.registry.resolve` and ``docs/data.md``).
        data_dir: destination; ``None`` resolves it through :func:`v4compact.config.data_dir`.
        base_url: server holding the release layout; default ``$V4COMPACT_BASE_URL``, else the
            pinned commit on ``raw.githubusercontent.com``.
        progress: draw tqdm progress bars on stderr.
        retries: extra attempts per file after a failed or corrupt transfer (pooch waits 1 s,
            2 s, ... between them); an interrupted transfer resumes where it stopped.

    Returns:
        Local paths of all requested files (already present or downloaded), sorted by path.

    Raises:
        InvalidInputError / UnknownSessionError: a group name that matches nothing.
        CorruptDataError: a file still failed verification after all attempts (not kept).
        DownloadError: a file could not be downloaded, or the directory is not writable.
    """
    import pooch
    from tqdm.auto import tqdm

    names = [what] if isinstance(what, str) else list(what)
    entries = {e.path: e for name in (names or ["sessions"]) for e in resolve(name)}
    root = config.data_dir(data_dir)
    url = _resolve_base_url(base_url)
    registry = {path: (f"sha256:{e.sha256}" if e.sha256 else None) for path, e in entries.items()}
    store = pooch.create(path=root, base_url=url, registry=registry, retry_if_failed=retries)
    done: list[Path] = []
    failures: list[tuple[str, Exception]] = []
    todo = []
    for path, entry in sorted(entries.items()):
        local = root / path
        if local.is_file() and check_file(local, entry, verify=True) is None:
            done.append(local)
        else:
            todo.append(entry)
    bar = tqdm(todo, desc="fetching", unit="file", disable=not progress or len(todo) < 2,
               file=sys.stderr)
    contact = _Contact()
    with _quiet_pooch():
        for entry in bar:
            local = root / entry.path
            try:
                if local.exists():  # wrong content: never keep it
                    local.unlink()
                local.parent.mkdir(parents=True, exist_ok=True)
                downloader = _ResumingDownloader(entry, local, progress, contact)
                done.append(Path(store.fetch(entry.path, downloader=downloader)))
            except _ServerUnreachable as err:
                bar.close()
                raise DownloadError(
                    f"could not download {entry.path}: cannot reach {url} ({err}); without "
                    "network, point $V4COMPACT_DATA or --data-dir at a copy of the release (a "
                    "folder with sessions.csv), or give a reachable --base-url"
                ) from None
            except PermissionError as err:
                raise DownloadError(
                    f"cannot write {local}: {err.strerror}; choose a writable data directory "
                    "with --data-dir or $V4COMPACT_DATA"
                ) from err
            except (ValueError, OSError) as err:  # requests' errors are OSErrors
                # a network error keeps <file>.part so that the next run resumes; a failed
                # verification has already deleted it
                failures.append((entry.path, err))
    if failures:
        raise _failure_error(failures, len(entries), url)
    return sorted(done)


def _failure_error(failures: list[tuple[str, Exception]], total: int, url: str) -> Exception:
    path, err = failures[0]
    others = f" (and {len(failures) - 1} more of {total} files)" if len(failures) > 1 else ""
    reason = " ".join(str(err).split())
    if isinstance(err, ValueError):
        return CorruptDataError(
            f"{path} from {url} failed verification, not kept{others}: {reason}; "
            "the server may hold a different version; retry, or check --base-url"
        )
    response = getattr(err, "response", None)
    if getattr(response, "status_code", None) == 404:
        return DownloadError(
            f"could not download {path}{others}: {url} has no such file (HTTP 404); "
            "check --base-url / $V4COMPACT_BASE_URL"
        )
    return DownloadError(
        f"could not download {path} from {url}{others}: {reason}; "
        "check the network or --base-url / $V4COMPACT_BASE_URL, then re-run (it resumes)"
    )


@dataclass
class KindStatus:
    """What the data directory holds of one kind of file.

    Attributes:
        kind: one of :data:`v4compact.data.registry.KINDS` (also a fetch group name).
        description: what the files are.
        total: files of this kind in the release.
        present: files present and good (size, and hash when verified).
        missing: release paths not in the data directory.
        corrupt: release paths present but wrong (size, or hash when verified).
    """

    kind: str
    description: str
    total: int = 0
    present: int = 0
    missing: list[str] = field(default_factory=list)
    corrupt: list[str] = field(default_factory=list)


def data_status(
    data_dir: str | os.PathLike | None = None, verify: bool = False, progress: bool = False
) -> dict[str, KindStatus]:
    """Count, per kind of file, what the data directory holds of the release.

    Args:
        data_dir: the directory; ``None`` resolves it through :func:`v4compact.config.data_dir`.
        verify: hash every present file (SHA-256 where known, else git blob SHA-1); by default
            only sizes are compared (sizes are known for files of the local reference copy).
        progress: draw a tqdm bar while hashing.

    Returns:
        kind -> :class:`KindStatus`, in the display order of ``KINDS``.
    """
    from tqdm.auto import tqdm

    root = config.data_dir(data_dir)
    out = {kind: KindStatus(kind, description) for kind, description in KINDS.items()}
    entries = sorted(load_registry().values(), key=lambda e: e.path)
    for entry in tqdm(entries, desc="checking", unit="file", disable=not (verify and progress),
                      file=sys.stderr):
        row = out[entry.kind]
        row.total += 1
        local = root / entry.path
        if not local.is_file():
            row.missing.append(entry.path)
        elif check_file(local, entry, verify=verify) is not None:
            row.corrupt.append(entry.path)
        else:
            row.present += 1
    return out
