"""Bounded mixed load test of the explorer (loopback only, stops by itself).

Starts the explorer with ``v4compact serve`` on a free 127.0.0.1 port in a process of its own
(so the memory and CPU measured are the server's alone; its background build of neuron pages,
where it has one, is switched off), warms it up with one request of each kind (the 219-neuron
population model is loaded by the first upload), then runs ``--clients`` concurrent clients
for ``--duration`` seconds. Each client connects from its own loopback address (127.0.1.1,
127.0.1.2, ...: every 127.x.y.z is this computer), so the server's per-client limits see
distinct visitors, and loops over a weighted mix of requests:

* ``page``: the front page and its script and style sheet;
* ``neuron``: the neuron list and one neuron's JSON;
* ``upload``: ``POST /api/predict`` of a real session photo ("Try your image");
* ``synthesis``: a live synthesis stream (``--synthesis-steps`` steps), read to its end.

It prints, per kind: requests, successes, refusals (429 client limit / 503 busy), other
errors (5xx, wrong content, connection errors), p50/p95/max latency of the successes, and
overall requests/s; and the server's resident memory before the load (after warm-up), its
peak during the load (sampled every 0.2 s) and after it (once its pool is idle). Exit status
1 on any error, any 5xx other than 503 (a refusal when every place is taken, by design), any
traceback in the server's log, or memory after the load more than 20% above before.

    .venv/bin/python benchmarks/load_test.py                       # 20 clients, 2 minutes
    .venv/bin/python benchmarks/load_test.py --mix upload=1 --clients 8 --duration 60
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
import zipfile
from collections import defaultdict
from pathlib import Path

KINDS = ("page", "neuron", "upload", "synthesis")
#: Neurons the clients look at and synthesize for (sessions with and without photos).
NEURONS = ("201025/10", "190923/0", "210225/5", "211022/3")


def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid``, MiB (Linux /proc)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
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


def parse_mix(text: str) -> dict[str, float]:
    """``"page=3,upload=1"`` -> ``{"page": 3.0, "upload": 1.0}`` (kinds from :data:`KINDS`)."""
    mix = {}
    for part in text.split(","):
        kind, _, weight = part.partition("=")
        if kind.strip() not in KINDS:
            raise SystemExit(f"error: unknown kind {kind!r} in --mix; use {', '.join(KINDS)}")
        mix[kind.strip()] = float(weight or 1)
    return mix


def one_request(http, kind: str, payload: bytes, steps: int, neuron: str) -> int:
    """Send one request of ``kind`` (about ``neuron``); returns its HTTP status (-1: wrong
    content)."""
    if kind == "page":
        for path in ("/", "/static/app.js", "/static/style.css"):
            response = http.get(path)
            if response.status_code != 200:
                return response.status_code
        return 200
    if kind == "neuron":
        listing = http.get("/api/neurons")
        if listing.status_code != 200:
            return listing.status_code
        response = http.get(f"/api/neurons/{neuron}")
        return response.status_code
    if kind == "upload":
        response = http.post("/api/predict", files={"image": ("photo.jpg", payload, "image/jpeg")})
        if response.status_code == 200 and len(response.json()["responses"]) != 219:
            return -1
        return response.status_code
    url = f"/api/synthesize/stream?neurons={neuron}&steps={steps}&preset=upstream"
    with http.stream("GET", url) as response:
        if response.status_code != 200:
            return response.status_code
        event = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event in ("done", "error"):
                if event == "done":
                    return 200
                return int(json.loads(line.removeprefix("data: ")).get("status", 500))
    return -1


def run_clients(base_url: str, payload: bytes, clients: int, duration_s: float,
                mix: dict[str, float], steps: int, timeout_s: float, server_pid: int) -> dict:
    """Run the clients until ``duration_s`` passes; returns records and the server's memory
    samples."""
    import httpx

    records: list[tuple[str, int, float]] = []  # (kind, status, seconds)
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + duration_s
    kinds, weights = list(mix), list(mix.values())

    def client_loop(number: int) -> None:
        rng = random.Random(number)
        transport = httpx.HTTPTransport(local_address=f"127.0.1.{number + 1}")
        with httpx.Client(base_url=base_url, timeout=timeout_s, transport=transport) as http:
            while time.monotonic() < deadline:
                kind = rng.choices(kinds, weights)[0]
                start = time.perf_counter()
                try:
                    status = one_request(http, kind, payload, steps, rng.choice(NEURONS))
                except httpx.HTTPError as err:
                    status = -2
                    with lock:
                        errors.append(f"{kind}: {type(err).__name__}")
                with lock:
                    records.append((kind, status, time.perf_counter() - start))
                if status in (429, 503):
                    time.sleep(1.0)  # what the page does: wait before asking again

    samples: list[float] = []
    done = threading.Event()

    def sample_memory() -> None:
        while not done.wait(0.2):
            samples.append(rss_mib(server_pid))

    sampler = threading.Thread(target=sample_memory, daemon=True)
    sampler.start()
    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    return {"wall_s": wall, "records": records, "errors": errors, "rss_samples": samples}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


#: Largest accepted growth of the server's memory over the load, as a fraction of before.
MAX_RSS_GROWTH = 0.20


def report(result: dict, rss_before: float, rss_after: float, args, stats: dict,
           errors_logged: list[str]) -> int:
    """Print the tables; returns the exit status (1 on any error, 5xx other than 503, server
    traceback, or memory after the load more than :data:`MAX_RSS_GROWTH` above before)."""
    by_kind: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for kind, status, seconds in result["records"]:
        by_kind[kind].append((status, seconds))
    print(f"explorer load test: {args.clients} clients x {args.duration:.0f} s, mix "
          f"{args.mix}, synthesis {args.synthesis_steps} steps; server {args.workers} workers, "
          f"queue {args.queue}; {os.cpu_count()} CPU cores; load average before "
          f"{args.load_before:.1f}")
    header = ("kind", "requests", "ok", "429", "503", "errors", "p50 s", "p95 s", "max s")
    rows = [header]
    failures = 0
    for kind in KINDS:
        items = by_kind.get(kind, [])
        if not items:
            continue
        ok = [s for status, s in items if status == 200]
        bad = sum(1 for status, _ in items if status not in (200, 429, 503))
        failures += sum(1 for status, _ in items if (status >= 500 and status != 503) or status < 0)
        rows.append((kind, str(len(items)), str(len(ok)),
                     str(sum(status == 429 for status, _ in items)),
                     str(sum(status == 503 for status, _ in items)), str(bad),
                     f"{percentile(ok, 0.5):.2f}", f"{percentile(ok, 0.95):.2f}",
                     f"{max(ok) if ok else float('nan'):.2f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for n, row in enumerate(rows):
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in
                        enumerate(zip(row, widths, strict=True))))
        if n == 0:
            print("  ".join("-" * w for w in widths))
    total_ok = sum(1 for _, status, _ in result["records"] if status == 200)
    peak = max(result["rss_samples"], default=float("nan"))
    statuses: dict[int, int] = defaultdict(int)
    for _, status, _ in result["records"]:
        statuses[status] += 1
    print(f"\nthroughput: {len(result['records']) / result['wall_s']:.2f} requests/s "
          f"({total_ok / result['wall_s']:.2f} successful/s) over {result['wall_s']:.0f} s")
    print(f"statuses: {dict(sorted(statuses.items()))}; client errors: "
          f"{sorted(set(result['errors']))[:5] or 'none'}")
    print(f"RSS before / peak / after: {rss_before:.0f} / {peak:.0f} / {rss_after:.0f} MiB "
          f"(after - before {rss_after - rss_before:+.0f} MiB, "
          f"{100 * (rss_after - rss_before) / rss_before:+.0f}%)")
    growth = (rss_after - rss_before) / rss_before
    print(f"memory after the load within {MAX_RSS_GROWTH:.0%} of before: "
          f"{'yes' if growth <= MAX_RSS_GROWTH else 'NO'}")
    print(f"pool: {stats}")
    print(f"server log: {len(errors_logged)} error/traceback lines"
          + (f", first: {errors_logged[0][:200]}" if errors_logged else ""))
    return 1 if failures or errors_logged or growth > MAX_RSS_GROWTH else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients (20)")
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of load (120)")
    parser.add_argument("--mix", default="page=3,neuron=3,upload=2,synthesis=1",
                        help="kinds and weights (default page=3,neuron=3,upload=2,synthesis=1)")
    parser.add_argument("--synthesis-steps", type=int, default=100,
                        help="steps of each live synthesis (100)")
    parser.add_argument("--workers", type=int, default=2, help="server worker threads")
    parser.add_argument("--queue", type=int, default=16, help="server queue length")
    parser.add_argument("--cache-dir", default=None,
                        help="site assets of 'v4compact site build' (default: none, empty)")
    parser.add_argument("--data-dir", default=os.environ.get("V4COMPACT_DATA"),
                        help="data directory (default $V4COMPACT_DATA)")
    parser.add_argument("--timeout", type=float, default=180.0, help="per-request timeout (s)")
    args = parser.parse_args(argv)
    if not args.data_dir:
        print("error: set V4COMPACT_DATA or pass --data-dir", file=sys.stderr)
        return 1
    mix = parse_mix(args.mix)

    import subprocess
    import tempfile

    import httpx

    from v4compact.web.server import free_port, wait_until_serving

    data_dir = Path(args.data_dir)
    payload = photo_bytes(data_dir)
    args.load_before = os.getloadavg()[0]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as empty_cache:
        command = [sys.executable, "-m", "v4compact", "serve", "--port", str(port),
                   "--workers", str(args.workers), "--queue", str(args.queue),
                   "--data-dir", str(data_dir), "--cache-dir", args.cache_dir or empty_cache]
        # a server that builds missing neuron pages in the background would spend CPU and
        # memory on them during the load: measure the requests' own cost
        serve_help = subprocess.run([sys.executable, "-m", "v4compact", "serve", "--help"],
                                    capture_output=True, text=True).stdout
        if "--no-build" in serve_help:
            command.append("--no-build")
        # the server's messages go to a file: a pipe nobody reads would fill and stop it
        server_log = Path(empty_cache) / "server.log"
        with open(server_log, "wb") as log:
            server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            try:
                wait_until_serving(url, server, server_log)
            except RuntimeError as err:
                raise SystemExit(f"error: {err}") from None
            # warm-up, one request of each kind (the first upload loads the 219-neuron
            # population model; neuron pages fill the server's bounded caches), so that the
            # memory "before" is the warm server's and growth during the load means a leak
            with httpx.Client(base_url=url, timeout=900) as http:
                for kind in KINDS:
                    for neuron in NEURONS if kind in ("neuron", "synthesis") else NEURONS[:1]:
                        start = time.perf_counter()
                        status = one_request(http, kind, payload, args.synthesis_steps, neuron)
                        print(f"warm-up {kind}: HTTP {status} in "
                              f"{time.perf_counter() - start:.1f} s")
            time.sleep(1.0)
            rss_before = rss_mib(server.pid)
            result = run_clients(url, payload, args.clients, args.duration, mix,
                                 args.synthesis_steps, args.timeout, server.pid)
            stats = _wait_until_idle(url)  # abandoned jobs finish
            time.sleep(2.0)
            rss_after = rss_mib(server.pid)
            log_text = server_log.read_text(errors="replace")
            errors_logged = [line for line in log_text.splitlines()
                             if "Traceback" in line or "ERROR" in line]
            if errors_logged:  # show the first one whole
                first = log_text.find("Traceback")
                print(log_text[max(0, first - 300): first + 3000], file=sys.stderr)
        finally:
            server.terminate()
            server.wait(timeout=60)
    return report(result, rss_before, rss_after, args, stats, errors_logged)


def _wait_until_idle(url: str, timeout_s: float = 120.0) -> dict:
    """Wait until the server's pool runs and holds no job; returns its counters."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        stats = httpx.get(f"{url}/api/health", timeout=60).json()["jobs"]
        if (stats["running"] == 0 and stats["waiting"] == 0) or time.monotonic() > deadline:
            return stats
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
