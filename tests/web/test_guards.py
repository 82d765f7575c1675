"""The explorer's guards against hostile, broken or greedy requests, on a real loopback server:
Host and Origin checks, request-body timeouts, per-kind and per-client job limits, the error
boundary, and the memory bound of image decoding."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
from PIL import Image

from v4compact.web.app import create_app
from v4compact.web.server import running_server

#: A synthesis that runs far longer than any test waits (streams are closed early).
LONG_SYNTHESIS = "/api/synthesize/stream?neurons=201025/10&steps=1000&preset=upstream"


@pytest.fixture(scope="module")
def served(data_dir, tmp_path_factory):
    """``(app, base URL)`` of an explorer on 127.0.0.1 with 2 workers and 16 queue places."""
    app = create_app(data_dir=data_dir, cache_dir=tmp_path_factory.mktemp("site"),
                     max_workers=2, max_queue=16)
    with running_server(app) as url:
        yield app, url


def _client(url: str, source: str = "127.0.0.1") -> httpx.Client:
    """An HTTP client whose connections come from ``source`` (any 127.x.y.z is this computer,
    so several "clients" can be told apart by the server)."""
    transport = httpx.HTTPTransport(local_address=source)
    return httpx.Client(base_url=url, timeout=60, transport=transport)


def test_a_foreign_host_name_is_refused(served):
    _, url = served
    port = url.rsplit(":", 1)[1]
    with _client(url) as http:
        rebound = http.get("/api/health", headers={"host": f"attacker.example:{port}"})
        assert rebound.status_code == 400
        detail = rebound.json()["detail"]
        assert "attacker.example" in detail and "--allow-host" in detail
        for name in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
            assert http.get("/api/health", headers={"host": name}).status_code == 200


def test_allowed_hosts_serve_a_network_name_on_purpose(data_dir, tmp_path):
    from fastapi.testclient import TestClient

    app = create_app(data_dir=data_dir, cache_dir=tmp_path, allowed_hosts=["LabPC.local"])
    with TestClient(app, base_url="http://labpc.local:8000") as http:
        assert http.get("/api/health").status_code == 200
        assert http.get("/api/health", headers={"host": "other.local"}).status_code == 400


def test_pages_of_other_sites_cannot_post_or_start_work(served):
    app, url = served
    foreign = {"origin": "http://attacker.example"}
    with _client(url) as http:
        empty = {"image": ("a.png", b"", "image/png")}
        posted = http.post("/api/predict", files=empty, headers=foreign)
        assert posted.status_code == 403 and "other web sites" in posted.json()["detail"]
        own = http.post("/api/predict", files=empty, headers={"origin": url})
        assert own.status_code == 400 and "empty" in own.json()["detail"]  # reached the route
        before = app.state.explorer.pool.stats()
        stream = http.get(LONG_SYNTHESIS, headers=foreign)
        assert stream.status_code == 403
        # an <img> or fetch() of another site carries Sec-Fetch-Site instead of an Origin
        cross = {"sec-fetch-site": "cross-site", "sec-fetch-mode": "no-cors"}
        assert http.get(LONG_SYNTHESIS, headers=cross).status_code == 403
        assert app.state.explorer.pool.stats() == before  # no job was started
        # following a link to the explorer from another site still opens it
        link = {"sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate"}
        assert http.get("/", headers=link).status_code == 200
        assert http.get("/api/health", headers=link).status_code == 200


def test_a_body_that_stops_arriving_does_not_hold_the_connection(served):
    _, url = served
    host, port = url.removeprefix("http://").split(":")
    head = (
        f"POST /api/predict HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: 100000\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        start = time.monotonic()
        sock.sendall(head.encode() + b"--xyz\r\n")  # 7 of the 100,000 bytes promised
        answer = b""
        while chunk := sock.recv(65536):  # until the server closes the connection
            answer += chunk
        elapsed = time.monotonic() - start
    status_line, _, rest = answer.partition(b"\r\n")
    assert b" 408 " in status_line, answer[:200]
    assert b"stopped arriving" in rest
    assert elapsed < 8, f"the connection was held {elapsed:.1f} s"


def _open_stream(url: str, source: str, errors: list, stop: threading.Event) -> None:
    """Open a long synthesis stream from ``source``, record an ``error`` event if one comes
    first, and hold the stream open until ``stop``."""
    timeout = httpx.Timeout(60, read=3)  # a running or waiting job sends nothing for a while
    transport = httpx.HTTPTransport(local_address=source)
    with (
        httpx.Client(base_url=url, timeout=timeout, transport=transport) as http,
        http.stream("GET", LONG_SYNTHESIS) as response,
    ):
        event = None
        try:
            for line in response.iter_lines():
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: ") and event == "error":
                    errors.append((source, json.loads(line.removeprefix("data: "))))
                    break
        except httpx.ReadTimeout:
            pass  # accepted: the job runs or waits; the connection stays open
        stop.wait(60)


def _wait_until(condition, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_syntheses_get_their_quota_and_quick_requests_are_not_starved(served):
    app, url = served
    pool = app.state.explorer.pool
    stop = threading.Event()
    errors: list = []
    threads: list[threading.Thread] = []

    def open_stream(source: str) -> None:
        threads.append(threading.Thread(target=_open_stream, args=(url, source, errors, stop),
                                        daemon=True))
        threads[-1].start()

    try:
        open_stream("127.0.0.2")  # runs
        _wait_until(lambda: pool.stats()["running_synthesis"] == 1)
        open_stream("127.0.0.2")  # waits
        _wait_until(lambda: pool.stats()["waiting_synthesis"] == 1)
        open_stream("127.0.0.2")  # one client's third: refused
        _wait_until(lambda: len(errors) == 1)
        open_stream("127.0.0.3")  # another client still finds a place
        _wait_until(lambda: pool.stats()["waiting_synthesis"] == 2)
        assert pool.stats()["running_synthesis"] == 1  # the other worker stays free
        [(source, refusal)] = errors
        assert source == "127.0.0.2" and refusal["status"] == 429
        assert "2 synthesis jobs" in refusal["detail"]
        with _client(url, "127.0.0.4") as http:
            start = time.monotonic()
            network = http.get("/api/neurons/190923/0/network")
            quick = time.monotonic() - start
        assert network.status_code == 200 and quick < 20, quick
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    # closing the streams stopped the running job and gave the waiting places back
    _wait_until(lambda: pool.stats()["running"] == pool.stats()["waiting"] == 0, 30)


def test_a_server_side_failure_is_a_json_message_without_paths(data_dir, tmp_path):
    from fastapi.testclient import TestClient

    not_a_folder = tmp_path / "site"
    not_a_folder.write_text("a file where the site cache should be")
    app = create_app(data_dir=data_dir, cache_dir=not_a_folder)
    with TestClient(app, base_url="http://127.0.0.1") as http:
        broken = http.get("/api/sessions/201025/figure.png")
    assert broken.status_code == 500
    assert broken.headers["content-type"] == "application/json"
    detail = broken.json()["detail"]
    assert "Not a directory" in detail and "<site cache>" in detail
    assert str(tmp_path) not in detail


def test_a_damaged_site_file_gives_json_not_a_bare_500(data_dir, tmp_path):
    from fastapi.testclient import TestClient

    summary = tmp_path / "neurons" / "201025_10" / "summary.json"
    summary.parent.mkdir(parents=True)
    summary.write_text(json.dumps({"preferred": 5, "heldout": 7}))  # JSON of the wrong shape
    app = create_app(data_dir=data_dir, cache_dir=tmp_path)
    with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as http:
        answer = http.get("/api/neurons/201025/10")
    assert 400 <= answer.status_code < 600
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["detail"]


def _palette_png(side: int) -> bytes:
    """A ``side`` x ``side`` palette PNG with a transparent colour: a few kB on disk."""
    image = Image.new("P", (side, side), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", transparency=0)
    return buffer.getvalue()


def test_decoding_memory_is_bound_by_decoded_bytes_not_file_size():
    from v4compact.web.uploads import MAX_DECODED_BYTES, UploadError, load_upload

    bomb = _palette_png(6300)  # 40 megapixels in ~40 kB
    assert len(bomb) < 64 * 1024
    with pytest.raises(UploadError, match="to decode") as err:
        load_upload(bomb)
    assert err.value.status_code == 413
    # the largest accepted image of the kind: measure the decode's peak memory in a fresh
    # process (ru_maxrss is a high-water mark)
    side = int((MAX_DECODED_BYTES / 4) ** 0.5)
    script = (
        "import resource, sys\n"
        "from v4compact.web.uploads import load_upload\n"
        "data = sys.stdin.buffer.read()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "assert load_upload(data).shape == (112, 112, 3)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)\n"
    )
    run = subprocess.run([sys.executable, "-c", script], input=_palette_png(side),
                         capture_output=True, check=True, timeout=300)
    peak_mib = float(run.stdout.decode().split()[-1])
    assert peak_mib < 320, f"decoding a {side}x{side} palette PNG took {peak_mib:.0f} MiB"
