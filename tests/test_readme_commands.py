"""Every ``v4compact`` command shown in README.md and docs/*.md, run as written.

The commands are read from the pages themselves (lines of fenced code blocks, and complete
commands quoted inline in the text), so a command added to the docs is run here without
anyone listing it. Each runs in-process through :func:`v4compact.cli.main` with its exact
arguments, in a temporary working folder holding the inputs the docs presuppose
(``photo.jpg``, ``images/``, ``my_model.onnx``), and must exit 0 and write what its ``--out``
names; a ``$ v4compact ...`` example followed by an ``error: ...`` line must fail with that
message. The data directory (``$V4COMPACT_DATA``, as a user sets it) is a copy of the real
one made of symbolic links, so nothing can change the shared files.

Commands that score every compact model (:data:`WHOLE_RELEASE`) run with a copy holding the
photos of one session, 190923: each still takes its full code path (the models of the other
sessions are listed as skipped, as for any session whose photos are missing) in a minute or
two rather than half an hour. The commands that cannot run here are in :data:`NOT_RUN_HERE`,
each with the reason and the test that runs the same code on fewer models; both lists must
name commands the docs still show.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from v4compact.cli import main

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

#: Commands that score every compact model: run with the photos of session 190923 only.
WHOLE_RELEASE = {
    "v4compact evaluate compact --sessions 190923 201025 --out results.csv",
    "v4compact evaluate compact --sessions 190923 201025 210225 211022 --out compact.csv",
}
#: The test that runs the shared-model commands' code on two of the 56 models.
_SHARED_TEST = "tests/evaluation/test_released_models.py"
#: Commands not run here: why, and which test runs the same code.
NOT_RUN_HERE = {
    "v4compact serve": "runs until stopped, on port 8000, which a parallel test run may hold; "
    "tests/web/test_cli.py starts 'serve' on a free port and stops it",
    "v4compact serve --host 0.0.0.0 --allow-host labpc.local --allow-host 192.168.1.20": "runs "
    "until stopped, on every network interface; tests/web/test_cli.py::"
    "test_serve_answers_an_allowed_lan_name_and_refuses_others serves --allow-host on loopback",
    "v4compact site build --steps 50 --seeds 2": "builds all 219 neurons; "
    "tests/web/test_cli.py::test_site_build_is_incremental runs these options on one",
    "v4compact site build --heldout-images 100 --no-sessions --no-stats": "builds all 219 "
    "neurons; tests/web/test_cli.py::test_site_build_is_incremental runs these options on one",
    "v4compact site build": "builds all 219 neurons (9 minutes here); "
    "tests/web/test_cli.py::test_site_build_is_incremental builds one",
    "v4compact site export --out site/": "builds and exports all 219 neurons (10 minutes "
    "here); docs/website.md's one-neuron export runs here, and tests/web/test_static_site.py "
    "exports all 219 from a small cache and drives the site in Chromium",
    "v4compact site build --neurons 201025/10 190923": "builds 34 neurons (minutes); "
    "tests/web/test_cli.py::test_site_build_is_incremental builds one by id",
    "v4compact data fetch": "downloads the raw responses of 48 sessions, which are not in the "
    "test data copy; tests/data/test_fetch.py fetches from a local release server",
    "v4compact evaluate shared --sessions 190923 201025 210225 --out shared.csv": "scores all "
    f"56 shared models (over 10 minutes on 2 cores even on one session); {_SHARED_TEST} "
    "scores two",
    "v4compact figure fig3d --out fig3d.png": "scores all 56 shared models; "
    f"{_SHARED_TEST}::test_figures_return_figures draws fig3d from two",
    "v4compact figure fig3d --results shared.csv --out fig3d.png": "its input is the output "
    f"of 'evaluate shared'; {_SHARED_TEST}::test_report_and_figure_cli_reuse_results runs it "
    "on two models",
    "v4compact report --out report/": "scores all 219 compact and 56 shared models; the "
    "compact half runs here ('evaluate compact --sessions ...'), "
    f"{_SHARED_TEST}::test_report_and_figure_cli_reuse_results builds the report",
    "v4compact make-compact --teacher shared/from_ensemble_model/200 --neurons 201025/10 "
    "201025/40 --images ../shared/v4data/data_V4_responses/images/images_190925.zip "
    "--out runs/m1 --minutes 40": "distills, prunes and retrains two 100-filter students for "
    "40 minutes; tests/training/test_cli_distill.py runs make-compact end to end on a tiny "
    "configuration",
    "v4compact predict 201025/* session:201025:heldout --units spikes": "the measurement "
    "behind the units claim: 89 models on the 1,200 photos of 201025 (fit half for the "
    "calibration, held-out half to predict; 3 minutes on 2 cores); tests/models/"
    "test_calibration.py::test_spikes_on_the_heldout_half_of_201025 runs the same command on "
    "a sample of its neurons",
    "v4compact data fetch session:190923 compact-models": "needs the raw responses of 190923, "
    "which are not in the test data copy; tests/data/test_fetch.py fetches groups from a local "
    "release server, and 'data fetch compact-models:201025/10' runs here",
}
#: Synopses with placeholders (``...``, ``<session>``, ``PATTERN``, ``A | B``) are not commands.
_PLACEHOLDER = re.compile(r"\.\.\.|<|\||\b[A-Z][A-Z_]{2,}\b")
_FENCE = re.compile(r"^\s*```")
_INLINE = re.compile(r"`(?:\$ )?(v4compact [^`]+)`")


def _documented_commands() -> list[tuple[str, str, str | None]]:
    """``(page:line, command, expected error or None)`` for every command of the pages."""
    found = []
    for page in PAGES:
        lines = page.read_text().splitlines()
        in_code, joined, start = False, "", 0
        for number, line in enumerate(lines, 1):
            if _FENCE.match(line):
                in_code = not in_code
                continue
            where = f"{page.relative_to(REPO)}:{number}"
            if not in_code:
                for match in _INLINE.finditer(line):
                    words = shlex.split(match.group(1))
                    # a mention of a subcommand ("`v4compact evaluate`") runs nothing
                    if len(words) > 3 or any(w.startswith("-") for w in words):
                        found.append((where, match.group(1), None))
                continue
            text = line.strip().removeprefix("$ ")
            if joined:
                text = f"{joined} {text}"
            elif not text.startswith("v4compact "):
                continue
            if text.endswith("\\"):
                joined, start = text[:-1].strip(), start or number
                continue
            joined = ""
            following = lines[number].strip() if number < len(lines) else ""
            expected = following if following.startswith("error: ") else None
            found.append((f"{page.relative_to(REPO)}:{start or number}", text, expected))
            start = 0
    commands = []
    for where, text, expected in found:
        text = " ".join(shlex.split(text, comments=True))
        if _PLACEHOLDER.search(text):
            continue
        commands.append((where, _expand_optional(text), expected))
    return commands


def _expand_optional(command: str) -> str:
    """A synopsis ``data sessions [--split test]`` runs with its optional parts."""
    return re.sub(r"\[([^\]]*)\]", r"\1", command)


def _unique(commands):
    seen: dict[str, tuple[str, str, str | None]] = {}
    for where, command, expected in commands:
        seen.setdefault(command, (where, command, expected))
    return list(seen.values())


COMMANDS = _unique(_documented_commands())


def _link_copy(source: Path, target: Path, keep=lambda rel: True) -> Path:
    """A copy of ``source`` made of symbolic links to its files (those ``keep`` accepts)."""
    for path in source.rglob("*"):
        rel = path.relative_to(source)
        if path.is_file() and keep(rel):
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            (target / rel).symlink_to(path)
    return target


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, data_dir):
    """``(working folder, full data copy, one-session data copy)``, with the docs' inputs."""
    from PIL import Image

    import v4compact

    root = tmp_path_factory.mktemp("readme")
    full = _link_copy(data_dir, root / "data")
    one_session = _link_copy(
        data_dir, root / "data-190923",
        keep=lambda rel: rel.parent.name != "images" or rel.name == "images_190923.zip",
    )
    work = root / "work"
    (work / "images").mkdir(parents=True)
    session = v4compact.load_session(201025, data_dir=data_dir)
    Image.fromarray(session.image(600)).save(work / "photo.jpg", quality=95)
    for k in range(4):
        Image.fromarray(session.image(601 + k)).save(work / "images" / f"photo{k}.jpg")
    _user_onnx_model(work / "my_model.onnx")
    return work, full, one_session


def _user_onnx_model(path: Path) -> None:
    """A user's own model as the docs mean it: an ONNX file of no v4compact origin that maps
    re-centred ``(N, 3, 112, 112)`` images to 128 features (seeded random weights)."""
    import torch

    torch.manual_seed(0)
    features = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, kernel_size=4, stride=4), torch.nn.ReLU(),  # 8 x 28 x 28
        torch.nn.AvgPool2d(7), torch.nn.Flatten(),  # 8 x 4 x 4
    ).eval()
    torch.onnx.export(features, (torch.zeros(1, 3, 112, 112),), str(path),
                      input_names=["images"], output_names=["features"],
                      dynamic_axes={"images": {0: "n"}, "features": {0: "n"}}, dynamo=False)


def _outputs(words: list[str]) -> list[str]:
    return [words[i + 1] for i, w in enumerate(words[:-1]) if w == "--out"]


def _producer(name: str) -> str | None:
    """The documented command whose ``--out`` writes ``name``."""
    for _, command, _ in COMMANDS:
        if name in _outputs(shlex.split(command)[1:]):
            return command
    return None


def _run(command: str, workspace, capsys, monkeypatch) -> tuple[int, str, str]:
    work, full, one_session = workspace
    words = shlex.split(command)[1:]
    # inputs made by other documented commands (e.g. --results compact.csv) are made first
    for word in words:
        made_by = _producer(word)
        if made_by and made_by != command and not (work / word).exists():
            assert made_by not in NOT_RUN_HERE, f"{command} needs the output of {made_by}"
            code, _, err = _run(made_by, workspace, capsys, monkeypatch)
            assert code == 0, f"{made_by}: {err}"
    monkeypatch.chdir(work)
    monkeypatch.setenv("V4COMPACT_DATA", str(one_session if command in WHOLE_RELEASE else full))
    capsys.readouterr()
    try:
        code = main(words)
    except SystemExit as exit_:  # argparse refused the arguments (it printed why)
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


#: Parts of commands that take long here: whole populations, long syntheses, training.
_SLOW_PARTS = ("predict all", "/* ", "export all", "--steps 1000", "--verify", "evaluate shared/",
               "synthesize ", "train ", "experiment gaudy")


def _marks(command: str):
    words = shlex.split(command)[1:]
    needs_slow = any(_producer(w) in WHOLE_RELEASE for w in words if _producer(w) != command)
    slow = command in WHOLE_RELEASE or needs_slow or any(p in command for p in _SLOW_PARTS)
    return [pytest.mark.slow] if slow else []


@pytest.mark.parametrize(
    ("where", "command", "expected_error"),
    [pytest.param(where, command, expected, id=f"{where} {command[10:60]}",
                  marks=_marks(command))
     for where, command, expected in COMMANDS if command not in NOT_RUN_HERE],
)
def test_documented_command_runs(where, command, expected_error, workspace, capsys,
                                 monkeypatch):
    code, out, err = _run(command, workspace, capsys, monkeypatch)
    if expected_error is not None:
        message = expected_error.split("(exit status")[0].strip()
        assert code == 1 and err.strip() == message, f"{where}: {command}\n{err}"
        return
    assert code == 0, f"{where}: {command}\n{err}"
    assert "Traceback" not in err
    work = workspace[0]
    for name in _outputs(shlex.split(command)[1:]):
        written = work / name
        assert written.exists(), f"{where}: {command} wrote no {name}"
        if written.is_dir():
            assert any(written.iterdir()), f"{where}: {command} left {name} empty"


def test_every_documented_command_is_run_or_says_why_not():
    documented = {command for _, command, _ in COMMANDS}
    assert len(documented) > 30
    assert not (set(NOT_RUN_HERE) - documented), "NOT_RUN_HERE names commands no page shows"
    assert not (WHOLE_RELEASE - documented), "WHOLE_RELEASE names commands no page shows"
    for command, reason in NOT_RUN_HERE.items():
        assert "tests/" in reason, f"{command}: say which test runs the same code"
