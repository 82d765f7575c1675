"""The worker pool: bounded queue, time limits and cooperative cancellation."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from v4compact.web.jobs import (
    CancelToken,
    JobCancelledError,
    JobPool,
    JobQueueFullError,
    JobTimeoutError,
)


def test_results_come_back_and_are_counted():
    pool = JobPool(max_workers=2, max_queue=2)

    async def main():
        return await asyncio.gather(*(pool.run(pow, i, 2) for i in range(4)))

    assert asyncio.run(main()) == [0, 1, 4, 9]
    assert pool.stats()["completed"] == 4
    pool.shutdown()


def test_full_queue_is_refused_at_once():
    pool = JobPool(max_workers=1, max_queue=1)
    release = threading.Event()

    async def main():
        first = asyncio.ensure_future(pool.run(release.wait, 5))
        second = asyncio.ensure_future(pool.run(release.wait, 5))
        await asyncio.sleep(0.05)
        with pytest.raises(JobQueueFullError, match="busy"):
            await pool.run(release.wait, 5)
        release.set()
        await asyncio.gather(first, second)

    asyncio.run(main())
    assert pool.stats()["rejected"] == 1
    pool.shutdown()


def test_time_limit_cancels_a_cooperative_job():
    pool = JobPool(max_workers=1, max_queue=0, time_limit_s=0.2)
    token = CancelToken(None)
    stopped = threading.Event()

    def long_job():
        try:
            while True:
                token.check()
                time.sleep(0.01)
        finally:
            stopped.set()

    async def main():
        with pytest.raises(JobTimeoutError, match="limit"):
            await pool.run(long_job, token=token)

    asyncio.run(main())
    assert stopped.wait(2.0), "the worker kept running after its time limit"
    assert token.cancelled
    pool.shutdown()


def test_cancelling_the_request_stops_the_worker():
    pool = JobPool(max_workers=1, max_queue=0)
    token = CancelToken(None)
    steps = []

    def long_job():
        for i in range(10_000):
            token.check()
            steps.append(i)
            time.sleep(0.005)

    async def main():
        task = asyncio.ensure_future(pool.run(long_job, token=token))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.1)

    asyncio.run(main())
    count = len(steps)
    time.sleep(0.05)
    assert len(steps) == count < 10_000
    assert "disconnected" in token.reason
    pool.shutdown()


def test_cancel_token_raises_once_cancelled():
    token = CancelToken(None)
    token.check()
    token.cancel("because")
    with pytest.raises(JobCancelledError, match="because"):
        token.check()
