"""Start-up cost: cheap commands import no YAML or JSON Schema code; checks are cached."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("ruamel", "fastjsonschema")


def imported_modules(cpf, *args: str) -> set[str]:
    """Module names a `python -m checkpointflow ...` process imported."""
    process = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "checkpointflow", *args],
        capture_output=True,
        text=True,
        cwd=cpf.cwd,
        env=cpf.env,
        check=False,
    )
    lines = [line for line in process.stderr.splitlines() if line.startswith("import time:")]
    return {line.rsplit("|", 1)[-1].strip() for line in lines}


@pytest.mark.parametrize("args", [("--version",), ("--help",), ("guide",), ("status", "--help")])
def test_cheap_commands_import_neither_yaml_nor_schema_code(cpf, args):
    modules = imported_modules(cpf, *args)
    assert "click" in modules  # the measurement works
    assert not {m for m in modules if m.startswith(HEAVY)}


def test_second_run_of_a_workflow_skips_yaml_and_schema_compiler(cpf):
    cpf.write(
        "flow.yaml",
        "schema_version: checkpointflow/v1\n"
        "workflow:\n"
        "  id: cached\n"
        "  inputs: {type: object, required: [n], properties: {n: {type: integer}}}\n"
        "  steps:\n"
        "    - id: show\n"
        "      kind: cli\n"
        "      command: echo ${inputs.n}\n",
    )
    first = imported_modules(cpf, "run", "-f", "flow.yaml", "--input", '{"n": 1}')
    assert {m for m in first if m.startswith(HEAVY)}  # the first run parses and compiles
    second = imported_modules(cpf, "run", "-f", "flow.yaml", "--input", '{"n": 2}')
    assert "checkpointflow.driver" in second
    assert not {m for m in second if m.startswith(HEAVY)}
    assert len(list((cpf.root / "runs").iterdir())) == 2
    assert list((cpf.root / "cache" / "schemas").iterdir())


def test_editing_the_workflow_is_noticed_despite_the_cache(cpf):
    path = cpf.write(
        "flow.yaml",
        "schema_version: checkpointflow/v1\nworkflow:\n  id: a\n  steps:\n"
        "    - {id: one, kind: end, result: first}\n",
    )
    assert cpf("run", "-f", "flow.yaml").envelope["result"] == "first"
    path.write_text(path.read_text().replace("result: first", "result: second"))
    assert cpf("run", "-f", "flow.yaml").envelope["result"] == "second"
    path.write_text(path.read_text().replace("kind: end", "kind: nope"))
    assert cpf("run", "-f", "flow.yaml").error_code == "ERR_VALIDATION_WORKFLOW"
