"""Imports go one way: read from the source (ast), not by importing it.

    api/web/server  ->  services  ->  engine  ->  store  ->  vocabulary, errors
                                        |                        ^
                                        +-> sse_wire (a leaf) ---+ (imports nothing of ours)
"""

from __future__ import annotations

import ast
from pathlib import Path

from support import REPO

PACKAGE = REPO / "scriptbox"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _runtime_imports(path: Path) -> set[str]:
    """Modules `path` imports when it runs (TYPE_CHECKING-only imports are left out)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    base = ".".join(anchor + ([child.module] if child.module else []))
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in child.names)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {i for i in _runtime_imports(path) if i in modules and i != name}
            for name, path in modules.items()}


GRAPH = _graph()


def _imports_of(prefix: str) -> set[str]:
    return {target for name, targets in GRAPH.items() if name == prefix or name.startswith(prefix + ".")
            for target in targets}


def test_there_is_no_import_circle() -> None:
    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), list(GRAPH[start])
        while todo:
            current = todo.pop()
            if current == goal:
                return True
            if current not in seen:
                seen.add(current)
                todo.extend(GRAPH.get(current, ()))
        return False

    circles = sorted(name for name in GRAPH if reaches(name, name))
    assert circles == []


def test_the_leaves_import_nothing_of_ours() -> None:
    for leaf in ("scriptbox.vocabulary", "scriptbox.sse_wire", "scriptbox.errors", "scriptbox.childproc"):
        assert GRAPH[leaf] == set(), leaf


def test_the_layers_point_one_way() -> None:
    upper = ("scriptbox.api", "scriptbox.web", "scriptbox.server", "scriptbox.services", "scriptbox.app")
    engine_imports = _imports_of("scriptbox.engine")
    assert not {i for i in engine_imports if i.startswith(upper)}, "the engine must not know the HTTP side"
    store_imports = _imports_of("scriptbox.store")
    assert not {i for i in store_imports if i.startswith((*upper, "scriptbox.engine"))}, "the store is below all"
    # The live hub knows neither the wire format nor the database.
    assert not {i for i in GRAPH["scriptbox.engine.hub"] if i.startswith(("scriptbox.sse_wire", "scriptbox.store"))}


def test_only_the_store_speaks_mongodb() -> None:
    speakers = sorted(_module_name(p) for p in PACKAGE.rglob("*.py")
                      if any(i.split(".")[0] in ("pymongo", "bson") for i in _runtime_imports(p)))
    assert speakers and all(name.startswith("scriptbox.store") for name in speakers), speakers
