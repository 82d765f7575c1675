"""Measure what the explorer and the CLI answer to every bad input of issue 13 (hardening).

Runs each case for real and prints a Markdown table ``# | bad input | before (from the issue)
| after: status or exit code | after: message`` (the table of docs/hardening.md):

* CLI cases run ``python -m v4compact ...`` in a subprocess and report its exit status and
  its ``error:`` / ``warning:`` line (or the last line it printed);
* web cases talk to ``v4compact serve`` subprocesses on free 127.0.0.1 ports, over copies of
  the data directory made of symbolic links to the real files, with damaged copies of a few
  files: server A has exactly one corrupt model file (201025/3 cut in half); server B a
  filter-count file that is not numpy (190923/2) and a missing model file (210225/1).

Nothing in the data directory is changed. The real data is required::

    V4COMPACT_DATA=/path/to/release .venv/bin/python scripts/hardening_table.py
    .venv/bin/python scripts/hardening_table.py --with-evaluate   # + README evaluate command

It takes a few minutes on 2 cores (two servers each load ~217 compact models; the README
commands of --with-evaluate add about 5 minutes).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

#: Neurons whose files the damaged copies break.
TRUNCATED, GARBLED, MISSING = "201025/3", "190923/2", "210225/1"


@dataclass
class Row:
    """One line of the table."""

    item: str
    bad_input: str
    before: str
    status: str
    message: str


ROWS: list[Row] = []
#: The script's temporary folder, shown as ``<tmp>`` in the table.
WORK: list[str] = []


def add(item: str, bad_input: str, before: str, status, message: str) -> None:
    """Record a row and echo it (progress on stderr)."""
    text = " ".join(str(message).split())
    for folder in WORK:
        text = text.replace(folder, "<tmp>")
    row = Row(item, bad_input, before, str(status), text)
    ROWS.append(row)
    print(f"[{item}] {bad_input}: {row.status} | {row.message[:160]}", file=sys.stderr)


# --- helpers ----------------------------------------------------------------------------------
def cli(args: list[str], cwd: Path | None = None, env: dict | None = None,
        timeout: float = 600) -> tuple[int, str, float]:
    """Run ``v4compact ARGS``; returns (exit status, its one-line message, seconds)."""
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "v4compact", *args], cwd=cwd,
                         capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, **(env or {})})
    seconds = time.perf_counter() - start
    lines = [line for line in (run.stderr + run.stdout).splitlines() if line.strip()]
    flagged = [line for line in lines if line.startswith(("error:", "warning:"))]
    if "Traceback" in run.stderr:
        message = f"TRACEBACK ({len(run.stderr.splitlines())} lines): {lines[-1]}"
    else:
        message = " / ".join(flagged) if flagged else (lines[-1] if lines else "(no output)")
    return run.returncode, message, seconds


def linked_copy(data_dir: Path, root: Path) -> Path:
    """``root`` filled with symbolic links to every file of ``data_dir``."""
    for source in data_dir.rglob("*"):
        if source.is_file():
            link = root / source.relative_to(data_dir)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(source)
    return root


def replace_file(root: Path, relpath: str | Path, content: bytes | None) -> None:
    """Replace a link of a linked copy by ``content`` (None: remove it)."""
    target = root / relpath
    target.unlink()
    if content is not None:
        target.write_bytes(content)


class Server:
    """``v4compact serve`` in a subprocess on a free loopback port."""

    def __init__(self, data_dir: Path, cache_dir: Path, log: Path):
        from v4compact.web.server import free_port, wait_until_serving

        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        command = [sys.executable, "-m", "v4compact", "serve", "--port", str(self.port),
                   "--data-dir", str(data_dir), "--cache-dir", str(cache_dir)]
        # a background build of the neuron pages, where the server has one, would compete
        # with the cases for the CPU: the cases measure the requests alone
        serve_help = subprocess.run([sys.executable, "-m", "v4compact", "serve", "--help"],
                                    capture_output=True, text=True).stdout
        if "--no-build" in serve_help:
            command.append("--no-build")
        with open(log, "wb") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_until_serving(self.url, self.process, log)
        except RuntimeError as err:
            raise SystemExit(f"error: {err}") from None

    def client(self, source: str = "127.0.0.1") -> httpx.Client:
        transport = httpx.HTTPTransport(local_address=source)
        return httpx.Client(base_url=self.url, timeout=900, transport=transport)

    def peak_rss_mib(self) -> float:
        """The server's peak resident memory so far (VmHWM), MiB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def tracebacks(self) -> int:
        return self.log.read_text(errors="replace").count("Traceback")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


def detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text[:200]))
    except ValueError:
        return response.text[:200]


def photo_bytes(data_dir: Path) -> bytes:
    with zipfile.ZipFile(data_dir / "data_V4_responses/images/images_201025.zip") as zf:
        name = sorted(n for n in zf.namelist() if n.endswith(".jpg"))[5]
        return zf.read(name)


def upload(http: httpx.Client, payload: bytes, **headers) -> tuple[httpx.Response, float]:
    start = time.perf_counter()
    response = http.post("/api/predict", files={"image": ("photo.png", payload, "image/png")},
                         headers=headers)
    return response, time.perf_counter() - start


def palette_png(side_w: int, side_h: int) -> bytes:
    image = Image.new("P", (side_w, side_h), 0)
    image.putpalette([0, 0, 0] * 256)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def raw_exchange(port: int, request: bytes) -> tuple[str, str, float]:
    """Send ``request`` on a raw connection and read until the server closes it."""
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=200) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
    seconds = time.perf_counter() - start
    text = b"".join(chunks).decode("latin-1")
    status = text.split("\r\n", 1)[0]
    body = text.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in text else ""
    try:
        body = json.loads(body)["detail"]
    except (ValueError, KeyError, TypeError):
        pass
    return status, str(body), seconds


# --- the cases --------------------------------------------------------------------------------
def readme_cases(data_dir: Path, work: Path, with_evaluate: bool) -> None:
    empty = work / "no-data"
    empty.mkdir()
    if with_evaluate:
        cwd = work / "readme"
        cwd.mkdir()
        code, message, seconds = cli(["evaluate", "compact", "--sessions", "190923", "201025",
                                      "--out", "results.csv"], cwd=cwd)
        rows = len((cwd / "results.csv").read_text().splitlines()) - 1 if code == 0 else 0
        add("0", "README: `evaluate compact --sessions 190923 201025 --out results.csv`",
            "error: compact/190923/0 predicts no neuron of session 201025",
            f"exit {code}", f"{rows} neurons scored in {seconds:.0f} s; {message}")
        code, message, seconds = cli(["figure", "fig1h", "--results", "results.csv", "--out",
                                      "fig1h.png"], cwd=cwd)
        add("0", "`figure fig1h` (here from those results: `--results results.csv --out "
            "fig1h.png`)", "the same error", f"exit {code} in {seconds:.0f} s",
            f"{message} ({(cwd / 'fig1h.png').stat().st_size // 1024} kB)"
            if code == 0 else message)
        code, message, seconds = cli(["report", "--out", "report/", "--compact-results",
                                      "results.csv", "--sessions", "190923", "201025",
                                      "--teachers", "from_ensemble_model", "--num-filters",
                                      "200", "--num-boot", "0", "--quiet"], cwd=cwd)
        add("0", "`report --out report/` (here: those results, one shared model)",
            "the same error", f"exit {code} in {seconds:.0f} s",
            f"{message} ({len(list((cwd / 'report').iterdir()))} files in report/)"
            if code == 0 else message)
    # no network and no data: fetch stops at the first file
    for base_url, what in (("http://127.0.0.1:9/", "refused connection"),
                           ("http://no-such-host.invalid/", "unknown host")):
        code, message, seconds = cli(["data", "fetch", "--data-dir", str(empty), "--base-url",
                                      base_url])
        add("0", f"`make run` / `data fetch` without network and data ({what})",
            "retries each of 547 files (~55 min ETA) before the first error",
            f"exit {code} after {seconds:.1f} s", message)
    session_image = _session_images(data_dir, 2)
    wide = work / "wide.png"
    Image.fromarray(np.concatenate(session_image, axis=1)).save(wide)
    code, message, _ = cli(["predict", "compact/201025/10", str(wide), "--no-progress"])
    add("0", "a CLI command that warns (`predict` on a 224x112 image)",
        "Python warning lines with the source line", f"exit {code}", message)


def _session_images(data_dir: Path, count: int) -> list[np.ndarray]:
    from v4compact.data.session import load_session

    session = load_session(201025, data_dir=data_dir)
    return [session.image(i) for i in range(count)]


def cli_cases(data_dir: Path, work: Path, damaged_b: Path) -> None:
    from v4compact.data import paths

    existing = work / "stimuli.png"
    existing.write_bytes(b"a file")
    code, message, seconds = cli(["synthesize", "compact/201025/2", "--steps", "1000", "--out",
                                  str(existing)])
    add("4", "`synthesize ... --out` an existing file", "traceback after the work",
        f"exit {code} in {seconds:.1f} s", message)
    code, message, seconds = cli(["synthesize", "compact/201025/2", "--steps", "1000", "--out",
                                  _unwritable(work)])
    add("4", "`synthesize ... --out` an unwritable folder", "traceback after the work",
        f"exit {code} in {seconds:.1f} s", message)
    huge = work / "huge.png"
    Image.new("L", (20_000, 10_000)).save(huge)
    code, message, _ = cli(["predict", "compact/201025/10", str(huge)])
    add("4", f"`predict` on a 20000x10000 PNG ({huge.stat().st_size // 1024} kB)", "traceback",
        f"exit {code}", message)
    photo = work / "photo.png"
    Image.new("RGB", (112, 112), (120, 90, 60)).save(photo)
    code, message, _ = cli(["predict", f"compact/{GARBLED}", str(photo), "--data-dir",
                            str(damaged_b)])
    add("4", "`predict` with a corrupt nums_filters .npy", "traceback", f"exit {code}", message)
    code, message, _ = cli(["predict", f"compact/{TRUNCATED}", str(photo), "--data-dir",
                            str(work / "data-a")])
    add("1", "`predict` with a truncated model file", "traceback", f"exit {code}", message)
    code, message, _ = cli(["predict", f"compact/{MISSING}", str(photo), "--data-dir",
                            str(damaged_b)])
    add("1", "`predict` with a missing model file", "(not in the issue)", f"exit {code}",
        message)
    for option, before in ((["--port", "99999"], "traceback"),
                           (["--time-limit", "-1"], "accepted")):
        code, message, _ = cli(["serve", *option, "--cache-dir", str(work / "site")])
        add("4", f"`serve {' '.join(option)}`", before, f"exit {code}", message)
    code, message, _ = cli(["models", "list", "nonsense*"])
    add("4", "`models list 'nonsense*'`", "prints nothing, exit 0", f"exit {code}", message)

    # 16-bit PNG: the same picture at 8 and 16 bits gives the same predictions
    image8 = _session_images(data_dir, 1)[0]
    png8, png16 = work / "photo8.png", work / "photo16.png"
    Image.fromarray(image8).save(png8)
    grey16 = (image8.mean(axis=2).round().astype(np.uint16) * 257)
    Image.fromarray(grey16).save(png16)  # 16-bit greyscale ("I;16")
    Image.fromarray(image8.mean(axis=2).round().astype(np.uint8)).save(work / "grey8.png")
    out8, out16 = work / "p8.csv", work / "p16.csv"
    cli(["predict", "compact/201025/10", str(work / "grey8.png"), "--out", str(out8)])
    code, message, _ = cli(["predict", "compact/201025/10", str(png16), "--out", str(out16)])
    v8 = float(out8.read_text().splitlines()[1].split(",")[-1])
    v16 = float(out16.read_text().splitlines()[1].split(",")[-1])
    white = work / "white.png"
    Image.new("L", (112, 112), 255).save(white)
    vwhite_file = work / "pw.csv"
    cli(["predict", "compact/201025/10", str(white), "--out", str(vwhite_file)])
    vwhite = float(vwhite_file.read_text().splitlines()[1].split(",")[-1])
    add("5", "16-bit greyscale PNG (`predict`)", "clipped to white",
        f"exit {code}", f"prediction {v16:.4f} z-scored units, same picture at 8 bits "
        f"{v8:.4f} (difference {abs(v16 - v8):.1e}); an all-white image gives {vwhite:.4f}")

    # an all-NaN responses file
    nan_dir = linked_copy(data_dir, work / "data-nan")
    relpath = paths.responses_averaged(201025)
    shape = np.load(data_dir / relpath).shape
    replace_file(nan_dir, relpath, None)
    np.save(nan_dir / relpath, np.full(shape, np.nan))
    code, message, _ = cli(["evaluate", "compact/201025/10", "--num-boot", "0", "--quiet",
                            "--data-dir", str(nan_dir)])
    add("5", "`evaluate` with an all-NaN responses file", "nan, exit 0, numpy warnings",
        f"exit {code}", message)
    code, message, _ = cli(["data", "status", "--data-dir", str(damaged_b)])
    add("5", "`data status` with a corrupt and a missing file", "exit 0", f"exit {code}",
        message)


def _unwritable(work: Path) -> str:
    folder = work / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):  # root ignores file modes: a folder of sysfs
        return "/sys/v4compact-out"
    return str(folder / "out")


def server_a_cases(server: Server, data_dir: Path) -> None:
    """One corrupt model file; hostile and greedy requests."""
    from v4compact.web.jobs import default_quotas

    payload = photo_bytes(data_dir)
    with server.client() as http:
        listing = http.get("/api/neurons")
        cards = listing.json()
        marked = [c for c in cards if c["health"] != "ok"]
        add("1", f"gallery (`/api/neurons`) with one corrupt model file ({TRUNCATED} cut in "
            "half)", "500 (any corrupt file)", f"{listing.status_code}",
            f"{len(cards)} cards, {len(marked)} marked: {marked[0]['neuron_id']} "
            f"{marked[0]['health']}: {marked[0]['problem']}")
        page = http.get(f"/api/neurons/{TRUNCATED}")
        net = http.get(f"/api/neurons/{TRUNCATED}/network")
        add("1", "that neuron's page / its network drawing", "500",
            f"{page.status_code} / {net.status_code}", f"page health "
            f"{page.json().get('health')}; network: {detail(net)}")
        response, seconds = upload(http, payload)
        body = response.json()
        add("1", "\"Try your image\" with that corrupt model file", "500",
            f"{response.status_code} in {seconds:.1f} s",
            f"{len(body['responses'])} neurons answer "
            f"(the corrupt one is left out); note: {body.get('note', '')[:60]}...")

        # item 2: validation before the stream
        for query, before in (("neurons=201025/999", "\"connection was lost\""),
                              ("neurons=201025/10&steps=0", "\"connection was lost\""),
                              ("neurons=201025/10&preset=fancy", "\"connection was lost\"")):
            answer = http.get(f"/api/synthesize/stream?{query}")
            add("2", f"synthesis stream `?{query}`", before,
                f"{answer.status_code} ({answer.headers.get('content-type')})", detail(answer))

        # item 3: foreign Host and Origin, a body that never arrives
        port = server.port
        rebound = http.get("/api/health", headers={"host": f"attacker.example:{port}"})
        add("3", "`Host: attacker.example` (DNS rebinding)", "answered",
            rebound.status_code, detail(rebound))
        foreign, _ = upload(http, payload, origin="http://evil.example")
        add("3", "POST /api/predict with `Origin: http://evil.example`", "accepted",
            foreign.status_code, detail(foreign))
        stream = http.get("/api/synthesize/stream?neurons=201025/10",
                          headers={"origin": "http://evil.example"})
        add("3", "synthesis stream opened by a page of another site", "accepted",
            stream.status_code, detail(stream))
    request = (f"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
               "Content-Type: multipart/form-data; boundary=xyz\r\n"
               "Content-Length: 100000\r\n\r\n--xyz\r\n").encode()
    status, message, seconds = raw_exchange(port, request)
    add("3", "`Content-Length: 100000`, 7 bytes sent, connection kept open",
        "connection held > 90 s", f"{status.split(' ', 1)[1]} after {seconds:.1f} s", message)

    # item 3: twenty long syntheses from twenty addresses, then one upload
    outcomes: dict[int, str] = {}
    stop = threading.Event()

    def long_synthesis(number: int) -> None:
        with server.client(f"127.0.2.{number + 1}") as own:
            url = "/api/synthesize/stream?neurons=201025/10&steps=1000"
            try:
                with own.stream("GET", url) as answer:
                    if answer.status_code != 200:
                        outcomes[number] = f"HTTP {answer.status_code}"
                        return
                    event = None
                    outcomes[number] = "admitted"
                    for line in answer.iter_lines():
                        if stop.is_set():
                            return
                        if line.startswith("event: "):
                            event = line.removeprefix("event: ")
                        elif line.startswith("data: ") and event == "error":
                            data = json.loads(line.removeprefix("data: "))
                            outcomes[number] = f"{data['status']}: {data['detail']}"
                            return
                        elif event == "progress":
                            outcomes[number] = "running"
            except httpx.HTTPError as err:
                outcomes[number] = type(err).__name__

    threads = [threading.Thread(target=long_synthesis, args=(i,), daemon=True)
               for i in range(20)]
    for thread in threads:
        thread.start()
    time.sleep(8.0)
    with server.client("127.0.3.1") as other:
        response, seconds = upload(other, payload)
        jobs = other.get("/api/health").json().get("jobs", {})
    stop.set()
    refused = [o for o in outcomes.values() if o.startswith("503")]
    quota = default_quotas(2, 16)["synthesis"]
    add("3", "20 long syntheses (1000 steps, 20 addresses), then \"Try your image\"",
        "the syntheses starve the upload",
        f"upload {response.status_code} in {seconds:.1f} s",
        f"syntheses: {jobs.get('running_synthesis')} running, "
        f"{jobs.get('waiting_synthesis')} waiting (quota: {quota.running} worker, "
        f"{quota.waiting} places), {len(refused)} refused in the stream with "
        f"{refused[0] if refused else '-'}; other outcomes "
        f"{sorted(set(o for o in outcomes.values() if not o.startswith('503')))}")
    for thread in threads:
        thread.join(timeout=30)

    # item 6: a palette PNG of 40 megapixels
    bomb = palette_png(8000, 5000)
    before = server.peak_rss_mib()
    with server.client() as http:
        response, seconds = upload(http, bomb)
    after = server.peak_rss_mib()
    add("6", f"palette PNG of 8000x5000 pixels ({len(bomb) // 1024} kB)",
        "accepted, ~640 MB to decode",
        f"{response.status_code} in {seconds:.2f} s, server peak RSS {before:.0f} -> "
        f"{after:.0f} MiB", detail(response))

    # item 7: paths, Unicode digits, leading zeros
    with server.client() as http:
        health = http.get("/api/health")
        text = health.text
        leaks = [p for p in (str(server.data_dir), str(Path.home()), "/tmp/", "/work/")
                 if p in text]
        add("7", "`/api/health`", "absolute server paths", health.status_code,
            f"paths in the answer: {leaks or 'none'}; keys {sorted(health.json())}")
        missing = http.get("/api/sessions/211022/images/3.png")
        add("7", "an image of a session whose photos are not in the data directory "
            "(`/api/sessions/211022/images/3.png`)", "absolute server paths",
            missing.status_code, detail(missing))
        for path, before in (("/api/neurons/201025/\u0661\u0660", "opens 201025/10"),
                             ("/api/neurons/\uff12\uff10\uff11\uff10\uff12\uff15/10",
                              "opens 201025/10"),
                             ("/api/neurons/201025/010", "opens 201025/10"),
                             ("/api/sessions/0201025", "(not in the issue)"),
                             ("/api/sessions/201025/images/07.png", "(not in the issue) "
                              "image 7")):
            answer = http.get(path)
            add("7", f"`{path}`", before, answer.status_code, detail(answer))


def server_b_cases(server: Server, data_dir: Path) -> None:
    """A garbled filter-count file and a missing model file."""
    payload = photo_bytes(data_dir)
    with server.client() as http:
        listing = http.get("/api/neurons")
        cards = {c["neuron_id"]: c for c in listing.json()}
        add("1", f"gallery with a corrupt nums_filters .npy ({GARBLED}) and a missing model "
            f"file ({MISSING})", "500", listing.status_code,
            f"{sum(c['health'] != 'ok' for c in cards.values())} marked: {GARBLED} "
            f"{cards[GARBLED]['health']}: {cards[GARBLED]['problem']}; {MISSING} "
            f"{cards[MISSING]['health']}: {cards[MISSING]['problem']}")
        first, first_s = upload(http, payload)
        second, second_s = upload(http, payload)
        add("1", "\"Try your image\" with one model file missing (two uploads)",
            "404 on every upload, each reloading all 219 models",
            f"{first.status_code} in {first_s:.1f} s, then {second.status_code} in "
            f"{second_s:.2f} s", f"{len(second.json()['responses'])} neurons answer")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("V4COMPACT_DATA"),
                        help="the real data directory (default $V4COMPACT_DATA)")
    parser.add_argument("--with-evaluate", action="store_true",
                        help="also run the README's 'evaluate compact' command (minutes)")
    args = parser.parse_args(argv)
    if not args.data_dir:
        print("error: set V4COMPACT_DATA or pass --data-dir", file=sys.stderr)
        return 1
    data_dir = Path(args.data_dir).resolve()
    os.environ["V4COMPACT_DATA"] = str(data_dir)
    from v4compact.data import paths

    with tempfile.TemporaryDirectory(prefix="v4hardening-") as tmp:
        work = Path(tmp)
        WORK.append(str(work))
        damaged_a = linked_copy(data_dir, work / "data-a")
        truncated = paths.compact_model(*map(int, TRUNCATED.split("/")))
        content = (data_dir / truncated).read_bytes()
        replace_file(damaged_a, truncated, content[: len(content) // 2])
        damaged_b = linked_copy(data_dir, work / "data-b")
        replace_file(damaged_b, paths.nums_filters(*map(int, GARBLED.split("/"))),
                     b"this is not a numpy file")
        replace_file(damaged_b, paths.compact_model(*map(int, MISSING.split("/"))), None)

        readme_cases(data_dir, work, args.with_evaluate)
        cli_cases(data_dir, work, damaged_b)
        for name, data, cases in (("a", damaged_a, server_a_cases),
                                  ("b", damaged_b, server_b_cases)):
            (work / f"site-{name}").mkdir()
            server = Server(data, work / f"site-{name}", work / f"server-{name}.log")
            try:
                cases(server, data_dir)
            finally:
                tracebacks = server.tracebacks()
                server.stop()
            add("-", f"server {name.upper()}'s log after its cases", "-", "-",
                f"{tracebacks} tracebacks")

    print("| # | bad input | before (from the issue) | after: status / exit | after: message |")
    print("|---|---|---|---|---|")
    for row in ROWS:
        # messages as code: exact text, and a command in them ends where the cell ends
        message = f"`{row.message}`" if "`" not in row.message else row.message
        cells = [row.item, row.bad_input, row.before, row.status, message]
        print("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
