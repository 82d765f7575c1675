"""A bounded worker pool for the explorer's live work (predictions, synthesis, ablations).

Model work runs in a fixed number of worker threads, behind a queue of bounded length, so
many concurrent requests cannot exhaust memory or CPU: a request that finds the queue full
is refused at once (HTTP 503) instead of piling up. Every job has a time limit and a
cancellation flag; long jobs (synthesis) check the flag through their progress callback, so
a job stops soon after its client disconnects or its time runs out.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..errors import V4CompactError


class JobQueueFullError(V4CompactError, RuntimeError):
    """The worker pool's queue is full; the client should retry in a moment (HTTP 503)."""


class JobTimeoutError(V4CompactError, TimeoutError):
    """A job ran past its time limit (HTTP 504)."""


class JobCancelledError(V4CompactError, RuntimeError):
    """A job was cancelled (client gone or time limit); raised inside the worker."""


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


class JobPool:
    """A fixed set of worker threads behind a bounded queue.

    Args:
        max_workers: worker threads running jobs at the same time.
        max_queue: jobs allowed to wait for a worker; more are refused with
            :class:`JobQueueFullError`.
        time_limit_s: default per-job time limit in seconds.
    """

    def __init__(self, max_workers: int = 2, max_queue: int = 16, time_limit_s: float = 60.0):
        if max_workers < 1 or max_queue < 0:
            raise ValueError("max_workers must be >= 1 and max_queue >= 0")
        self.max_workers = max_workers
        self.max_queue = max_queue
        self.time_limit_s = time_limit_s
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="v4job")
        self._slots = threading.BoundedSemaphore(max_workers + max_queue)
        self._lock = threading.Lock()
        self._running = 0
        self._pending = 0
        self.completed = 0
        self.rejected = 0
        self.cancelled = 0

    def stats(self) -> dict[str, int]:
        """Counters: workers, running, waiting, completed, rejected, cancelled."""
        with self._lock:
            return {
                "workers": self.max_workers,
                "max_queue": self.max_queue,
                "running": self._running,
                "waiting": self._pending,
                "completed": self.completed,
                "rejected": self.rejected,
                "cancelled": self.cancelled,
            }

    async def run(
        self,
        fn: Callable[..., Any],
        *args: Any,
        token: CancelToken | None = None,
        time_limit_s: float | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run ``fn(*args, **kwargs)`` in a worker and await its result.

        Args:
            fn: the blocking function; if it accepts ``token`` it should call
                ``token.check()`` now and then.
            token: the job's cancel token (one is made if omitted); cancelled on timeout
                and when the awaiting request is cancelled (client disconnected).
            time_limit_s: the job's time limit (default: the pool's).

        Raises:
            JobQueueFullError: no worker free and the queue is full.
            JobTimeoutError: the job ran past its limit.
        """
        limit = self.time_limit_s if time_limit_s is None else time_limit_s
        token = token or CancelToken(limit)
        if not self._slots.acquire(blocking=False):
            with self._lock:
                self.rejected += 1
            raise JobQueueFullError(
                "the server is busy (all workers and queue places taken); try again in a moment"
            )
        with self._lock:
            self._pending += 1

        def work() -> Any:
            with self._lock:
                self._pending -= 1
                self._running += 1
            try:
                token.check()  # cancelled while waiting in the queue
                return fn(*args, **kwargs)
            finally:
                with self._lock:
                    self._running -= 1
                self._slots.release()

        future = asyncio.get_running_loop().run_in_executor(self._executor, work)
        try:
            result = await asyncio.wait_for(asyncio.shield(future), timeout=limit)
        except TimeoutError:
            token.cancel("time limit reached")
            with self._lock:
                self.cancelled += 1
            raise JobTimeoutError(
                f"the job took longer than its {limit:.0f} s limit; try fewer steps or images"
            ) from None
        except asyncio.CancelledError:
            token.cancel("client disconnected")
            with self._lock:
                self.cancelled += 1
            raise
        except JobCancelledError:
            with self._lock:
                self.cancelled += 1
            raise
        with self._lock:
            self.completed += 1
        return result

    def shutdown(self) -> None:
        """Stop accepting jobs and wait for running ones to finish."""
        self._executor.shutdown(wait=True, cancel_futures=True)
