"""The tutorial notebooks: generated from scripts/build_notebooks.py, shaped for Colab, and
executed top to bottom against the real data (nbclient, a fresh kernel per notebook).

Each notebook runs on a data directory that holds only the files its setup cell fetches on
Colab (symbolic links into the real data copy), so a notebook that reads anything it does not
fetch fails here rather than on Colab.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK_DIR = REPO / "notebooks"
_spec = importlib.util.spec_from_file_location("build_notebooks",
                                               REPO / "scripts" / "build_notebooks.py")
build_notebooks = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = build_notebooks
_spec.loader.exec_module(build_notebooks)

NAMES = list(build_notebooks.NOTEBOOKS)
COLAB_RE = re.compile(
    r"https://colab\.research\.google\.com/github/[\w.-]+/[\w.-]+/blob/main/notebooks/"
    r"(?P<name>[\w-]+)\.ipynb"
)
#: Longest a single cell may run (seconds) before the execution counts as hung.
CELL_TIMEOUT_S = 600


def _read(name: str):
    return nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)


def _fetch_groups(name: str) -> list[str]:
    """The arguments of the ``v4compact data fetch`` line of a notebook's setup cell."""
    setup = _read(name).cells[1].source
    lines = [ln.strip() for ln in setup.splitlines() if ln.strip().startswith("!v4compact")]
    assert len(lines) == 1, f"{name}: expected one '!v4compact data fetch' line, got {lines}"
    return lines[0].split("data fetch", 1)[1].split()


def _fetched_subset(groups: list[str], data_dir: Path, target: Path) -> int:
    """Link into ``target`` the files of ``groups`` that the real data copy holds."""
    from v4compact.data.registry import resolve

    count = 0
    for group in groups:
        for entry in resolve(group):
            source = data_dir / entry.path
            link = target / entry.path
            if source.is_file() and not link.exists():
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(source)
                count += 1
    return count


def test_notebooks_folder_holds_exactly_the_generated_notebooks():
    assert sorted(p.stem for p in NOTEBOOK_DIR.glob("*.ipynb")) == sorted(NAMES)
    assert len(NAMES) == 6


def test_committed_notebooks_are_up_to_date_with_the_generator(tmp_path):
    built = build_notebooks.build(tmp_path)
    for path, text in built.items():
        committed = (NOTEBOOK_DIR / path.name).read_text(encoding="utf-8")
        assert build_notebooks.without_outputs(committed) == text, (
            f"{path.name} differs from scripts/build_notebooks.py; "
            "run: python scripts/build_notebooks.py --execute"
        )
    assert build_notebooks.main(["--check"]) == 0


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_valid_and_ships_executed_with_figures(name):
    """A reader sees the outputs and figures of a real run without running anything."""
    notebook = _read(name)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == "python3"
    code_cells = [c for c in notebook.cells if c.cell_type == "code"]
    counts = [c.execution_count for c in code_cells]
    assert counts == list(range(1, len(code_cells) + 1)), "run top to bottom, once"
    outputs = [o for c in code_cells for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{name} has no figure"
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "Traceback" not in text and "v4compact" in text


@pytest.mark.parametrize("name", NAMES)
def test_first_markdown_cell_has_title_and_colab_link_or_says_why_not(name):
    from v4compact.config import NO_PUBLIC_COPY, colab_url, repository_url

    first = _read(name).cells[0]
    assert first.cell_type == "markdown"
    assert first.source.startswith("# ")
    links = [m for m in COLAB_RE.finditer(first.source)]
    if repository_url() is None:  # the one setting: no public copy of the project exists
        assert links == [] and NO_PUBLIC_COPY in first.source
        return
    assert [m["name"] for m in links] == [name]
    assert colab_url(name) in first.source
    assert "colab-badge.svg" in first.source


@pytest.mark.parametrize("name", NAMES)
def test_notebook_starts_with_the_setup_cell(name):
    cells = _read(name).cells
    code_cells = [c for c in cells if c.cell_type == "code"]
    assert cells[1] is code_cells[0], "the setup cell must follow the title cell"
    setup = code_cells[0].source
    assert setup.startswith(build_notebooks.SETUP_MARKER)
    assert '"google.colab" in sys.modules' in setup
    assert "\n".join(build_notebooks.colab_install_lines()) in setup
    assert "import v4compact" in setup
    # no other cell installs or downloads anything
    for cell in code_cells[1:]:
        assert "!pip" not in cell.source and "!v4compact" not in cell.source


@pytest.mark.parametrize("name", NAMES)
def test_setup_cell_fetches_groups_the_registry_knows(name):
    from v4compact.data.registry import resolve

    groups = _fetch_groups(name)
    assert groups
    for group in groups:
        assert resolve(group), f"{name}: fetch group {group!r} resolves to no file"


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_executes_top_to_bottom(name, data_dir, tmp_path, monkeypatch):
    """Run every cell in a fresh kernel, in an empty working directory, on the real data
    restricted to what the notebook fetches on Colab."""
    fetched = tmp_path / "data"
    assert _fetched_subset(_fetch_groups(name), Path(data_dir).resolve(), fetched) > 0
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("V4COMPACT_DATA", str(fetched))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # figures inline, as a user sees them
    monkeypatch.chdir(work)
    notebook = _read(name)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(work)}},
    )
    client.execute()  # raises CellExecutionError naming the cell on any error

    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, errors
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert figures, f"{name} showed no figure"
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "Traceback" not in text
    assert f"data directory: {fetched.resolve()}" in text
