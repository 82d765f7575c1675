"""The server's background builder: serve first, build behind.

``v4compact serve`` answers at once, whatever is in the asset cache, and one builder thread
computes the neurons that are not built yet, session by session, in batches of
:data:`BATCH_NEURONS` neurons (:func:`v4compact.web.sitebuild.build_batch`: the same code and
the same files as ``v4compact site build`` with the same settings). A visitor who opens an
unbuilt neuron's page puts that neuron at the front of the queue; it is computed alone
(seconds) as soon as the batch in progress ends.

Bounded work: one thread builds (never more), background batches wait while live requests
(predictions, synthesis, ablations) run, and every file is written atomically with
``summary.json`` last, so a server killed mid-build serves no half-written page and, when
restarted, skips every neuron already written. A neuron whose build fails is marked
``failed`` with its one-line reason; the server and the other neurons go on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from pathlib import Path

from ..models import zoo
from . import assets
from .assets import BuildReport, SiteSettings
from .state import LOAD_ERRORS, check_neuron_files

#: Neurons per background batch: small, so that a visitor's neuron waits at most one batch
#: before it is computed (on a 2-core CPU a neuron with 3 starts x 100 steps takes about
#: 5 s). The price: each synthesis step has a fixed cost that a batch of 2 pays for 2
#: neurons, where ``site build`` pays it for 32 (:data:`.sitebuild.SYNTHESIS_CHUNK`): all 219
#: behind the server took about 20 minutes, offline about 10 (docs/performance.md).
BATCH_NEURONS = 2
#: Seconds between two looks at the live-request counter while background work waits.
_POLL_S = 0.2
#: Longest a background batch waits for live requests to end (a busy server still builds).
_MAX_YIELD_S = 10.0

_log = logging.getLogger(__name__)


class SiteBuilder:
    """One thread that builds every missing neuron of the asset cache.

    Args:
        cache_dir: the asset cache the server reads.
        data_dir: the data directory.
        settings: the synthesis and ranking settings of the neurons it builds.
        device: torch device.
        busy: returns True while live requests are running (background batches wait).
        batch: neurons per background batch.

    A neuron counts as *ready* when its ``summary.json`` exists (whatever settings built it);
    the builder computes the neurons without one, and those whose model file changed since.
    """

    def __init__(self, cache_dir: Path, data_dir: Path, settings: SiteSettings,
                 device: str = "cpu", busy=None, batch: int = BATCH_NEURONS):
        self.cache_dir = Path(cache_dir)
        self.data_dir = Path(data_dir)
        self.settings = settings
        self.device = device
        self.batch = batch
        self._busy = busy or (lambda: False)
        self._lock = threading.Condition()
        self._queue: deque[str] = deque()  # background order
        self._priority: deque[str] = deque()  # asked for by visitors
        self._computing: set[str] = set()
        self._failed: dict[str, str] = {}
        self._planned = False
        self._stop = False
        self._thread: threading.Thread | None = None
        self._sessions: dict = {}  # the current session's decoded photos
        self._ready = set(assets.built_neurons(self.cache_dir))
        self._total = len(zoo.model_neuron_ids())
        self.started_at = time.time()
        self.finished_at: float | None = None

    # --- control -------------------------------------------------------------------------
    def start(self) -> None:
        """Start the builder thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="site-builder", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 0.0) -> None:
        """Ask the thread to stop after the batch in progress (waits up to ``timeout`` s)."""
        with self._lock:
            self._stop = True
            self._lock.notify_all()
        if self._thread is not None and timeout:
            self._thread.join(timeout)

    def request(self, session_id: int, neuron: int) -> str:
        """A visitor wants this neuron: move it to the front; returns its :meth:`status`."""
        neuron_id = f"{session_id}/{neuron}"
        with self._lock:
            if (neuron_id not in self._ready and neuron_id not in self._computing
                    and neuron_id not in self._failed and neuron_id not in self._priority):
                self._priority.append(neuron_id)
                self._lock.notify_all()
        return self.status(neuron_id)

    # --- state ---------------------------------------------------------------------------
    def status(self, neuron_id: str) -> str:
        """``"ready"``, ``"computing"``, ``"queued"``, ``"failed"`` or ``"waiting"`` (not
        queued yet: the builder has not listed the cache)."""
        with self._lock:
            if neuron_id in self._computing:
                return "computing"
            if neuron_id in self._failed:
                return "failed"
            if neuron_id in self._ready:
                return "ready"
            if neuron_id in self._priority or neuron_id in self._queue:
                return "queued"
            return "waiting"

    def problem(self, neuron_id: str) -> str:
        """The one-line reason a neuron failed to build (empty if it did not)."""
        with self._lock:
            return self._failed.get(neuron_id, "")

    def progress(self) -> dict:
        """Counters for ``/api/build``: ready, total, queued, computing, failed, running."""
        with self._lock:
            return {
                "enabled": True,
                "running": bool(not self._planned or self._queue or self._priority
                                or self._computing),
                "ready": len(self._ready),
                "total": self._total,
                "queued": len(self._priority) + len(self._queue),
                "computing": sorted(self._computing),
                "failed": dict(self._failed),
                "settings": self.settings.synthesis_part(),
                "seconds": round((self.finished_at or time.time()) - self.started_at, 1),
            }

    # --- the thread ----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._plan()
            while True:
                unit = self._next_unit()
                if unit is None:
                    break
                self._build(unit)
        except Exception:  # never take the server down; the log has the traceback
            _log.exception("the background site builder stopped")
        finally:
            with self._lock:
                self._computing.clear()
                self._queue.clear()
                self._priority.clear()

    def _plan(self) -> None:
        """Queue every neuron without a current ``summary.json`` (canonical order)."""
        todo = []
        for neuron_id in zoo.model_neuron_ids():
            sid, idx = zoo.split_neuron_id(neuron_id)
            health = check_neuron_files(self.data_dir, sid, idx)
            if not health.ok:
                with self._lock:
                    self._failed[neuron_id] = health.problem
                continue
            summary = assets.read_summary(self.cache_dir, sid, idx)
            if summary is not None and summary.get("model_key", "").startswith(
                    assets.model_key(sid, idx, self.data_dir)):
                continue
            todo.append(neuron_id)
        with self._lock:
            self._queue.extend(n for n in todo if n not in self._priority)
            self._ready = set(assets.built_neurons(self.cache_dir))
            self._planned = True
            self._lock.notify_all()

    def _next_unit(self) -> list[str] | None:
        """The next neurons to build together (one session), visitors' first; None to stop.

        Waits (without building) while nothing is queued, and lets live requests have the
        cores before a background batch, for up to :data:`_MAX_YIELD_S` seconds.
        """
        yielding_since = None
        with self._lock:
            while True:
                if self._stop:
                    return None
                while self._priority:
                    neuron_id = self._priority.popleft()
                    if neuron_id not in self._ready and neuron_id not in self._failed:
                        self._discard(neuron_id)
                        self._computing.add(neuron_id)
                        return [neuron_id]
                if not self._queue:
                    self.finished_at = self.finished_at or time.time()
                    self._lock.wait()  # until a visitor asks for a neuron, or stop()
                    continue
                now = time.monotonic()
                if not self._busy() or (yielding_since is not None
                                        and now - yielding_since > _MAX_YIELD_S):
                    return self._take_batch()
                yielding_since = yielding_since or now
                self._lock.wait(_POLL_S)

    def _take_batch(self) -> list[str]:
        """Pop up to :attr:`batch` queued neurons of the first queued neuron's session."""
        session = zoo.split_neuron_id(self._queue[0])[0]
        unit: list[str] = []
        rest: deque[str] = deque()
        while self._queue:
            neuron_id = self._queue.popleft()
            if neuron_id in self._ready or neuron_id in self._failed:
                continue
            if len(unit) < self.batch and zoo.split_neuron_id(neuron_id)[0] == session:
                unit.append(neuron_id)
            else:
                rest.append(neuron_id)
        self._queue = rest
        self._computing.update(unit)
        return unit

    def _discard(self, neuron_id: str) -> None:
        try:
            self._queue.remove(neuron_id)
        except ValueError:
            pass

    def _build(self, unit: list[str]) -> None:
        from .sitebuild import build_batch, plan_neuron

        sid = zoo.split_neuron_id(unit[0])[0]
        report = BuildReport()
        try:
            tasks = [plan_neuron(self.cache_dir, self.data_dir, *zoo.split_neuron_id(n),
                                 self.settings) for n in unit]
            for other in [k for k in self._sessions if k != sid]:
                del self._sessions[other]  # one session's photos in memory at a time
            build_batch(self.cache_dir, self.data_dir, sid, tasks, self.settings,
                        device=self.device, report=report, on_written=self._written,
                        session_cache=self._sessions)
        except Exception as err:  # noqa: BLE001 - one batch's failure must not stop the server
            if not isinstance(err, LOAD_ERRORS):
                _log.exception("building %s failed", ", ".join(unit))
            message = str(err).splitlines()[0] if str(err) else repr(err)
            for neuron_id in unit:
                report.failed.setdefault(neuron_id, message)
        with self._lock:
            for neuron_id, message in report.failed.items():
                self._failed[neuron_id] = message
                _log.warning("could not build neuron %s: %s", neuron_id, message)
            for neuron_id in unit:
                self._computing.discard(neuron_id)
                if neuron_id not in self._failed and assets.read_summary(
                        self.cache_dir, *zoo.split_neuron_id(neuron_id)) is not None:
                    self._ready.add(neuron_id)
            self._lock.notify_all()
        if report.built:
            from .sitebuild import write_population_stats

            write_population_stats(self.cache_dir)

    def _written(self, neuron_id: str) -> None:
        with self._lock:
            self._computing.discard(neuron_id)
            self._ready.add(neuron_id)
