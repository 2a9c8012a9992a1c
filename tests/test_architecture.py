"""The shape of the package, checked: no import circle between any two modules of
isthmus, and no module over the size a reader can hold (docs/HACKING.md, "Layers").

The layers themselves (cli > service > api > intent > engine > sites | fabric > store >
model) are import-linter's contract in `.importlinter`, which `make test` runs; this
module checks what that contract cannot: circles inside one layer (among the modules of
sites/openstack, or of api/compute) and module length.
"""

from __future__ import annotations

from pathlib import Path

import grimp

import isthmus

PACKAGE_DIR = Path(isthmus.__file__).resolve().parent
MAX_LINES = 600


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in graph.modules:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append(
                        (child, iter(sorted(graph.find_modules_directly_imported_by(child))))
                    )
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
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


def _package_imports_of_submodules(graph: grimp.ImportGraph) -> None:
    """A package's __init__ that re-exports its own submodules is not a circle a reader
    has to untangle (`isthmus.sites.local` -> `isthmus.sites.local.driver` -> back for a
    sibling): drop package -> own-descendant edges before looking for circles."""
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if imported.startswith(module + "."):
                graph.remove_import(importer=module, imported=imported)


def test_no_import_circle_between_modules() -> None:
    graph = grimp.build_graph("isthmus")
    _package_imports_of_submodules(graph)
    cycles = _cycles(graph)
    assert cycles == [], "modules that import each other (directly or through others):\n" + (
        "\n".join(" <-> ".join(cycle) for cycle in cycles)
    )


def test_the_cycle_finder_finds_a_planted_circle() -> None:
    graph = grimp.ImportGraph()
    for name in ("p", "p.a", "p.b", "p.c"):
        graph.add_module(name)
    graph.add_import(importer="p.a", imported="p.b")
    graph.add_import(importer="p.b", imported="p.c")
    assert _cycles(graph) == []
    graph.add_import(importer="p.c", imported="p.a")
    assert _cycles(graph) == [["p.a", "p.b", "p.c"]]


def test_no_module_over_six_hundred_lines() -> None:
    long = {
        str(path.relative_to(PACKAGE_DIR)): lines
        for path in PACKAGE_DIR.rglob("*.py")
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}, f"modules over {MAX_LINES} lines (split them by concern): {long}"
