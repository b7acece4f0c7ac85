"""`cpf flows`: workflow files found in ./.checkpointflow/ and ~/.checkpointflow/flows/."""

from __future__ import annotations

import json
import shlex

import pytest
from e2e_helpers import doc

GREET = """
id: greet
name: Greeter
version: 2
description: Says hello.
inputs:
  type: object
  required: [name, times]
  properties:
    name: {type: string}
    times: {type: integer, default: 1}
steps:
  - id: hello
    kind: cli
    command: echo "hello ${inputs.name}"
  - id: done
    kind: end
"""


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "home"
    (home / ".checkpointflow" / "flows").mkdir(parents=True)
    return home


def flows(cpf, home, *args):
    return cpf("flows", *args, env={"HOME": str(home)})


def test_no_folders_no_flows(cpf, tmp_path):
    result = cpf("flows", env={"HOME": str(tmp_path / "nowhere")})
    assert result.exit_code == 0 and result.envelope["result"]["flows"] == []


def test_lists_project_then_user_flows(cpf, home):
    cpf.write(".checkpointflow/greet.yaml", doc(GREET))
    (home / ".checkpointflow" / "flows" / "other.yml").write_text(
        doc("id: other\nsteps:\n  - id: x\n    kind: end\n")
    )
    cpf.write(".checkpointflow/notes.txt", "not a flow")
    cpf.write(".checkpointflow/deeper/hidden.yaml", doc(GREET))
    listed = flows(cpf, home).envelope["result"]["flows"]
    assert [flow["id"] for flow in listed] == ["greet", "other"]
    assert listed[0] == {
        "id": "greet",
        "name": "Greeter",
        "version": "2",
        "description": "Says hello.",
        "path": str(cpf.cwd / ".checkpointflow" / "greet.yaml"),
        "valid": True,
        "error": None,
    }


def test_invalid_files_are_listed_never_fatal(cpf, home):
    cpf.write(".checkpointflow/a_broken.yaml", "schema_version: [oops\n")
    cpf.write(".checkpointflow/b_wrong.yaml", doc("id: wrong\nsteps:\n  - id: x\n    kind: cli\n"))
    cpf.write(".checkpointflow/c_greet.yaml", doc(GREET))
    cpf.write(".checkpointflow/d_binary.yaml", "")
    (cpf.cwd / ".checkpointflow" / "d_binary.yaml").write_bytes(b"\xff\xfe")
    result = flows(cpf, home)
    assert result.exit_code == 0
    listed = {flow["path"].rsplit("/", 1)[1]: flow for flow in result.envelope["result"]["flows"]}
    assert (
        listed["a_broken.yaml"]["valid"] is False
        and "invalid YAML" in listed["a_broken.yaml"]["error"]
    )
    assert listed["b_wrong.yaml"]["valid"] is False and listed["b_wrong.yaml"]["id"] == "wrong"
    assert "command" in listed["b_wrong.yaml"]["error"]
    assert listed["c_greet.yaml"]["valid"] is True
    assert "UTF-8" in listed["d_binary.yaml"]["error"]


def test_detail_shows_inputs_steps_and_a_command_that_runs(cpf, home):
    cpf.write(".checkpointflow/greet.yaml", doc(GREET))
    result = flows(cpf, home, "--detail", "greet")
    detail = result.envelope["result"]
    assert detail["inputs"]["required"] == ["name", "times"]
    assert detail["steps"] == [
        {"id": "hello", "kind": "cli", "name": None},
        {"id": "done", "kind": "end", "name": None},
    ]
    words = shlex.split(detail["run_command"])
    assert words[:4] == ["cpf", "run", "-f", str(cpf.cwd / ".checkpointflow" / "greet.yaml")]
    assert json.loads(words[5]) == {"name": "...", "times": 1}
    ran = cpf(*words[1:])
    assert ran.exit_code == 0


def test_nearest_flow_wins(cpf, home):
    cpf.write(".checkpointflow/greet.yaml", doc(GREET))
    (home / ".checkpointflow" / "flows" / "greet.yaml").write_text(
        doc(GREET.replace("Greeter", "Far"))
    )
    assert flows(cpf, home, "--detail", "greet").envelope["result"]["name"] == "Greeter"


def test_detail_of_unknown_or_invalid_flow(cpf, home):
    missing = flows(cpf, home, "--detail", "nope")
    assert missing.exit_code == 10 and missing.error_code == "ERR_FLOW_NOT_FOUND"
    cpf.write(".checkpointflow/wrong.yaml", doc("id: wrong\nsteps:\n  - id: x\n    kind: cli\n"))
    invalid = flows(cpf, home, "--detail", "wrong")
    assert invalid.exit_code == 10 and invalid.error_code == "ERR_VALIDATION_WORKFLOW"
    assert "wrong.yaml" in invalid.envelope["error"]["message"]


def test_run_a_flow_by_id(cpf, home):
    cpf.write(".checkpointflow/greet.yaml", doc(GREET))
    result = cpf("run", "greet", "--input", '{"name": "Ada", "times": 2}', env={"HOME": str(home)})
    assert result.exit_code == 0 and result.envelope["workflow_id"] == "greet"
    missing = cpf("run", "nope", env={"HOME": str(home)})
    assert (missing.exit_code, missing.error_code) == (10, "ERR_FLOW_NOT_FOUND")


@pytest.mark.parametrize("args", [(), ("greet", "-f", "x.yaml")])
def test_run_needs_exactly_one_of_a_file_or_a_flow_id(cpf, home, args):
    result = cpf("run", *args, env={"HOME": str(home)})
    assert (result.exit_code, result.error_code) == (10, "ERR_USAGE")
