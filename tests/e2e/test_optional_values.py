"""Values that may be missing: `:-` and `||` fallbacks, lists in conditions, shown text that
tolerates a left-out answer, and the validate warning for reads nothing guarantees.

The workflows are in the style of real ones written for earlier checkpointflow releases:
shell-style defaults in commands, GitHub-style `||` defaults, and prompts that name
optional answers."""

from __future__ import annotations

import pytest
from e2e_helpers import resume, start, step_output

PICK_BASE = r"""
id: open_change
inputs:
  type: object
  properties:
    base_branch: { type: string, description: "the branch to merge into (default: main)" }
steps:
  - id: pick
    kind: cli
    command: >-
      base=${inputs.base_branch:-main} &&
      printf '{"base": "%s"}' "$base"
    outputs:
      type: object
      required: [base]
      properties: { base: { type: string } }
  - id: done
    kind: end
    result:
      base: ${steps.pick.outputs.base}
      said: ${inputs.base_branch || 'nothing'}
      list: ["${inputs.base_branch:-main}", "fixed"]
"""


@pytest.mark.parametrize(
    ("inputs", "base", "said"),
    [
        ({}, "main", "nothing"),
        ({"base_branch": ""}, "main", "nothing"),
        ({"base_branch": "release/2.x"}, "release/2.x", "release/2.x"),
        ({"base_branch": "$(touch hacked)"}, "$(touch hacked)", "$(touch hacked)"),
    ],
)
def test_shell_style_and_double_bar_defaults(cpf, inputs, base, said):
    done = start(cpf, PICK_BASE, inputs)
    assert done.exit_code == 0, done.envelope
    assert done.envelope["result"] == {"base": base, "said": said, "list": [base, "fixed"]}
    assert not (cpf.cwd / "hacked").exists()


TRIAGE = """
id: triage
inputs:
  type: object
  properties:
    environment: { type: string }
steps:
  - id: note_env
    kind: cli
    if: inputs.environment in ["staging", "production"]
    command: echo "known environment ${inputs.environment}"
  - id: ask
    kind: await_event
    audience: user
    event_name: decide
    timeout_seconds: 600
    input_schema:
      type: object
      required: [decision]
      properties:
        decision: { type: string, enum: ["yes", "no", "later"] }
    transitions:
      - when: ${event.decision in ["no", "later"]}
        next: stopped
      - when: event.decision not in ["no", "later"]
        next: go
  - id: go
    kind: end
    result: going
  - id: stopped
    kind: end
    result: ${steps.ask.outputs.decision}
"""


@pytest.mark.parametrize(
    ("decision", "result"), [("yes", "going"), ("no", "no"), ("later", "later")]
)
def test_lists_in_when_and_if(cpf, decision, result):
    started = start(cpf, TRIAGE, {"environment": "staging"})
    assert started.exit_code == 40
    assert step_output(cpf, started.envelope["run_id"], "note_env") == "known environment staging\n"
    done = resume(cpf, started.envelope["run_id"], "decide", {"decision": decision})
    assert done.envelope["result"] == result


def test_an_unlisted_value_skips_the_step(cpf):
    started = start(cpf, TRIAGE, {"environment": "laptop"})
    assert started.exit_code == 40
    assert not (cpf.run_folder(started.envelope["run_id"]) / "steps" / "note_env").exists()


REVIEW = """
id: review_then_publish
steps:
  - id: review
    kind: await_event
    name: "Human: review ${inputs.title}"
    audience: user
    event_name: review
    timeout_seconds: 600
    input_schema:
      type: object
      required: [decision]
      properties:
        decision: { type: string, enum: [approve, revise] }
        notes: { type: string }
  - id: publish
    kind: await_event
    audience: agent
    event_name: published
    timeout_seconds: 600
    summary: "Publish (${steps.review.outputs.notes})"
    prompt: |
      Decision: ${steps.review.outputs.decision}
      Notes: ${steps.review.outputs.notes}
    instructions:
      - "Apply the notes: ${steps.review.outputs.notes}"
      - "Then answer with {}"
    input_schema: { type: object }
"""


def test_a_prompt_naming_a_left_out_answer_renders_it_empty(cpf):
    started = start(cpf, REVIEW, {"title": "Q3 report"})
    waiting = resume(cpf, started.envelope["run_id"], "review", {"decision": "approve"})
    assert waiting.exit_code == 40, waiting.envelope
    wait = waiting.envelope["wait"]
    assert wait["prompt"] == "Decision: approve\nNotes: \n"
    assert wait["summary"] == "Publish ()"
    assert wait["instructions"] == ["Apply the notes: ", "Then answer with {}"]
    done = resume(cpf, started.envelope["run_id"], "published", {})
    assert done.exit_code == 0


def test_a_prompt_shows_the_answer_when_given(cpf):
    started = start(cpf, REVIEW, {"title": "Q3 report"})
    answer = {"decision": "revise", "notes": "shorter intro"}
    wait = resume(cpf, started.envelope["run_id"], "review", answer).envelope["wait"]
    assert wait["prompt"] == "Decision: revise\nNotes: shorter intro\n"
    assert wait["instructions"][0] == "Apply the notes: shorter intro"


NEEDS_NOTES = """
id: needs_notes
steps:
  - id: review
    kind: await_event
    audience: user
    event_name: review
    timeout_seconds: 600
    input_schema:
      type: object
      properties: { notes: { type: string } }
  - id: use
    kind: {kind}
{field}
"""
USES = {
    "command": ("cli", 'command: echo "${steps.review.outputs.notes}"'),
    "cwd": ("cli", "command: pwd\n    cwd: ${steps.review.outputs.notes}"),
    "env": ("cli", "command: env\n    env: { NOTES: '${steps.review.outputs.notes}' }"),
    "result": ("end", "result: { notes: '${steps.review.outputs.notes}' }"),
}


@pytest.mark.parametrize("where", sorted(USES))
def test_a_value_that_is_used_still_fails_when_missing(cpf, where):
    kind, field = USES[where]
    body = NEEDS_NOTES.replace("{kind}", kind).replace("{field}", "    " + field)
    started = start(cpf, body)
    assert started.exit_code == 40, started.envelope
    failed = resume(cpf, started.envelope["run_id"], "review", {})
    assert (failed.exit_code, failed.error_code) == (30, "ERR_EXPRESSION")
    assert "steps.review.outputs.notes does not exist" in failed.envelope["error"]["message"]
    assert failed.envelope["error"]["step_id"] == "use"


# --- validate -------------------------------------------------------------------------------

WARNED = """
id: warned
inputs:
  type: object
  required: [title]
  properties:
    title: { type: string }
    owner: { type: string }
    team: { type: string, default: core }
steps:
  - id: build
    kind: cli
    command: "echo '{}'"
    outputs:
      type: object
      properties:
        artifact: { type: string, default: none }
  - id: ask
    kind: await_event
    audience: user
    event_name: ask
    timeout_seconds: 600
    prompt: "Notes so far: ${steps.ask.outputs.notes}"
    input_schema:
      type: object
      required: [decision, details]
      properties:
        decision: { type: string }
        notes: { type: string }
        level: { type: integer, default: 1 }
        details:
          type: object
          required: [who]
          properties: { who: { type: string }, why: { type: string } }
  - id: publish
    kind: cli
    command: >-
      echo ${steps.ask.outputs.notes} ${steps.ask.outputs.decision} ${steps.ask.outputs.level}
      ${steps.ask.outputs.details.who} ${steps.ask.outputs.details.why}
      ${inputs.title} ${inputs.owner} ${inputs.team} ${steps.build.outputs.artifact}
  - id: guarded
    kind: cli
    if: steps.ask.outputs.notes
    command: echo ${steps.ask.outputs.notes}
  - id: fallbacks
    kind: end
    result:
      a: ${steps.ask.outputs.notes:-none}
      b: ${steps.ask.outputs.notes || inputs.owner || 'nobody'}
      c: ${steps.ask.outputs.notes && 'has notes'}
      d: "${steps.ask.outputs.notes == 'x'}"
"""


def test_validate_warns_about_optional_fields_a_value_needs(cpf):
    cpf.write("wf.yaml", "schema_version: checkpointflow/v1\nworkflow:\n" + indent(WARNED))
    checked = cpf("validate", "-f", "wf.yaml")
    assert checked.exit_code == 0
    warnings = checked.envelope["warnings"]
    reads = sorted(w.split(" reads ")[1].split(",")[0] for w in warnings)
    assert reads == [
        "inputs.owner",
        "steps.ask.outputs.details.why",
        "steps.ask.outputs.notes",
        "steps.ask.outputs.notes",
        "steps.build.outputs.artifact",
    ], warnings
    notes = next(w for w in warnings if "outputs.notes" in w and "'publish'" in w)
    assert notes.startswith("wf.yaml: step 'publish': command reads steps.ask.outputs.notes")
    assert "the input_schema of step 'ask'" in notes
    for fix in (":-", "||", "give it a default", "required", "if: steps.ask.outputs.notes"):
        assert fix in notes
    artifact = next(w for w in warnings if "artifact" in w)
    assert "give it a default" not in artifact  # a cli step's outputs get no defaults filled
    assert any("'fallbacks': result/d reads steps.ask.outputs.notes" in w for w in warnings)


def test_a_clean_workflow_has_no_warning(cpf):
    cpf.write("wf.yaml", "schema_version: checkpointflow/v1\nworkflow:\n" + indent(REVIEW))
    assert "warnings" not in cpf("validate", "-f", "wf.yaml").envelope


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("echo ${steps.nope.outputs.a || 'x'}", "steps.nope refers to a step id"),
        ("echo ${inputs.a || steps.nope.status}", "steps.nope refers to a step id"),
        ("echo ${'a' in [steps.nope.status]}", "steps.nope refers to a step id"),
        ("echo ${steps.nope.outputs.a:-x}", "steps.nope refers to a step id"),
        ("echo ${steps.s.outputz || 'x'}", "a step has only"),
        ("echo ${event.a || 'x'}", "`event` is only available"),
        ("echo ${env.TOKEN || 'x'}", "env.NAME must be a whole ${env.NAME}"),
        ("echo ${env.TOKEN:-x}", "env.NAME must be a whole ${env.NAME}"),
        ("echo ${inputs.a:-${inputs.b}}", "cannot hold another ${...}"),
        ("echo ${inputs.a | 'x'}", "write '||'"),
    ],
)
def test_validate_checks_every_part_of_the_new_forms(cpf, command, message):
    body = f'id: bad\nsteps:\n  - id: s\n    kind: cli\n    command: "{command}"\n'
    cpf.write("wf.yaml", "schema_version: checkpointflow/v1\nworkflow:\n" + indent(body))
    checked = cpf("validate", "-f", "wf.yaml")
    assert checked.exit_code == 10, checked.envelope
    assert message in str(checked.envelope["error"]), checked.envelope["error"]


def indent(body: str) -> str:
    return "".join("  " + line + "\n" for line in body.strip("\n").splitlines())


def test_validate_warns_about_a_list_no_allowed_answer_is_in(cpf):
    body = TRIAGE.replace(
        '- when: ${event.decision in ["no", "later"]}',
        '- when: event.decision in ["nope", "never"]',
    ).replace('- when: event.decision not in ["no", "later"]', '- when: event.decision in ["yes"]')
    cpf.write("wf.yaml", "schema_version: checkpointflow/v1\nworkflow:\n" + indent(body))
    warnings = cpf("validate", "-f", "wf.yaml").envelope["warnings"]
    impossible = [w for w in warnings if "transition 0 compares event.decision" in w]
    assert len(impossible) == 1, warnings
    assert "with any of ['nope', 'never']" in impossible[0]
    # "no" and "later" now match no transition: they go on in list order, and that is said too
    assert any('"no", "later", no transition matches' in w for w in warnings), warnings
