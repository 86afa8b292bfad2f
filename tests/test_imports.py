"""core/ has no import cycles, counting imports inside functions (a lazy import only hides a cycle)."""
import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "core"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def core_imports(path: Path, root: Path, modules: set[str]) -> list[tuple[str, int]]:
    """(imported core module, line) for every import of a core module in ``path``, at any depth."""
    package = root.name
    here = module_name(path, root)
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names if alias.name.split(".")[0] == package]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x, from .x import y
                base = here.split(".")[: len(here.split(".")) - node.level + (path.name == "__init__.py")]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != package:
                continue
            for alias in node.names:
                # from core import x: x is a module when core/x.py exists, else a name in core/__init__.py
                candidate = f"{source}.{alias.name}"
                found.append((candidate if candidate in modules else source, node.lineno))
    return [(name, line) for name, line in found if name in modules and name != here]


def import_graph(root: Path) -> dict[str, dict[str, str]]:
    """module -> {imported module: "file:line" of the first such import}."""
    paths = sorted(root.rglob("*.py"))
    modules = {module_name(path, root) for path in paths}
    graph = {}
    for path in paths:
        edges = {}
        for name, line in core_imports(path, root, modules):
            edges.setdefault(name, f"{path.relative_to(root.parent)}:{line}")
        graph[module_name(path, root)] = edges
    return graph


def find_cycles(graph: dict[str, dict[str, str]]) -> list[list[str]]:
    """Every cycle that a depth-first walk meets, each as [a, b, ..., a], each once whatever its start."""
    cycles, seen, done, stack = [], set(), set(), []

    def visit(module):
        stack.append(module)
        for target in sorted(graph.get(module, {})):
            if target in stack:
                cycle = stack[stack.index(target):] + [target]
                key = frozenset(zip(cycle, cycle[1:]))
                if key not in seen:
                    seen.add(key)
                    cycles.append(cycle)
            elif target not in done:
                visit(target)
        stack.pop()
        done.add(module)

    for module in sorted(graph):
        if module not in done:
            visit(module)
    return cycles


def describe(cycle: list[str], graph) -> str:
    steps = [f"{a} -> {b} ({graph[a][b]})" for a, b in zip(cycle, cycle[1:])]
    return " -> ".join(cycle) + "\n    " + "\n    ".join(steps)


def test_core_has_no_import_cycles():
    graph = import_graph(CORE)
    assert "core.training" in graph and graph["core.training"], "the walk found core's modules and imports"
    cycles = find_cycles(graph)
    assert not cycles, "import cycles in core/:\n" + "\n".join(describe(cycle, graph) for cycle in cycles)


def test_the_check_sees_an_import_inside_a_function(tmp_path):
    package = tmp_path / "core"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from core import b\n")
    (package / "b.py").write_text("import os\n\ndef late():\n    from core.a import thing\n    return thing\n")
    (package / "c.py").write_text("import core.a\nfrom . import b\n")
    graph = import_graph(package)
    assert graph["core.a"] == {"core.b": "core/a.py:1"}
    assert graph["core.b"] == {"core.a": "core/b.py:4"}
    assert set(graph["core.c"]) == {"core.a", "core.b"}
    assert find_cycles(graph) == [["core.a", "core.b", "core.a"]]
