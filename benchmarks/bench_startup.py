"""Start-up of the explorer on an empty asset cache: serve first, build behind.

Launches ``v4compact serve --port P --cache-dir EMPTY`` (the command ``make run`` ends with,
plus a fresh cache folder) and times, from the launch:

- the first HTTP 200 of ``/`` (the page);
- the first HTTP 200 of ``/api/neurons/<session>/<index>`` (answered at once, ``computing``);
- the neuron's page ready (``status == "ready"``: score, rankings, preferred images built);
- how many neurons the background builder wrote by then and after ``--watch`` more seconds.

Usage::

    python benchmarks/bench_startup.py [--neuron 201025/10] [--watch 60] [serve options...]

Unknown options go to ``v4compact serve`` (e.g. ``--site-steps 5 --site-seeds 1``).
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time

import httpx

from v4compact.web.server import free_port


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--neuron", default="201025/10", help="neuron page to open")
    parser.add_argument("--watch", type=float, default=60.0,
                        help="seconds to keep watching the background build after the page")
    parser.add_argument("--timeout", type=float, default=300.0)
    args, serve_args = parser.parse_known_args(argv)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="v4-startup-") as cache:
        command = [sys.executable, "-m", "v4compact", "serve", "--port", str(port),
                   "--cache-dir", cache, *serve_args]
        launched = time.perf_counter()
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        marks: dict[str, float] = {}
        try:
            with httpx.Client(timeout=30) as client:
                deadline = launched + args.timeout
                while time.perf_counter() < deadline:
                    if server.poll() is not None:
                        print(server.stderr.read().decode()[-2000:])
                        return 1
                    try:
                        if "index" not in marks and client.get(url + "/").status_code == 200:
                            marks["index"] = time.perf_counter() - launched
                        if "index" in marks:
                            page = client.get(f"{url}/api/neurons/{args.neuron}")
                            if page.status_code == 200:
                                marks.setdefault("neuron_200", time.perf_counter() - launched)
                                marks.setdefault("first_status", page.json()["status"])
                                if page.json()["status"] == "ready":
                                    marks["neuron_ready"] = time.perf_counter() - launched
                                    break
                    except httpx.HTTPError:
                        pass
                    time.sleep(0.1)
                ready_then = client.get(url + "/api/build").json()["ready"]
                time.sleep(args.watch)
                progress = client.get(url + "/api/build").json()
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
    print(f"v4compact serve on an empty cache, {os.cpu_count()} CPUs, {platform.processor()}, "
          f"load average before {os.getloadavg()[0]:.2f}; serve options: {serve_args or 'none'}")
    print(f"first 200 of /:                     {marks.get('index', float('nan')):7.2f} s")
    print(f"first 200 of /api/neurons/{args.neuron}: {marks.get('neuron_200', float('nan')):7.2f}"
          f" s (status {marks.get('first_status')!r})")
    print(f"neuron page ready:                  {marks.get('neuron_ready', float('nan')):7.2f} s")
    print(f"neurons ready then: {ready_then}; {args.watch:.0f} s later: {progress['ready']} of "
          f"{progress['total']}")
    return 0 if "neuron_ready" in marks else 1


if __name__ == "__main__":
    sys.exit(main())
