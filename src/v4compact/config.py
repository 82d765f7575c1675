"""Where the data lives: one setting, resolved in a fixed order.

1. an explicit argument (``data_dir=`` in Python, ``--data-dir`` on the command line);
2. the environment variable ``V4COMPACT_DATA``;
3. a per-user cache directory (``$XDG_CACHE_HOME/v4compact`` or ``~/.cache/v4compact``;
   ``%LOCALAPPDATA%\\v4compact`` on Windows), which ``v4compact data fetch`` fills.

The folder is laid out like the public release (``data_V4_responses/...``,
``data_compact_models/...``), so a clone of the release works as a data directory too.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ENV_VAR = "V4COMPACT_DATA"


def default_cache_dir() -> Path:
    """The per-user cache directory used when nothing else is set."""
    if sys.platform.startswith("win"):
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "v4compact"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "v4compact"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "v4compact"


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """Resolve the data directory: explicit argument, then ``$V4COMPACT_DATA``, then the cache.

    Args:
        explicit: a directory given by the caller; wins over everything else.

    Returns:
        The absolute path of the data directory (it may not exist yet).
    """
    if explicit is not None and str(explicit) != "":
        return Path(explicit).expanduser().resolve()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser().resolve()
    return default_cache_dir()


def data_dir_source(explicit: str | os.PathLike | None = None) -> str:
    """Say where :func:`data_dir` took its answer from ("argument", "$V4COMPACT_DATA", "cache")."""
    if explicit is not None and str(explicit) != "":
        return "argument"
    if os.environ.get(ENV_VAR):
        return f"${ENV_VAR}"
    return "cache"
