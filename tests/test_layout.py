"""The layout rules of issue 15 point 8 and docs/architecture.md, checked on the source itself.

Every module must import; the package graph (every import, function-local ones included, read
from the AST) has no cycles and keeps the layering (content, subscribers and mail know nothing
of delivery, feedback or web; delivery knows nothing of web or feedback); no module is over 400
lines and no function over 60 lines (migrations aside).

The KNOWN_* allow-lists are empty: a new offender fails the test (add one only with a reason).
They are explicit so that nothing is skipped silently: a new offender fails, and so does an entry
that is no longer an offender (delete it then). The goal is that every list is empty.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from collections import defaultdict
from pathlib import Path

import pytest

import newsletter

ROOT = Path(newsletter.__file__).resolve().parent
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60

# Layering: these packages must not import those.
FORBIDDEN = {
    "newsletter.content": {"newsletter.delivery", "newsletter.feedback", "newsletter.web"},
    "newsletter.subscribers": {"newsletter.delivery", "newsletter.feedback", "newsletter.web"},
    "newsletter.mail": {"newsletter.delivery", "newsletter.feedback", "newsletter.web"},
    "newsletter.delivery": {"newsletter.web", "newsletter.feedback"},
}

# --- Allow-lists: today's offenders, to be emptied as the re-homing branches are merged. ---------
# Package cycles, each as the set of packages in one strongly connected component.
KNOWN_CYCLES: set[frozenset[str]] = set()
# Layering edges (importer package, imported package).
KNOWN_LAYERING: set[tuple[str, str]] = set()
# Modules over MAX_MODULE_LINES, as paths relative to newsletter/.
KNOWN_LONG_MODULES: set[str] = set()
# Functions over MAX_FUNCTION_LINES, as "path:qualified.name".
KNOWN_LONG_FUNCTIONS: set[str] = set()


def _modules() -> dict[str, Path]:
    """Every module of the newsletter package by dotted name, migrations aside."""
    found = {}
    for path in ROOT.rglob("*.py"):
        relative = path.relative_to(ROOT.parent)
        if "migrations" in relative.parts:
            continue
        found[".".join(relative.with_suffix("").parts).removesuffix(".__init__")] = path
    return found


MODULES = _modules()


def _package(module: str) -> str:
    """The graph node of a module: newsletter.<package>, or a loose top-level module itself."""
    return ".".join(module.split(".")[:2])


def _imports(module: str, path: Path) -> set[str]:
    """Modules of ours that `module` imports anywhere (function-local and TYPE_CHECKING included)."""
    own_package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = own_package.split(".")[: len(own_package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            targets.add(base)
            targets.update(f"{base}.{alias.name}" for alias in node.names)
    return {target for target in targets if target in MODULES}


def package_graph() -> tuple[dict[str, set[str]], dict[tuple[str, str], set[str]]]:
    """Edges between packages, and for each edge the module imports that make it."""
    edges: dict[str, set[str]] = defaultdict(set)
    why: dict[tuple[str, str], set[str]] = defaultdict(set)
    for module, path in MODULES.items():
        for target in _imports(module, path):
            a, b = _package(module), _package(target)
            if a != b:
                edges[a].add(b)
                why[(a, b)].add(f"{module} -> {target}")
    return edges, why


def cycles(edges: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one package (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
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
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def long_functions(path: Path) -> dict[str, int]:
    """Every function and method (nested ones too) by qualified name, with its length in lines."""
    lengths = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    lengths[name] = child.end_lineno - child.lineno + 1
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(ast.parse(path.read_text(encoding="utf-8")), "")
    return {name: length for name, length in lengths.items() if length > MAX_FUNCTION_LINES}


def _check(offenders: dict, known: set, what: str) -> None:
    """New offenders fail with the reason; allow-list entries that no longer offend fail too."""
    new = {key: value for key, value in offenders.items() if key not in known}
    stale = known - set(offenders)
    lines = [f"  {key}: {value}" for key, value in sorted(new.items(), key=str)]
    assert not new, f"{what}:\n" + "\n".join(lines)
    assert not stale, f"{what}: fixed, remove from the allow-list: {sorted(stale, key=str)}"


def _walk_names() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(newsletter.__path__, "newsletter.",
                                      onerror=lambda name: pytest.fail(f"cannot import {name}")):
        if ".migrations" in info.name or info.name.endswith(".__main__"):
            continue
        names.append(info.name)
    return names


def test_every_module_imports():
    names = _walk_names()
    assert set(names) == set(MODULES) - {"newsletter", "newsletter.__main__"}, \
        "the AST walk and pkgutil see different modules"
    for name in names:
        importlib.import_module(name)


def test_the_graph_sees_the_imports_that_are_there():
    """The checker itself: known edges of the pipeline must show, or every test below is blind."""
    edges, _why = package_graph()
    assert "newsletter.db" in edges["newsletter.delivery"]
    assert "newsletter.config" in edges["newsletter.cli"]  # function-local imports count
    found = cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})
    assert found == [frozenset({"a", "b", "c"})]


def test_no_package_import_cycles():
    edges, why = package_graph()
    offenders = {}
    for component in cycles(edges):
        offenders[component] = "; ".join(sorted(
            line for a in component for b in edges[a] & component for line in why[(a, b)]))
    _check(offenders, KNOWN_CYCLES, "package import cycles")


def test_layering():
    edges, why = package_graph()
    offenders = {}
    for importer, banned in FORBIDDEN.items():
        for imported in sorted(edges.get(importer, set()) & banned):
            offenders[(importer, imported)] = "; ".join(sorted(why[(importer, imported)]))
    _check(offenders, KNOWN_LAYERING, "imports across the layering")


def test_no_module_over_400_lines():
    offenders = {}
    for path in MODULES.values():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_MODULE_LINES:
            offenders[str(path.relative_to(ROOT))] = f"{lines} lines"
    _check(offenders, KNOWN_LONG_MODULES, f"modules over {MAX_MODULE_LINES} lines")


def test_no_function_over_60_lines():
    offenders = {}
    for path in MODULES.values():
        for name, length in long_functions(path).items():
            offenders[f"{path.relative_to(ROOT)}:{name}"] = f"{length} lines"
    _check(offenders, KNOWN_LONG_FUNCTIONS, f"functions over {MAX_FUNCTION_LINES} lines")
