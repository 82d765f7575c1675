"""Neuron ids and the output and input conventions every model shares (no torch, no files).

Neuron ids are ``"<session>/<neuron>"`` strings (0-based neuron index in the row order of
the session's response file). The 219 model neurons in canonical order - sessions 190923,
201025, 210225, 211022, neurons in index order - are :func:`model_neuron_ids`; every
output column of the shared models and of the population follows it. :func:`check_neuron`
and :func:`parse_neuron_id` are the one validation of a model neuron;
:func:`split_neuron_id` also takes the neurons of a lab's imported sessions
(``mylab:s01/7``).
"""

from __future__ import annotations

import re
from functools import cache

from ..data.catalog import MODEL_SESSIONS, session_info
from ..errors import InvalidInputError, UnknownNeuronError, UnknownSessionError

__all__ = ["RESIZE_POLICY", "Z_SCORED_UNITS", "canonical_key", "check_neuron",
           "model_neuron_ids", "parse_neuron_id", "session_neuron_ids", "split_neuron_id"]


#: Units of every released model's outputs: the teacher was fitted to responses z-scored
#: per neuron, so outputs are not spike counts (SYSTEM.md §9).
Z_SCORED_UNITS = "z-scored units"
#: How images of another size or shape become model input: the largest centred square is
#: cut out and resized to the model's input size (:mod:`v4compact.models.inputs`).
RESIZE_POLICY = "center-crop"

#: The family of one-neuron models, whose ids (``compact/<session>/<neuron>``) name a neuron.
COMPACT_FAMILY = "compact"

_DIGITS = re.compile(r"0|[1-9][0-9]*")  # ASCII, no leading zeros: one spelling per id


def show_value(value) -> str:
    """A user-given value for a message: its repr, cut short (URLs can be long)."""
    text = repr(value)
    return text if len(text) <= 24 else text[:21] + "..."


def as_index(value) -> int | None:
    """``value`` as a non-negative int when it is one (int, numpy int or ASCII digits)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        return int(value) if _DIGITS.fullmatch(value) else None
    try:
        return int(value) if int(value) == value and int(value) >= 0 else None
    except (TypeError, ValueError):
        return None


def _spelling_hint(value) -> str:
    """Why a string of digits is not an id: ``"010"`` -> no leading zeros; ``"١٠"`` -> only
    ASCII digits ("" for anything else)."""
    if not isinstance(value, str) or not value.isdigit():
        return ""
    if not value.isascii():
        return "ids are written with the digits 0-9 only; "
    if value != str(int(value)):
        return f"ids have no leading zeros: write '{int(value)}'; "
    return ""


@cache
def _canonical_neurons() -> tuple[str, ...]:
    return tuple(f"{sid}/{k}" for sid in MODEL_SESSIONS
                 for k in range(session_info(sid).num_neurons))


def model_neuron_ids() -> list[str]:
    """The 219 model neurons in canonical order: ``["190923/0", ..., "211022/41"]``.

    Sessions 190923, 201025, 210225, 211022 (:data:`~v4compact.data.catalog.MODEL_SESSIONS`),
    neurons in index order: the output order of the shared models and the population.
    """
    return list(_canonical_neurons())


def check_neuron(session_id, neuron) -> tuple[int, int]:
    """Validate a model neuron given as a session and a 0-based neuron index.

    Args:
        session_id: one of the four model sessions, int or ASCII digits.
        neuron: 0-based index within the session, int or ASCII digits.

    Returns:
        ``(session_id, neuron)`` as ints.

    Raises:
        UnknownSessionError: a session without compact models.
        UnknownNeuronError: an index outside the session's neurons.
    """
    sid = as_index(session_id)
    if sid not in MODEL_SESSIONS:
        raise UnknownSessionError(
            f"session {show_value(session_id)} has no compact models; {_spelling_hint(session_id)}"
            f"choose one of {', '.join(map(str, MODEL_SESSIONS))}"
        )
    count = session_info(sid).num_neurons
    k = as_index(neuron)
    if k is None or k >= count:
        hint = _spelling_hint(neuron).removesuffix("; ") or "it does not exist"
        raise UnknownNeuronError(
            f"unknown neuron {show_value(neuron)} of session {sid} ({hint}; the session has "
            f"{count} neurons, 0-{count - 1})"
        )
    return sid, k


def split_neuron_id(neuron_id) -> tuple[int | str, int]:
    """A neuron id of any dataset -> ``(session, neuron)``.

    ``"201025/10"`` (a release neuron) -> ``(201025, 10)``; ``"mylab:s01/7"`` (a neuron of an
    imported session, :mod:`v4compact.data.datasets`) -> ``("mylab:s01", 7)``. Only the form
    is checked (user models may predict neurons of any session); use
    :func:`parse_neuron_id` for a neuron that must have a compact model.

    Raises:
        InvalidInputError: neither ``<session>/<neuron>`` with non-negative integers nor
            ``<dataset>:<session>/<neuron>``.
    """
    from ..data.datasets import split_neuron_ref

    user = split_neuron_ref(neuron_id)
    if user is not None:
        return user
    session, sep, index = str(neuron_id).partition("/")
    sid, k = as_index(session), as_index(index)
    if not sep or sid is None or k is None:
        raise InvalidInputError(
            f"bad neuron id {show_value(neuron_id)}; use '<session>/<neuron>', e.g. '201025/10'"
        )
    return sid, k


def parse_neuron_id(neuron_id) -> tuple[int, int]:
    """A model neuron: ``"201025/10"``, ``"compact/201025/10"`` or ``(201025, 10)``.

    Returns:
        ``(session_id, neuron)`` as ints.

    Raises:
        InvalidInputError: a malformed id.
        UnknownSessionError, UnknownNeuronError: a neuron without a compact model.
    """
    if isinstance(neuron_id, tuple | list) and len(neuron_id) == 2:
        return check_neuron(*neuron_id)
    text = str(neuron_id)
    text = text.removeprefix(f"{COMPACT_FAMILY}/")
    session, sep, index = text.partition("/")
    if not sep or "/" in index:
        raise InvalidInputError(
            f"bad neuron id {show_value(neuron_id)}; use '<session>/<neuron>', e.g. '201025/10'"
        )
    return check_neuron(session, index)


def session_neuron_ids(session_id) -> list[str]:
    """The model neurons of one model session, ``["201025/0", ...]``.

    Raises:
        UnknownSessionError: a session without compact models.
    """
    sid, _ = check_neuron(session_id, 0)
    return [f"{sid}/{k}" for k in range(session_info(sid).num_neurons)]


def canonical_key(neuron_id) -> tuple[int, int]:
    """Sort key of a model neuron id in the canonical order of :func:`model_neuron_ids`.

    Raises:
        InvalidInputError, UnknownSessionError, UnknownNeuronError: not a model neuron.
    """
    sid, k = parse_neuron_id(neuron_id)
    return MODEL_SESSIONS.index(sid), k
