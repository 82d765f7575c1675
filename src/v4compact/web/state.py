"""What one explorer server holds: settings, the worker pool, caches, and neuron health.

Routes reach it as ``request.app.state.explorer``. Models come from the library's registry
and are kept in a small least-recently-used cache, so memory stays bounded however many
neurons are visited. Each neuron has a health state (its model files present and matching
the release checksums), so one missing or corrupt file disables only its own neuron: the
gallery marks it and says how to re-fetch it, and "Try your image" runs the others.
"""

from __future__ import annotations

import threading
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from .. import config
from ..data import paths
from ..data.registry import check_file, load_registry
from ..errors import CorruptDataError, DataNotFoundError, V4CompactError
from ..models import zoo
from .jobs import JobPool

#: What reading a damaged model file can raise, whichever reader layer (zip, HDF5, numpy)
#: notices first (a site build reports these per neuron and goes on).
LOAD_ERRORS = (V4CompactError, OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


def default_cache_dir() -> Path:
    """Where ``v4compact site build`` writes and ``v4compact serve`` reads assets by default."""
    return config.default_cache_dir() / "site"


def parse_neuron(session_id: str | int, neuron: str | int) -> tuple[int, int]:
    """Validate a neuron reference from a URL (:func:`v4compact.models.zoo.check_neuron`).

    Only ASCII digits are numbers (``"١"`` is not neuron 1).

    Args:
        session_id: one of the four sessions with compact models.
        neuron: neuron index within the session, 0-based.

    Returns:
        ``(session_id, neuron)`` as ints.

    Raises:
        UnknownSessionError, UnknownNeuronError: anything that is not one of the 219 modelled
            neurons (both answered with 404).
    """
    return zoo.check_neuron(str(session_id), str(neuron))


def model_neuron_ids() -> list[str]:
    """The 219 modelled neurons, ``"session/index"``, in the canonical output order."""
    return zoo.model_neuron_ids()


@dataclass(frozen=True)
class NeuronHealth:
    """Whether one neuron's compact model can be used.

    Attributes:
        neuron_id: ``"session/index"``.
        state: ``"ok"``, ``"missing"`` (a file is not in the data directory) or ``"corrupt"``
            (a file differs from the release: truncated, overwritten, damaged).
        problem: one line naming the file and the command that re-fetches it (empty if ok).
    """

    neuron_id: str
    state: str = "ok"
    problem: str = ""

    @property
    def ok(self) -> bool:
        """True when the neuron's model can be loaded."""
        return self.state == "ok"

    def error(self) -> V4CompactError:
        """The library error a route raises for a neuron that is not ok."""
        cls = DataNotFoundError if self.state == "missing" else CorruptDataError
        return cls(self.problem)


def refetch_command(session_id: int, neuron: int) -> str:
    """The command that (re-)downloads one neuron's model files (the zoo's fetch group)."""
    model_id = zoo.COMPACT.format_id(session_id, neuron)
    return paths.fetch_command(zoo.COMPACT.fetch_group_of(model_id))


def check_neuron_files(data_dir: Path, session_id: int, neuron: int) -> NeuronHealth:
    """Check a neuron's model files (the zoo's list) against the release registry.

    Sizes and SHA-256 sums are compared (each file is hashed once per size and modification
    time), so a truncated or overwritten file is found before anything tries to load it.

    Args:
        data_dir: the data directory.
        session_id: a model session.
        neuron: the neuron index.

    Returns:
        The :class:`NeuronHealth` the files alone decide.
    """
    neuron_id = f"{session_id}/{neuron}"
    command = refetch_command(session_id, neuron)
    registry = load_registry()
    for relpath in zoo.COMPACT.files(zoo.COMPACT.format_id(session_id, neuron)):
        local = Path(data_dir) / relpath
        try:
            stat = local.stat()
        except OSError:
            return NeuronHealth(
                neuron_id, "missing",
                f"{relpath} is not in the explorer's data directory; fetch it with: {command}",
            )
        if relpath not in registry:
            continue
        reason = _file_problem(str(local), stat.st_size, stat.st_mtime_ns, relpath)
        if reason:
            return NeuronHealth(
                neuron_id, "corrupt",
                f"{relpath} is damaged ({reason}); re-fetch it with: {command}",
            )
    return NeuronHealth(neuron_id)


@lru_cache(maxsize=1024)
def _file_problem(path: str, size: int, mtime_ns: int, relpath: str) -> str | None:
    # keyed by size and modification time: a re-fetched file is checked again
    return check_file(path, load_registry()[relpath], verify=True)


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
        repo_url: the project's public repository (for "open in Colab" links), or None when
            no public copy exists (see :func:`v4compact.config.repository_url`).
        device: torch device for live model work.
        pool: the worker pool for live work.
        builder: the background :class:`~v4compact.web.builder.SiteBuilder` (None: the
            server serves only what the cache holds).
    """

    data_dir: Path
    cache_dir: Path
    notebooks_dir: Path
    repo_url: str | None
    device: str
    pool: JobPool
    max_models: int = 8
    max_upload_bytes: int = 10 * 1024 * 1024
    builder: Any = None  # the background SiteBuilder of 'v4compact serve', or None
    made: dict = field(default_factory=dict)  # neuron id -> training.made.MadeModel
    _models: LRUCache = field(init=False)
    _misc: LRUCache = field(init=False)
    _population_lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    _population: Any = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._models = LRUCache(self.max_models)
        self._misc = LRUCache(64)

    # --- neuron health -------------------------------------------------------------------
    def neuron_health(self, session_id: int, neuron: int) -> NeuronHealth:
        """A neuron's health, from its files (see :func:`check_neuron_files`)."""
        return check_neuron_files(self.data_dir, session_id, neuron)

    def health_report(self) -> dict[str, NeuronHealth]:
        """The health of all 219 neurons, keyed by neuron id (canonical order)."""
        out = {}
        for neuron_id in model_neuron_ids():
            sid, idx = zoo.split_neuron_id(neuron_id)
            out[neuron_id] = self.neuron_health(sid, idx)
        return out

    def available_neuron_ids(self) -> list[str]:
        """The neurons whose models can be used, in canonical order."""
        return [nid for nid, health in self.health_report().items() if health.ok]

    # --- models --------------------------------------------------------------------------
    def compact_model(self, session_id: int, neuron: int):
        """One neuron's compact model (cached), from the library's registry.

        Raises:
            DataNotFoundError: a model file is missing.
            CorruptDataError: a model file is damaged.
        """
        from ..models.formats.loaders import load_compact_model

        health = self.neuron_health(session_id, neuron)
        if not health.ok:
            raise health.error()
        return self._models.get_or_create(
            (session_id, neuron),
            lambda: load_compact_model(
                session_id, neuron, device=self.device, data_dir=self.data_dir
            ).eval(),
        )

    @property
    def population_loaded(self) -> bool:
        """True once the population model of the usable neurons is in memory."""
        return self._population is not None

    def population(self):
        """Every usable neuron's compact model as one network (``neuron_ids`` names them).

        Loaded on first use and kept; loaded again when the set of usable neurons changes
        (a file damaged, or re-fetched). Neurons whose files are missing or damaged are left
        out, so one bad file never stops the others.

        Raises:
            DataNotFoundError: no neuron has a usable model.
        """
        with self._population_lock:
            wanted = self.available_neuron_ids()
            if self._population is None or list(self._population.neuron_ids) != wanted:
                self._population = None  # free the old one before loading the new one
                self._population = self._load_population(wanted)
            return self._population

    def _load_population(self, neuron_ids: list[str]):
        from ..models.formats.loaders import load_compact_population

        if not neuron_ids:
            raise DataNotFoundError(
                "no compact model is usable in the explorer's data directory; fetch them with: "
                f"{paths.fetch_command(zoo.POPULATION.fetch_group)}"
            )
        return load_compact_population(
            neurons=neuron_ids, device=self.device, data_dir=self.data_dir
        ).eval()

    def population_subset(self, neuron_ids: tuple[str, ...]):
        """A population model of a few neurons (cached), from the library's registry."""
        from ..models.formats.loaders import load_compact_population

        for neuron_id in neuron_ids:
            health = self.neuron_health(*zoo.split_neuron_id(neuron_id))
            if not health.ok:
                raise health.error()
        return self._models.get_or_create(
            ("population", tuple(neuron_ids)),
            lambda: load_compact_population(
                neurons=list(neuron_ids), device=self.device, data_dir=self.data_dir
            ).eval(),
        )

    # --- made models (serve --made RUN) ---------------------------------------------------
    def made_entry(self, session_id: str, neuron: str):
        """The :class:`~v4compact.training.made.MadeModel` of ``session_id/neuron``.

        Raises:
            UnknownNeuronError: no run given to this server made that neuron (HTTP 404).
        """
        from ..errors import UnknownNeuronError

        entry = self.made.get(f"{session_id}/{neuron}")
        if entry is None:
            raise UnknownNeuronError(
                f"no made model of neuron {str(session_id)[:40]}/{str(neuron)[:8]} on this "
                "server; start it with 'v4compact serve --made RUN' for the run that made it")
        return entry

    def made_model(self, entry):
        """The made model of an entry (cached), read from its ``.keras`` file."""
        from ..models.formats.loaders import load_compact_model

        return self._models.get_or_create(
            ("made", str(entry.model_path)),
            lambda: load_compact_model(entry.model_path, device=self.device).eval(),
        )

    def session(self, session_id: int | str):
        """A recording session (cached; its images are read lazily by the library)."""
        from ..data.session import load_session

        return self._misc.get_or_create(
            ("session", session_id), lambda: load_session(session_id, data_dir=self.data_dir)
        )

    def memo(self, key: Any, factory) -> Any:
        """A small bounded cache for derived values (e.g. network drawings)."""
        return self._misc.get_or_create(key, factory)

    def public_message(self, message: str) -> str:
        """``message`` with the server's folders replaced by names (safe to show visitors).

        Library errors name the data directory they searched; a web visitor must not learn
        the server's file system, so the absolute folders become ``<data directory>``,
        ``<site cache>`` and ``~``.
        """
        replacements = {
            str(self.data_dir): "<data directory>",
            str(self.cache_dir): "<site cache>",
            str(self.notebooks_dir): "<notebooks>",
            str(Path.home()): "~",
        }
        # longest first: a folder inside another is replaced before its parent
        for folder in sorted(replacements, key=len, reverse=True):
            if len(folder) > 1:
                message = message.replace(folder, replacements[folder])
        return message
