"""Package-level promises: light imports, an explicit public API, a working console script."""

from __future__ import annotations

import subprocess
import sys

import v4compact


def _modules_loaded_by(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True,
    )
    return set(out.stdout.split())


def test_import_and_listing_sessions_do_not_import_torch():
    loaded = _modules_loaded_by("import v4compact\nv4compact.list_sessions()")
    assert "torch" not in loaded
    assert "matplotlib" not in loaded


def test_building_the_cli_parser_does_not_import_torch():
    loaded = _modules_loaded_by("from v4compact.cli import build_parser\nbuild_parser()")
    assert "torch" not in loaded


def test_every_public_name_resolves():
    for name in v4compact.__all__:
        assert getattr(v4compact, name) is not None, name


def test_console_script_help_lists_every_command():
    from v4compact.cli import COMMAND_MODULES

    out = subprocess.run([sys.executable, "-m", "v4compact", "--help"], capture_output=True,
                         text=True, check=True).stdout
    for command in ("data", "plot", "predict", "export", "evaluate", "figure", "report",
                    "synthesize", "serve", "site"):
        assert command in out
    assert len(COMMAND_MODULES) >= 8


def test_preset_names_in_the_cli_help_are_the_library_presets():
    from v4compact.cli.synthesize import PRESET_NAMES
    from v4compact.synthesis import list_presets

    assert sorted(PRESET_NAMES) == sorted(list_presets())
