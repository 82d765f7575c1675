"""Checks of command-line values made before any work is done: a long computation is never
lost to an output path that cannot be written or a number out of range."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..errors import InvalidInputError

#: Figure file types matplotlib writes for us.
FIGURE_SUFFIXES = (".png", ".pdf", ".svg")


def check_positive(option: str, value: float) -> None:
    """Raise :class:`InvalidInputError` unless ``value`` is at least 1 (counts, steps, ...)."""
    if not value >= 1:  # also refuses nan
        raise InvalidInputError(f"{option} must be at least 1, got {value}")


def _probe(folder: Path, option: str, given: str) -> None:
    """Create ``folder`` (and parents) and write and delete a probe file in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise InvalidInputError(
            f"{option} {given}: cannot write in {folder} ({err.strerror or err}); choose "
            "another place"
        ) from None


def output_dir(path: str | Path, option: str = "--out") -> Path:
    """The folder a command writes into, created now and checked writable.

    Args:
        path: the folder given on the command line.
        option: the option's name, for the message.

    Returns:
        The folder as a ``Path``.

    Raises:
        InvalidInputError: ``path`` is an existing file, or the folder cannot be created or
            written.
    """
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise InvalidInputError(f"{option} {path} is a file; give a folder (it is created)")
    _probe(folder, option, str(path))
    return folder


def output_file(
    path: str | Path, suffixes: tuple[str, ...] | None = None, option: str = "--out"
) -> Path:
    """The file a command writes, checked before the work: known suffix, not a folder, and a
    writable folder to hold it (created now).

    Args:
        path: the file given on the command line (an existing file is overwritten).
        suffixes: accepted suffixes in lower case, e.g. :data:`FIGURE_SUFFIXES` (None: any).
        option: the option's name, for the message.

    Returns:
        The file as a ``Path``.

    Raises:
        InvalidInputError: a suffix not in ``suffixes``, a folder, or an unwritable place.
    """
    file = Path(path).expanduser()
    if suffixes is not None and file.suffix.lower() not in suffixes:
        raise InvalidInputError(
            f"{option} {path}: unsupported suffix {file.suffix or '(none)'}; use one of "
            f"{', '.join(suffixes)}"
        )
    if file.is_dir():
        raise InvalidInputError(f"{option} {path} is a folder; give a file name")
    _probe(file.parent, option, str(path))
    return file
