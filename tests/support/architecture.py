"""The architecture guard: Flywheel's import rules, checked on the source tree.

The rules (DESIGN.md, "Inside pipelines/"):

- no import cycle between modules (imports inside functions count);
- ``common`` imports no other package of ``pipelines``;
- a package imports another package only through its public API: the names listed in that package's
  ``__all__`` (``from pipelines.featurize import Window``), or a public module listed there
  (``from pipelines.evaluate.metrics import ranking_metrics``), never its other internals;
- no package but the CLI imports ``demo`` (the tools for trying Flywheel), except the operations tooling
  (``stack``: the production topology, built on demo's services); no stage imports ``stack`` either;
- nothing imports ``airflow``;
- the Airflow integration (``plugins/``, ``dags/``) is product too: it never imports ``demo`` or ``stack``.

The checker reads the source with :mod:`ast` (nothing is imported) and says, per violation, the file and
line, what it imports, and how to fix it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

TOP = "pipelines"
APPLICATION = ("cli", "__main__")  # the command line: it wires the packages together, demo tools included
TOOLS = ("stack",)  # operations tooling: starts Flywheel's production topology with demo's services


@dataclass(frozen=True)
class Import:
    """One imported name: ``module`` is where it is looked up, ``name`` the name (None for ``import x``)."""

    source: str  # the importing module
    path: Path
    line: int
    module: str
    name: str | None
    type_only: bool = False  # under ``if TYPE_CHECKING:``: never executed, so it can close no cycle


def module_name(root: Path, path: Path) -> str:
    """``pipelines.train.stage`` for ``<root>/pipelines/train/stage.py``; packages are their ``__init__``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path) -> dict[str, Path]:
    """Every module of the ``pipelines`` tree under ``root``, by dotted name."""
    return {module_name(root, p): p for p in sorted((root / TOP).rglob("*.py"))}


def _resolve_relative(source: str, is_package: bool, level: int, module: str | None) -> str:
    base = source.split(".") if is_package else source.split(".")[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, module] if module else base)


def imports(name: str, path: Path) -> Iterator[Import]:
    """The imports of one module, at any depth (function-level imports included)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    type_only = {id(n) for block in ast.walk(tree) if _is_type_checking(block) for n in ast.walk(block)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(name, path, node.lineno, alias.name, None, id(node) in type_only)
        elif isinstance(node, ast.ImportFrom):
            target = node.module or ""
            if node.level:
                target = _resolve_relative(name, path.name == "__init__.py", node.level, node.module)
            for alias in node.names:
                yield Import(name, path, node.lineno, target, alias.name, id(node) in type_only)


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def public_api(path: Path) -> dict[str, str]:
    """A package's public names and the submodule each comes from (``_API`` in its ``__init__``).

    A package without ``_API`` exposes what its ``__all__`` lists, from the ``__init__`` itself.
    """
    tree = ast.parse(path.read_text())
    api: dict[str, str] = {}
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            target = node.targets[0].id
            if target == "_API" and isinstance(node.value, ast.Dict):
                api = {
                    ast.literal_eval(k): ast.literal_eval(v)
                    for k, v in zip(node.value.keys, node.value.values, strict=True)
                }
            elif target == "__all__":
                names = list(ast.literal_eval(node.value))
    return api or {n: "" for n in names}


def package_of(module: str) -> str:
    """The first-level package of a module (``train`` for ``pipelines.train.loop``; ``cli`` for the CLI)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


class Graph:
    """The import graph of a tree, with each import resolved to the module that defines the name."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.modules = modules(root)
        self.apis = {m: public_api(p) for m, p in self.modules.items() if p.name == "__init__.py"}
        self.imports = [i for m, p in self.modules.items() for i in imports(m, p)]

    def target(self, imp: Import) -> str | None:
        """The ``pipelines`` module an import loads its name from (None outside ``pipelines``)."""
        if imp.module != TOP and not imp.module.startswith(TOP + "."):
            return None
        if imp.name is not None and f"{imp.module}.{imp.name}" in self.modules:
            return f"{imp.module}.{imp.name}"
        api = self.apis.get(imp.module, {})
        if imp.name in api and api[imp.name]:
            return f"{imp.module}.{api[imp.name]}"
        return imp.module

    def edges(self) -> dict[str, set[str]]:
        """``module -> modules it imports`` within ``pipelines``; lazy package APIs add no edge."""
        graph: dict[str, set[str]] = {m: set() for m in self.modules}
        for imp in self.imports:
            if imp.type_only:
                continue
            target = self.target(imp)
            if target is not None and target in self.modules and target != imp.source:
                graph[imp.source].add(target)
        return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _where(root: Path, imp: Import) -> str:
    return f"{imp.path.relative_to(root)}:{imp.line}"


def _shown(imp: Import) -> str:
    return f"{imp.module}.{imp.name}" if imp.name else imp.module


def boundary_violations(graph: Graph) -> list[str]:
    """Imports that break the package rules, each with how to fix it."""
    found = []
    for imp in graph.imports:
        where, shown = _where(graph.root, imp), _shown(imp)
        if imp.module == "airflow" or imp.module.startswith("airflow."):
            found.append(
                f"{where} imports {shown}: pipelines/ must not import airflow; put the Airflow wiring "
                "in dags/ or plugins/flywheel_provider/"
            )
            continue
        target = graph.target(imp)
        if target is None:
            continue
        source_pkg, target_pkg = package_of(imp.source), package_of(target)
        if source_pkg == target_pkg or not target_pkg or target_pkg in APPLICATION:
            continue
        if source_pkg == "common":
            found.append(
                f"{where} imports {shown}: common imports no other package; move what it needs "
                "into common, or the caller into the package that owns it"
            )
        elif target_pkg in ("demo", *TOOLS) and source_pkg not in (*APPLICATION, *TOOLS):
            found.append(
                f"{where} imports {shown}: {target_pkg} holds the tools for trying or running Flywheel "
                "and is never imported by a stage; move what is needed into the stage or common"
            )
        elif target_pkg not in ("common", "demo") and not _public(graph, imp, target_pkg):
            api = sorted(graph.apis.get(f"{TOP}.{target_pkg}", {}))
            found.append(
                f"{where} imports {shown}, an internal of {TOP}.{target_pkg}; import a public name "
                f"from {TOP}.{target_pkg} (its __all__: {api}), or add the name to its _API and "
                "__all__ if other packages are meant to use it"
            )
    return found


def _public(graph: Graph, imp: Import, package: str) -> bool:
    """Whether an import of another package uses its public API (a name or a public module)."""
    api = graph.apis.get(f"{TOP}.{package}", {})
    parts = imp.module.split(".")
    if parts == [TOP]:  # from pipelines import <package>: the package and its public API
        return imp.name == package
    if len(parts) == 2:  # from pipelines.<package> import name / import pipelines.<package>
        return imp.name is None or imp.name in api
    module = ".".join(parts[:3])
    return len(parts) == 3 and parts[2] in api and module in graph.modules  # a public module


INTEGRATION = ("plugins", "dags")  # the Airflow side of the product


def integration_violations(root: Path) -> list[str]:
    """Imports of the tools for trying or running Flywheel (``demo``, ``stack``) from plugins/ or dags/."""
    found = []
    for folder in INTEGRATION:
        for path in sorted((root / folder).rglob("*.py")):
            for imp in imports(str(path.relative_to(root)), path):
                target = imp.module if imp.module != TOP else f"{TOP}.{imp.name}"
                if package_of(target) in ("demo", *TOOLS) and target.startswith(TOP + "."):
                    found.append(
                        f"{_where(root, imp)} imports {_shown(imp)}: the Airflow integration is product and "
                        f"{package_of(target)} holds the tools for trying or running Flywheel; move what it "
                        "needs into pipelines.common or a stage"
                    )
    return found


def check(root: Path) -> list[str]:
    """Every violation of the import rules in the tree under ``root``, as fix-it messages."""
    graph = Graph(root)
    problems = boundary_violations(graph) + integration_violations(root)
    cycle = find_cycle(graph.edges())
    if cycle:
        problems.append(
            "import cycle: " + " -> ".join(cycle) + "; break it by moving the shared code down "
            "into the module both use (or into common), never by importing inside a function"
        )
    return problems
