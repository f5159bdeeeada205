"""No two modules of tscu_tui import each other, directly or around a circle.

The graph is read from the source (every `import` and `from ... import`, at any
depth, TYPE_CHECKING blocks included), not from what happens to be imported at
run time, so a circle that only a rarely-taken branch closes still fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import tscu_tui

PACKAGE = Path(tscu_tui.__file__).resolve().parent


def module_files(package: Path = PACKAGE) -> dict[str, Path]:
    root = package.parent
    modules = {}
    for path in package.rglob("*.py"):
        name = ".".join(path.relative_to(root).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    return modules


def _targets(node: ast.AST, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:  # relative: climb from this module's package
        parts = module.split(".")
        keep = len(parts) - node.level + (1 if is_package else 0)
        base = ".".join(parts[:keep] + ([base] if base else []))
    return [base] + [f"{base}.{alias.name}" for alias in node.names]


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the tscu_tui modules it imports (a package's own ancestors excluded:
    Python imports them implicitly, that is not a dependency the code chose)."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            for target in _targets(node, name, path.name == "__init__.py"):
                while target and target not in modules:  # `from pkg import name` -> pkg
                    target = target.rpartition(".")[0]
                if target and target != name and not name.startswith(target + "."):
                    graph[name].add(target)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_detector_finds_a_planted_circle(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.sub import b\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "b.py").write_text("def f():\n    from pkg import c\n")
    (package / "c.py").write_text("from typing import TYPE_CHECKING\n"
                                  "if TYPE_CHECKING:\n    from .a import x\n")
    (package / "d.py").write_text("import pkg.a\n")  # leads into the circle, not part of it
    assert circles(import_graph(module_files(package))) == [["pkg.a", "pkg.c", "pkg.sub.b"]]


def test_tscu_tui_has_no_import_circles() -> None:
    graph = import_graph(module_files())
    assert "tscu_tui.screens.base" in graph and graph["tscu_tui.app"]  # the walk saw the app
    assert circles(graph) == []


def test_engine_sub_packages_depend_one_way() -> None:
    """The engine's rooms (train, models, data, runs, ...) form no circle either: the
    arrows their __init__ docstrings promise (train -> hub -> runs -> models -> config)."""
    def room(module: str) -> str:
        parts = module.split(".")
        return ".".join(parts[:3])  # tscu_tui.engine.<room>, or a top-level engine module

    graph = import_graph(module_files())
    rooms: dict[str, set[str]] = {}
    for module, targets in graph.items():
        if module.startswith("tscu_tui.engine."):
            rooms.setdefault(room(module), set()).update(
                room(t) for t in targets
                if t.startswith("tscu_tui.engine.") and room(t) != room(module))
    assert {"tscu_tui.engine.train", "tscu_tui.engine.models", "tscu_tui.engine.data",
            "tscu_tui.engine.runs"} <= set(rooms)
    assert circles(rooms) == []


MAX_MODULE_LINES = 400
#: modules allowed over MAX_MODULE_LINES: none. A module that outgrows it is split by
#: concept (as trainer.py and thermal.py were, issue 27), not listed here.
LONG_MODULES_ALLOWED: set[str] = set()


def test_no_module_over_400_lines() -> None:
    """Modules small enough to read in one sitting (STYLE.md); a new long one fails here."""
    root = PACKAGE.parent
    lines = {path.relative_to(root).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
             for path in module_files().values()}
    assert "tscu_tui/app.py" in lines  # the walk saw the package
    too_long = {name: count for name, count in sorted(lines.items())
                if count > MAX_MODULE_LINES and name not in LONG_MODULES_ALLOWED}
    assert too_long == {}
