"""Editor support: `cpf init` points editors at the schema installed with cpf, and `cpf
schema` prints (or writes) that schema, complete enough to check each step by its kind."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import fastjsonschema
import pytest
from conftest import CPF
from e2e_helpers import doc
from ruamel.yaml import YAML

from checkpointflow import shape

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").rglob("*.yaml"))


def printed_schema(cpf):
    done = subprocess.run(
        [CPF, "schema"], capture_output=True, text=True, cwd=cpf.cwd, env=cpf.env, timeout=60
    )
    assert (done.returncode, done.stderr) == (0, "")
    return json.loads(done.stdout)


def editor_check(cpf):
    """The schema as an editor uses it: the whole document at once."""
    return fastjsonschema.compile(printed_schema(cpf))


def test_init_points_editors_at_the_installed_schema(cpf):
    assert cpf("init").exit_code == 0
    first = (cpf.cwd / "checkpointflow.yaml").read_text().splitlines()[0]
    assert first.startswith("# yaml-language-server: $schema=/")
    installed = Path(first.split("$schema=", 1)[1])
    assert json.loads(installed.read_text()) == printed_schema(cpf)
    validated = cpf("validate", "-f", "checkpointflow.yaml")
    assert validated.exit_code == 0
    assert validated.envelope.get("warnings", []) == []


def test_the_starter_workflow_and_every_example_match_the_schema(cpf):
    check = editor_check(cpf)
    cpf("init")
    for path in [cpf.cwd / "checkpointflow.yaml", *EXAMPLES]:
        check(YAML(typ="safe").load(path.read_text()))


@pytest.mark.parametrize(
    "step, field",
    [
        ("{id: build, kind: cli, comand: make}", "comand"),
        ("{id: ask, kind: await_event, audience: usr, event_name: go, input_schema: {}}", "usr"),
        ("{id: loop, kind: foreach, items: x, body: [{id: b, kind: end, resul: 1}]}", "resul"),
        ("{id: x, kind: teleport}", "teleport"),
    ],
)
def test_the_schema_checks_each_step_by_its_kind(cpf, step, field):
    check = editor_check(cpf)
    document = YAML(typ="safe").load(doc(f"id: wf\nsteps:\n  - {step}"))
    with pytest.raises(fastjsonschema.JsonSchemaValueException):
        check(document)
    cpf.write("wf.yaml", doc(f"id: wf\nsteps:\n  - {step}"))
    refused = cpf("validate", "-f", "wf.yaml")  # cpf says the same, in words
    assert refused.exit_code == 10 and field in refused.envelope["error"]["message"]


def test_schema_output_writes_the_file_and_reports_it(cpf):
    written = cpf("schema", "--output", "schemas/workflow.json")
    assert written.exit_code == 0
    target = cpf.cwd / "schemas" / "workflow.json"
    assert written.envelope["result"] == {
        "file": "schemas/workflow.json",
        "modeline": f"# yaml-language-server: $schema={target}",
    }
    assert json.loads(target.read_text()) == printed_schema(cpf)
    assert cpf("schema", "-o", "schemas/workflow.json").exit_code == 0  # refreshed in place


def test_the_schema_knows_every_kind_cpf_runs(cpf):
    definitions = printed_schema(cpf)["definitions"]
    assert definitions["step"]["properties"]["kind"]["enum"] == list(shape.KINDS)
    assert {f"{kind}_step" for kind in shape.KINDS} <= set(definitions)
