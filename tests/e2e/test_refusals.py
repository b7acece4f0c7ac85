"""A refused command that names a run says where that run really stands (its run_id,
status and waits), whatever was wrong with the rest of the command line or its input,
with the exit code documented for the problem; and it changes nothing. A refusal is
short: the error and one entry per pending wait, not the whole wait block."""

from __future__ import annotations

import pytest
from e2e_helpers import doc

WAITING = """
id: patient
name: Patient
steps:
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
    result: ${steps.ask.outputs.n}
"""

BAD_COMMANDS = [
    (["resume", "--event", "go", "--input", "{bad"], 10, "ERR_VALIDATION_EVENT_INPUT"),
    (["resume", "--event", "go", "--input", "@missing.json"], 10, "ERR_FILE_NOT_FOUND"),
    (["resume", "--event", "go", "--input", '{"n": "x"}'], 10, "ERR_VALIDATION_EVENT_INPUT"),
    (["resume", "--event", "go", "--input", '{"n": 1}', "--bogus"], 10, "ERR_USAGE"),
    (["resume", "--input", '{"n": 1}'], 10, "ERR_USAGE"),
    (["resume", "--event", "went", "--input", '{"n": 1}'], 20, "ERR_RESUME_EVENT_MISMATCH"),
    (["resume", "--event", "go", "--input", '{"n": 1}', "--token", "t"], 10, "ERR_STALE_WAIT"),
    (["resume", "--event", "go", "--actor", "eve\x1b[31m"], 10, "ERR_INVALID_ACTOR"),
    (["cancel", "--bogus"], 10, "ERR_USAGE"),
    (["cancel", "--actor", "eve\x07"], 10, "ERR_INVALID_ACTOR"),
    (["retry", "--bogus"], 10, "ERR_USAGE"),
    (["retry"], 20, "ERR_RUN_NOT_FAILED"),
    (["retry", "--workflow", "missing.yaml"], 10, "ERR_FILE_NOT_FOUND"),
    (["status", "--bogus"], 10, "ERR_USAGE"),
    (["inspect", "--at", "99"], 10, "ERR_VALIDATION_INPUT"),
    (["inspect", "--events", "--limit", "0"], 10, "ERR_USAGE"),
    (["recover", "--bogus"], 10, "ERR_USAGE"),
    (["recover"], 20, "ERR_RUN_NOT_INTERRUPTED"),
    (["graph", "-f", "wf.yaml"], 10, "ERR_USAGE"),
    (["delete"], 20, "ERR_RUN_ACTIVE"),
    (["logs", "--output", "nope"], 10, "ERR_OUTPUT_NOT_FOUND"),
]


@pytest.fixture
def waiting(cpf) -> str:
    cpf.write("wf.yaml", doc(WAITING))
    started = cpf("run", "-f", "wf.yaml")
    assert started.exit_code == 40
    return started.envelope["run_id"]


@pytest.mark.parametrize(("args", "exit_code", "code"), BAD_COMMANDS, ids=lambda a: str(a))
def test_a_refusal_reports_the_runs_real_status(cpf, waiting, args, exit_code, code):
    command, rest = args[0], args[1:]
    refused = cpf(command, "--run-id", waiting, *rest)
    assert (refused.exit_code, refused.error_code) == (exit_code, code), refused.envelope
    envelope = refused.envelope
    assert (envelope["ok"], envelope["command"]) == (False, command)
    assert (envelope["run_id"], envelope["status"]) == (waiting, "waiting")
    assert (envelope["workflow_id"], envelope["workflow_name"]) == ("patient", "Patient")
    [entry] = envelope["waits"]  # what is needed to answer instead, once
    assert entry["event_name"] == "go" and entry["resume"]["command"].startswith("cpf resume")
    assert "wait" not in envelope
    done = cpf("resume", "--run-id", waiting, "--event", "go", "--input", '{"n": 7}')
    assert (done.exit_code, done.envelope["result"]) == (0, 7)  # nothing changed before


def test_the_option_may_be_written_with_an_equals_sign(cpf, waiting):
    refused = cpf("status", f"--run-id={waiting}", "--bogus")
    assert (refused.exit_code, refused.envelope["status"]) == (10, "waiting")
    assert refused.envelope["run_id"] == waiting


MISSING_RUN_COMMANDS = [  # (command line, whether its other problem is found first)
    (["resume", "--event", "go", "--input", "{bad"], True),
    (["resume", "--event", "go", "--bogus"], True),
    (["cancel", "--actor", "eve\x07"], True),
    (["status", "--bogus"], True),
    (["recover", "--bogus"], True),
    (["inspect", "--at", "0"], False),
    (["retry", "--workflow", "missing.yaml"], False),
]


@pytest.mark.parametrize("run_id", ["20991231T000000000Z-0000000000", "../etc", "x" * 10_000])
@pytest.mark.parametrize(("args", "other_problem"), MISSING_RUN_COMMANDS, ids=str)
def test_a_refusal_naming_a_missing_run_says_so(cpf, run_id, args, other_problem):
    refused = cpf(args[0], "--run-id", run_id, *args[1:])
    assert (refused.exit_code, refused.error_code) == (10, "ERR_RUN_NOT_FOUND")
    assert refused.envelope["status"] == "failed" and "run_id" not in refused.envelope
    assert len(refused.envelope.get("warnings", [])) == (1 if other_problem else 0)
    assert len(refused.stdout) < 5_000


def test_a_refusal_without_a_run_is_unchanged(cpf):
    refused = cpf("list", "--run-id", "x")
    assert (refused.exit_code, refused.error_code) == (10, "ERR_USAGE")
    assert "run_id" not in refused.envelope and "warnings" not in refused.envelope


def test_a_refusal_of_an_answer_carries_the_schema_once(cpf, waiting):
    refused = cpf("resume", "--run-id", waiting, "--event", "go", "--input", '{"n": "x"}')
    assert refused.envelope["error"]["details"]["input_schema"]["required"] == ["n"]
    assert refused.stdout.count('"input_schema"') == 1
    assert refused.stdout.count("cpf resume --run-id") == 1
