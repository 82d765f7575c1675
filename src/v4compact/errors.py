"""The exception family of v4compact.

Every error the package raises on purpose derives from :class:`V4CompactError`, so a
caller (the CLI, the web server) can catch one class and show its one-line message.
The classes also derive from the matching built-in exception, so ``except
FileNotFoundError`` keeps working for users who do not know our names.
"""

from __future__ import annotations


class V4CompactError(Exception):
    """Base class of all v4compact errors. ``str(err)`` is a one-line, actionable message."""


class DataNotFoundError(V4CompactError, FileNotFoundError):
    """A data or model file is not in the data directory.

    The message names the file, the directory searched and the command that fetches it.
    """

    def __str__(self) -> str:  # FileNotFoundError formats (errno, strerror) tuples oddly
        return str(self.args[0]) if self.args else ""


class CorruptDataError(V4CompactError, ValueError):
    """A file exists but its content is wrong (checksum mismatch, truncated, unreadable)."""


class UnknownSessionError(V4CompactError, ValueError):
    """A session id that is not one of the 50 recording sessions."""


class UnknownNeuronError(V4CompactError, ValueError):
    """A neuron index or id that does not exist in a session or model."""


class UnknownModelError(V4CompactError, ValueError):
    """A model id that is not in the model registry."""


class ModelFormatError(V4CompactError, ValueError):
    """A file that is not a model of a supported format, or does not match the expected one."""


class InvalidInputError(V4CompactError, ValueError):
    """Images or other user input of the wrong shape, dtype or content."""


class DownloadError(V4CompactError, OSError):
    """A file could not be downloaded or failed verification after download."""


def one_line_message(err: BaseException) -> str:
    """Any exception as the one line the CLI prints and the web API answers.

    Our own errors keep their message; an ``OSError`` says what failed on which file; any
    other exception (a damaged file numpy or h5py could not parse, or a bug) is named with
    its type, so the line still says what happened without a traceback.
    """
    text = " ".join(str(err).split())
    if isinstance(err, V4CompactError):
        return text or type(err).__name__
    if isinstance(err, OSError) and err.strerror:
        where = f": {err.filename}" if err.filename is not None else ""
        return f"{err.strerror}{where}"
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
