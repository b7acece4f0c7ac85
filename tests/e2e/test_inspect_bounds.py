"""Compact `cpf inspect` keeps its promise: no value it prints is above 4 KB, wherever
the value sits (result, state, waits, errors, events, history); `--full` has everything."""

from __future__ import annotations

import json

from e2e_helpers import start

LIMIT = 4096  # the guide: "any value above 4 KB is replaced"

BIG_RESULT = """
id: big_result
steps:
  - id: report
    kind: cli
    command: >-
      python3 -c "import json; print(json.dumps({'rows': ['row %05d' % i for i in range(5000)]}))"
    outputs: {type: object}
  - id: done
    kind: end
    result: ${steps.report.outputs}
"""


def rows() -> dict:
    return {"rows": [f"row {i:05d}" for i in range(5000)]}


def test_a_large_output_that_becomes_the_result_is_elided(cpf):
    done = start(cpf, BIG_RESULT)
    assert done.exit_code == 0 and done.envelope["result"] == rows()
    assert len(json.dumps(rows())) > 50_000
    run_id = done.envelope["run_id"]
    compact = cpf("inspect", "--run-id", run_id)
    # The 50 KB value sits in five places (the step's outputs in state, step_outputs and
    # step_results, the run's result, the log record); printed in any one of them, the
    # envelope would pass 50 KB. With each replaced by a note, a few KB remain.
    assert len(compact.stdout.encode()) < 4 * LIMIT, len(compact.stdout)
    assert "row 04999" not in compact.stdout
    result = compact.envelope["result"]
    assert result["state"]["result"]["omitted_bytes"] > 50_000
    assert result["step_outputs"]["report"]["omitted_bytes"] > 50_000
    full = cpf("inspect", "--run-id", run_id, "--full").envelope["result"]
    assert full["state"]["result"] == rows() and full["step_outputs"]["report"] == rows()


LARGE_WAITS = """
id: large_waits
description: "%s"
inputs:
  type: object
  properties:
    notes: {type: array}
steps:
  - id: ask_each
    kind: foreach
    items: ${inputs.notes}
    concurrency: 3
    body:
      - id: ask
        kind: await_event
        audience: user
        event_name: verdict
        prompt: "Is this fine? ${item}"
        input_schema: {type: object}
  - id: done
    kind: end
"""


def test_large_prompts_items_inputs_and_reasons_are_bounded(cpf):
    notes = [f"note {n}: " + "x" * 6000 for n in range(3)]
    started = start(cpf, LARGE_WAITS % ("d" * 6000), {"notes": notes})
    assert started.exit_code == 40 and len(started.envelope["waits"]) == 3
    run_id = started.envelope["run_id"]
    reason = "r" * 6000
    assert cpf("cancel", "--run-id", run_id, "--reason", reason).exit_code == 0
    compact = cpf("inspect", "--run-id", run_id)
    # Each 6 KB text is kept as a short beginning; each large value becomes a note.
    assert len(compact.stdout.encode()) < 6 * LIMIT, len(compact.stdout)
    assert "x" * LIMIT not in compact.stdout and "r" * LIMIT not in compact.stdout
    state = compact.envelope["result"]["state"]
    assert state["cancel_reason"].startswith("rrr") and "6000 bytes" in state["cancel_reason"]
    assert state["inputs"]["omitted_bytes"] > 18_000
    assert compact.envelope["workflow_description"].startswith("ddd")
    full = cpf("inspect", "--run-id", run_id, "--full").envelope
    assert full["result"]["state"]["cancel_reason"] == reason
    assert full["result"]["state"]["inputs"] == {"notes": notes}


def test_a_waiting_runs_compact_envelope_keeps_the_wait_usable(cpf):
    notes = ["y" * 6000]
    started = start(cpf, LARGE_WAITS % "short", {"notes": notes})
    run_id = started.envelope["run_id"]
    compact = cpf("inspect", "--run-id", run_id)
    assert compact.exit_code == 40 and len(compact.stdout.encode()) < 6 * LIMIT
    wait = compact.envelope["wait"]
    assert wait["prompt"].startswith("Is this fine? yyy") and len(wait["prompt"]) < LIMIT
    assert wait["resume"]["command"] == started.envelope["wait"]["resume"]["command"]
    assert compact.envelope["result"]["state"]["frames"]["ask_each[0]"]["item"] == {
        "omitted_bytes": 6002,
        "see": "cpf inspect --full",
    }
