"""The import graph of ``src/internet_plus``: no import cycle, and nothing outside ``internet_plus.tools`` imports it.

Every module is parsed with ``ast``; every import counts, at module level and inside functions alike. An edge goes
from a module to each ``internet_plus`` module it imports: ``import a.b`` → ``a.b``; ``from a import b`` → ``a.b``
when that is a module, else ``a``; relative imports are resolved against the importing module's package. A package's
``__init__`` is a node like any module (``from pkg import name`` is an edge to ``pkg``), so ``a -> pkg -> a`` is a
cycle; the parent packages Python runs before a submodule are not edges (``import pkg.a`` is an edge to ``pkg.a``
only).
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

from conftest import ROOT

SRC = ROOT / "src"
PACKAGE = "internet_plus"
TOOLS = f"{PACKAGE}.tools"


def module_files(src: Path, package: str) -> dict[str, Path]:
    """Dotted module name → file, for every module of ``package`` under ``src`` (``pkg/__init__.py`` is ``pkg``)."""
    modules = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of ``modules`` that module ``name`` (file ``path``) imports, anywhere in its code."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                if node.level > 1:
                    base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                if submodule in modules:
                    found.add(submodule)
                elif base in modules:
                    found.add(base)
    found.discard(name)
    return found


def import_graph(src: Path, package: str) -> dict[str, set[str]]:
    """Module → the modules of ``package`` it imports."""
    modules = module_files(src, package)
    return {name: _imports_of(name, path, modules) for name, path in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles, each as its modules in order: ``graphlib`` reports one, its first edge is dropped, and the
    search goes on until the graph sorts."""
    graph = {node: set(edges) for node, edges in graph.items()}
    cycles = []
    while True:
        try:
            graphlib.TopologicalSorter(graph).prepare()
        except graphlib.CycleError as err:
            cycle = err.args[1][:-1]  # [a, b, ..., a]: a path back to its start
            cycles.append(cycle)
            first, second = cycle[0], cycle[1]
            graph[first].discard(second)
            graph[second].discard(first)
        else:
            return cycles


def tools_importers(graph: dict[str, set[str]], tools: str) -> list[str]:
    """``"a -> b"`` for every module ``a`` outside the package ``tools`` that imports ``b`` inside it."""

    def inside(name: str) -> bool:
        return name == tools or name.startswith(tools + ".")

    return [f"{a} -> {b}" for a in sorted(graph) if not inside(a) for b in sorted(graph[a]) if inside(b)]


# ------------------------------------------------------------------------------------------------ the package


def test_the_graph_holds_the_package() -> None:
    graph = import_graph(SRC, PACKAGE)
    assert len(graph) > 50 and sum(map(len, graph.values())) > 100
    # a module-level import, a submodule named by ``from package import module`` and a function-level import
    assert "internet_plus.data.base_dataset" in graph["internet_plus.data.rhd"]
    assert "internet_plus.data.rhd_format" in graph["internet_plus.data.rhd"]
    assert "internet_plus.data.interhand" in graph["internet_plus.tools.pipeline_bench"]


def test_no_import_cycle() -> None:
    cycles = find_cycles(import_graph(SRC, PACKAGE))
    assert not cycles, "import cycles between modules of internet_plus:\n" + "\n".join(
        " -> ".join([*cycle, cycle[0]]) for cycle in cycles
    )


def test_only_the_tools_import_the_tools() -> None:
    offenders = tools_importers(import_graph(SRC, PACKAGE), TOOLS)
    assert not offenders, f"modules outside {TOOLS} import it:\n" + "\n".join(offenders)


# ------------------------------------------------------------------------------------------------ the check itself


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_check_finds_cycles_and_tools_imports(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.a import A\n",  # pkg -> pkg.a
            "pkg/a.py": "A = 1\n\ndef f():\n    from . import b  # function level, relative\n",  # pkg.a -> pkg.b
            "pkg/b.py": "from pkg import A\n",  # a name from the package: pkg.b -> pkg
            "pkg/sub/__init__.py": "",
            "pkg/sub/c.py": "from ..sub import d\nimport pkg.sub.d\n",  # pkg.sub.c -> pkg.sub.d
            "pkg/sub/d.py": "from . import c\n",  # pkg.sub.d -> pkg.sub.c
            "pkg/tools/__init__.py": "",
            "pkg/tools/meter.py": "from pkg.sub import c\n",
            "pkg/e.py": "def g():\n    from pkg.tools import meter\n",
        },
    )
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.b"] == {"pkg"} and graph["pkg.sub.c"] == {"pkg.sub.d"}
    assert sorted(map(sorted, find_cycles(graph))) == [["pkg", "pkg.a", "pkg.b"], ["pkg.sub.c", "pkg.sub.d"]]
    assert tools_importers(graph, "pkg.tools") == ["pkg.e -> pkg.tools.meter"]
    # without the cyclic edges the graph is clean
    graph["pkg.b"] = set()
    graph["pkg.sub.d"] = set()
    assert find_cycles(graph) == []
