"""Atomic file writes: a reader, or a job killed half-way, never sees half a file.

One mechanism for every file the package writes whole (training checkpoints and metrics logs,
run descriptions, the explorer's asset cache): the content goes to a temporary file in the
target's folder, is flushed to disk, and is renamed over the target (``os.replace`` is atomic
on POSIX and Windows). Temporary names start with ``.`` and end in ``.tmp`` (never served,
never mistaken for a result).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

__all__ = ["atomic_write"]


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", **open_kwargs) -> Iterator[IO]:
    """An open temporary file next to ``path``, renamed onto ``path`` when the block ends
    without error and removed otherwise.

    Args:
        path: the target (its folder is created).
        mode: a write mode (``"w"``, ``"wb"``).
        **open_kwargs: passed to :func:`open` (e.g. ``newline=""`` for CSV).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                         dir=path.parent)
    try:
        with os.fdopen(handle, mode, **open_kwargs) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
