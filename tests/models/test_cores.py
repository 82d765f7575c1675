"""map_on_cores: one piece of work per core on a pool kept for the process."""

from __future__ import annotations

import os
import pickle
import signal
import threading
import time

import pytest
import torch

from v4compact.models.engines.cores import map_on_cores


def _where(item):
    return item * item, threading.current_thread().name, torch.get_num_threads()


def _thread(item):
    time.sleep(0.005)  # long enough for both workers to take items
    return threading.current_thread()  # the object: a new thread is a new object


def test_results_in_order_on_kept_single_threaded_workers():
    before = torch.get_num_threads()
    first = map_on_cores(_where, list(range(20)), workers=2)
    second = map_on_cores(_where, list(range(20)), workers=2)
    assert [r[0] for r in first] == [i * i for i in range(20)]
    names = {r[1] for r in first}
    assert len(names) <= 2
    assert threading.current_thread().name not in names
    assert all(name.startswith("v4compact-core") for name in names)
    kept = {id(t): t for t in map_on_cores(_thread, list(range(20)), workers=2)}
    again = {id(t): t for t in map_on_cores(_thread, list(range(20)), workers=2)}
    assert len(kept) == 2
    assert set(again) == set(kept)  # the same two threads, not new ones
    assert {r[2] for r in first + second} == {1}  # single-threaded ops inside
    assert torch.get_num_threads() == before  # the caller's setting is untouched


def test_one_worker_or_one_item_runs_in_the_caller():
    me = threading.current_thread().name
    assert {r[1] for r in map_on_cores(_where, [1, 2, 3], workers=1)} == {me}
    assert map_on_cores(_where, [5], workers=2)[0][:2] == (25, me)
    assert map_on_cores(_where, [], workers=2) == []


def test_nested_call_runs_in_the_piece_thread_without_deadlock():
    def outer(item):
        inner = map_on_cores(_where, [1, 2, 3], workers=2)
        return threading.current_thread().name, {r[1] for r in inner}

    for name, inner_names in map_on_cores(outer, list(range(6)), workers=2):
        assert inner_names == {name}


def test_exception_of_a_piece_is_raised_to_the_caller():
    def fail(item):
        if item == 3:
            raise ValueError("piece 3 failed")
        return item

    with pytest.raises(ValueError, match="piece 3 failed"):
        map_on_cores(fail, list(range(6)), workers=2)
    assert map_on_cores(lambda i: i + 1, [1, 2], workers=2) == [2, 3]  # pool still usable


def test_callers_on_several_threads_share_the_workers():
    running, peak, lock = [0], [0], threading.Lock()

    def piece(item):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.02)
        with lock:
            running[0] -= 1
        return item

    results = {}

    def caller(k):
        results[k] = map_on_cores(piece, list(range(8)), workers=2)

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(results[k] == list(range(8)) for k in range(3))
    assert peak[0] == 2  # three callers, never more than two pieces at once


def test_a_forked_child_makes_its_own_pool():
    map_on_cores(_where, [1, 2, 3], workers=2)  # the parent's pool exists
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: the parent's worker threads do not exist here
        try:
            out = map_on_cores(_where, [1, 2, 3, 4], workers=2)
            os.write(write, pickle.dumps([r[0] for r in out]))
        finally:
            os._exit(0)
    os.close(write)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("map_on_cores hung in a forked child")
    with os.fdopen(read, "rb") as pipe:
        assert pickle.loads(pipe.read()) == [1, 4, 9, 16]
