"""Workflows written the way checkpointflow 1.x users write them run unchanged: list
commands as a sequence, transitions that fall through to the next step, workflow outputs
in the JSON-Schema-like form, and `defaults` for timeouts and retries."""

from __future__ import annotations

import json

import pytest
from e2e_helpers import inspect, resume, start, step_output


def lines(cpf, name: str) -> list[str]:
    path = cpf.cwd / name
    return path.read_text().splitlines() if path.exists() else []


def attempts(cpf, run_id: str, step_id: str) -> list[dict]:
    return inspect(cpf, run_id)["state"]["steps"][step_id]["attempts"]


# --- a list command is a sequence -------------------------------------------------------------

RELEASE = """
id: release_notes
inputs:
  type: object
  properties:
    version: {type: string}
    fail_at: {type: integer, default: 0}
steps:
  - id: prepare
    kind: cli
    command:
      - mkdir -p out
      - cd out
      - echo "notes for ${inputs.version}" > notes.txt
      - test ${inputs.fail_at} -ne 4 || exit 4
      - echo published >> ../trail.txt
  - id: announce
    kind: cli
    command: echo announced >> trail.txt
"""


def test_list_command_items_run_in_order_in_one_shell(cpf):
    result = start(cpf, RELEASE, {"version": "2.0"})
    assert result.exit_code == 0, result.envelope
    # `cd out` in one item holds for the next: the items share one shell
    assert (cpf.cwd / "out" / "notes.txt").read_text() == "notes for 2.0\n"
    assert lines(cpf, "trail.txt") == ["published", "announced"]


def test_list_command_stops_at_the_first_failing_item_with_its_exit_code(cpf):
    result = start(cpf, RELEASE, {"version": "2.0", "fail_at": 4})
    assert (result.exit_code, result.error_code) == (30, "ERR_STEP_FAILED"), result.envelope
    assert result.envelope["error"]["step_id"] == "prepare"
    assert result.envelope["error"]["details"]["exit_code"] == 4
    assert (cpf.cwd / "out" / "notes.txt").exists()  # the items before it ran
    assert lines(cpf, "trail.txt") == []  # the items after it and the next step did not
    assert [a["exit_code"] for a in attempts(cpf, result.envelope["run_id"], "prepare")] == [4]


def test_each_item_of_a_list_command_is_its_own_command(cpf):
    body = """
id: items
steps:
  - id: s
    kind: cli
    command:
      - "echo first  # a note that must not swallow the next item"
      - "false || echo second"
      - "echo third;"
"""
    result = start(cpf, body)
    assert result.exit_code == 0, result.envelope
    assert step_output(cpf, result.envelope["run_id"], "s") == "first\nsecond\nthird\n"


HOSTILE = [
    'x"; touch pwned; echo "',
    "$(touch pwned)",
    "`touch pwned`",
    "'; touch pwned; '",
    "a\ntouch pwned",
    "* && touch pwned",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_list_command_items_keep_interpolated_values_as_data(cpf, value):
    body = """
id: commit
steps:
  - id: record
    kind: cli
    command:
      - printf '%s' "${inputs.message}" > message.txt
      - printf '|%s|' ${inputs.message} '${inputs.message}' >> message.txt
      - cat message.txt
"""
    result = start(cpf, body, {"message": value})
    assert result.exit_code == 0, result.envelope
    assert step_output(cpf, result.envelope["run_id"], "record") == f"{value}|{value}||{value}|"
    assert list(cpf.cwd.rglob("pwned")) == []


def test_argv_passes_each_item_as_one_argument(cpf):
    body = """
id: argv
steps:
  - id: s
    kind: cli
    argv: [printf, "[%s]", "${inputs.text}", "$HOME; touch pwned"]
"""
    result = start(cpf, body, {"text": "two words"})
    assert result.exit_code == 0, result.envelope
    assert step_output(cpf, result.envelope["run_id"], "s") == "[two words][$HOME; touch pwned]"
    assert not (cpf.cwd / "pwned").exists()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ("command: echo a\n    argv: [echo, b]", "exactly one of command"),
        ("name: neither", "exactly one of command"),
        ('command: ["echo a", "  "]', "item 1 of command is blank"),
    ],
)
def test_validate_refuses_a_cli_step_without_exactly_one_command(cpf, fields, message):
    cpf.write(
        "wf.yaml",
        f"schema_version: checkpointflow/v1\nworkflow:\n  id: w\n  steps:\n"
        f"  - id: s\n    kind: cli\n    {fields}\n",
    )
    result = cpf("validate", "-f", "wf.yaml")
    assert (result.exit_code, result.error_code) == (10, "ERR_VALIDATION_WORKFLOW")
    assert message in result.envelope["error"]["message"], result.envelope


# --- transitions that match nothing go on in list order --------------------------------------

REVIEW = """
id: review
steps:
  - id: decide
    kind: await_event
    audience: user
    event_name: review
    timeout_seconds: 3600
    input_schema:
      type: object
      required: [decision]
      properties:
        decision: {type: string, enum: [approve, reject, defer]}
    transitions:
      - when: event.decision == "approve"
        next: ship
      - when: event.decision == "reject"
        next: stop
  - id: park
    kind: end
    result: parked
  - id: ship
    kind: end
    result: shipped
  - id: stop
    kind: end
    result: stopped
"""


@pytest.mark.parametrize(
    ("decision", "result"), [("approve", "shipped"), ("reject", "stopped"), ("defer", "parked")]
)
def test_await_event_without_a_matching_transition_goes_on_to_the_next_step(cpf, decision, result):
    run_id = start(cpf, REVIEW).envelope["run_id"]
    done = resume(cpf, run_id, "review", {"decision": decision})
    assert (done.exit_code, done.envelope["result"]) == (0, result), done.envelope


def test_validate_warns_about_answers_that_fall_through(cpf):
    cpf.write(
        "wf.yaml",
        "schema_version: checkpointflow/v1\nworkflow:\n"
        + "".join("  " + line + "\n" for line in REVIEW.strip("\n").splitlines()),
    )
    result = cpf("validate", "-f", "wf.yaml")
    assert result.exit_code == 0, result.envelope
    (warning,) = result.envelope["warnings"]
    assert "'decide'" in warning and 'event.decision is "defer"' in warning
    assert '"approve"' not in warning and '"reject"' not in warning


CHANGES = """
id: changes
steps:
  - id: diff
    kind: cli
    command: |-
      printf '{"changed": %s}' "${inputs.changed}"
    transitions:
      - when: steps.diff.outputs.changed
        next: deploy
  - id: skip_note
    kind: cli
    command: echo nothing-to-deploy >> trail.txt
  - id: deploy
    kind: cli
    command: echo deployed >> trail.txt
"""


@pytest.mark.parametrize(
    ("changed", "trail"), [(True, ["deployed"]), (False, ["nothing-to-deploy", "deployed"])]
)
def test_cli_step_without_a_matching_transition_goes_on_to_the_next_step(cpf, changed, trail):
    result = start(cpf, CHANGES, {"changed": changed})
    assert result.exit_code == 0, result.envelope
    assert lines(cpf, "trail.txt") == trail


CHECKS = """
id: checks
steps:
  - id: checks
    kind: parallel
    branches:
      - start_at: lint
      - start_at: unit
  - id: lint
    kind: cli
    command: |-
      echo lint >> trail.txt; printf '{"fixable": %s}' "${inputs.fixable}"
    transitions:
      - when: steps.lint.outputs.fixable
        next: autofix
  - id: autofix
    kind: cli
    command: echo autofix >> trail.txt
  - id: unit
    kind: cli
    command: echo unit >> trail.txt
  - id: after
    kind: cli
    command: echo after >> trail.txt
"""


@pytest.mark.parametrize(("fixable", "ran"), [(True, ["autofix", "lint"]), (False, ["lint"])])
def test_a_start_at_branch_without_a_matching_transition_ends(cpf, fixable, ran):
    result = start(cpf, CHECKS, {"fixable": fixable})
    assert result.exit_code == 0, result.envelope
    trail = lines(cpf, "trail.txt")
    # the lint branch ends at lint when nothing matches: it never goes on to the next step
    # of the list, and `unit` runs once, in its own branch
    assert sorted(trail[:-1]) == sorted([*ran, "unit"])
    assert trail[-1] == "after"


# --- workflow outputs in the JSON-Schema-like form ----------------------------------------------

PUBLISH = """
id: publish
inputs:
  type: object
  properties:
    dry_run: {type: boolean, default: false}
    size: {default: 3}
steps:
  - id: plan
    kind: cli
    command: |-
      echo '{"summary": "3 pages", "size": ${inputs.size}}'
  - id: apply
    kind: cli
    if: not inputs.dry_run
    command: |-
      echo '{"page_url": "https://wiki.example/p/1"}'
outputs:
  type: object
  required: [page_url]
  properties:
    page_url:
      from: steps.apply.outputs.page_url
      description: where the page lives
    summary: {from: steps.plan.outputs.summary, type: string}
    size: {from: steps.plan.outputs.size, type: integer}
"""


def test_outputs_in_schema_form_become_the_result(cpf):
    result = start(cpf, PUBLISH)
    assert result.exit_code == 0, result.envelope
    assert result.envelope["result"] == {
        "page_url": "https://wiki.example/p/1",
        "summary": "3 pages",
        "size": 3,
    }


def test_a_required_output_that_is_missing_fails_the_run(cpf):
    result = start(cpf, PUBLISH, {"dry_run": True})
    assert (result.exit_code, result.error_code) == (30, "ERR_STEP_OUTPUT_INVALID")
    assert "required output 'page_url'" in result.envelope["error"]["message"]
    assert cpf("status", "--run-id", result.envelope["run_id"]).exit_code == 30


def test_an_output_of_the_wrong_type_fails_the_run(cpf):
    result = start(cpf, PUBLISH, {"size": '"three"'})
    assert (result.exit_code, result.error_code) == (30, "ERR_STEP_OUTPUT_INVALID")
    assert "output 'size'" in result.envelope["error"]["message"], result.envelope


def test_a_sub_workflow_missing_a_required_output_fails_its_step(cpf):
    cpf.write(
        "child.yaml",
        "schema_version: checkpointflow/v1\nworkflow:\n"
        + "".join("  " + line + "\n" for line in PUBLISH.strip("\n").splitlines()),
    )
    body = """
id: parent
steps:
  - id: child
    kind: workflow
    workflow_ref: child.yaml
    inputs: {dry_run: "${inputs.dry_run}"}
    on_error: {next: fallback}
  - id: done
    kind: end
    result: ${steps.child.outputs.page_url}
  - id: fallback
    kind: end
    result: ${steps.child.error.code}
"""
    assert start(cpf, body, {"dry_run": False}).envelope["result"] == "https://wiki.example/p/1"
    assert start(cpf, body, {"dry_run": True}).envelope["result"] == "ERR_STEP_OUTPUT_INVALID"


def test_validate_checks_required_names_an_output(cpf):
    broken = PUBLISH.replace("required: [page_url]", "required: [page_link]")
    cpf.write(
        "wf.yaml",
        "schema_version: checkpointflow/v1\nworkflow:\n"
        + "".join("  " + line + "\n" for line in broken.strip("\n").splitlines()),
    )
    result = cpf("validate", "-f", "wf.yaml")
    assert (result.exit_code, result.error_code) == (10, "ERR_VALIDATION_WORKFLOW")
    assert result.envelope["error"]["details"][0]["path"] == "/workflow/outputs/required/0"
    assert "'page_link'" in result.envelope["error"]["message"]


# --- defaults: timeout_seconds and retry ----------------------------------------------------

DEFAULTED = """
id: defaulted
defaults:
  timeout_seconds: 0.5
  retry: {max_attempts: 3, backoff_seconds: 0}
steps:
  - id: flaky
    kind: cli
    command: echo try >> flaky.txt; test $(wc -l < flaky.txt) -ge 3
  - id: patient
    kind: cli
    timeout_seconds: 60
    command: sleep 1.5; echo patient > patient.txt
  - id: once
    kind: cli
    retry: {max_attempts: 1}
    command: echo try >> once.txt; exit 1
"""


def test_defaults_give_every_cli_step_its_retry_and_a_step_s_own_value_wins(cpf):
    result = start(cpf, DEFAULTED)
    assert (result.exit_code, result.envelope["error"]["step_id"]) == (30, "once")
    assert len(lines(cpf, "flaky.txt")) == 3  # retried as the defaults say
    assert (cpf.cwd / "patient.txt").exists()  # its own timeout beat the default 0.5 s
    assert len(lines(cpf, "once.txt")) == 1  # its own retry: no second attempt


def test_defaults_timeout_stops_a_step_and_each_attempt_is_retried(cpf):
    body = """
id: slow
defaults:
  timeout_seconds: 0.5
  retry: {max_attempts: 2}
steps:
  - id: hang
    kind: cli
    command: echo try >> hang.txt; sleep 30
"""
    result = start(cpf, body)
    assert (result.exit_code, result.error_code) == (30, "ERR_TIMEOUT"), result.envelope
    assert len(lines(cpf, "hang.txt")) == 2
    assert [a["error"]["code"] for a in attempts(cpf, result.envelope["run_id"], "hang")] == [
        "ERR_TIMEOUT",
        "ERR_TIMEOUT",
    ]


def test_validate_refuses_unknown_defaults(cpf):
    body = "id: d\ndefaults: {retry: {max_attempts: 0}, color: blue}\nsteps: [{id: e, kind: end}]"
    cpf.write(
        "wf.yaml",
        "schema_version: checkpointflow/v1\nworkflow:\n  " + body.replace("\n", "\n  ") + "\n",
    )
    result = cpf("validate", "-f", "wf.yaml")
    assert (result.exit_code, result.error_code) == (10, "ERR_VALIDATION_WORKFLOW")
    assert "color" in json.dumps(result.envelope["error"])
