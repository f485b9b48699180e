"""The import graph of scal's own packages, read from the source with `ast`, checked against the
architecture's rules (docs/architecture.md, "Layers").

    python tools/import_graph.py            # exit 0 and "ok" when every rule holds, else 1 and the list
    python tools/import_graph.py --edges    # also print every arrow between packages, with a count

Every import statement counts, wherever it stands: at module level, inside a function, under
``if TYPE_CHECKING``. A function-level import hides a circle from Python's import machinery, not
from the reader of the code, so it is no way out of a rule.

Rules:

1. No circles between modules: a pair of modules that need each other is one module, or a third
   holds what they share.
2. No upward arrow between packages: ``domains`` <- ``search`` <- ``scal``, and ``analysis`` (pure
   numerics over arrays and frames) <- ``scal``. ``ALLOWED`` below lists what each may import;
   any other arrow between the four packages is reported.
3. Heavy third-party frameworks stay in their layer: only ``scal`` imports mlflow, only the Ray
   executor modules (``search.ray_*``) import ray.

Only the standard library is used, so the check runs before anything is installed.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

PACKAGES = ("domains", "search", "analysis", "scal")
# What each package may import of the others (rule 2).
ALLOWED: dict[str, frozenset[str]] = {
    "domains": frozenset(),
    "search": frozenset({"domains"}),
    "analysis": frozenset(),
    "scal": frozenset({"domains", "search", "analysis"}),
}
# A third-party top-level name -> the module-name prefixes allowed to import it (rule 3).
CONFINED: dict[str, tuple[str, ...]] = {
    "mlflow": ("scal.",),
    "ray": ("search.ray_",),
}


@dataclass(frozen=True)
class Import:
    """One arrow: ``source`` imports ``target`` (a module of ours, or a third-party top-level name)
    at ``line``."""

    source: str
    target: str
    line: int


def module_names(root: Path, packages=PACKAGES) -> dict[str, Path]:
    """Every module of ``packages`` under ``root``: dotted name -> file (``pkg/__init__.py`` is ``pkg``)."""
    out = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _resolve(name: str, modules) -> str | None:
    """The longest prefix of dotted ``name`` that is one of our modules (``a.b.func`` -> ``a.b``)."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        cand = ".".join(parts[:i])
        if cand in modules:
            return cand
    return None


def imports_of(module: str, path: Path, modules) -> list[Import]:
    """Every import in ``path``: arrows to our modules, and to third-party top-level names."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_pkg = path.name == "__init__.py"
    out: list[Import] = []

    def add(name: str, line: int) -> None:
        ours = _resolve(name, modules)
        target = ours if ours is not None else name.split(".")[0]
        if target != module:
            out.append(Import(module, target, line))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:   # relative: from the package that holds this module
                base = module.split(".") if is_pkg else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                head = ".".join(base + ([node.module] if node.module else []))
            else:
                head = node.module or ""
            for alias in node.names:
                # `from pkg import sub` imports the module pkg.sub when there is one, else a name of pkg.
                full = f"{head}.{alias.name}"
                add(full if full in modules else head, node.lineno)
    return out


def graph(root: Path) -> list[Import]:
    modules = module_names(root)
    return [imp for name, path in modules.items() for imp in imports_of(name, path, modules)]


def _package(module: str) -> str:
    return module.split(".")[0]


def cycles(edges: list[Import]) -> list[list[str]]:
    """The circles between our modules: one per strongly connected component of two or more
    modules (Tarjan's algorithm), each given as a closed path through its first module."""
    adj: dict[str, set[str]] = {}
    for e in edges:
        if _package(e.target) in PACKAGES:
            adj.setdefault(e.source, set()).add(e.target)
            adj.setdefault(e.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    comps: list[list[str]] = []

    def connect(v: str) -> None:   # recursion depth is bounded by the number of modules (~100)
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(adj[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(adj):
        if v not in index:
            connect(v)
    return [_loop(c[0], set(c), adj) for c in sorted(comps)]


def _loop(start: str, comp: set[str], adj: dict[str, set[str]]) -> list[str]:
    """A shortest closed path start -> ... -> start inside one component (breadth first)."""
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(adj[v] & comp):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return [start, *reversed(path[:-1]), start] if v != start else [start, start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return [start]


def upward(edges: list[Import]) -> list[Import]:
    """Arrows between our packages that `ALLOWED` does not list (rule 2)."""
    return [e for e in edges
            if _package(e.target) in PACKAGES and _package(e.source) != _package(e.target)
            and _package(e.target) not in ALLOWED[_package(e.source)]]


def misplaced(edges: list[Import]) -> list[Import]:
    """Imports of a confined framework outside the modules allowed it (rule 3)."""
    return [e for e in edges if e.target in CONFINED
            and not any(f"{e.source}.".startswith(prefix) or e.source.startswith(prefix) for prefix in CONFINED[e.target])]


def problems(root: Path) -> list[str]:
    """Every broken rule as one line; empty when the graph is clean."""
    edges = graph(root)
    modules = module_names(root)
    lines = [f"circle: {' -> '.join(c)}" for c in cycles(edges)]
    lines += [f"upward: {e.source} -> {e.target} ({modules[e.source].relative_to(root)}:{e.line}; "
              f"{_package(e.source)} may not import {_package(e.target)})" for e in upward(edges)]
    lines += [f"misplaced: {e.source} imports {e.target} ({modules[e.source].relative_to(root)}:{e.line}; "
              f"only {', '.join(p.rstrip('.') + '*' for p in CONFINED[e.target])} may)" for e in misplaced(edges)]
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1], help="the repository root")
    ap.add_argument("--edges", action="store_true", help="also print the arrows between packages")
    args = ap.parse_args(argv)
    if args.edges:
        count = Counter((_package(e.source), _package(e.target)) for e in graph(args.root)
                        if _package(e.target) in PACKAGES and _package(e.source) != _package(e.target))
        for (a, b), n in sorted(count.items()):
            print(f"{a} -> {b}: {n} import(s)")
    found = problems(args.root)
    for line in found:
        print(line)
    if not found:
        print(f"ok: no circle, no upward arrow, mlflow and ray in their place ({', '.join(PACKAGES)})")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
