"""A bounded, fair worker pool for the explorer's live work (predictions, synthesis, ablations).

Model work runs in a fixed number of worker threads behind a queue of bounded length, so
many concurrent requests cannot exhaust memory or CPU: a request that finds no place is
refused at once instead of piling up. Three rules keep the pool fair:

* **per-kind quotas** (:class:`KindQuota`): a kind of job (e.g. ``"synthesis"``, which runs
  for up to minutes) may occupy only so many workers and so many queue places, so long jobs
  can never take every worker: a quick job ("Try your image") always finds one soon;
* **per-client limits**: one client address may have only so many jobs running or waiting,
  so one visitor (or one misbehaving script) cannot fill the queue for everyone;
* waiting jobs start in arrival order among those whose kind is under its worker quota.

Every job has a time limit (counted from submission) and a cancellation flag; long jobs
(synthesis) check the flag through their progress callback, so a job stops soon after its
client disconnects or its time runs out, and a job cancelled while still waiting gives its
queue place back at once.

The client of a job is taken from :data:`CURRENT_CLIENT`, which the app's middleware sets to
the address of the request being served, so every route is limited without passing it.
"""

from __future__ import annotations

import asyncio
import contextvars
import ctypes
import ctypes.util
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from ..errors import V4CompactError

#: Address of the client whose request is being served (set per request by the app).
CURRENT_CLIENT: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "v4compact_current_client", default=None
)
#: Kind of the jobs whose route names none.
DEFAULT_KIND = "default"


class JobQueueFullError(V4CompactError, RuntimeError):
    """No queue place for the job; the client should retry in a moment (HTTP 503)."""


class ClientLimitError(V4CompactError, RuntimeError):
    """One client has too many jobs running or waiting (HTTP 429)."""


class JobTimeoutError(V4CompactError, TimeoutError):
    """A job ran past its time limit (HTTP 504)."""


class JobCancelledError(V4CompactError, RuntimeError):
    """A job was cancelled (client gone or time limit); raised inside the worker."""


@dataclass(frozen=True)
class KindQuota:
    """Limits of one kind of job.

    Attributes:
        running: most workers the kind may occupy at the same time.
        waiting: most jobs of the kind waiting for a worker.
        per_client: most jobs of the kind one client may have running or waiting.
    """

    running: int
    waiting: int
    per_client: int


def _load_libc():
    """glibc, or None (another C library, or not Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None
    except OSError:
        return None


_LIBC = _load_libc()
#: ``mallopt`` parameter of glibc: the most heap arenas (one per thread by default, up to 8
#: per core), each keeping its own freed memory.
_M_ARENA_MAX = -8
#: Heap arenas a serving process keeps (the worker and request threads share them).
SERVER_MALLOC_ARENAS = 2


def limit_heap_arenas(arenas: int = SERVER_MALLOC_ARENAS) -> bool:
    """Let the process's threads share at most ``arenas`` glibc heap arenas.

    A server runs many threads (workers, the framework's request threads); with an arena per
    thread, memory freed by one thread stays reserved for it, and resident memory ratchets
    up after each burst of concurrent requests. Returns False where glibc is absent.
    """
    return bool(_LIBC is not None and _LIBC.mallopt(_M_ARENA_MAX, arenas))


def release_free_memory() -> bool:
    """Give the heap memory that jobs freed back to the operating system.

    glibc keeps freed memory in per-thread arenas for reuse, so after a burst of concurrent
    jobs (each forward pass allocates and frees tens of MB in its worker thread) the server's
    resident memory would stay near its peak. The pool calls this whenever it falls idle.

    Returns:
        True when memory was trimmed (glibc), False where there is nothing to call.
    """
    if _LIBC is None:
        return False
    _LIBC.malloc_trim(0)
    return True


def default_quotas(max_workers: int, max_queue: int) -> dict[str, KindQuota]:
    """The explorer's quotas: live syntheses (minutes long) leave a worker for everything else.

    Args:
        max_workers: worker threads of the pool.
        max_queue: queue places of the pool.

    Returns:
        ``{"synthesis": KindQuota(...)}``: at most ``max_workers - 1`` workers (at least 1),
        a quarter of the queue places (at least 1) and 2 per client.
    """
    return {
        "synthesis": KindQuota(
            running=max(1, max_workers - 1), waiting=max(1, max_queue // 4), per_client=2
        )
    }


class CancelToken:
    """A flag shared between a job and whoever may cancel it.

    Long jobs call :meth:`check` (e.g. from a progress callback) and stop with
    :class:`JobCancelledError` once :meth:`cancel` was called or the deadline passed.
    """

    def __init__(self, time_limit_s: float | None = None):
        self._event = threading.Event()
        self.deadline = None if time_limit_s is None else time.monotonic() + time_limit_s
        self.reason = ""

    def cancel(self, reason: str = "cancelled") -> None:
        """Ask the job to stop at its next :meth:`check`."""
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    @property
    def cancelled(self) -> bool:
        """True once cancelled or past the deadline."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.cancel("time limit reached")
        return self._event.is_set()

    def check(self) -> None:
        """Raise :class:`JobCancelledError` if the job should stop."""
        if self.cancelled:
            raise JobCancelledError(f"job stopped: {self.reason}")


@dataclass(eq=False)
class _Job:
    """One submitted call and its bookkeeping."""

    call: Callable[[], Any]
    token: CancelToken
    kind: str
    client: str | None
    future: Future = field(default_factory=Future)


class JobPool:
    """A fixed set of worker threads behind a bounded, fair queue.

    Args:
        max_workers: worker threads running jobs at the same time.
        max_queue: jobs allowed to wait for a worker; more are refused with
            :class:`JobQueueFullError`.
        time_limit_s: default per-job time limit in seconds (waiting included).
        quotas: kind -> :class:`KindQuota` (default :func:`default_quotas`); kinds not
            listed are bounded by ``max_workers`` and ``max_queue`` only.
        max_per_client: most jobs (all kinds) one client may have running or waiting
            (default: half of all places, at least 1).

    Raises:
        ValueError: a limit below its minimum.
    """

    def __init__(
        self,
        max_workers: int = 2,
        max_queue: int = 16,
        time_limit_s: float = 60.0,
        quotas: dict[str, KindQuota] | None = None,
        max_per_client: int | None = None,
    ):
        if max_workers < 1 or max_queue < 0 or not time_limit_s > 0:
            raise ValueError("max_workers must be >= 1, max_queue >= 0 and time_limit_s > 0")
        self.max_workers = max_workers
        self.max_queue = max_queue
        self.time_limit_s = time_limit_s
        self.quotas = default_quotas(max_workers, max_queue) if quotas is None else dict(quotas)
        self.max_per_client = (
            max(1, (max_workers + max_queue) // 2) if max_per_client is None else max_per_client
        )
        # the app's threads (these workers, the framework's request threads) share a few
        # heap arenas, so memory freed after a burst of requests can be returned
        limit_heap_arenas()
        self._cond = threading.Condition()
        self._waiting: list[_Job] = []  # arrival order
        self._running: dict[str, int] = {}  # kind -> jobs running
        self._by_client: dict[tuple[str | None, str | None], int] = {}  # (client, kind|None)
        self._closed = False
        self.completed = 0
        self.rejected = 0
        self.cancelled = 0
        self._threads = [
            threading.Thread(target=self._work, name=f"v4job-{i}", daemon=True)
            for i in range(max_workers)
        ]
        for thread in self._threads:
            thread.start()

    def stats(self) -> dict[str, int]:
        """Counters: workers, queue places, running, waiting, completed, rejected, cancelled,
        and ``running_<kind>`` / ``waiting_<kind>`` for every kind with a quota."""
        with self._cond:
            out = {
                "workers": self.max_workers,
                "max_queue": self.max_queue,
                "running": sum(self._running.values()),
                "waiting": len(self._waiting),
                "completed": self.completed,
                "rejected": self.rejected,
                "cancelled": self.cancelled,
            }
            for kind in self.quotas:
                out[f"running_{kind}"] = self._running.get(kind, 0)
                out[f"waiting_{kind}"] = sum(job.kind == kind for job in self._waiting)
            return out

    async def run(
        self,
        fn: Callable[..., Any],
        *args: Any,
        token: CancelToken | None = None,
        time_limit_s: float | None = None,
        kind: str = DEFAULT_KIND,
        client: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run ``fn(*args, **kwargs)`` in a worker and await its result.

        Args:
            fn: the blocking function; if it is long it should call ``token.check()`` now
                and then.
            token: the job's cancel token (one is made if omitted); cancelled on timeout
                and when the awaiting request is cancelled (client disconnected).
            time_limit_s: the job's time limit in seconds (default: the pool's).
            kind: the job's kind, for the quotas (e.g. ``"synthesis"``, ``"predict"``).
            client: who asks (default: :data:`CURRENT_CLIENT`, the request's address).

        Raises:
            JobQueueFullError: no queue place left, overall or for this kind (HTTP 503).
            ClientLimitError: this client already has its share of jobs (HTTP 429).
            JobTimeoutError: the job ran past its limit (HTTP 504).
        """
        limit = self.time_limit_s if time_limit_s is None else time_limit_s
        job = _Job(
            call=lambda: fn(*args, **kwargs),
            token=token or CancelToken(limit),
            kind=kind,
            client=CURRENT_CLIENT.get() if client is None else client,
        )
        self._submit(job)
        waiter = asyncio.wrap_future(job.future)
        try:
            result = await asyncio.wait_for(asyncio.shield(waiter), timeout=limit)
        except TimeoutError:
            self._give_up(job, "time limit reached")
            waiter.add_done_callback(_consume)
            raise JobTimeoutError(
                f"the job took longer than its {limit:.0f} s limit; try fewer steps or images"
            ) from None
        except asyncio.CancelledError:
            self._give_up(job, "client disconnected")
            waiter.add_done_callback(_consume)  # nobody awaits its outcome any more
            raise
        except JobCancelledError:
            with self._cond:
                self.cancelled += 1
            raise
        with self._cond:
            self.completed += 1
        return result

    def _submit(self, job: _Job) -> None:
        quota = self.quotas.get(job.kind)
        with self._cond:
            if self._closed:
                raise JobQueueFullError("the server is shutting down; try again in a moment")
            mine = self._by_client.get((job.client, None), 0)
            mine_of_kind = self._by_client.get((job.client, job.kind), 0)
            if job.client is not None and mine >= self.max_per_client:
                self.rejected += 1
                raise ClientLimitError(
                    f"you already have {mine} requests running or waiting; wait for them to "
                    "finish, then try again"
                )
            if job.client is not None and quota and mine_of_kind >= quota.per_client:
                self.rejected += 1
                raise ClientLimitError(
                    f"you already have {mine_of_kind} {job.kind} jobs running or waiting; "
                    "wait for one to finish (or close its page), then try again"
                )
            running = sum(self._running.values())
            if running + len(self._waiting) >= self.max_workers + self.max_queue:
                self.rejected += 1
                raise JobQueueFullError(
                    "the server is busy (all workers and queue places taken); try again in a "
                    "moment"
                )
            if quota is not None:
                kind_running = self._running.get(job.kind, 0)
                kind_waiting = sum(j.kind == job.kind for j in self._waiting)
                if kind_running + kind_waiting >= quota.running + quota.waiting:
                    self.rejected += 1
                    raise JobQueueFullError(
                        f"the server is busy with {job.kind} jobs ({kind_running} running, "
                        f"{kind_waiting} waiting); try again in a minute"
                    )
            self._waiting.append(job)
            for key in ((job.client, None), (job.client, job.kind)):
                self._by_client[key] = self._by_client.get(key, 0) + 1
            self._cond.notify()

    def _give_up(self, job: _Job, reason: str) -> None:
        """The awaiting request stopped waiting: stop the job and free its place."""
        job.token.cancel(reason)
        with self._cond:
            self.cancelled += 1
            if job in self._waiting:  # never started: free its queue place now
                self._waiting.remove(job)
                self._release(job)
                job.future.cancel()
                self._cond.notify()

    def _release(self, job: _Job) -> None:
        for key in ((job.client, None), (job.client, job.kind)):
            left = self._by_client.get(key, 0) - 1
            if left > 0:
                self._by_client[key] = left
            else:
                self._by_client.pop(key, None)

    def _next_job(self) -> _Job | None:
        """The oldest waiting job whose kind is under its worker quota (call with the lock)."""
        for job in self._waiting:
            quota = self.quotas.get(job.kind)
            if quota is None or self._running.get(job.kind, 0) < quota.running:
                return job
        return None

    def _work(self) -> None:
        while True:
            with self._cond:
                job = self._next_job()
                while job is None and not self._closed:
                    self._cond.wait()
                    job = self._next_job()
                if job is None:
                    return
                self._waiting.remove(job)
                self._running[job.kind] = self._running.get(job.kind, 0) + 1
            try:
                if job.future.set_running_or_notify_cancel():
                    try:
                        job.token.check()  # cancelled while waiting in the queue
                        job.future.set_result(job.call())
                    except BaseException as err:  # handed to the awaiting request
                        job.future.set_exception(err)
            finally:
                with self._cond:
                    self._running[job.kind] -= 1
                    self._release(job)
                    self._cond.notify_all()
                    idle = not self._waiting and not any(self._running.values())
                if idle:  # a burst is over: hand its freed memory back
                    release_free_memory()

    def shutdown(self) -> None:
        """Refuse new jobs, drop waiting ones and wait for running ones to finish."""
        with self._cond:
            self._closed = True
            for job in self._waiting:
                job.token.cancel("server shutting down")
                job.future.cancel()
                self._release(job)
            self._waiting.clear()
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()


def _consume(future: asyncio.Future) -> None:
    """Mark an abandoned job's outcome as seen (asyncio would log it as never retrieved)."""
    if not future.cancelled():
        future.exception()
