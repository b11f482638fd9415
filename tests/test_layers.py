"""The package's layers: every import points down (or sideways within a layer), never up, and
modules never import each other in a cycle.

Ranks, lowest first: the package root and ``_version``; ``data``; ``model``; ``inference`` and
``evaluation`` (side by side, and neither imports the other); ``training``; ``cli`` and ``ray``
(the Ray engine, :mod:`fakedet.ray`, beside it). A module
may import from its own rank or below. Every ``fakedet`` import counts, absolute or relative,
at module level or inside a function; only the root's lazy public API (the imports inside
``fakedet/__init__.py``'s functions) may point up, and ``from fakedet import Detector``
elsewhere counts as an import of the module that defines ``Detector``.
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "fakedet"
SRC = Path(__file__).resolve().parents[1] / "src" / PACKAGE

# first part of the module name below the package -> rank
RANKS = {
    "": 0,  # the package root
    "_version": 0,
    "_interrupt": 0,  # the entry point's interruption check, import-free
    "_parts": 0,  # temporary files renamed onto their target (explain's PNGs, parquet), import-free
    "data": 1,
    "model": 2,
    "inference": 3,
    "evaluation": 3,
    "training": 4,
    "cli": 5,
    "__main__": 5,  # ``python -m fakedet``: the CLI's entry point
    "ray": 5,  # ``fakedet.ray``: the Ray engine and its Python entry point, beside the CLI
}
APART = {frozenset({"inference", "evaluation"})}  # same rank, but must not import each other


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module (the deepest name that is a module of the package)
    line: int
    module_level: bool  # executed on import (not inside a function)
    lazy_api: bool = False  # inside a function of the package root (its lazy public API)


def modules(root: Path) -> dict[str, Path]:
    """Module name -> file, for every .py file of the package at ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _resolve(name: str, known: dict[str, Path]) -> str:
    """The deepest prefix of ``name`` that is a module of the package."""
    parts = name.split(".")
    while parts and ".".join(parts) not in known:
        parts.pop()
    return ".".join(parts)


class _Walker(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool, known: dict[str, Path]):
        self.module, self.known = module, known
        self.package = module if is_package else module.rpartition(".")[0]
        self.depth = 0  # function nesting
        self.found: list[Import] = []

    def _add(self, target: str, line: int) -> None:
        if target == PACKAGE or target.startswith(PACKAGE + "."):
            self.found.append(Import(self.module, _resolve(target, self.known), line, self.depth == 0,
                                     lazy_api=self.module == PACKAGE and self.depth > 0))

    def visit_FunctionDef(self, node):
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef
    visit_Lambda = visit_FunctionDef

    def visit_If(self, node):
        test = node.test
        if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
                isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"):
            self.depth += 1  # never executed: no cycle, but the layers still count
            for child in node.body:
                self.visit(child)
            self.depth -= 1
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node):
        for alias in node.names:
            self._add(alias.name, node.lineno)

    def visit_ImportFrom(self, node):
        if node.level:
            base = self.package.split(".")
            if node.level > 1:
                base = base[: len(base) - (node.level - 1)]
            base_name = ".".join(base + ([node.module] if node.module else []))
        else:
            base_name = node.module or ""
        for alias in node.names:
            full = f"{base_name}.{alias.name}"
            # ``from pkg import mod`` imports the module; ``from mod import name`` the module
            self._add(full if full in self.known else base_name, node.lineno)


def imports(root: Path) -> list[Import]:
    """Every import of a package module by a package module, with the root's lazy public API
    (``from fakedet import Detector``) resolved to the modules that define the names."""
    known = modules(root)
    found: list[Import] = []
    for name, path in known.items():
        walker = _Walker(name, path.name == "__init__.py", known)
        walker.visit(ast.parse(path.read_text(encoding="utf-8"), str(path)))
        found += walker.found
    # the names the root provides lazily, and where they come from
    lazy = {}
    root_init = known.get(PACKAGE)
    if root_init is not None:
        for node in ast.walk(ast.parse(root_init.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                for alias in node.names:
                    lazy[alias.asname or alias.name] = _resolve(node.module, known)
    resolved = []
    for imp in found:
        if imp.target == PACKAGE and imp.source != PACKAGE:
            names = _names_imported_from_root(known[imp.source], imp.line)
            targets = {lazy[n] for n in names if n in lazy} or {PACKAGE}
            resolved += [Import(imp.source, t, imp.line, imp.module_level) for t in sorted(targets)]
        else:
            resolved.append(imp)
    return resolved


def _names_imported_from_root(path: Path, line: int) -> list[str]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.lineno == line and node.module == PACKAGE:
            return [a.name for a in node.names]
    return []


def layer(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def layer_problems(found: list[Import]) -> list[str]:
    problems = []
    for imp in found:
        if imp.lazy_api:
            continue
        a, b = layer(imp.source), layer(imp.target)
        for name in (a, b):
            if name not in RANKS:
                problems.append(f"{imp.source}: {PACKAGE}.{name} has no layer (add it to RANKS in {__name__})")
        if a not in RANKS or b not in RANKS:
            continue
        where = f"{imp.source} (line {imp.line}) imports {imp.target}"
        if RANKS[b] > RANKS[a]:
            problems.append(f"{where}: an import up a layer ({a or 'root'} {RANKS[a]} -> {b} {RANKS[b]})")
        elif frozenset({a, b}) in APART:
            problems.append(f"{where}: {a} and {b} must not import each other")
    return sorted(set(problems))


def cycles(found: list[Import]) -> list[list[str]]:
    """Module-level import cycles: the strongly connected components of more than one module
    (or of one that imports itself)."""
    graph: dict[str, set[str]] = {}
    for imp in found:
        if imp.module_level:
            graph.setdefault(imp.source, set()).add(imp.target)
            graph.setdefault(imp.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out = []

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
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
            if len(comp) > 1 or v in graph[v]:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


# ----------------------------------------------------------------------------- the package
def test_every_import_points_down_a_layer():
    found = imports(SRC)
    assert len(found) > 20  # the walk found the package's imports
    assert layer_problems(found) == []


def test_no_import_cycles_between_modules():
    assert cycles(imports(SRC)) == []


def test_every_module_has_a_layer_and_says_so_first():
    for name, path in modules(SRC).items():
        assert layer(name) in RANKS, f"{name}: add its folder to RANKS"
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        assert doc and doc.strip(), f"{name} has no docstring saying what it is"


# ----------------------------------------------------------------------------- the checker itself
def _write(root: Path, files: dict[str, str]) -> Path:
    pkg = root / PACKAGE
    for rel, text in files.items():
        path = pkg / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return pkg


@pytest.fixture
def fake_package(tmp_path):
    return _write(tmp_path, {
        "__init__.py": """
            def __getattr__(name):
                from fakedet.inference.detector import Detector
                return Detector
        """,
        "_version.py": "",
        "data/__init__.py": "",
        "data/decode.py": """
            def f():
                from ..model import config  # relative, inside a function, and up
        """,
        "data/sources.py": "from fakedet import Detector  # the lazy API: really inference\n",
        "model/__init__.py": "",
        "model/config.py": "from fakedet.data import decode\n",
        "inference/__init__.py": "",
        "inference/detector.py": "from . import pipeline\nimport fakedet.evaluation.report\n",
        "inference/pipeline.py": "from fakedet.inference.detector import Detector\n",
        "evaluation/__init__.py": "",
        "evaluation/report.py": """
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from fakedet.cli import main
        """,
        "cli/__init__.py": "from fakedet.inference import detector\nfrom fakedet import Detector\n",
        "extras/__init__.py": "from fakedet.data import decode\n",
    })


def test_the_checker_finds_each_kind_of_problem(fake_package):
    found = imports(fake_package)
    problems = "\n".join(layer_problems(found))
    assert "fakedet.data.decode (line 3) imports fakedet.model.config: an import up a layer" in problems
    assert "fakedet.data.sources (line 1) imports fakedet.inference.detector: an import up" in problems
    assert "fakedet.inference.detector (line 2) imports fakedet.evaluation.report: inference and " \
           "evaluation must not import each other" in problems
    assert "fakedet.evaluation.report (line 4) imports fakedet.cli: an import up" in problems
    assert "fakedet.extras has no layer" in problems
    assert "fakedet (line" not in problems  # the root's lazy API may point up
    assert "fakedet.cli (line" not in problems  # the top may import anything
    assert "fakedet.model.config (line" not in problems  # down is fine
    # inference.detector <-> inference.pipeline at module level; not data.decode <-> model.config,
    # whose one direction runs only when a function is called
    assert cycles(found) == [["fakedet.inference.detector", "fakedet.inference.pipeline"]]


def test_the_cli_uses_only_public_names_of_the_layers_below():
    """No ``from fakedet.inference.x import _private`` and no ``detector._private`` in the CLI."""
    problems = []
    for name, path in modules(SRC).items():
        if layer(name) != "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PACKAGE + ".") \
                    and not node.module.startswith(PACKAGE + ".cli"):
                problems += [f"{name}:{node.lineno} imports {node.module}.{a.name}"
                             for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
            elif isinstance(node, ast.Attribute) and node.attr.startswith("_") \
                    and not node.attr.startswith("__") \
                    and not (isinstance(node.value, ast.Name) and node.value.id == "os"):  # os._exit
                problems.append(f"{name}:{node.lineno} uses .{node.attr}")
    assert problems == []


EXPERIMENTS = SRC.parents[1] / "experiments"


def sibling_imports(folder: Path) -> list[str]:
    """``file:line imports name`` for each import, at any depth, of another script in ``folder``."""
    names = {p.stem for p in folder.glob("*.py")}
    found = []
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module.split(".")[0]]
            found += [f"{path.name}:{node.lineno} imports {t}" for t in targets if t in names and t != path.stem]
    return found


def test_experiments_never_import_each_other():
    """README: the scripts in experiments/ are thin drivers of the package; what two of them
    share belongs in the package (or in one script with two steps)."""
    if not EXPERIMENTS.is_dir():
        pytest.skip("not a source checkout")
    assert sibling_imports(EXPERIMENTS) == []


def test_the_experiments_check_finds_a_sibling_import(tmp_path):
    (tmp_path / "a.py").write_text("import numpy\n")
    (tmp_path / "b.py").write_text("def f():\n    import a\n")
    assert sibling_imports(tmp_path) == ["b.py:2 imports a"]
