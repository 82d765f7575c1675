"""fetch() and data_status() against a real HTTP server on 127.0.0.1 serving a release copy.

The server folder is built in each test from a few small files of ../shared/v4data, laid out
like the release. The handler speaks HTTP byte ranges (as GitHub's raw server does) and can cut
the connection in the middle of a body, to exercise interrupted and resumed transfers.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

import v4compact
from v4compact.data import paths
from v4compact.data.registry import (
    check_file,
    file_git_blob_sha1,
    file_sha256,
    load_registry,
    resolve,
)
from v4compact.models.zoo import NUM_ENSEMBLE_MEMBERS, SHARED_NUM_FILTERS, SHARED_TEACHERS

AVERAGED = paths.responses_averaged(190923)  # 317 kB
NUMS = [paths.nums_filters(201025, k) for k in range(3)]  # tiny
SUMMARY = paths.ENSEMBLE_SUMMARY  # text, 67 kB


class ReleaseServer:
    """A threaded HTTP server over a folder; records requests; can break one transfer."""

    def __init__(self, root: Path):
        self.root = root
        self.requests: list[tuple[str, str | None]] = []
        self.cut_once: set[str] = set()  # paths whose next GET stops half-way
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                rel = self.path.lstrip("/")
                server.requests.append((rel, self.headers.get("Range")))
                file = server.root / rel
                if not file.is_file():
                    self.send_error(HTTPStatus.NOT_FOUND)
                    return
                body = file.read_bytes()
                start = 0
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if match and int(match.group(1)) < len(body):
                    start = int(match.group(1))
                    self.send_response(HTTPStatus.PARTIAL_CONTENT)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(HTTPStatus.OK)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if rel in server.cut_once:
                    server.cut_once.discard(rel)
                    self.wfile.write(body[start : start + (len(body) - start) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body[start:])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def gets(self, rel: str) -> list[str | None]:
        """Range headers of the GET requests for one path, in order."""
        return [rng for path, rng in self.requests if path == rel]


@pytest.fixture
def server(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("release")  # kept apart from each test's tmp_path
    for rel in [AVERAGED, SUMMARY, *NUMS]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data_dir / rel, root / rel)
    srv = ReleaseServer(root)
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()
    srv.thread.join(timeout=10)


def _range_start(header: str | None) -> int:
    match = re.fullmatch(r"bytes=(\d+)-", header or "")
    assert match, f"expected a resuming Range request, got {header!r}"
    return int(match.group(1))


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


def _fetch(what, dest, server, **kwargs):
    kwargs.setdefault("progress", False)
    kwargs.setdefault("retries", 0)
    return v4compact.fetch(what, data_dir=dest, base_url=server.url, **kwargs)


def test_downloads_verifies_and_then_skips_good_copies(server, tmp_path, data_dir):
    dest = tmp_path / "data"
    what = ["nums-filters:201025/0", "nums-filters:201025/1", "nums-filters:201025/2",
            "responses:190923", SUMMARY]
    files = _fetch(what, dest, server)
    assert files == sorted(dest / rel for rel in [AVERAGED, SUMMARY, *NUMS])
    for rel in [AVERAGED, SUMMARY, *NUMS]:
        assert (dest / rel).read_bytes() == (data_dir / rel).read_bytes()
    assert not [n for n in _leftovers(dest) if n.endswith(".part") or n.startswith("tmp")]
    assert len(server.requests) == 5
    again = _fetch(what, dest, server)
    assert again == files and len(server.requests) == 5  # nothing downloaded twice
    session = v4compact.load_session(190923, data_dir=dest)
    np.testing.assert_array_equal(session.responses, np.load(data_dir / AVERAGED))


def test_base_url_comes_from_the_environment(server, tmp_path, monkeypatch):
    monkeypatch.setenv("V4COMPACT_BASE_URL", server.url)
    v4compact.fetch(NUMS[0], data_dir=tmp_path, progress=False)
    assert server.gets(NUMS[0]) == [None]


def test_a_corrupted_file_is_rejected_and_never_kept(server, tmp_path, data_dir):
    served = server.root / AVERAGED
    good = served.read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF  # same size, one byte wrong: only the hash can tell
    served.write_bytes(bytes(bad))
    dest = tmp_path / "data"
    with pytest.raises(v4compact.CorruptDataError) as err:
        _fetch(AVERAGED, dest, server, retries=1)
    message = str(err.value)
    assert AVERAGED in message and "SHA256" in message.upper() and "\n" not in message
    assert len(server.gets(AVERAGED)) == 2  # retried once, rejected both times
    assert not (dest / AVERAGED).exists()
    assert _leftovers(dest) == []
    served.write_bytes(good)  # the server is fixed: a re-run succeeds
    _fetch(AVERAGED, dest, server)
    assert (dest / AVERAGED).read_bytes() == good


def test_a_file_of_the_wrong_size_is_rejected(server, tmp_path):
    served = server.root / SUMMARY
    served.write_bytes(served.read_bytes()[:-10])
    with pytest.raises(v4compact.CorruptDataError, match="size"):
        _fetch(SUMMARY, tmp_path, server)
    assert _leftovers(tmp_path) == []


def test_a_corrupt_local_copy_is_replaced(server, tmp_path, data_dir):
    local = tmp_path / AVERAGED
    local.parent.mkdir(parents=True)
    original = (data_dir / AVERAGED).read_bytes()
    local.write_bytes(b"\0" * len(original))  # right size, wrong content
    assert v4compact.data_status(tmp_path)["responses"].present == 1  # sizes only
    assert v4compact.data_status(tmp_path, verify=True)["responses"].corrupt == [AVERAGED]
    _fetch(AVERAGED, tmp_path, server)
    assert local.read_bytes() == original
    assert v4compact.data_status(tmp_path, verify=True)["responses"].corrupt == []


def test_an_interrupted_transfer_is_resumed_on_retry(server, tmp_path, data_dir):
    size = (data_dir / AVERAGED).stat().st_size
    server.cut_once.add(AVERAGED)
    _fetch(AVERAGED, tmp_path, server, retries=1)
    # first request cut half-way; the retry asked only for the rest (from the last whole
    # chunk the client received before the cut)
    first, second = server.gets(AVERAGED)
    assert first is None
    assert 0 < _range_start(second) <= size // 2
    assert (tmp_path / AVERAGED).read_bytes() == (data_dir / AVERAGED).read_bytes()
    assert _leftovers(tmp_path) == [Path(AVERAGED).name]


def test_an_interrupted_run_leaves_no_file_and_the_next_run_resumes(server, tmp_path, data_dir):
    size = (data_dir / AVERAGED).stat().st_size
    server.cut_once.add(AVERAGED)
    with pytest.raises(v4compact.DownloadError) as err:
        _fetch(AVERAGED, tmp_path, server, retries=0)
    assert AVERAGED in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / AVERAGED).exists()  # nothing half-written in place
    part = tmp_path / (AVERAGED + ".part")
    kept = part.stat().st_size
    assert 0 < kept <= size // 2
    assert v4compact.data_status(tmp_path)["responses"].missing.count(AVERAGED) == 1
    _fetch(AVERAGED, tmp_path, server, retries=0)
    assert _range_start(server.gets(AVERAGED)[-1]) == kept
    assert (tmp_path / AVERAGED).read_bytes() == (data_dir / AVERAGED).read_bytes()
    assert not part.exists()


def test_missing_on_server_and_unreachable_server_raise_download_errors(server, tmp_path):
    absent = paths.nums_filters(201025, 7)  # in the release, not on this server
    with pytest.raises(v4compact.DownloadError, match="404"):
        _fetch(absent, tmp_path, server)
    url = server.url
    server.httpd.shutdown()
    server.httpd.server_close()
    with pytest.raises(v4compact.DownloadError, match="could not download"):
        v4compact.fetch(NUMS[0], data_dir=tmp_path, base_url=url, progress=False, retries=0)
    assert not (tmp_path / NUMS[0]).exists()


def test_groups_resolve_to_the_documented_files():
    registry = load_registry()
    assert len(registry) == 1764
    assert len(resolve("all")) == 1764
    assert len(resolve("images")) == 45
    assert {e.kind for e in resolve("sessions")} == {"responses", "raw-responses"}
    one = {e.path for e in resolve("session:190923")}
    assert one == {paths.images_zip(190923), paths.responses_averaged(190923),
                   paths.responses_raw(190923)}
    models = resolve("compact-models:201025")
    assert len(models) == 2 * 89
    assert {e.path for e in resolve("compact-models:201025/1")} == {
        paths.compact_model(201025, 1), paths.nums_filters(201025, 1)}
    assert len(resolve("compact-models-all:190923/0")) == 7
    assert len(resolve("shared-models:from_vgg19")) == 8
    assert len(resolve("shared-models")) == 56
    assert [e.path for e in resolve("ensemble-members:3")] == [paths.ensemble_member(3)]
    assert [e.path for e in resolve(AVERAGED)] == [AVERAGED]
    with pytest.raises(v4compact.InvalidInputError, match="sessions"):
        resolve("sesions")
    with pytest.raises(v4compact.InvalidInputError, match="no such file"):
        resolve("images:201016")  # a session whose images were never released
    with pytest.raises(v4compact.UnknownSessionError, match="190923"):
        resolve("images:999999")


def test_every_path_function_names_a_released_file():
    registry = load_registry()
    for fmt in paths.COMPACT_FORMATS:
        assert paths.compact_model(211022, 41, fmt) in registry
    for teacher in SHARED_TEACHERS:
        for num in SHARED_NUM_FILTERS:
            assert paths.shared_model(teacher, num) in registry
    for k in range(NUM_ENSEMBLE_MEMBERS):
        assert paths.ensemble_member(k) in registry
    assert paths.ENSEMBLE_SUMMARY in registry
    for info in v4compact.list_sessions():
        assert paths.responses_averaged(info.session_id) in registry
        assert paths.responses_raw(info.session_id) in registry
    with pytest.raises(v4compact.InvalidInputError, match="keras"):
        paths.compact_model(190923, 0, "onnx")


def test_hashes_of_the_local_copy_match_the_registry(data_dir):
    present = [e for e in load_registry().values() if (data_dir / e.path).is_file()]
    assert len(present) > 500
    for entry in present:
        local = data_dir / entry.path
        assert entry.sha256 and file_sha256(local) == entry.sha256, entry.path
        assert file_git_blob_sha1(local) == entry.git_blob_sha1, entry.path


def test_git_blob_sha1_verifies_files_without_a_sha256(tmp_path, data_dir):
    entry = dataclasses.replace(load_registry()[SUMMARY], sha256=None, size_bytes=None)
    copy = tmp_path / "summary.txt"
    shutil.copyfile(data_dir / SUMMARY, copy)
    assert check_file(copy, entry) is None
    text = copy.read_bytes()
    copy.write_bytes(text[:100] + b"X" + text[101:])
    assert "git blob SHA-1" in check_file(copy, entry)
    assert check_file(copy, entry, verify=False) is None  # no size known: cannot tell


def test_status_of_the_real_copy_reports_missing_images_and_raw(data_dir):
    status = v4compact.data_status(verify=True)
    assert sum(row.total for row in status.values()) == 1764
    assert all(not row.corrupt for row in status.values())
    assert (status["images"].present, len(status["images"].missing)) == (12, 33)
    assert paths.images_zip(190924) in status["images"].missing
    assert paths.responses_raw(190923) in status["raw-responses"].missing
    assert status["responses"].present == 50
    assert status["compact-models"].present == 219
    assert status["ensemble-members"].present == 0


def _refusing_url() -> str:
    """A loopback URL whose port refuses connections (nothing listens on it)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def test_an_unreachable_server_stops_the_run_at_the_first_file(tmp_path):
    import time

    many = resolve("responses")  # 50 files: each would be retried for seconds
    start = time.monotonic()
    with pytest.raises(v4compact.DownloadError) as err:
        v4compact.fetch("responses", data_dir=tmp_path, base_url=_refusing_url(),
                        progress=False, retries=3)
    elapsed = time.monotonic() - start
    message = str(err.value)
    assert len(many) == 50 and elapsed < 5, f"took {elapsed:.1f} s"
    assert "Connection refused" in message and "$V4COMPACT_DATA or --data-dir" in message
    assert min(e.path for e in many) in message and "\n" not in message
    assert _leftovers(tmp_path) == []


def test_cli_fetch_without_network_is_one_line_naming_the_data_setting(tmp_path, capsys):
    from v4compact.cli import main

    code = main(["data", "fetch", "responses", "compact-models", "--no-progress",
                 "--base-url", _refusing_url(), "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: could not download") and err.count("\n") == 1
    assert "V4COMPACT_DATA" in err and "--data-dir" in err


def test_data_status_exits_1_when_a_file_is_corrupt(tmp_path, data_dir, capsys):
    from v4compact.cli import main

    local = tmp_path / AVERAGED
    local.parent.mkdir(parents=True)
    shutil.copyfile(data_dir / AVERAGED, local)
    assert main(["data", "status", "--data-dir", str(tmp_path)]) == 0  # only missing files
    local.write_bytes(local.read_bytes()[:-8])  # truncated: the size tells
    assert main(["data", "status", "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"corrupt: {AVERAGED}" in err and "error: 1 corrupt file" in err
