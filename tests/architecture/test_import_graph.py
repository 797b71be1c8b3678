"""The package map holds: no import cycle between any two modules, and no package that
swallows the others.

The layer and SDK contracts are import-linter's (pyproject.toml, `lint-imports`); this
test checks what import-linter does not: a cycle inside one package, and the size rule
of the package split (no top-level package over 30 % of the lines of the packages).
"""

from __future__ import annotations

from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("chain", "ledger", "storage", "consensus", "p2p", "node", "rpc", "cli", "sdk",
            "devnet")
LARGEST_SHARE = 0.30


def find_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, edges = work[-1]
            for target in edges:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(
                        graph.find_modules_directly_imported_by(target)))))
                    break
                if target in on_stack:
                    low[module] = min(low[module], index[target])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[module])
                if low[module] == index[module]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == module:
                            break
                    if len(component) > 1:
                        cycles.append(sorted(component))
    return cycles


def test_find_cycles_finds_a_planted_cycle():
    graph = grimp.ImportGraph()
    for name in ("a", "a.x", "a.y", "a.z"):
        graph.add_module(name)
    graph.add_import(importer="a.x", imported="a.y")
    graph.add_import(importer="a.y", imported="a.z")
    graph.add_import(importer="a.z", imported="a.x")
    assert find_cycles(graph) == [["a.x", "a.y", "a.z"]]


def test_no_module_imports_itself_through_others():
    graph = grimp.build_graph(*PACKAGES)
    assert find_cycles(graph) == []


def test_no_package_holds_more_than_its_share_of_the_lines():
    lines = {name: sum(len(path.read_text().splitlines())
                       for path in (ROOT / name).rglob("*.py"))
             for name in PACKAGES}
    total = sum(lines.values())
    over = {name: f"{count / total:.0%}" for name, count in lines.items()
            if count > LARGEST_SHARE * total}
    assert not over, f"packages over {LARGEST_SHARE:.0%} of {total} lines: {over}"
