"""Which HTTP status each library error becomes in the explorer's API."""

from __future__ import annotations

from ..errors import (
    CorruptDataError,
    DataNotFoundError,
    InvalidInputError,
    UnknownModelError,
    UnknownNeuronError,
    UnknownSessionError,
)
from .jobs import ClientLimitError, JobCancelledError, JobQueueFullError, JobTimeoutError
from .uploads import UploadError


def status_for(err: Exception) -> int:
    """The HTTP status a :class:`~v4compact.errors.V4CompactError` maps to.

    Unknown neurons, sessions, models and missing data files are 404; bad input 400 (uploads
    carry their own 4xx); a full worker queue or a damaged data file (the neuron is unavailable
    until it is re-fetched) 503; a client over its share of the worker pool 429; a job past
    its time limit 504.
    """
    if isinstance(err, UploadError):
        return err.status_code
    if isinstance(err, UnknownNeuronError | UnknownSessionError | UnknownModelError):
        return 404
    if isinstance(err, DataNotFoundError):
        return 404
    if isinstance(err, JobQueueFullError | CorruptDataError):  # a damaged file: re-fetch it
        return 503
    if isinstance(err, ClientLimitError):
        return 429
    if isinstance(err, JobTimeoutError | JobCancelledError):
        return 504
    if isinstance(err, InvalidInputError):
        return 400
    return 500
