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
    assert summary["heldout"]["num_images"] == 600  # the evaluation's score: the whole half
    points = json.loads((tmp_path / "neurons/201025_3/heldout.json").read_text())
    assert len(points["measured"]) == 40  # the photos drawn on the scatter
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

    built = tmp_path / "neurons" / "201025_10"
    built.mkdir(parents=True)
    (built / "summary.json").write_text("{}")
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
        # the health check names no server folder; the one neuron in --cache-dir shows it is used
        assert health["status"] == "ok" and health["neurons_built"] == 1
        assert str(tmp_path) not in json.dumps(health)
    finally:
        process.terminate()
        process.wait(timeout=30)


def _one_line_error(capsys, args: list[str], *needles: str) -> str:
    """Run ``v4compact ARGS`` in-process; it must exit 1 with one ``error:`` line."""
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.mark.parametrize(
    ("option", "needle"),
    [
        (["--port", "99999"], "--port must be between 1 and 65535, got 99999"),
        (["--port", "0"], "--port must be between 1 and 65535"),
        (["--time-limit", "-1"], "--time-limit must be a positive number of seconds"),
        (["--time-limit", "nan"], "--time-limit must be a positive number of seconds"),
        (["--queue", "-1"], "--queue must be 0 or more"),
        (["--workers", "0"], "--workers must be at least 1"),
        (["--host", "no-such-host.invalid"], "unknown address"),
    ],
)
def test_serve_refuses_bad_options_in_one_line(capsys, tmp_path, option, needle):
    _one_line_error(capsys, ["serve", "--cache-dir", str(tmp_path), *option], needle)


def test_serve_on_a_port_in_use_is_one_line(capsys, tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        _one_line_error(capsys, ["serve", "--port", str(port), "--cache-dir", str(tmp_path)],
                        f"cannot serve on 127.0.0.1:{port}", "choose another --port")


def test_serve_answers_an_allowed_lan_name_and_refuses_others(tmp_path, data_dir):
    import subprocess
    import sys
    import time

    import httpx

    from v4compact.web.server import free_port

    built = tmp_path / "neurons" / "201025_10"
    built.mkdir(parents=True)
    (built / "summary.json").write_text("{}")
    port = free_port()
    command = [
        sys.executable, "-m", "v4compact", "serve", "--port", str(port),
        "--allow-host", "labpc.local", "--data-dir", str(data_dir), "--cache-dir", str(tmp_path),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/api/health"
    try:
        deadline = time.monotonic() + 60
        answer = None
        while time.monotonic() < deadline and process.poll() is None and answer is None:
            try:
                answer = httpx.get(url, headers={"host": f"labpc.local:{port}"}, timeout=2)
            except httpx.HTTPError:
                time.sleep(0.2)
        assert answer is not None and answer.status_code == 200
        other = httpx.get(url, headers={"host": f"evil.example:{port}"}, timeout=10)
        assert other.status_code == 400 and "--allow-host evil.example" in other.json()["detail"]
    finally:
        process.terminate()
        process.wait(timeout=30)


def _unwritable_folder(tmp_path):
    """A folder this process cannot create files in (a read-only folder; root ignores file
    modes, so it gets a folder of the kernel's sysfs, where nobody may create anything)."""
    import os

    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    if os.access(folder, os.W_OK):
        return "/sys/v4compact-out"
    return str(folder / "out")


def test_synthesize_checks_its_output_before_computing(capsys, tmp_path):
    existing = tmp_path / "stimuli.png"
    existing.write_bytes(b"not a folder")
    # an empty data directory: had the model been loaded first, the error would name its file
    empty = ["--data-dir", str(tmp_path / "no-data")]
    args = ["synthesize", "compact/201025/2", "--steps", "1000", *empty, "--out"]
    _one_line_error(capsys, [*args, str(existing)], "is a file; give a folder")
    _one_line_error(capsys, [*args, _unwritable_folder(tmp_path)], "cannot write in")
    _one_line_error(capsys, ["rank", "compact/201025/2", *empty, "--out",
                             str(tmp_path / "ranking.gif")], "unsupported suffix .gif")
    _one_line_error(capsys, ["predict", "compact/201025/2", "x.png", *empty, "--out",
                             str(tmp_path)], "use one of .csv, .npy")


def test_predict_on_a_huge_image_is_one_line(capsys, tmp_path):
    from PIL import Image

    huge = tmp_path / "huge.png"
    Image.new("L", (20_000, 10_000)).save(huge)  # 200 megapixels in a small file
    _one_line_error(capsys, ["predict", "compact/201025/10", str(huge)], "huge.png",
                    "save a smaller copy")


def test_a_corrupt_filter_count_file_is_one_line(capsys, tmp_path, damaged_data_dir):
    from PIL import Image

    from .conftest import GARBLED

    photo = tmp_path / "photo.png"
    Image.new("RGB", (112, 112), (120, 90, 60)).save(photo)
    _one_line_error(capsys, ["predict", f"compact/{GARBLED}", str(photo), "--data-dir",
                             str(damaged_data_dir)],
                    "compact_model_190923_neuron2.npy is not a filter-count file (not a "
                    ".npy file)",
                    f"v4compact data fetch nums-filters:{GARBLED}")


def test_warnings_are_one_plain_line(capsys, tmp_path, data_dir):
    import numpy as np
    from PIL import Image

    import v4compact

    session = v4compact.load_session(201025, data_dir=data_dir)
    wide = np.concatenate([session.image(0), session.image(1)], axis=1)  # 112 x 224
    photo = tmp_path / "wide.png"
    Image.fromarray(wide).save(photo)
    assert main(["predict", "compact/201025/10", str(photo), "--data-dir", str(data_dir)]) == 0
    err = capsys.readouterr().err
    warning = [line for line in err.splitlines() if "centre-cropped" in line]
    assert warning == ["warning: 1 image(s) of size 224x112 centre-cropped to a square and "
                       "resized to 112x112"], err
    assert "UserWarning" not in err and ".py:" not in err


def test_an_all_nan_responses_file_is_an_error_not_nan(capsys, tmp_path, data_dir):
    import numpy as np

    from v4compact.data import paths

    # the data directory with one responses file replaced (other files: symbolic links)
    damaged = tmp_path / paths.responses_averaged(201025)
    for source in data_dir.rglob("*"):
        target = tmp_path / source.relative_to(data_dir)
        if source.is_file() and target != damaged:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(source)
    shape = np.load(data_dir / paths.responses_averaged(201025)).shape
    np.save(damaged, np.full(shape, np.nan))
    _one_line_error(capsys, ["evaluate", "compact/201025/10", "--num-boot", "0", "--quiet",
                             "--data-dir", str(tmp_path)],
                    "responses_201025.npy holds no finite response", "fetch it again")
