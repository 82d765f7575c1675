"""Leaving the Synthesize page (closing the event stream) stops the job on the server."""

from __future__ import annotations

import time

import httpx


def test_closing_the_stream_cancels_the_synthesis(site_cache, data_dir):
    from v4compact.web.app import create_app
    from v4compact.web.server import running_server

    app = create_app(data_dir=data_dir, cache_dir=site_cache, max_workers=1, max_queue=0)
    pool = app.state.explorer.pool
    with running_server(app) as url:
        query = "neurons=201025/10&steps=1000&preset=upstream"
        with httpx.Client(base_url=url, timeout=60) as http:
            with http.stream("GET", f"/api/synthesize/stream?{query}") as response:
                assert response.status_code == 200
                for line in response.iter_lines():
                    if line.startswith("event: progress"):
                        break  # the job is running: now the "browser" leaves
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                stats = pool.stats()
                if stats["running"] == 0 and stats["cancelled"] >= 1:
                    break
                time.sleep(0.1)
            stats = pool.stats()
            assert stats["cancelled"] == 1 and stats["running"] == 0, stats
            assert stats["completed"] == 0
            # the single worker is free again for the next request
            health = http.get("/api/health").json()
            assert health["jobs"]["running"] == 0
            ok = http.get("/api/neurons/201025/10/network")
            assert ok.status_code == 200
