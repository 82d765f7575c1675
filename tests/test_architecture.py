"""The import rules of docs/architecture.md, checked on the source (every import statement,
also those inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "v4compact"

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
    "evaluation": {"cli", "web", "report"},
    "synthesis": {"cli", "web", "report", "evaluation", "training"},
    "experiments": {"cli", "web", "report", "training"},
    "features": {"cli", "web", "report", "training"},
    "training": {"cli", "web", "report"},
    "ingest": {"evaluation", "synthesis", "experiments", "training", "features", "figures",
               "report", "cli", "web"},
    "figures": {"cli", "web"},
}
#: Packages that must not import torch at all (plain numpy / scipy code).
NO_TORCH = {"data", "metrics", "images", "config", "errors", "files"}


def _package(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path) -> list[tuple[str, int]]:
    """Absolute dotted names imported by a module (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    module = ["v4compact", *path.relative_to(SRC).with_suffix("").parts]
    if module[-1] == "__init__":
        module = module[:-1]
        base = module
    else:
        base = module[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parent = base[: len(base) - (node.level - 1)]
                name = ".".join(parent + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.append((name, node.lineno))
            # "from . import x" / "from .. import x": x may be a subpackage
            if node.module is None:
                out += [(f"{name}.{alias.name}", node.lineno) for alias in node.names]
    return out


def _lazy_targets(path: Path) -> list[tuple[str, int]]:
    """Modules named in a lazy-attribute table (``_LAZY = {"name": "v4compact.x.y"}``)."""
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and node.value.startswith("v4compact.") and " " not in node.value:
            out.append((node.value, node.lineno))
    return out


MODULES = sorted(p for p in SRC.rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_module_respects_the_import_rules(path):
    package = _package(path)
    problems = []
    for name, line in _imports(path) + _lazy_targets(path):
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
