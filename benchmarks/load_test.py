"""Bounded load test of the explorer's prediction route (loopback only, stops by itself).

Starts the explorer on 127.0.0.1 in this process, warms it up (the 219-neuron population
model is loaded on the first request), then sends a fixed number of ``POST /api/predict``
uploads (a real session photo) from a fixed number of concurrent clients, and prints a
table: requests/s, p50/p95/max latency, errors, refusals (503, queue full) and the
process's resident memory before and after.

    .venv/bin/python benchmarks/load_test.py --clients 8 --requests 80
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
import zipfile
from pathlib import Path


def rss_mib() -> float:
    """Resident memory of this process (server included), MiB (Linux /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def photo_bytes(data_dir: Path, index: int = 0) -> bytes:
    """A JPEG photo of session 201025 from the data directory."""
    with zipfile.ZipFile(data_dir / "data_V4_responses/images/images_201025.zip") as zf:
        names = sorted(n for n in zf.namelist() if n.endswith(".jpg"))
        return zf.read(names[index])


def run(base_url: str, payload: bytes, clients: int, requests: int, timeout_s: float) -> dict:
    """Send ``requests`` uploads from ``clients`` threads; returns latencies and counts."""
    import httpx

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def client_loop() -> None:
        with httpx.Client(base_url=base_url, timeout=timeout_s) as http:
            while True:
                with lock:
                    if next(counter, None) is None:
                        return
                start = time.perf_counter()
                try:
                    response = http.post(
                        "/api/predict", files={"image": ("photo.jpg", payload, "image/jpeg")}
                    )
                    status = response.status_code
                    if status == 200 and len(response.json()["responses"]) != 219:
                        status = -1
                except httpx.HTTPError as err:
                    status = -2
                    with lock:
                        errors.append(type(err).__name__)
                elapsed = time.perf_counter() - start
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1
                    if status == 200:
                        latencies.append(elapsed)

    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return {"wall_s": wall, "latencies": latencies, "statuses": statuses, "errors": errors}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--requests", type=int, default=64, help="requests per round (bounded)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of --requests; memory is reported after each")
    parser.add_argument("--workers", type=int, default=2, help="server worker threads")
    parser.add_argument("--queue", type=int, default=16, help="server queue length")
    parser.add_argument("--data-dir", default=os.environ.get("V4COMPACT_DATA"),
                        help="data directory (default $V4COMPACT_DATA)")
    parser.add_argument("--timeout", type=float, default=120.0, help="per-request timeout (s)")
    args = parser.parse_args(argv)
    if not args.data_dir:
        print("error: set V4COMPACT_DATA or pass --data-dir", file=sys.stderr)
        return 1

    import tempfile

    import torch

    from v4compact.web.app import create_app
    from v4compact.web.server import running_server

    data_dir = Path(args.data_dir)
    payload = photo_bytes(data_dir)
    with tempfile.TemporaryDirectory() as cache:
        app = create_app(data_dir=data_dir, cache_dir=cache, max_workers=args.workers,
                         max_queue=args.queue)
        with running_server(app) as url:
            assert url.startswith("http://127.0.0.1:")
            # the first request loads the 219-neuron population model: give it time
            warm = run(url, payload, 1, 2, max(args.timeout, 900.0))
            rss_before = rss_mib()
            rounds = []
            for _ in range(args.rounds):
                rounds.append(run(url, payload, args.clients, args.requests, args.timeout))
                rounds[-1]["rss"] = rss_mib()
            rss_after = rss_mib()
            stats = app.state.explorer.pool.stats()
    result = {
        "wall_s": sum(r["wall_s"] for r in rounds),
        "latencies": [x for r in rounds for x in r["latencies"]],
        "statuses": {},
    }
    for r in rounds:
        for status, count in r["statuses"].items():
            result["statuses"][status] = result["statuses"].get(status, 0) + count
    lat = sorted(result["latencies"])
    ok = len(lat)

    def pct(q: float) -> float:
        if not lat:
            return float("nan")
        return lat[min(len(lat) - 1, int(round(q * (len(lat) - 1))))] * 1000

    refused = result["statuses"].get(503, 0)
    failed = sum(n for s, n in result["statuses"].items() if s not in (200, 503))
    rows = [
        ("torch threads", f"{torch.get_num_threads()}"),
        ("CPU cores", f"{os.cpu_count()}"),
        ("server workers / queue", f"{args.workers} / {args.queue}"),
        ("clients / requests", f"{args.clients} / {args.rounds} x {args.requests}"),
        ("warm-up (2 requests, model load)", f"{warm['wall_s']:.1f} s {warm['statuses']}"),
        ("successful (200)", f"{ok}"),
        ("refused busy (503)", f"{refused}"),
        ("errors (other)", f"{failed}"),
        ("throughput", f"{ok / result['wall_s']:.2f} requests/s"),
        ("latency p50", f"{pct(0.50):.0f} ms"),
        ("latency p95", f"{pct(0.95):.0f} ms"),
        ("latency max", f"{(lat[-1] * 1000 if lat else float('nan')):.0f} ms"),
        ("mean latency", f"{(statistics.mean(lat) * 1000 if lat else float('nan')):.0f} ms"),
        ("RSS before / after", f"{rss_before:.0f} / {rss_after:.0f} MiB"),
        ("RSS after each round", " / ".join(f"{r['rss']:.0f}" for r in rounds) + " MiB"),
        ("RSS growth", f"{rss_after - rss_before:+.0f} MiB"),
        ("pool counters", f"completed {stats['completed']}, rejected {stats['rejected']}"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"{'metric':<{width}}  value")
    print(f"{'-' * width}  {'-' * 24}")
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
