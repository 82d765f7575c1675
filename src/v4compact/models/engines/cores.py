"""Run independent pieces of torch work one per core, on a pool of threads kept for the process.

The fused population's groups (:mod:`.population`) and the routed synthesis models
(:mod:`v4compact.synthesis.routing`) are many small, cache-sized pieces of work. A
multi-threaded op ends in a barrier where every core waits for the slowest; one piece per core
with single-threaded ops needs no barrier and degrades gracefully when other processes share
the cores. torch releases the GIL inside its ops, so Python threads run them in parallel.

The pool is created once per worker count and kept: a synthesis step hands out a few pieces
and a new pool per step paid thread start-up and each new thread's first-op costs every time
(2 neurons x 3 starts per step: 10.4 -> 7.7 ms per image-step with the kept pool; 32 neurons:
5.3 -> 5.0 ms; medians of 4 rounds, side by side, docs/performance.md). Callers on several
threads (a web server) share it, so no more pieces run at once than there are workers. A piece
that itself calls :func:`map_on_cores` runs its items in its own thread (no deadlock, no
oversubscription). A forked child starts without pools (threads do not survive a fork) and
makes its own.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import torch

__all__ = ["map_on_cores"]

_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()
_worker = threading.local()


def _init_worker() -> None:
    torch.set_num_threads(1)  # per thread: the caller's intra-op threads are unchanged
    _worker.in_pool = True


def _pool(workers: int) -> ThreadPoolExecutor:
    with _pools_lock:
        pool = _pools.get(workers)
        if pool is None:
            pool = ThreadPoolExecutor(workers, thread_name_prefix="v4compact-core",
                                      initializer=_init_worker)
            _pools[workers] = pool
        return pool


def _forget_pools() -> None:
    global _pools_lock
    _pools.clear()
    _pools_lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX; elsewhere processes are spawned, not forked
    os.register_at_fork(after_in_child=_forget_pools)


def map_on_cores(fn: Callable, items: Sequence, workers: int | None = None) -> list:
    """``[fn(item) for item in items]``, one item per core at a time, single-threaded ops.

    Args:
        fn: the work of one item (returns anything; an exception is raised here).
        items: the items.
        workers: threads (default: the caller's ``torch.get_num_threads()``). With one
            worker or one item, or when called from inside a piece of work, the items run in
            the calling thread.

    Returns:
        The results, in the order of ``items``.
    """
    workers = torch.get_num_threads() if workers is None else int(workers)
    if workers <= 1 or len(items) <= 1 or getattr(_worker, "in_pool", False):
        return [fn(item) for item in items]
    return list(_pool(workers).map(fn, items))
