"""The house rules of the package, checked on its source with :mod:`ast`.

Every module of ``riskmodel/`` is parsed; its imports (module level and inside functions, absolute and
relative) become edges of the internal import graph. The tests fail, listing every offender, on

* an import cycle (a strongly connected component of more than one module),
* an upward import (a module importing from a higher layer of :data:`LAYERS`; a module the map does not
  place is an error too, so a new module must be given its layer),
* a private name (``_x``) imported from another module, or read as ``module._x`` through a module alias,
* an import of the package root ``riskmodel`` from inside the package (``__version__`` lives in
  ``riskmodel.version``).

Imports under ``if TYPE_CHECKING:`` are exempt. ``from riskmodel.x import y`` is an edge to the module
``riskmodel.x.y`` when ``y`` is a submodule, else to ``riskmodel.x``; a package ``__init__`` that
re-exports is an edge from the package. Importing ``a.b.c`` is not counted as importing the packages
``a`` and ``a.b`` (as import-linter does).

The layer map is the one in ``docs/index.md`` (bottom = 1). To place a new module, add its prefix below.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = "riskmodel"
PACKAGE_DIR = Path(__file__).resolve().parent.parent / ROOT

#: Layer of every module, bottom (1) to top (8). A key names a module and everything below it
#: (``riskmodel.gail`` covers ``riskmodel/gail/__init__.py`` and ``riskmodel/gail/*.py``); the longest
#: matching key wins. Keys in :data:`EXACT_LAYERS` name one module only.
LAYERS: dict[str, int] = {
    # 1 foundation, torch-free
    "riskmodel.version": 1,
    "riskmodel.estimators": 1,
    "riskmodel.survival": 1,
    "riskmodel.jsonstate": 1,
    "riskmodel.device": 1,
    "riskmodel.models.base": 1,
    # 2 schema and the shared scoring core
    "riskmodel.schema": 2,
    "riskmodel.tables": 2,
    "riskmodel.models.core": 2,
    # 3 models' building blocks
    "riskmodel.gail": 3,
    "riskmodel.imaging": 3,
    "riskmodel.nn": 3,
    "riskmodel.calibration": 3,
    "riskmodel.evaluation.metrics": 3,
    "riskmodel.evaluation.calibration_metrics": 3,
    "riskmodel.evaluation.reclassification": 3,
    "riskmodel.bundle": 3,
    "riskmodel.synthetic": 3,
    # 4 training and inference
    "riskmodel.training": 4,
    "riskmodel.inference": 4,
    "riskmodel.explain": 4,  # saliency core: model-agnostic (ExplainTarget), so ImageRiskPredictor.explain can use it
    # 5 fused models
    "riskmodel.fusion": 5,
    "riskmodel.mirai": 5,
    # 6 the registry and the front API
    "riskmodel.models.registry": 6,
    "riskmodel.api": 6,
    "riskmodel.distributed": 6,
    # 7 uses of risks
    "riskmodel.screening": 7,
    "riskmodel.evaluation.evaluate": 7,
    "riskmodel.evaluation.report": 7,
    "riskmodel.evaluation.plots": 7,
    # 8 front doors
    "riskmodel.benchmarking": 8,
    "riskmodel.cli": 8,
    "riskmodel.node": 8,
    "riskmodel.serve": 8,
}

#: Modules placed by exact name only (packages whose submodules sit in different layers).
EXACT_LAYERS: dict[str, int] = {
    "riskmodel": 8,  # the package root re-exports the public names
    "riskmodel.models": 1,  # re-exports the torch-free protocol only
    "riskmodel.evaluation": 7,  # re-exports evaluate_risks / write_report
}

#: Packages the CLI must not import when it starts (they are slow or optional).
HEAVY = ("torch", "dask", "lifelines", "sksurv", "xgboost", "matplotlib")


@dataclass(frozen=True)
class Edge:
    """One internal import: ``source`` imports ``target`` at ``path:line``; ``names`` are the names taken."""

    source: str
    target: str
    path: str
    line: int
    names: tuple[str, ...] = ()


def module_name(path: Path, package_dir: Path = PACKAGE_DIR) -> str:
    """Dotted module name of a file under ``package_dir`` (``.../riskmodel/gail/__init__.py`` → ``riskmodel.gail``)."""
    parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def discover(package_dir: Path = PACKAGE_DIR) -> dict[str, Path]:
    """Every module of the package: dotted name → file."""
    return {module_name(p, package_dir): p for p in sorted(package_dir.rglob("*.py"))}


def is_type_checking(test: ast.expr) -> bool:
    """Whether an ``if`` test is ``TYPE_CHECKING`` or ``typing.TYPE_CHECKING``."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """All nodes of ``tree`` except those inside the body of an ``if TYPE_CHECKING:`` block."""
    out: list[ast.AST] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        out.append(node)
        if isinstance(node, ast.If) and is_type_checking(node.test):
            stack.extend([node.test, *node.orelse])
            continue
        stack.extend(ast.iter_child_nodes(node))
    return out


def resolve_from(module: str, is_package: bool, level: int, target: str | None) -> str:
    """Absolute module named by ``from <level dots><target> import ...`` inside ``module``."""
    if level == 0:
        return target or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> list[Edge]:
    """The internal imports of one module (runtime ones: ``TYPE_CHECKING`` blocks are skipped)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    rel = str(path.relative_to(PACKAGE_DIR.parent))
    edges: list[Edge] = []
    for node in runtime_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == ROOT or alias.name.startswith(ROOT + "."):
                    edges.append(Edge(module, alias.name, rel, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            base = resolve_from(module, is_package, node.level, node.module)
            if not (base == ROOT or base.startswith(ROOT + ".")):
                continue
            plain = [a.name for a in node.names if f"{base}.{a.name}" not in modules]
            for alias in node.names:
                if f"{base}.{alias.name}" in modules:
                    edges.append(Edge(module, f"{base}.{alias.name}", rel, node.lineno))
            if plain:
                edges.append(Edge(module, base, rel, node.lineno, tuple(plain)))
    return edges


def private_attribute_reads(module: str, path: Path, modules: dict[str, Path]) -> list[str]:
    """``alias._x`` reads where ``alias`` is bound to another internal module (``from riskmodel import api``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    aliases: dict[str, str] = {}
    for node in runtime_nodes(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname and a.name in modules:
                    aliases[a.asname] = a.name
        elif isinstance(node, ast.ImportFrom):
            base = resolve_from(module, is_package, node.level, node.module)
            for a in node.names:
                if f"{base}.{a.name}" in modules:
                    aliases[a.asname or a.name] = f"{base}.{a.name}"
    rel = str(path.relative_to(PACKAGE_DIR.parent))
    found = []
    for node in runtime_nodes(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and is_private(node.attr)
            and aliases[node.value.id] != module
        ):
            found.append(f"{rel}:{node.lineno}: reads {aliases[node.value.id]}.{node.attr}")
    return found


def _by_place(line: str) -> tuple[str, int]:
    """Sort key of a ``path:line: ...`` message: path, then line number."""
    path, _, rest = line.partition(":")
    number = rest.split(":", 1)[0]
    return path, int(number) if number.isdigit() else 0


def is_private(name: str) -> bool:
    """``_x`` is private; dunders (``__version__``) are not."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def build_graph(package_dir: Path = PACKAGE_DIR) -> tuple[dict[str, Path], list[Edge]]:
    """The modules and every internal import edge between them."""
    modules = discover(package_dir)
    edges = [e for m, p in modules.items() for e in imports_of(m, p, modules)]
    return modules, edges


def layer_of(module: str) -> int | None:
    """Layer of a module from :data:`EXACT_LAYERS`, else the longest matching prefix of :data:`LAYERS`."""
    if module in EXACT_LAYERS:
        return EXACT_LAYERS[module]
    keys = [k for k in LAYERS if module == k or module.startswith(k + ".")]
    return LAYERS[max(keys, key=len)] if keys else None


def cycles(modules: dict[str, Path], edges: list[Edge]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative), sorted."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for e in edges:
        if e.target in graph and e.target != e.source:
            graph[e.source].add(e.target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
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
                    out.append(sorted(component))
    return sorted(out)


def cycle_report(modules: dict[str, Path], edges: list[Edge]) -> list[str]:
    """One block per cycle: its modules and the imports that close it."""
    lines = []
    for component in cycles(modules, edges):
        members = set(component)
        lines.append(f"cycle of {len(component)} modules: {', '.join(component)}")
        for e in sorted({e for e in edges if e.source in members and e.target in members and e.source != e.target},
                        key=lambda e: (e.path, e.line)):
            lines.append(f"    {e.path}:{e.line}: {e.source} -> {e.target}")
    return lines


def upward_imports(modules: dict[str, Path], edges: list[Edge]) -> list[str]:
    """Modules the layer map does not place, and every import of a higher layer."""
    out = [f"{modules[m].relative_to(PACKAGE_DIR.parent)}: {m} has no layer; add it to LAYERS" for m in modules
           if layer_of(m) is None]
    for e in edges:
        src, dst = layer_of(e.source), layer_of(e.target)
        if src is not None and dst is not None and dst > src:
            out.append(f"{e.path}:{e.line}: {e.source} (layer {src}) imports {e.target} (layer {dst})")
    return sorted(out, key=_by_place)


def private_imports(modules: dict[str, Path], edges: list[Edge]) -> list[str]:
    """Private names imported from another module, and private attributes read through module aliases."""
    out = [
        f"{e.path}:{e.line}: imports {', '.join(n for n in e.names if is_private(n))} from {e.target}"
        for e in edges
        if e.target != e.source and any(is_private(n) for n in e.names)
    ]
    for m, p in modules.items():
        out.extend(private_attribute_reads(m, p, modules))
    return sorted(out, key=_by_place)


def root_imports(edges: list[Edge]) -> list[str]:
    """Imports of the package root ``riskmodel`` itself from inside the package."""
    return sorted([
        f"{e.path}:{e.line}: {e.source} imports the package root" + (f" ({', '.join(e.names)})" if e.names else "")
        for e in edges
        if e.target == ROOT and e.source != ROOT
    ], key=_by_place)


@pytest.fixture(scope="module")
def graph() -> tuple[dict[str, Path], list[Edge]]:
    return build_graph()


def _fail_if(found: list[str], what: str) -> None:
    if found:
        pytest.fail(f"{len(found)} {what}:\n" + "\n".join(found), pytrace=False)


def test_no_import_cycles(graph):
    _fail_if(cycle_report(*graph), "lines about import cycles")


def test_imports_point_down_the_layers(graph):
    _fail_if(upward_imports(*graph), "upward imports or unplaced modules (layers in tests/test_architecture.py)")


def test_no_private_names_across_modules(graph):
    _fail_if(private_imports(*graph), "private names used across modules")


def test_package_root_not_imported_inside_the_package(graph):
    _fail_if(root_imports(graph[1]), "imports of the package root")


def test_cli_starts_without_heavy_packages():
    code = (
        "import sys, riskmodel.cli\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=PACKAGE_DIR.parent)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "", f"import riskmodel.cli imported: {run.stdout.strip()}"


# The checker checks itself on a small package written to a temporary folder.

def _write(tmp_path: Path, files: dict[str, str]) -> Path:
    pkg = tmp_path / ROOT
    for rel, text in files.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text)
    return pkg


def test_checker_finds_cycles_private_names_and_root_imports(tmp_path, monkeypatch):
    pkg = _write(tmp_path, {
        "__init__.py": "",
        "schema.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from riskmodel import api\n",
        "api.py": "def f():\n    from riskmodel.fusion import hybrid\n",
        "fusion/__init__.py": "from .hybrid import H\n",
        "fusion/hybrid.py": "def g():\n    from ..api import _load\n    from .. import __version__\n",
        "gail/__init__.py": "from riskmodel import api as a\nx = a._load\n",
    })
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE_DIR", pkg)
    modules, edges = build_graph(pkg)
    assert set(modules) == {"riskmodel", "riskmodel.schema", "riskmodel.api", "riskmodel.fusion",
                            "riskmodel.fusion.hybrid", "riskmodel.gail"}
    assert cycles(modules, edges) == [["riskmodel.api", "riskmodel.fusion.hybrid"]]
    assert not [e for e in edges if e.source == "riskmodel.schema"]  # TYPE_CHECKING is exempt
    assert ("riskmodel.fusion", "riskmodel.fusion.hybrid") in {(e.source, e.target) for e in edges}
    priv = private_imports(modules, edges)
    assert any("_load from riskmodel.api" in p for p in priv)
    assert any("reads riskmodel.api._load" in p for p in priv)
    assert root_imports(edges) == ["riskmodel/fusion/hybrid.py:3: riskmodel.fusion.hybrid imports the package root "
                                   "(__version__)"]
    up = upward_imports(modules, edges)
    assert any("gail/__init__.py:1: riskmodel.gail (layer 3) imports riskmodel.api (layer 6)" in u for u in up)


def test_every_module_needs_a_layer(tmp_path, monkeypatch):
    pkg = _write(tmp_path, {"__init__.py": "", "newthing.py": "", "evaluation/__init__.py": "",
                            "evaluation/newmetric.py": ""})
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE_DIR", pkg)
    up = upward_imports(*build_graph(pkg))
    assert sorted(u.split(":")[0] for u in up) == ["riskmodel/evaluation/newmetric.py", "riskmodel/newthing.py"]
