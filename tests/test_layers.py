"""The package's import graph: no circles, and the layers the design names.

Every ``import`` counts, at module level or inside a function (a lazy import is still a
dependency), except those under ``if TYPE_CHECKING:``, which never run.  A failure lists
every circle (or illegal import) found, each with the lines that make it.

Layers, top to bottom: the entry points (``cli``, ``commands``, ``demo``), the TUI
(``tui``: the only place Textual is imported), the coordinator (``coordinator``; the
agent side, ``agent``, beside it), and the domain below them (``evaluation``, ``l402``,
``lightning``, ``bounty``, ``store``, ``telemetry``, ``config``).  Nothing imports a
layer above its own.
"""

from __future__ import annotations

import functools

import grimp

PACKAGE = "l402tui"
ENTRY_POINTS = {"cli", "commands", "demo"}
UI = "tui"
COORDINATOR = "coordinator"
# May import the coordinator: what is above it.
ABOVE_COORDINATOR = ENTRY_POINTS | {UI}
UI_ONLY_LIBRARIES = ("textual",)


@functools.cache
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(PACKAGE, include_external_packages=True, exclude_type_checking_imports=True,
                             cache_dir=None)


def _ours(module: str) -> bool:
    return module == PACKAGE or module.startswith(PACKAGE + ".")


def _area(module: str) -> str:
    """The first level under the package: ``l402tui.coordinator.service`` -> ``coordinator``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _edges(group=lambda m: m) -> dict[str, set[str]]:
    g = graph()
    edges: dict[str, set[str]] = {}
    for importer in g.modules:
        if not _ours(importer):
            continue
        for imported in g.find_modules_directly_imported_by(importer):
            if _ours(imported) and group(importer) != group(imported):
                edges.setdefault(group(importer), set()).add(group(imported))
    return edges


def _circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    nodes = sorted(set(edges) | {t for ts in edges.values() for t in ts})
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
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
                    work.append((child, iter(sorted(edges.get(child, ())))))
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


def _lines(importer: str, imported: str) -> list[str]:
    return [f"{d['importer']}:{d['line_number']} {d['line_contents']}"
            for d in graph().get_import_details(importer=importer, imported=imported)]


def _describe(circle: list[str], edges: dict[str, set[str]], modules=lambda node: [node]) -> str:
    """The circle and the import lines that close it (``modules`` maps a package to its modules)."""
    inside = set(circle)
    out = [" <-> ".join(circle)]
    for node in circle:
        for other in sorted(edges.get(node, set()) & inside):
            targets = set(modules(other))
            lines = [line for importer in modules(node)
                     for imported in sorted(graph().find_modules_directly_imported_by(importer) & targets)
                     for line in _lines(importer, imported)]
            out += [f"    {line}" for line in lines[:3]]
            if len(lines) > 3:
                out.append(f"    ... and {len(lines) - 3} more {node} -> {other}")
    return "\n".join(out)


def test_no_import_circle_between_modules():
    edges = _edges()
    circles = _circles(edges)
    assert not circles, "import circles (move the shared piece to the lower module):\n" + "\n".join(
        _describe(c, edges) for c in circles)


def test_no_import_circle_between_packages():
    edges = _edges(_area)
    circles = _circles(edges)
    by_area: dict[str, list[str]] = {}
    for module in graph().modules:
        if _ours(module):
            by_area.setdefault(_area(module), []).append(module)
    assert not circles, "import circles between packages:\n" + "\n".join(
        _describe(c, edges, lambda area: sorted(by_area.get(area, []))) for c in circles)


def _importers(imported_area: str) -> list[tuple[str, str]]:
    return sorted((importer, imported) for importer in graph().modules if _ours(importer)
                  for imported in graph().find_modules_directly_imported_by(importer)
                  if _ours(imported) and _area(imported) == imported_area)


def test_only_the_tui_imports_textual():
    g = graph()
    wrong = sorted(m for lib in UI_ONLY_LIBRARIES for m in g.find_modules_that_directly_import(lib)
                   if _ours(m) and _area(m) != UI)
    assert not wrong, "Textual imported outside l402tui/tui/:\n" + "\n".join(
        line for m in wrong for lib in UI_ONLY_LIBRARIES for line in _lines(m, lib))


def test_domain_packages_never_import_the_ui():
    wrong = [(a, b) for a, b in _importers(UI) if _area(a) not in ENTRY_POINTS | {UI}]
    assert not wrong, "the UI imported from below it:\n" + "\n".join(line for a, b in wrong for line in _lines(a, b))


def test_nothing_below_the_coordinator_imports_it():
    wrong = [(a, b) for a, b in _importers(COORDINATOR) if _area(a) not in ABOVE_COORDINATOR | {COORDINATOR}]
    assert not wrong, "the coordinator imported from below it:\n" + "\n".join(
        line for a, b in wrong for line in _lines(a, b))


def test_the_checks_see_what_they_look_for():
    """The graph is the real one (a broken build of it would pass every check above)."""
    g = graph()
    assert "l402tui.coordinator.service" in g.modules and "l402tui.tui.app" in g.modules
    assert g.direct_import_exists(importer="l402tui.tui.app", imported="textual")
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _circles({"a": {"b"}, "b": set()}) == []
    # A TYPE_CHECKING-only import is left out: verdict names the service only for types.
    assert not g.direct_import_exists(importer="l402tui.coordinator.verdict",
                                      imported="l402tui.coordinator.service")
