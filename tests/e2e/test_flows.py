"""`cpf flows`: workflow files found in ./.checkpointflow/, ~/.checkpointflow/flows/ and
~/.checkpointflow/, by id or name."""

from __future__ import annotations

import json
import shlex

import pytest
from conftest import Cpf
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


# --- the user's flows, names and ambiguity -------------------------------------------


def plain(flow_id: str, name: str | None = None) -> str:
    named = f"name: {name}\n" if name else ""
    return doc(
        f"id: {flow_id}\n{named}steps:\n  - id: done\n    kind: end\n    result: {flow_id}\n"
    )


def test_the_top_of_the_users_folder_holds_flows_but_not_its_runs(cpf, home):
    """~/.checkpointflow/ is where checkpointflow 1.x keeps flows, and also the default
    state root: only the files at its top count, never those under runs/ or cache/."""
    user = home / ".checkpointflow"
    (user / "legacy.yaml").write_text(plain("legacy", "Legacy Flow"))
    (user / "flows" / "modern.yml").write_text(plain("modern"))
    for inner in ("runs/20260101T000000000Z-0123456789", "cache/documents"):
        (user / inner).mkdir(parents=True)
        (user / inner / "workflow.yaml").write_text(plain("not_a_flow"))
    cpf.write(".checkpointflow/local.yaml", plain("local"))
    result = flows(cpf, home).envelope["result"]
    assert [flow["id"] for flow in result["flows"]] == ["local", "modern", "legacy"]
    assert result["folders"] == [
        str(cpf.cwd / ".checkpointflow"),
        str(user / "flows"),
        str(user),
    ]
    ran = cpf("run", "legacy", env={"HOME": str(home)})
    assert (ran.exit_code, ran.envelope["result"]) == (0, "legacy")


def test_a_flow_is_named_by_its_id_or_its_name_ignoring_case(cpf, home):
    (home / ".checkpointflow" / "greet.yaml").write_text(doc(GREET))
    by_name = flows(cpf, home, "--detail", "greeter")
    assert (by_name.exit_code, by_name.envelope["result"]["id"]) == (0, "greet")
    assert flows(cpf, home, "--detail", "GREET").envelope["result"]["id"] == "greet"
    ran = cpf("run", "GREETER", "--input", '{"name": "Ada", "times": 1}', env={"HOME": str(home)})
    assert (ran.exit_code, ran.envelope["workflow_id"]) == (0, "greet")


def test_an_exact_id_wins_over_a_name(cpf, home):
    cpf.write(".checkpointflow/a.yaml", plain("other", "deploy"))
    cpf.write(".checkpointflow/b.yaml", plain("deploy", "Deploy the app"))
    assert flows(cpf, home, "--detail", "deploy").envelope["result"]["id"] == "deploy"
    assert flows(cpf, home, "--detail", "Deploy the app").envelope["result"]["id"] == "deploy"


def test_an_ambiguous_flow_is_refused_naming_every_candidate(cpf, home):
    user = home / ".checkpointflow"
    (user / "flows" / "one.yaml").write_text(plain("report", "Weekly report"))
    (user / "two.yaml").write_text(plain("report", "Monthly report"))
    for args in (("flows", "--detail", "report"), ("run", "report")):
        refused = cpf(*args, env={"HOME": str(home)})
        assert (refused.exit_code, refused.error_code) == (10, "ERR_FLOW_AMBIGUOUS")
        message = refused.envelope["error"]["message"]
        for text in ("Weekly report", "Monthly report", "one.yaml", "two.yaml", "'report'"):
            assert text in message, (text, message)
        assert [d["path"] for d in refused.envelope["error"]["details"]] == [
            str(user / "flows" / "one.yaml"),
            str(user / "two.yaml"),
        ]
    assert not (cpf.root / "runs").exists()  # nothing ran
    cpf.write(".checkpointflow/report.yaml", plain("report", "Project report"))
    shadowing = flows(cpf, home, "--detail", "report").envelope["result"]
    assert shadowing["name"] == "Project report"  # the project's flow shadows the user's


def test_two_flows_with_one_name_are_ambiguous_by_name_but_not_by_id(cpf, home):
    cpf.write(".checkpointflow/a.yaml", plain("deploy_a", "Deploy"))
    cpf.write(".checkpointflow/b.yaml", plain("deploy_b", "deploy"))
    refused = flows(cpf, home, "--detail", "DEPLOY")
    assert (refused.exit_code, refused.error_code) == (10, "ERR_FLOW_AMBIGUOUS")
    assert flows(cpf, home, "--detail", "deploy_b").envelope["result"]["id"] == "deploy_b"


def test_run_from_the_home_folder_lists_each_flow_once(cpf, home):
    (home / ".checkpointflow" / "greet.yaml").write_text(doc(GREET))
    at_home = Cpf(cpf.root, home)
    result = at_home("flows", env={"HOME": str(home)}).envelope["result"]
    assert [flow["id"] for flow in result["flows"]] == ["greet"]
    assert result["folders"] == [
        str(home / ".checkpointflow" / "flows"),
        str(home / ".checkpointflow"),
    ]
    assert at_home("flows", "--detail", "greet", env={"HOME": str(home)}).exit_code == 0
