"""Run the explorer in a background thread on the loopback interface (tests, benchmarks,
screenshots), or serve an exported static site with a plain ``http.server``; and the
headless browser that looks at them (:func:`launch_chromium`). ``v4compact serve`` runs the
explorer in the foreground instead."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: Debian's Chromium, which the browser tests, benchmarks and screenshots drive headless
#: through Playwright (no browser download).
CHROMIUM = "/usr/bin/chromium"
#: Its switches there: no sandbox as root, no GPU, and none of its own network traffic.
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run")


def launch_chromium(playwright, executable: str | Path = CHROMIUM):
    """Headless Chromium with :data:`CHROMIUM_ARGS`, from a running ``sync_playwright()``.

    Returns:
        Playwright's ``Browser``; close it when done.
    """
    return playwright.chromium.launch(executable_path=str(executable), args=list(CHROMIUM_ARGS))


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(app, host: str = "127.0.0.1", port: int | None = None,
                   timeout_s: float = 30.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a daemon thread; yields the base URL.

    Args:
        app: an ASGI app (e.g. from :func:`v4compact.web.app.create_app`).
        host: address to bind; keep the default loopback address.
        port: port (default: a free one).
        timeout_s: how long to wait for the server to start.

    The server is shut down (and the thread joined) when the ``with`` block ends.
    """
    import uvicorn

    port = port or free_port(host)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="v4compact-explorer", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the explorer did not start on {host}:{port}")
        time.sleep(0.05)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=timeout_s)


def wait_until_serving(url: str, process=None, log=None, timeout_s: float = 120.0) -> None:
    """Block until the explorer at ``url`` answers ``/api/health`` (a launched
    ``v4compact serve``, for scripts and benchmarks).

    Args:
        url: base URL, e.g. ``"http://127.0.0.1:8000"``.
        process: the server's :class:`subprocess.Popen`, to stop waiting if it exits.
        log: the file its output goes to (its tail is quoted when it exits).
        timeout_s: how long to wait.

    Raises:
        RuntimeError: the process exited, or nothing answered within ``timeout_s``.
    """
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            tail = "" if log is None else Path(log).read_text(errors="replace")[-300:]
            raise RuntimeError(f"the server stopped: {tail}")
        try:
            httpx.get(f"{url}/api/health", timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"the server at {url} did not answer within {timeout_s:.0f} s")


@contextmanager
def serve_folder(folder: str | Path, host: str = "127.0.0.1",
                 timeout_s: float = 10.0) -> Iterator[str]:
    """Serve a folder (an exported static site) with a plain ``python -m http.server`` in a
    child process, as a user checks an export: no project code serves it. Yields the base
    URL ``http://<host>:<port>`` and stops the server when the block ends.

    Raises:
        RuntimeError: the server exited or did not answer within ``timeout_s``.
    """
    import subprocess
    import sys

    port = free_port(host)
    process = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", host, "--directory",
         str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"python -m http.server exited with {process.returncode}")
            try:
                socket.create_connection((host, port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"python -m http.server did not answer on {host}:{port}") from None
                time.sleep(0.05)
        yield f"http://{host}:{port}"
    finally:
        process.terminate()
        process.wait(timeout_s)
