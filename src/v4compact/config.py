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


#: Environment variable naming the project's public GitHub repository (see
#: :func:`repository_url`).
REPO_URL_ENV_VAR = "V4COMPACT_REPO_URL"
#: The project's public GitHub repository, or None while no public copy exists. This is the
#: one setting behind every "open in Colab" link and every install-from-GitHub line (the
#: explorer's tutorial pages, the notebooks that ``scripts/build_notebooks.py`` writes);
#: ``$V4COMPACT_REPO_URL`` overrides it, e.g. for a fork.
PUBLIC_REPOSITORY: str | None = None


def repository_url() -> str | None:
    """The project's public GitHub repository URL, or None when there is no public copy.

    Returns:
        ``$V4COMPACT_REPO_URL`` when set, else :data:`PUBLIC_REPOSITORY`, without a trailing
        ``/`` (e.g. ``"https://github.com/owner/v4compact"``); None means that no public copy
        of the project exists, so there are no Colab links and nothing to install from GitHub.
    """
    url = os.environ.get(REPO_URL_ENV_VAR) or PUBLIC_REPOSITORY
    return url.rstrip("/") if url else None


#: What the explorer and the notebooks say where a Colab link would be, while
#: :func:`repository_url` is None.
NO_PUBLIC_COPY = (
    "There is no public copy of this project yet, so there is no Colab link; run the notebooks "
    "on your own computer with Jupyter (see docs/tutorials.md)."
)


def colab_url(notebook: str, repo_url: str | None = None) -> str | None:
    """The "open in Colab" address of ``notebooks/<notebook>.ipynb`` on the main branch.

    Args:
        notebook: the notebook's name without ``.ipynb``, e.g. ``"01_load_data"``.
        repo_url: the GitHub repository (default: :func:`repository_url`).

    Returns:
        The URL, or None when there is no public repository.
    """
    repo_url = repo_url or repository_url()
    if not repo_url:
        return None
    repo = repo_url.rstrip("/").removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{repo}/blob/main/notebooks/{notebook}.ipynb"
