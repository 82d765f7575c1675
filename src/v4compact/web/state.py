"""What one explorer server holds: settings, the worker pool, and bounded caches of models.

Routes reach it as ``request.app.state.explorer``. Models come from the library's registry
and are kept in a small least-recently-used cache, so memory stays bounded however many
neurons are visited.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import config
from ..data.catalog import MODEL_SESSIONS, session_info
from ..errors import UnknownNeuronError
from .jobs import JobPool

_SESSION_RE = re.compile(r"^\d{6}$")
_INDEX_RE = re.compile(r"^\d{1,4}$")


def default_cache_dir() -> Path:
    """Where ``v4compact site build`` writes and ``v4compact serve`` reads assets by default."""
    return config.default_cache_dir() / "site"


def parse_neuron(session_id: str | int, neuron: str | int) -> tuple[int, int]:
    """Validate a neuron reference from a URL: a model session and a neuron index.

    Args:
        session_id: six-digit session id (one of the four sessions with compact models).
        neuron: neuron index within the session, 0-based.

    Returns:
        ``(session_id, neuron)`` as ints.

    Raises:
        UnknownNeuronError: anything that is not one of the 219 modelled neurons.
    """
    sid, idx = str(session_id), str(neuron)
    if not _SESSION_RE.match(sid) or int(sid) not in MODEL_SESSIONS:
        valid = ", ".join(str(s) for s in MODEL_SESSIONS)
        raise UnknownNeuronError(
            f"no compact models for session {sid[:20]!r}; neurons are in sessions {valid}"
        )
    count = session_info(int(sid)).num_neurons
    if not _INDEX_RE.match(idx) or int(idx) >= count:
        raise UnknownNeuronError(
            f"unknown neuron {idx[:20]!r} of session {sid}; choose 0 to {count - 1}"
        )
    return int(sid), int(idx)


def model_neuron_ids() -> list[str]:
    """The 219 modelled neurons, ``"session/index"``, in the canonical output order."""
    return [
        f"{sid}/{k}" for sid in MODEL_SESSIONS for k in range(session_info(sid).num_neurons)
    ]


class LRUCache:
    """A thread-safe least-recently-used cache with a fixed number of entries."""

    def __init__(self, max_items: int):
        self.max_items = max_items
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_create(self, key: Any, factory) -> Any:
        """Return the cached value for ``key``, creating it with ``factory()`` if absent."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = factory()  # outside the lock: loading a model must not block other keys
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class ExplorerState:
    """Settings and shared resources of one explorer app.

    Attributes:
        data_dir: the data directory (laid out like the public release).
        cache_dir: the site-asset cache written by ``v4compact site build``.
        notebooks_dir: folder of tutorial notebooks (may not exist).
        repo_url: GitHub URL of the project, for "open in Colab" links.
        device: torch device for live model work.
        pool: the worker pool for live work.
    """

    data_dir: Path
    cache_dir: Path
    notebooks_dir: Path
    repo_url: str
    device: str
    pool: JobPool
    max_models: int = 8
    max_upload_bytes: int = 10 * 1024 * 1024
    _models: LRUCache = field(init=False)
    _misc: LRUCache = field(init=False)
    _population_lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    _population: Any = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._models = LRUCache(self.max_models)
        self._misc = LRUCache(64)

    def compact_model(self, session_id: int, neuron: int):
        """One neuron's compact model (cached), from the library's registry."""
        from ..models.registry import load_compact_model

        return self._models.get_or_create(
            (session_id, neuron),
            lambda: load_compact_model(
                session_id, neuron, device=self.device, data_dir=self.data_dir
            ).eval(),
        )

    @property
    def population_loaded(self) -> bool:
        """True once the 219-neuron population model is in memory."""
        return self._population is not None

    def population(self):
        """All 219 compact models as one network (loaded once, on first use)."""
        with self._population_lock:
            if self._population is None:
                from ..models.registry import load_compact_population

                self._population = load_compact_population(
                    device=self.device, data_dir=self.data_dir
                ).eval()
            return self._population

    def population_subset(self, neuron_ids: tuple[str, ...]):
        """A population model of a few neurons (cached), from the library's registry."""
        from ..models.registry import load_compact_population

        return self._models.get_or_create(
            ("population", tuple(neuron_ids)),
            lambda: load_compact_population(
                neurons=list(neuron_ids), device=self.device, data_dir=self.data_dir
            ).eval(),
        )

    def session(self, session_id: int):
        """A recording session (cached; its images are read lazily by the library)."""
        from ..data.session import load_session

        return self._misc.get_or_create(
            ("session", session_id), lambda: load_session(session_id, data_dir=self.data_dir)
        )

    def memo(self, key: Any, factory) -> Any:
        """A small bounded cache for derived values (e.g. network drawings)."""
        return self._misc.get_or_create(key, factory)
