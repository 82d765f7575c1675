"""The import rules of docs/architecture.md, checked on the source (every import statement,
also those inside functions): the layers of the packages, the layers inside
``v4compact.models``, and no import circle anywhere."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "v4compact"


def _load_graph_tool():
    """``scripts/import_graph.py``, the command that draws the graph in the docs."""
    spec = importlib.util.spec_from_file_location("import_graph",
                                                  ROOT / "scripts" / "import_graph.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


graph_tool = _load_graph_tool()

#: Packages (first component under v4compact) each package may NOT import.
FORBIDDEN = {
    "data": {"models", "mapping", "evaluation", "synthesis", "experiments", "training",
             "features", "figures", "report", "cli", "web"},
    "metrics": {"data", "models", "mapping", "evaluation", "synthesis", "experiments",
                "training", "features", "figures", "report", "cli", "web"},
    "models": {"evaluation", "synthesis", "experiments", "training", "figures", "report",
               "cli", "web"},
    "mapping": {"evaluation", "synthesis", "experiments", "training", "figures", "report",
                "cli", "web"},
    "evaluation": {"cli", "web", "report", "training"},
    "synthesis": {"cli", "web", "report", "evaluation", "training"},
    "experiments": {"cli", "web", "report", "training"},
    "features": {"cli", "web", "report", "training"},
    "training": {"cli", "web", "report", "figures"},
    "ingest": {"evaluation", "synthesis", "experiments", "training", "features", "figures",
               "report", "cli", "web"},
    "figures": {"cli", "web"},
}
#: Packages that must not import torch at all (plain numpy / scipy code).
NO_TORCH = {"data", "metrics", "images", "config", "errors", "files"}


def _package(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


MODULES = sorted(p for p in SRC.rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_module_respects_the_import_rules(path):
    package = _package(path)
    problems = []
    for name, line in graph_tool.imports_of(path, SRC, names=True, members=False):
        parts = name.split(".")
        if parts[0] == "torch" and package in NO_TORCH:
            problems.append(f"line {line}: {package} imports torch")
        if parts[0] != "v4compact" or len(parts) < 2:
            continue
        target = parts[1]
        if target in FORBIDDEN.get(package, set()):
            problems.append(f"line {line}: {package} imports v4compact.{target}")
        private = next((p for p in parts[2:] if p.startswith("_")), None)
        if private and target != package:
            problems.append(f"line {line}: private module {name} imported from {package}")
    assert not problems, f"{path.relative_to(SRC)}: " + "; ".join(problems)


def test_rules_cover_every_package():
    packages = {_package(p) for p in MODULES} - {"__init__", "__main__", "_lazy"}
    assert packages <= set(FORBIDDEN) | NO_TORCH | {"report", "cli", "web"}, (
        "a new package needs its row in FORBIDDEN and in docs/architecture.md")


#: The layers inside v4compact.models, bottom first: a module may import its own layer and
#: those below, never one above (import statements; the families name their loaders' modules
#: as strings, resolved when a model is loaded: the one sanctioned way up). ``formats`` and
#: ``teachers`` share the top layer but do not import each other.
MODEL_LAYERS = [
    {"models", "models.arch", "models.ids", "models.families", "models.zoo"},
    {"models.inputs", "models.runner", "models.calibration", "models.predict"},
    {"models.nets"},
    {"models.engines"},
    {"models.formats", "models.teachers"},
]
MODEL_SIBLINGS_APART = [("models.formats", "models.teachers")]


def _model_node(module: str) -> str | None:
    """``v4compact.models.nets.core`` -> ``models.nets``; ``v4compact.models.zoo`` ->
    ``models.zoo``; None outside models."""
    parts = module.split(".")[1:]
    if parts[:1] != ["models"]:
        return None
    return ".".join(parts[:2])


def _layer(node: str) -> int:
    return next(i for i, layer in enumerate(MODEL_LAYERS) if node in layer)


STATEMENTS = graph_tool.module_graph(SRC, names=False)


def test_every_models_module_has_a_layer():
    nodes = {_model_node(m) for m in STATEMENTS} - {None}
    placed = set().union(*MODEL_LAYERS)
    assert nodes <= placed, (f"{sorted(nodes - placed)}: a new module of v4compact.models "
                             "needs its layer in MODEL_LAYERS and in docs/architecture.md")


def _layer_problems(module: str, edges: dict[str, int]) -> list[str]:
    here = _model_node(module)
    problems = []
    for target, line in edges.items():
        there = _model_node(target)
        if there is None or there == here:
            continue
        if _layer(there) > _layer(here):
            problems.append(f"line {line}: {here} (layer {_layer(here)}) imports {target} "
                            f"(layer {_layer(there)})")
        if (here, there) in MODEL_SIBLINGS_APART or (there, here) in MODEL_SIBLINGS_APART:
            problems.append(f"line {line}: {here} imports its sibling {target}")
    return problems


@pytest.mark.parametrize("module", sorted(m for m in STATEMENTS if _model_node(m)))
def test_models_layers(module):
    problems = _layer_problems(module, STATEMENTS[module])
    assert not problems, f"{module}: " + "; ".join(problems)


def test_models_layers_catch_an_upward_import():
    """A network importing an engine, and a format importing a teacher, are refused."""
    assert _layer_problems("v4compact.models.nets.core",
                           {"v4compact.models.engines.population": 3})
    assert _layer_problems("v4compact.models.formats.export",
                           {"v4compact.models.teachers.ensemble": 5})
    assert not _layer_problems("v4compact.models.formats.export",
                               {"v4compact.models.nets.base": 5})


def test_no_import_circle_between_modules():
    """Every import statement, also inside functions: no module reaches itself again."""
    assert graph_tool.circles(STATEMENTS) == []


def test_no_import_circle_between_packages():
    packages = graph_tool.collapse(STATEMENTS, "package", src=SRC)
    assert graph_tool.circles(packages) == []


def test_circle_finder_finds_a_circle():
    """The check above can fail: a made-up circle of three modules and a self-contained one."""
    graph = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1, "d": 1}, "d": {}}
    assert graph_tool.circles(graph) == [["a", "b", "c"]]
    assert graph_tool.circles({"a": {"b": 1}, "b": {}}) == []


def test_the_models_drawing_in_the_docs_is_the_code():
    """docs/architecture.md's Mermaid drawing of models/ has exactly the code's arrows."""
    import re

    text = (ROOT / "docs" / "architecture.md").read_text()
    block = text.split("```mermaid", 1)[1].split("```", 1)[0]
    ids = dict(re.findall(r'(n\w+)\["([\w.]+)"\]', block))
    drawn = {(ids[a], ids[b]) for a, b in re.findall(r"(n\w+)(?:\[[^\]]*\])? --> (n\w+)", block)}
    graph = graph_tool.collapse(STATEMENTS, "subpackage", inside="models", src=SRC)
    code = {(a, b) for a, targets in graph.items() for b in targets}
    assert drawn == code, (f"redraw it with: python scripts/import_graph.py --inside models "
                           f"--format mermaid (missing {sorted(code - drawn)}, extra "
                           f"{sorted(drawn - code)})")
