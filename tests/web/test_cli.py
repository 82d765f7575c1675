"""``v4compact serve`` / ``v4compact site build`` command lines."""

from __future__ import annotations

import json

import pytest

from v4compact.cli import main


def test_serve_help_says_it_binds_loopback(capsys):
    with pytest.raises(SystemExit) as info:
        main(["serve", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "127.0.0.1" in out and "--cache-dir" in out


def test_site_build_is_incremental(tmp_path, data_dir, capsys):
    args = [
        "site", "build", "--data-dir", str(data_dir), "--cache-dir", str(tmp_path),
        "--neurons", "201025/3", "--steps", "2", "--seeds", "1", "--heldout-images", "40",
        "--no-sessions", "--no-stats",
    ]
    assert main(args) == 0
    assert "1 neurons built" in capsys.readouterr().out
    summary = json.loads((tmp_path / "neurons/201025_3/summary.json").read_text())
    assert summary["heldout"]["num_images"] == 40
    assert (tmp_path / "neurons/201025_3/preferred_0.png").is_file()
    assert main(args) == 0
    assert "0 neurons built, 1 already current" in capsys.readouterr().out
    # new synthesis settings: only the preferred images are recomputed
    assert main([*args, "--steps", "3"]) == 0  # the last --steps wins
    again = json.loads((tmp_path / "neurons/201025_3/summary.json").read_text())
    assert again["synthesis_settings"]["steps"] == 3
    assert again["heldout"] == summary["heldout"]


@pytest.mark.parametrize(
    ("extra", "phrase"),
    [
        (["--neurons", "201025/500"], "unknown neuron"),
        (["--neurons", "190924"], "no compact models"),
        (["--steps", "0"], "--steps must be at least 1"),
        (["--preset", "nope"], "unknown synthesis preset"),
    ],
)
def test_site_build_bad_arguments(tmp_path, capsys, extra, phrase):
    assert main(["site", "build", "--cache-dir", str(tmp_path), "--no-sessions", *extra]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and phrase in err and err.count("\n") == 1


def test_serve_starts_on_loopback_and_stops(tmp_path, data_dir):
    import subprocess
    import sys
    import time

    import httpx

    from v4compact.web.server import free_port

    port = free_port()
    command = [
        sys.executable, "-m", "v4compact", "serve", "--port", str(port),
        "--data-dir", str(data_dir), "--cache-dir", str(tmp_path),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).json()
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert health is not None, process.stdout.read().decode() if process.poll() else "no answer"
        assert health["status"] == "ok" and health["cache_dir"] == str(tmp_path.resolve())
    finally:
        process.terminate()
        process.wait(timeout=30)
