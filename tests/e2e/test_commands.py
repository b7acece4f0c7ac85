"""The commands themselves: version, help, guide, init, validate, run, resume, status,
inspect, cancel, and the state root."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CPF
from e2e_helpers import doc, inspect, resume, run_folders, start

import checkpointflow

PYTHON = str(Path(sys.executable))
COMMANDS = [
    "init",
    "validate",
    "run",
    "resume",
    "status",
    "inspect",
    "cancel",
    "guide",
    "schema",
    "recover",
    "tick",
    "retry",
    "list",
    "logs",
    "flows",
    "graph",
    "delete",
    "gc",
    "verify",
    "reconcile",
    "export",
    "import",
]

WAITING = """
id: waits
version: "1.2"
steps:
  - id: hello
    kind: cli
    command: echo hi
  - id: ask
    kind: await_event
    audience: user
    event_name: go
    input_schema:
      type: object
      required: [n]
      properties:
        n: {type: integer}
  - id: done
    kind: end
    result:
      n: ${steps.ask.outputs.n}
"""


def plain(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, check=False, timeout=60)


# --- version, help, guide ------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--version", "-v"])
def test_version_prints_name_and_version(tmp_path, flag):
    done = plain(CPF, flag, cwd=tmp_path)
    assert done.returncode == 0
    assert done.stdout.strip() == f"cpf {checkpointflow.__version__}"


def test_python_dash_m_version(tmp_path):
    done = plain(PYTHON, "-m", "checkpointflow", "--version", cwd=tmp_path)
    assert done.returncode == 0
    assert done.stdout.strip() == f"cpf {checkpointflow.__version__}"


def test_help_lists_every_command(tmp_path):
    done = plain(CPF, "--help", cwd=tmp_path)
    assert done.returncode == 0
    for name in COMMANDS:
        assert name in done.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_each_subcommand_has_help(tmp_path, command):
    done = plain(CPF, command, "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Usage" in done.stdout and command in done.stdout


def test_guide_is_markdown_mentioning_every_command(tmp_path):
    done = plain(CPF, "guide", cwd=tmp_path)
    assert done.returncode == 0
    assert done.stdout.lstrip().startswith("#")
    missing = [name for name in COMMANDS if f"cpf {name}" not in done.stdout]
    assert missing == [], f"guide does not mention: {missing}"


# --- usage errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("run", "-f", "x.yaml", "--bogus"),
        ("run",),
        ("resume", "--event", "go"),
        ("frobnicate",),
        ("status",),
    ],
)
def test_usage_errors_are_envelopes(cpf, args):
    result = cpf(*args)
    assert result.exit_code == 10
    assert result.error_code == "ERR_USAGE"
    assert result.envelope["ok"] is False


# --- init ----------------------------------------------------------------------------------


def test_init_writes_file_and_refuses_to_overwrite(cpf):
    first = cpf("init")
    assert first.exit_code == 0
    target = cpf.cwd / "checkpointflow.yaml"
    assert Path(first.envelope["result"]["file"]).name == "checkpointflow.yaml"
    assert target.is_file()
    target.write_text("# mine\n")
    second = cpf("init")
    assert second.exit_code == 10
    assert second.error_code == "ERR_FILE_EXISTS"
    assert target.read_text() == "# mine\n"
    forced = cpf("init", "--force")
    assert forced.exit_code == 0
    assert "hello" in target.read_text() or "schema_version" in target.read_text()
    assert target.read_text() != "# mine\n"


def test_init_file_option_creates_parent_folders(cpf):
    result = cpf("init", "--file", "sub/dir/x.yaml")
    assert result.exit_code == 0
    assert (cpf.cwd / "sub" / "dir" / "x.yaml").is_file()
    assert cpf("validate", "-f", "sub/dir/x.yaml").exit_code == 0


def test_init_template_validates_without_warnings(cpf):
    cpf("init")
    checked = cpf("validate", "-f", "checkpointflow.yaml")
    assert checked.exit_code == 0
    assert "warnings" not in checked.envelope, checked.envelope["warnings"]


def test_init_template_rejected_path(cpf):
    cpf("init")
    started = cpf("run", "-f", "checkpointflow.yaml")
    assert started.exit_code == 40
    assert started.envelope["wait"]["event_name"] == "approval"
    done = resume(cpf, started.envelope["run_id"], "approval", {"decision": "reject"})
    assert done.exit_code == 0
    assert done.envelope["status"] == "completed"
    assert done.envelope["result"] == {"approved": False}


def test_init_template_approved_path(cpf):
    cpf("init")
    started = cpf("run", "-f", "checkpointflow.yaml")
    done = resume(cpf, started.envelope["run_id"], "approval", {"decision": "approve"})
    assert done.exit_code == 0
    assert done.envelope["result"] == {"approved": True, "name": "world"}


# --- validate ------------------------------------------------------------------------------


def test_validate_ok(cpf):
    cpf.write("wf.yaml", doc(WAITING))
    result = cpf("validate", "-f", "wf.yaml")
    assert result.exit_code == 0
    assert result.envelope["status"] == "completed"
    assert result.envelope["ok"] is True
    assert result.envelope["workflow_id"] == "waits"
    assert result.envelope["workflow_version"] == "1.2"
    assert run_folders(cpf) == []


def test_validate_missing_file(cpf):
    result = cpf("validate", "-f", "nope.yaml")
    assert (result.exit_code, result.error_code) == (10, "ERR_FILE_NOT_FOUND")


def test_validate_directory(cpf):
    (cpf.cwd / "adir").mkdir()
    result = cpf("validate", "-f", "adir")
    assert (result.exit_code, result.error_code) == (10, "ERR_VALIDATION_WORKFLOW")


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("schema_version: checkpointflow/v1\nworkflow: [unclosed\n", "ERR_YAML_PARSE"),
        ("key: 'unterminated\n", "ERR_YAML_PARSE"),
        ("- a\n- b\n", "ERR_VALIDATION_WORKFLOW"),
        ("just a scalar\n", "ERR_VALIDATION_WORKFLOW"),
        ("", "ERR_VALIDATION_WORKFLOW"),
        ("# only a comment\n", "ERR_VALIDATION_WORKFLOW"),
        (
            "schema_version: checkpointflow/v1\nschema_version: checkpointflow/v1\n"
            "workflow:\n  id: a\n  steps:\n    - id: e\n      kind: end\n",
            "ERR_YAML_PARSE",
        ),
    ],
    ids=[
        "flow-syntax",
        "unterminated-quote",
        "list",
        "scalar",
        "empty",
        "comment-only",
        "dup-keys",
    ],
)
def test_validate_document_shape_errors(cpf, text, code):
    cpf.write("wf.yaml", text)
    result = cpf("validate", "-f", "wf.yaml")
    assert (result.exit_code, result.error_code) == (10, code), result.envelope


def test_validate_duplicate_keys_inside_a_step(cpf):
    cpf.write(
        "wf.yaml",
        doc(
            """
            id: a
            steps:
              - id: s
                kind: cli
                command: echo one
                command: echo two
            """
        ),
    )
    result = cpf("validate", "-f", "wf.yaml")
    assert (result.exit_code, result.error_code) == (10, "ERR_YAML_PARSE")


BAD_STEPS = {
    "duplicate-id": (
        """
        - id: s
          kind: cli
          command: echo 1
        - id: s
          kind: cli
          command: echo 2
        """,
        "ERR_DUPLICATE_STEP_ID",
    ),
    "unknown-kind": (
        """
        - id: s
          kind: teleport
        """,
        "ERR_VALIDATION_WORKFLOW",
    ),
    "typo-field": (
        """
        - id: s
          kind: cli
          comand: echo hi
          command: echo hi
        """,
        "ERR_VALIDATION_WORKFLOW",
    ),
    "unknown-next": (
        """
        - id: s
          kind: cli
          command: echo hi
          transitions:
            - next: nowhere
        """,
        "ERR_VALIDATION_WORKFLOW",
    ),
    "bad-if": (
        """
        - id: s
          kind: cli
          if: inputs.x ==
          command: echo hi
        """,
        "ERR_VALIDATION_WORKFLOW",
    ),
    "bad-when": (
        """
        - id: s
          kind: cli
          command: echo hi
          transitions:
            - when: (inputs.x
              next: s
        """,
        "ERR_VALIDATION_WORKFLOW",
    ),
    "bad-command-expression": (
        """
        - id: s
          kind: cli
          command: echo ${inputs.x ==}
        """,
        "ERR_VALIDATION_WORKFLOW",
    ),
    "unknown-step-reference": (
        """
        - id: s
          kind: cli
          command: echo ${steps.nope.outputs.x}
        """,
        "ERR_VALIDATION_WORKFLOW",
    ),
    "event-outside-await": (
        """
        - id: s
          kind: cli
          command: echo hi
          transitions:
            - when: event.ok == true
              next: s
        """,
        "ERR_VALIDATION_WORKFLOW",
    ),
    "event-in-command": (
        """
        - id: s
          kind: cli
          command: echo ${event.x}
        """,
        "ERR_VALIDATION_WORKFLOW",
    ),
}


@pytest.mark.parametrize("case", list(BAD_STEPS), ids=list(BAD_STEPS))
def test_validate_rejects_bad_steps(cpf, case):
    steps, code = BAD_STEPS[case]
    import textwrap

    body = "id: a\nsteps:\n" + textwrap.indent(textwrap.dedent(steps).strip("\n"), "  ")
    cpf.write("wf.yaml", doc(body))
    result = cpf("validate", "-f", "wf.yaml")
    assert (result.exit_code, result.error_code) == (10, code), result.envelope
    assert result.envelope["ok"] is False
    details = result.envelope["error"]["details"]
    assert isinstance(details, list) and details
    assert all(entry["step_id"] == "s" for entry in details), details
    # a workflow that does not validate does not run either
    ran = cpf("run", "-f", "wf.yaml")
    assert (ran.exit_code, ran.error_code) == (10, code)
    assert run_folders(cpf) == []


def test_validate_reports_every_problem_at_once(cpf):
    cpf.write(
        "wf.yaml",
        doc(
            """
            id: many
            steps:
              - id: first
                kind: cli
                command: echo fine
              - id: second
                kind: cli
                if: inputs.a ==
                command: echo hi
              - id: third
                kind: cli
                command: echo ${steps.nope.outputs.x}
              - id: fourth
                kind: cli
                command: echo hi
                transitions:
                  - next: nowhere
            """
        ),
    )
    result = cpf("validate", "-f", "wf.yaml")
    assert (result.exit_code, result.error_code) == (10, "ERR_VALIDATION_WORKFLOW")
    details = result.envelope["error"]["details"]
    assert len(details) == 3, details
    for entry in details:
        assert set(entry) >= {"path", "message", "step_id", "code"}
        assert entry["message"]
        assert entry["code"] == "ERR_VALIDATION_WORKFLOW"
    by_step = {entry["step_id"]: entry["path"] for entry in details}
    assert by_step == {
        "second": "/workflow/steps/1/if",
        "third": "/workflow/steps/2/command",
        "fourth": "/workflow/steps/3/transitions/0/next",
    }


# --- run and its inputs --------------------------------------------------------------------

ECHO_INPUTS = """
id: echo_inputs
inputs:
  type: object
  properties:
    who: {type: string, default: nobody}
    n: {type: integer}
steps:
  - id: done
    kind: end
    result:
      who: ${inputs.who}
      all: ${inputs}
"""


def test_run_inline_input(cpf):
    result = start(cpf, ECHO_INPUTS, {"who": "ann", "n": 2})
    assert result.exit_code == 0
    assert result.envelope["result"] == {"who": "ann", "all": {"who": "ann", "n": 2}}


def test_run_input_from_file(cpf):
    cpf.write("in.json", '{"who": "bob"}')
    cpf.write("wf.yaml", doc(ECHO_INPUTS))
    result = cpf("run", "-f", "wf.yaml", "--input", "@in.json")
    assert result.exit_code == 0
    assert result.envelope["result"]["who"] == "bob"


@pytest.mark.parametrize("flag", ["-", "@-"])
def test_run_input_from_stdin(cpf, flag):
    cpf.write("wf.yaml", doc(ECHO_INPUTS))
    result = cpf("run", "-f", "wf.yaml", "--input", flag, stdin='{"who": "cat"}')
    assert result.exit_code == 0
    assert result.envelope["result"]["who"] == "cat"


def test_run_without_input_uses_empty_object_and_defaults(cpf):
    result = start(cpf, ECHO_INPUTS)
    assert result.exit_code == 0
    assert result.envelope["result"] == {"who": "nobody", "all": {"who": "nobody"}}
    run_id = result.envelope["run_id"]
    assert inspect(cpf, run_id)["inputs"] == {"who": "nobody"}


@pytest.mark.parametrize("text", ["{not json", "", "{'a': 1}", '{"a": 1} trailing'])
def test_run_invalid_json_input_creates_no_run(cpf, text):
    cpf.write("wf.yaml", doc(ECHO_INPUTS))
    result = cpf("run", "-f", "wf.yaml", "--input", text)
    assert (result.exit_code, result.error_code) == (10, "ERR_VALIDATION_INPUT")
    runs = cpf.root / "runs"
    assert not runs.exists() or list(runs.iterdir()) == []


def test_run_missing_input_file(cpf):
    cpf.write("wf.yaml", doc(ECHO_INPUTS))
    result = cpf("run", "-f", "wf.yaml", "--input", "@missing.json")
    assert (result.exit_code, result.error_code) == (10, "ERR_FILE_NOT_FOUND")
    assert run_folders(cpf) == []


@pytest.mark.parametrize("inputs", [{"n": "two"}, {"who": 5}, [1, 2], "text"])
def test_run_inputs_failing_schema_creates_no_run(cpf, inputs):
    result = start(cpf, ECHO_INPUTS, inputs)
    assert (result.exit_code, result.error_code) == (10, "ERR_VALIDATION_INPUT")
    runs = cpf.root / "runs"
    assert not runs.exists() or list(runs.iterdir()) == []


def test_run_missing_workflow_file(cpf):
    result = cpf("run", "-f", "absent.yaml")
    assert (result.exit_code, result.error_code) == (10, "ERR_FILE_NOT_FOUND")


# --- resume --------------------------------------------------------------------------------


def waiting_run(cpf) -> str:
    started = start(cpf, WAITING)
    assert started.exit_code == 40
    assert started.envelope["status"] == "waiting"
    return started.envelope["run_id"]


def test_resume_payload_becomes_step_outputs(cpf):
    run_id = waiting_run(cpf)
    done = resume(cpf, run_id, "go", {"n": 7})
    assert done.exit_code == 0
    assert done.envelope["result"] == {"n": 7}
    assert inspect(cpf, run_id)["step_outputs"]["ask"] == {"n": 7}


def test_resume_input_from_file_and_stdin(cpf):
    run_id = waiting_run(cpf)
    cpf.write("event.json", '{"n": 3}')
    assert (
        cpf("resume", "--run-id", run_id, "--event", "go", "--input", "@event.json").exit_code == 0
    )
    other = waiting_run(cpf)
    via_stdin = cpf("resume", "--run-id", other, "--event", "go", "--input", "-", stdin='{"n": 4}')
    assert via_stdin.envelope["result"] == {"n": 4}


def test_resume_wrong_event_keeps_run_waiting(cpf):
    run_id = waiting_run(cpf)
    wrong = resume(cpf, run_id, "stop", {"n": 1})
    assert (wrong.exit_code, wrong.error_code) == (20, "ERR_RESUME_EVENT_MISMATCH")
    assert cpf("status", "--run-id", run_id).exit_code == 40
    assert resume(cpf, run_id, "go", {"n": 1}).exit_code == 0


@pytest.mark.parametrize("payload", [{"n": "x"}, {}, [1]])
def test_resume_input_failing_schema_keeps_run_waiting(cpf, payload):
    run_id = waiting_run(cpf)
    bad = resume(cpf, run_id, "go", payload)
    assert (bad.exit_code, bad.error_code) == (10, "ERR_VALIDATION_EVENT_INPUT")
    status = cpf("status", "--run-id", run_id)
    assert status.exit_code == 40
    assert status.envelope["wait"]["event_name"] == "go"
    assert resume(cpf, run_id, "go", {"n": 2}).envelope["result"] == {"n": 2}


def test_resume_invalid_json(cpf):
    run_id = waiting_run(cpf)
    bad = cpf("resume", "--run-id", run_id, "--event", "go", "--input", "{nope")
    assert (bad.exit_code, bad.error_code) == (10, "ERR_VALIDATION_EVENT_INPUT")
    assert cpf("status", "--run-id", run_id).exit_code == 40


def test_resume_completed_run(cpf):
    run_id = waiting_run(cpf)
    assert resume(cpf, run_id, "go", {"n": 1}).exit_code == 0
    again = resume(cpf, run_id, "go", {"n": 1})
    assert (again.exit_code, again.error_code) == (20, "ERR_RUN_NOT_WAITING")
    assert cpf("status", "--run-id", run_id).envelope["result"] == {"n": 1}


def test_resume_unknown_run(cpf):
    result = resume(cpf, "20200101T000000000Z-0000000000", "go", {})
    assert (result.exit_code, result.error_code) == (10, "ERR_RUN_NOT_FOUND")


@pytest.mark.parametrize("run_id", ["../../x", "../state", "/etc", "a/b", "..", ""])
def test_resume_path_like_run_id_is_not_found(cpf, tmp_path, run_id):
    waiting_run(cpf)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    result = resume(cpf, run_id, "go", {"n": 1})
    assert result.error_code == "ERR_RUN_NOT_FOUND"
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before
    assert result.exit_code == 10


# --- status --------------------------------------------------------------------------------


def test_status_of_waiting_run(cpf):
    waiting = waiting_run(cpf)
    status = cpf("status", "--run-id", waiting)
    assert (status.exit_code, status.envelope["status"], status.envelope["ok"]) == (
        40,
        "waiting",
        True,
    )
    assert status.envelope["wait"]["event_name"] == "go"
    assert status.envelope["current_step_id"] == "ask"
    assert status.envelope["run_id"] == waiting


def test_status_of_completed_run(cpf):
    run_id = waiting_run(cpf)
    resume(cpf, run_id, "go", {"n": 5})
    status = cpf("status", "--run-id", run_id)
    assert (status.exit_code, status.envelope["status"], status.envelope["ok"]) == (
        0,
        "completed",
        True,
    )
    assert status.envelope["result"] == {"n": 5}
    assert "wait" not in status.envelope


def test_status_of_failed_run(cpf):
    failed = start(cpf, "id: f\nsteps:\n  - id: boom\n    kind: cli\n    command: exit 4\n")
    assert failed.exit_code == 30
    status = cpf("status", "--run-id", failed.envelope["run_id"])
    assert (status.exit_code, status.envelope["status"], status.envelope["ok"]) == (
        30,
        "failed",
        True,
    )
    assert status.envelope["error"]["code"] == "ERR_STEP_FAILED"
    assert status.envelope["error"]["step_id"] == "boom"


def test_status_of_cancelled_run(cpf):
    cancelled = waiting_run(cpf)
    cpf("cancel", "--run-id", cancelled)
    status = cpf("status", "--run-id", cancelled)
    assert (status.exit_code, status.envelope["status"], status.envelope["ok"]) == (
        50,
        "cancelled",
        True,
    )
    assert "wait" not in status.envelope


def test_status_unknown_run(cpf):
    result = cpf("status", "--run-id", "nope")
    assert (result.exit_code, result.error_code) == (10, "ERR_RUN_NOT_FOUND")


def test_status_warns_when_workflow_edited_and_resume_uses_snapshot(cpf):
    run_id = waiting_run(cpf)
    assert "warnings" not in cpf("status", "--run-id", run_id).envelope
    edited = WAITING.replace("n: ${steps.ask.outputs.n}", "n: edited")
    cpf.write("wf.yaml", doc(edited))
    status = cpf("status", "--run-id", run_id)
    assert status.exit_code == 40
    assert any("wf.yaml" in warning for warning in status.envelope["warnings"])
    done = resume(cpf, run_id, "go", {"n": 9})
    assert done.envelope["result"] == {"n": 9}


def test_status_warns_when_workflow_deleted_and_resume_still_works(cpf):
    run_id = waiting_run(cpf)
    (cpf.cwd / "wf.yaml").unlink()
    status = cpf("status", "--run-id", run_id)
    assert status.exit_code == 40
    assert any("wf.yaml" in warning for warning in status.envelope["warnings"])
    assert resume(cpf, run_id, "go", {"n": 1}).exit_code == 0


# --- inspect -------------------------------------------------------------------------------


def test_inspect_shows_inputs_outputs_attempts_events_and_history(cpf):
    body = WAITING.replace("id: waits", "id: waits\ninputs: {type: object}")
    started = start(cpf, body, {"k": "v"})
    run_id = started.envelope["run_id"]
    waiting = cpf("inspect", "--run-id", run_id)
    assert waiting.exit_code == 40
    resume(cpf, run_id, "go", {"n": 2})
    result = cpf("inspect", "--run-id", run_id)
    assert result.exit_code == 0
    details = result.envelope["result"]
    assert details["inputs"] == {"k": "v"}
    assert details["step_outputs"]["ask"] == {"n": 2}
    cli_rows = [row for row in details["step_results"] if row["step_id"] == "hello"]
    assert len(cli_rows) == 1
    row = cli_rows[0]
    assert row["exit_code"] == 0
    assert Path(row["stdout_path"]).is_absolute()
    assert Path(row["stdout_path"]).read_text() == "hi\n"
    assert row["stderr_path"] is None  # nothing on stderr: no file
    assert len(details["events"]) == 1
    event = details["events"][0]
    assert (event["event_name"], event["event_data"]) == ("go", {"n": 2})
    assert event["created_at"]
    assert details["state"]["status"] == "completed"
    history = details["history"]
    assert [record["seq"] for record in history] == list(range(1, len(history) + 1))
    assert history[0]["type"] == "run_started"
    assert all(record["type"] and record["at"] for record in history)
    assert "event_received" in [record["type"] for record in history]


def test_inspect_failed_run_exit_code(cpf):
    failed = start(cpf, "id: f\nsteps:\n  - id: boom\n    kind: cli\n    command: exit 2\n")
    result = cpf("inspect", "--run-id", failed.envelope["run_id"])
    assert result.exit_code == 30
    assert result.envelope["ok"] is True
    rows = result.envelope["result"]["step_results"]
    assert [row["exit_code"] for row in rows if row["step_id"] == "boom"] == [2]


# --- cancel --------------------------------------------------------------------------------


def test_cancel_waiting_run(cpf):
    run_id = waiting_run(cpf)
    cancelled = cpf("cancel", "--run-id", run_id, "--reason", "changed my mind")
    assert cancelled.exit_code == 0
    assert cancelled.envelope["status"] == "cancelled"
    assert cancelled.envelope["result"]["reason"] == "changed my mind"
    assert cpf("status", "--run-id", run_id).exit_code == 50
    later = resume(cpf, run_id, "go", {"n": 1})
    assert (later.exit_code, later.error_code) == (20, "ERR_RUN_NOT_WAITING")
    assert cpf("status", "--run-id", run_id).envelope["status"] == "cancelled"


def test_cancel_completed_run_is_refused(cpf):
    run_id = waiting_run(cpf)
    resume(cpf, run_id, "go", {"n": 1})
    refused = cpf("cancel", "--run-id", run_id)
    assert (refused.exit_code, refused.error_code) == (20, "ERR_RUN_NOT_WAITING")
    assert cpf("status", "--run-id", run_id).exit_code == 0


def test_cancel_twice_is_refused(cpf):
    run_id = waiting_run(cpf)
    assert cpf("cancel", "--run-id", run_id).exit_code == 0
    refused = cpf("cancel", "--run-id", run_id)
    assert (refused.exit_code, refused.error_code) == (20, "ERR_RUN_NOT_WAITING")


# --- the state root ------------------------------------------------------------------------


def test_foreign_folders_under_runs_are_left_alone(cpf):
    other = cpf.root / "runs" / "other-tool"
    other.mkdir(parents=True)
    (other / "notes.txt").write_text("keep me\n")
    start(cpf, ECHO_INPUTS)
    waiting_run(cpf)
    missing = cpf("status", "--run-id", "other-tool")
    assert missing.error_code == "ERR_RUN_NOT_FOUND"
    assert cpf("inspect", "--run-id", "other-tool").error_code == "ERR_RUN_NOT_FOUND"
    assert resume(cpf, "other-tool", "go", {}).error_code == "ERR_RUN_NOT_FOUND"
    assert cpf("cancel", "--run-id", "other-tool").error_code == "ERR_RUN_NOT_FOUND"
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]
    assert (other / "notes.txt").read_text() == "keep me\n"
    assert missing.exit_code == 10


def test_state_root_that_is_a_file(cpf, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    cpf.write("wf.yaml", doc(ECHO_INPUTS))
    result = cpf("run", "-f", "wf.yaml", env={"CHECKPOINTFLOW_BASE_DIR": str(blocker)})
    assert (result.exit_code, result.error_code) == (60, "ERR_PERSISTENCE")
    assert blocker.read_text() == "x"


def test_state_root_under_a_file(cpf, tmp_path):
    blocker = tmp_path / "plain-file"
    blocker.write_text("x")
    cpf.write("wf.yaml", doc(ECHO_INPUTS))
    result = cpf("run", "-f", "wf.yaml", env={"CHECKPOINTFLOW_BASE_DIR": str(blocker / "root")})
    assert (result.exit_code, result.error_code) == (60, "ERR_PERSISTENCE")


def test_runs_are_isolated_per_state_root(cpf, tmp_path):
    run_id = waiting_run(cpf)
    other_root = tmp_path / "elsewhere"
    result = cpf("status", "--run-id", run_id, env={"CHECKPOINTFLOW_BASE_DIR": str(other_root)})
    assert result.error_code == "ERR_RUN_NOT_FOUND"
    assert os.path.isdir(cpf.run_folder(run_id))
    assert json.loads((cpf.run_folder(run_id) / "state.json").read_text())["status"] == "waiting"
