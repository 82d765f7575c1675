"""The ``v4compact data`` commands: in-process through ``cli.main``, and as real subprocesses
(``python -m v4compact``) wherever what matters is the exit status and the absence of a
traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from v4compact.cli import main
from v4compact.data import paths


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    """Run the CLI in this process; return (exit status, stdout, stderr)."""
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def run_cli(*args: str, data_dir=None, **env_extra) -> subprocess.CompletedProcess:
    env = dict(os.environ, **env_extra)
    if data_dir is not None:
        env["V4COMPACT_DATA"] = str(data_dir)
    return subprocess.run([sys.executable, "-m", "v4compact", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_sessions_table_filters_by_split_and_animal(capsys):
    status, out, _ = run_main(capsys, "data", "sessions", "--split", "test")
    assert status == 0
    lines = out.strip().splitlines()
    assert lines[0].split()[:4] == ["session", "dataset", "animal", "split"]
    ids = [line.split()[0] for line in lines[2:]]
    assert ids == ["190923", "201025", "210225", "210325", "211022"]
    _, pe, _ = run_main(capsys, "data", "sessions", "--animal", "PE", "--split", "test")
    assert [line.split()[0] for line in pe.strip().splitlines()[2:]] == [
        "201025", "210225", "210325"]
    _, everything, _ = run_main(capsys, "data", "sessions")
    assert len(everything.strip().splitlines()) == 2 + 50


def test_status_reports_missing_images_and_raw_responses(capsys, data_dir):
    status, out, _ = run_main(capsys, "data", "status", "--data-dir", str(data_dir))
    assert status == 0
    rows = {line.split()[0]: line.split()[1:5] for line in out.splitlines()
            if len(line.split()) > 5 and line.split()[1].isdigit()}
    assert rows["images"] == ["12", "33", "0", "45"]
    assert rows["raw-responses"] == ["2", "48", "0", "50"]
    assert rows["responses"] == ["50", "0", "0", "50"]
    images_line = next(line for line in out.splitlines() if line.startswith("images missing"))
    raw_line = next(line for line in out.splitlines() if line.startswith("raw-responses missing"))
    assert "190924" in images_line.split() and "190923" not in images_line.split()
    assert "190923" in raw_line.split() and "210325" not in raw_line.split()
    assert "v4compact data fetch" in out


def test_status_verify_flags_a_corrupt_file(capsys, tmp_path, data_dir):
    rel = paths.responses_averaged(190923)
    (tmp_path / rel).parent.mkdir(parents=True)
    (tmp_path / rel).write_bytes(b"\0" * (data_dir / rel).stat().st_size)
    quick_status, _, quick_err = run_main(capsys, "data", "status", "--data-dir", str(tmp_path))
    status, out, err = run_main(capsys, "data", "status", "--verify", "--data-dir",
                                str(tmp_path))
    assert "corrupt" not in quick_err and quick_status == 0  # same size: only hashing tells
    assert f"corrupt: {rel}" in err and status == 1  # a corrupt file fails the command
    row = next(line for line in out.splitlines() if line.startswith("responses "))
    assert row.split()[1:4] == ["0", "49", "1"]
    (tmp_path / rel).write_bytes(b"\0" * 10)  # a truncated file: its size tells at once
    status, _, err = run_main(capsys, "data", "status", "--data-dir", str(tmp_path))
    assert status == 1 and f"corrupt: {rel}" in err


def test_info_shows_snr_or_names_the_missing_raw_file(capsys, data_dir):
    status, out, _ = run_main(capsys, "data", "info", "210325", "--snr", "--images",
                              "--data-dir", str(data_dir))
    assert status == 0
    assert "unbiased SNR: median" in out
    assert "images: 640 decoded" in out
    missing = run_cli("data", "info", "190923", "--snr", data_dir=data_dir)
    assert_one_line_error(missing, paths.responses_raw(190923),
                          "v4compact data fetch raw-responses:190923")


def test_missing_images_of_190924_give_one_line_naming_the_zip(data_dir):
    result = run_cli("data", "info", "190924", "--images", data_dir=data_dir)
    assert_one_line_error(result, paths.images_zip(190924), str(data_dir),
                          "v4compact data fetch images:190924")


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (("data", "info", "12345"), ("unknown session", "190923")),
        (("data", "fetch", "imagez"), ("unknown data group", "images")),
        (("data", "fetch", "images:201016"), ("no such file",)),
        (("plot", "session", "190923", "--out", "x.gif"), ("unsupported suffix",)),
    ],
)
def test_bad_input_gives_one_line_and_exit_1(args, needles, data_dir):
    assert_one_line_error(run_cli(*args, data_dir=data_dir), *needles)


def test_missing_data_names_file_directory_and_fetch_command(tmp_path):
    result = run_cli("plot", "session", "190924", "--out", str(tmp_path / "f.png"),
                     "--data-dir", str(tmp_path))
    assert_one_line_error(result, paths.responses_averaged(190924), str(tmp_path),
                          f"v4compact data fetch responses:190924 --data-dir {tmp_path}")


def test_fetch_from_an_unreachable_server_is_one_line(tmp_path):
    result = run_cli("data", "fetch", paths.nums_filters(190923, 0), "--no-progress",
                     "--retries", "0", "--base-url", "http://127.0.0.1:9/",
                     "--data-dir", str(tmp_path))
    assert_one_line_error(result, "could not download", paths.nums_filters(190923, 0))


def test_help_lists_the_commands(capsys):
    for args in (["--help"], ["data", "fetch", "--help"]):
        with pytest.raises(SystemExit) as exit_info:
            main(args)
        assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "data" in out and "plot" in out
    assert "session:SID" in out and "compact-models" in out
