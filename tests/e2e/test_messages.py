"""Refusals say what to fix in the user's words: the file, the step, the field, what was
expected and what was found; `validate` reports every problem it can at once."""

from __future__ import annotations

from e2e_helpers import doc, resume, run_folders, start

TYPO_AND_DANGLING = """
id: typos
steps:
  - id: build
    kind: cli
    comand: make
  - id: approve
    kind: await_event
    audience: usr
    event_name: go
    input_schema: {type: object}
    transitions:
      - next: dnoe
  - id: done
    kind: end
    timeout_seconds: soon
"""


def test_a_misspelled_field_is_named_with_the_field_it_was_meant_to_be(cpf):
    cpf.write("wf.yaml", doc(TYPO_AND_DANGLING))
    result = cpf("validate", "-f", "wf.yaml")
    assert (result.exit_code, result.error_code) == (10, "ERR_VALIDATION_WORKFLOW")
    error = result.envelope["error"]
    assert error["message"].startswith("wf.yaml: 4 problems; first: ")
    assert error["step_id"] == "build"
    found = {(entry["step_id"], entry["path"], entry["message"]) for entry in error["details"]}
    assert found == {
        (
            "build",
            "/workflow/steps/0/comand",
            "step 'build': unknown field 'comand' (did you mean 'command'?)",
        ),
        (
            "approve",
            "/workflow/steps/1/audience",
            "step 'approve': audience must be one of 'user', 'agent', 'system', found 'usr' "
            "(did you mean 'user'?)",
        ),
        (
            "approve",
            "/workflow/steps/1/transitions/0/next",
            "step 'approve': target 'dnoe' is not a step id in this list of steps "
            "(known: approve, build, done)",
        ),
        (
            "done",
            "/workflow/steps/2/timeout_seconds",
            "step 'done': timeout_seconds must be a number, found a string ('soon')",
        ),
    }


def test_problems_of_meaning_are_reported_beside_problems_of_shape(cpf):
    body = """
    id: both
    descripton: a typo at the top
    steps:
      - id: loop
        kind: foreach
        items: ${inputs.things}
        body:
          - id: inner
            kind: cli
            command: echo ${steps.nowhere.outputs}
            retry: {max_attempt: 3}
      - id: done
        kind: end
        result: ${steps.lop.outputs}
    """
    cpf.write("wf.yaml", doc(body))
    details = cpf("validate", "-f", "wf.yaml").envelope["error"]["details"]
    assert [entry["message"] for entry in details] == [
        "unknown field 'descripton' in workflow (did you mean 'description'?)",
        "step 'inner': unknown field 'max_attempt' in retry (did you mean 'max_attempts'?)",
        "step 'inner': steps.nowhere refers to a step id that does not exist",
        "step 'done': steps.lop refers to a step id that does not exist",
    ]


def test_a_step_missing_what_its_kind_needs_still_counts_as_a_target(cpf):
    body = """
    id: needs
    steps:
      - id: first
        kind: cli
        command: echo hi
        transitions:
          - next: each
      - id: each
        kind: foreach
    """
    cpf.write("wf.yaml", doc(body))
    details = cpf("validate", "-f", "wf.yaml").envelope["error"]["details"]
    assert [(entry["path"], entry["message"]) for entry in details] == [
        ("/workflow/steps/1/items", "step 'each': 'items' is required"),
    ]


def test_a_missing_input_is_named(cpf):
    body = """
    id: greet
    inputs:
      type: object
      required: [name]
      properties:
        name: {type: string}
        level: {enum: [low, high]}
        count: {type: integer}
    steps:
      - id: done
        kind: end
    """
    missing = start(cpf, body, {})
    assert (missing.exit_code, missing.error_code) == (10, "ERR_VALIDATION_INPUT")
    assert missing.envelope["error"]["message"] == (
        "The inputs do not match the workflow's inputs schema: 'name' is required."
    )
    wrong = start(cpf, body, {"name": "Ada", "level": "hihg", "count": "3", "nmae": 1})
    assert wrong.envelope["error"]["message"] == (
        "The inputs do not match the workflow's inputs schema: "
        "level must be one of 'low', 'high', found 'hihg' (did you mean 'high'?); "
        "count must be an integer, found a string ('3')."
    )
    assert run_folders(cpf) == []


def test_an_event_payload_is_explained_and_the_run_keeps_waiting(cpf):
    body = """
    id: ask
    steps:
      - id: approval
        kind: await_event
        audience: user
        event_name: approval
        input_schema:
          type: object
          required: [decision]
          additionalProperties: false
          properties:
            decision: {type: string, enum: [approve, reject]}
            note: {type: string}
      - id: done
        kind: end
    """
    run_id = start(cpf, body).envelope["run_id"]
    refused = resume(cpf, run_id, "approval", {"decison": "approve", "note": 5})
    assert (refused.exit_code, refused.error_code) == (10, "ERR_VALIDATION_EVENT_INPUT")
    message = refused.envelope["error"]["message"]
    assert "unknown field 'decison' (did you mean 'decision'?)" in message
    assert "note must be a string, found a number (5)" in message
    assert "'decision' is required" not in message  # the misspelling says it already
    assert refused.envelope["error"]["step_id"] == "approval"
    wrong = resume(cpf, run_id, "approval", {"decision": "maybe"})
    assert (
        "decision must be one of 'approve', 'reject', found 'maybe'"
        in (wrong.envelope["error"]["message"])
    )
    assert cpf("status", "--run-id", run_id).envelope["status"] == "waiting"
