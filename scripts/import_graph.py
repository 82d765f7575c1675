"""The package's import graph, drawn from the source: every import statement (also those
inside functions) and the lazy-attribute tables, as text or as a Mermaid diagram.

    python scripts/import_graph.py                      # subpackages, with any import circle
    python scripts/import_graph.py --level module       # one node per module
    python scripts/import_graph.py --inside models      # the subpackages and modules of one
    python scripts/import_graph.py --inside models --level module   # ... every module
    python scripts/import_graph.py --format mermaid     # a diagram for docs/architecture.md

It imports nothing of the package (the source is read as text), so it runs without the
package's dependencies. ``tests/test_architecture.py`` checks its rules on the same graph.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "v4compact"


def module_name(path: Path, src: Path = SRC) -> str:
    """``src/v4compact/models/nets/core.py`` -> ``v4compact.models.nets.core``."""
    parts = ["v4compact", *path.relative_to(src).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, src: Path = SRC, names: bool = True,
               members: bool = True) -> list[tuple[str, int]]:
    """``(absolute dotted name, line)`` of every import statement in a module (also inside
    functions), relative ones resolved; ``from pkg import x`` gives ``pkg.x`` too (``x`` may
    be a module; with ``members=False`` only for ``from . import x``); with ``names``, also
    the module names the module resolves at call time (strings ``"v4compact.x.y"``:
    lazy-attribute tables, the model families' loader modules)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    name = module_name(path, src).split(".")
    base = name if path.name == "__init__.py" else name[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parent = base[: len(base) - (node.level - 1)]
                target = ".".join(parent + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.append((target, node.lineno))
            if members or node.module is None:
                out += [(f"{target}.{alias.name}", node.lineno) for alias in node.names]
        elif names and isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and node.value.startswith("v4compact.") and " " not in node.value:
            out.append((node.value, node.lineno))
    return out


def module_graph(src: Path = SRC, names: bool = False) -> dict[str, dict[str, int]]:
    """``{module: {imported module: first line}}`` over the package's own modules: the import
    statements, and with ``names`` the modules named for import at call time too (a lazy
    table, a registry of loaders: plug-in points, which the architecture allows to point up).

    ``from pkg import name`` counts as importing ``pkg.name`` when that is a module, else
    ``pkg``; a module importing ``a.b.c`` also imports the packages ``a.b`` and ``a`` (their
    ``__init__`` runs), which is how an ``__init__`` that re-exports closes a circle.
    """
    paths = sorted(p for p in src.rglob("*.py") if "__pycache__" not in p.parts)
    modules = {module_name(p, src): p for p in paths}
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        edges: dict[str, int] = {}
        for target, line in imports_of(path, src, names):
            if not target.startswith("v4compact"):
                continue
            while target not in modules and "." in target:
                target = target.rsplit(".", 1)[0]
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                dep = ".".join(parts[:i])
                if dep != name and dep in modules and not name.startswith(dep + "."):
                    edges.setdefault(dep, line)
        graph[name] = edges
    return graph


def group(module: str, level: str, inside: str | None = None, src: Path = SRC) -> str | None:
    """The node a module belongs to: ``package`` (``models``), ``subpackage``
    (``models.nets``; a top-level module stays itself), or ``module``. With ``inside``, the
    package's own modules and subpackages (``module``: every module), and None outside it."""
    parts = module.split(".")[1:] or ["__init__"]
    if inside is not None:
        prefix = inside.split(".")
        if parts[: len(prefix)] != prefix:
            return None
        inner = parts[len(prefix):] or ["__init__"]
        return ".".join(inner if level == "module" else inner[:1])
    if level == "module":
        return ".".join(parts)
    depth = 1 if level == "package" else 2
    # a subpackage is a folder: models/nets/core.py -> models.nets; models/zoo.py -> models
    path = src.joinpath(*parts)
    folders = parts if path.is_dir() else parts[:-1]
    return ".".join(parts[:depth] if len(folders) >= depth else folders or parts[:1])


def collapse(graph: dict[str, dict[str, int]], level: str,
             inside: str | None = None, src: Path = SRC) -> dict[str, set[str]]:
    """The module graph with modules merged into their nodes (self-arrows dropped)."""
    out: dict[str, set[str]] = defaultdict(set)
    for module, deps in graph.items():
        a = group(module, level, inside, src)
        if a is None:
            continue
        out[a]
        for dep in deps:
            b = group(dep, level, inside, src)
            if b is not None and b != a:
                out[a].add(b)
    return dict(out)


def circles(graph: dict[str, set[str]] | dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def to_mermaid(graph: dict[str, set[str]]) -> str:
    ids = {name: "n" + name.replace(".", "_") for name in graph}
    lines = ["graph TD"]
    lines += [f'  {ids[n]}["{n}"]' for n in sorted(graph)]
    lines += [f"  {ids[a]} --> {ids[b]}" for a in sorted(graph) for b in sorted(graph[a])
              if b in ids]
    return "\n".join(lines)


def to_text(graph: dict[str, set[str]]) -> str:
    width = max(map(len, graph), default=0)
    return "\n".join(f"{a:<{width}} -> {', '.join(sorted(graph[a])) or '-'}"
                     for a in sorted(graph))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--level", choices=["package", "subpackage", "module"],
                        default="subpackage")
    parser.add_argument("--inside", help="draw the modules of one package, e.g. models")
    parser.add_argument("--format", choices=["text", "mermaid"], default="text")
    parser.add_argument("--src", type=Path, default=SRC, help="the package folder")
    parser.add_argument("--with-names", action="store_true",
                        help="also draw the modules named for import at call time (lazy "
                             "tables, the families' loaders)")
    args = parser.parse_args(argv)
    modules = module_graph(args.src, args.with_names)
    graph = collapse(modules, args.level, args.inside, args.src)
    print(to_mermaid(graph) if args.format == "mermaid" else to_text(graph))
    for what, found in (("modules", circles(modules)),
                        (f"the {args.inside or args.level} nodes drawn", circles(graph))):
        print(f"\n{len(found)} import circle(s) between {what}" + (":" if found else ""),
              file=sys.stderr)
        for component in found:
            print("  " + " <-> ".join(component), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
