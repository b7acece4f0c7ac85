"""The pure core imports nothing that reaches the outside world, and dependencies point one way."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "checkpointflow"
PURE_MODULES = [
    "interpreter",
    "expressions",
    "model",
    "state",
    "shell",
    "launch",
    "verdicts",
    "timestamps",
    "syntax",
    "interpolation",
    "flow",
    "tokens",
    "workflow_outputs",
    "addresses",
    "schema_words",
    "schema_walk",
    "text_format",  # not core, but a pure function of the envelope all the same
    "divergence",  # not core: tells one history from two in a log's bytes, without I/O
    "persistent",
]
FORBIDDEN = {
    "os",
    "subprocess",
    "time",
    "random",
    "socket",
    "pathlib",
    "datetime",
    "secrets",
    "fcntl",
    "checkpointflow.driver",
    "checkpointflow.store",
    "checkpointflow.effects",
    "checkpointflow.cli",
    "checkpointflow.engine",
}


def imported_modules(module: str) -> set[str]:
    """Every module named by an import anywhere in the file (also inside functions)."""
    path = PACKAGE / f"{module}.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against the package
                base = "checkpointflow"
                names.add(f"{base}.{node.module}" if node.module else base)
                if not node.module:
                    names.update(f"{base}.{alias.name}" for alias in node.names)
                continue
            assert node.module is not None
            names.add(node.module)
            # `from checkpointflow import driver` imports the module checkpointflow.driver
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name | ast.Attribute)
            and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr)
            in ("__import__", "import_module")
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names.add(str(node.args[0].value))
    return names


def forbidden_in(names: set[str], forbidden: set[str]) -> set[str]:
    return {
        name
        for name in names
        if any(name == bad or name.startswith(bad + ".") for bad in forbidden)
    }


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_module_imports_nothing_with_side_effects(module: str) -> None:
    names = imported_modules(module)
    assert forbidden_in(names, FORBIDDEN) == set(), f"{module}.py imports {names}"


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_module_only_imports_pure_project_modules(module: str) -> None:
    allowed = {f"checkpointflow.{name}" for name in PURE_MODULES} | {
        "checkpointflow.errors",
        "checkpointflow.json_schema",
    }
    project = {
        name
        for name in imported_modules(module)
        if name.startswith("checkpointflow.")  # the bare package comes with `from . import x`
    }
    # `from checkpointflow.x import Name` also yields "checkpointflow.x.Name"; keep modules.
    modules = {".".join(name.split(".")[:2]) for name in project}
    assert modules <= allowed, f"{module}.py imports {sorted(modules - allowed)}"


def test_interpreter_does_not_import_document_or_driver() -> None:
    names = imported_modules("interpreter")
    assert forbidden_in(names, {"checkpointflow.document", "checkpointflow.driver"}) == set()


@pytest.mark.parametrize("module", ["expressions", "model", "state", "shell"])
def test_lower_layers_do_not_import_the_interpreter(module: str) -> None:
    names = imported_modules(module)
    assert forbidden_in(names, {"checkpointflow.interpreter"}) == set()


def test_the_expression_language_depends_on_no_other_project_module() -> None:
    language = {"checkpointflow.syntax", "checkpointflow.tokens", "checkpointflow.interpolation"}
    for module in ("expressions", "syntax", "interpolation", "tokens"):
        names = imported_modules(module)
        outside = {
            n
            for n in names
            if n.startswith("checkpointflow") and ".".join(n.split(".")[:2]) not in language
        }
        assert not outside, (module, outside)


def test_the_checker_sees_imports() -> None:
    # The helper must find imports in every form, or the tests above could never fail.
    names = imported_modules("flow")
    assert "checkpointflow.expressions" in names
    assert "checkpointflow.state" in names
    assert forbidden_in({"os.path", "time", "timeit"}, {"os", "time"}) == {"os.path", "time"}
