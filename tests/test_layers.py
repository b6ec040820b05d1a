"""The package's layering (docs/architecture.md): a module imports only from its own layer or
below, the import graph has no cycle, and no function imports a package module. An import
declared at module level and executed on first use (``deferred("mixedmodels.x")``) counts as
an import of its module.

The imports are read from the source (ast), not executed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "mixedmodels"

# bottom (0) to top; a module's layer is that of its subpackage, or of its own name at the top
LAYERS = {
    "errors": 0, "datasets": 0, "validate": 0, "threads": 0, "deferred": 0,
    "formula": 1,
    "design": 2,
    "covariance": 3, "linalg": 3, "parallel": 3,
    "core": 4,
    "lmm": 5,
    "inference": 6, "diagnostics": 6, "partitioned": 6,
    "output": 7,
    "result": 8, "partitioned_result": 8, "api": 8, "gauge": 8, "cli": 8, "__init__": 8,
    "__main__": 8,
}


def _modules() -> dict[str, Path]:
    """Dotted module name (relative to the package, '' for its __init__) -> file."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _layer(module: str) -> int:
    head = module.split(".")[0] if module else "__init__"
    assert head in LAYERS, f"module {module!r} belongs to no layer: add it to LAYERS"
    return LAYERS[head]


def _is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def _resolve(module: str, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The package modules an import statement names (empty for third-party imports)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names if alias.name.split(".")[0] == "mixedmodels"]
        return [name.removeprefix("mixedmodels").lstrip(".") for name in names]
    if node.level == 0:
        if not (node.module or "").startswith("mixedmodels"):
            return []
        base = node.module.removeprefix("mixedmodels").lstrip(".")
    else:
        here = module.split(".") if module else []
        package = here if module == "" or _is_package(module) else here[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join(package + ([node.module] if node.module else []))
    targets = []
    for alias in node.names:
        candidate = f"{base}.{alias.name}" if base else alias.name
        targets.append(candidate if candidate in MODULES else base)
    return targets


def _nested(tree: ast.AST, kinds) -> set[int]:
    """ids of the nodes inside nodes of the given kinds."""
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, kinds):
            inside.update(id(inner) for inner in ast.walk(node) if inner is not node)
    return inside


def _imports(module: str):
    """(target, line, at module level, executed) for each package import in a module; imports
    under ``if TYPE_CHECKING:`` (annotations only) are not executed."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    function_level = _nested(tree, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
    typing_only = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only.update(id(inner) for inner in ast.walk(node))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for target in _resolve(module, node):
                yield (target, node.lineno, id(node) not in function_level,
                       id(node) not in typing_only)
        elif _is_deferred(node):
            target = node.args[0].value.removeprefix("mixedmodels").lstrip(".")
            yield target, node.lineno, id(node) not in function_level, True


def _is_deferred(node: ast.AST) -> bool:
    """A call ``deferred("mixedmodels....")``: an import executed on first use."""
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == "deferred" and len(node.args) == 1
            and isinstance(node.args[0], ast.Constant)
            and str(node.args[0].value).startswith("mixedmodels"))


GRAPH = {module: sorted({t for t, _, top, executed in _imports(module)
                         if top and executed and t != module})
         for module in MODULES}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_upward_import(module):
    upward = [f"line {line}: {target}" for target, line, _, _ in _imports(module)
              if _layer(target) > _layer(module)]
    assert not upward, f"{module or '__init__'} imports from a higher layer: {upward}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_function_level_import(module):
    inner = [f"line {line}: {target}" for target, line, top, _ in _imports(module)
             if not top]
    assert not inner, f"{module or '__init__'} imports package modules inside functions: {inner}"


def test_deferred_imports_are_seen_and_exist():
    """The checks see the deferred imports, which name modules of the package: the facade's
    of the layers a fit does not use, and the package's of its applications."""
    deferred = {target for module in MODULES for target in _deferred_targets(module)}
    assert deferred <= set(MODULES), deferred - set(MODULES)
    assert {"inference.fixed_tests", "output.display", "partitioned_result", "gauge"} <= deferred
    assert "inference.fixed_tests" in GRAPH["result"] and "partitioned_result" in GRAPH["api"]


def _deferred_targets(module: str) -> list[str]:
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    return [node.args[0].value.removeprefix("mixedmodels.") for node in ast.walk(tree)
            if _is_deferred(node)]


def test_the_package_names_loaded_on_first_use():
    """``mm.gauge_rr``, ``mm.write_report`` and the Dask classes (PEP 562) are listed in the
    package's namespace and are the objects of their modules."""
    import mixedmodels

    for name in mixedmodels._DEFERRED:
        assert name in mixedmodels.__all__ and name in dir(mixedmodels)
        assert getattr(mixedmodels, name).__name__ == name
    assert mixedmodels.plots.caterpillar.__module__ == "mixedmodels.output.plots"


def test_no_import_cycle():
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(module: str):
        state[module] = 1
        stack.append(module)
        for target in GRAPH[module]:
            if state.get(target) == 1:
                cycle = stack[stack.index(target):] + [target]
                pytest.fail("import cycle: " + " -> ".join(m or "__init__" for m in cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(MODULES):
        if module not in state:
            visit(module)


def test_the_checks_see_the_imports():
    """The parser finds what it must: an upward import would be seen (guards the test)."""
    assert "lmm.model" in GRAPH["result"]
    assert "core.optimize" in GRAPH["lmm.model"]
    assert _layer("output.display") > _layer("inference.profile") > _layer("lmm.fitted")
