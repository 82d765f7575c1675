"""The one way to ask for a local release file: :func:`require` turns a release path into a
local path, or raises a :class:`~v4compact.errors.DataNotFoundError` that names the file, the
directory searched and the command that fetches it (the narrowest fetch group,
:func:`fetch_group_of`).
"""

from __future__ import annotations

import os
from pathlib import Path

from .. import config
from ..errors import DataNotFoundError
from .paths import fetch_command
from .registry import classify, load_registry

__all__ = ["fetch_group_of", "require"]


def fetch_group_of(relpath: str) -> str:
    """The narrowest ``v4compact data fetch`` group holding a release file.

    ``kind:selector`` from :func:`v4compact.data.registry.classify`, e.g.
    ``images:190923``, ``compact-models-npy:201025/10``, ``shared-models:from_vgg19``.
    """
    kind, selector = classify(relpath)
    return f"{kind}:{selector}" if selector else kind


def require(
    relpath: str,
    data_dir: str | os.PathLike | None = None,
    fetch_group: str | None = None,
) -> Path:
    """The local path of a release file, or a one-line error saying how to get it.

    Args:
        relpath: release-relative path (one of :mod:`v4compact.data.paths`).
        data_dir: data directory; ``None`` resolves it through :func:`v4compact.config.data_dir`.
        fetch_group: the ``v4compact data fetch`` group to name (default: :func:`fetch_group_of`
            of the path, the narrowest group that downloads it).

    Returns:
        Absolute path of the existing file.

    Raises:
        DataNotFoundError: the file is not in the data directory; the message names the file,
            the directory searched (and where its setting came from) and the fetch command, or
            says that the public release does not contain the file at all.
    """
    root = config.data_dir(data_dir)
    path = root / relpath
    if path.is_file():
        return path
    where = f"data directory {root} (from {config.data_dir_source(data_dir)})"
    if relpath not in load_registry():
        raise DataNotFoundError(
            f"{relpath} not found in {where}, and the public release has no such file"
        )
    command = fetch_command(fetch_group or fetch_group_of(relpath), data_dir)
    raise DataNotFoundError(f"{relpath} not found in {where}; fetch it with: {command}")
