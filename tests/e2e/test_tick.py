"""`cpf tick`: it times out every overdue wait, and says which, even when the run still
waits for others."""

from __future__ import annotations

import time

from e2e_helpers import start

TWO_WAITS = """
id: two_waits
steps:
  - id: both
    kind: parallel
    branches:
      - id: patient
        steps:
          - id: ask_later
            kind: await_event
            audience: user
            event_name: later
            input_schema: {type: object}
      - id: hasty
        steps:
          - id: ask_now
            kind: await_event
            audience: user
            event_name: now
            input_schema: {type: object}
            timeout_seconds: 1
            on_timeout: {next: gave_up}
          - id: answered
            kind: end
            result: answered
          - id: gave_up
            kind: end
            result: gave up
  - id: done
    kind: end
    result: ${steps.both.outputs}
"""


def test_tick_reports_a_timed_out_wait_while_another_still_waits(cpf):
    started = start(cpf, TWO_WAITS)
    assert started.exit_code == 40
    assert [w["wait_id"] for w in started.envelope["waits"]] == [
        "both.patient.ask_later",
        "both.hasty.ask_now",
    ]
    run_id = started.envelope["run_id"]
    time.sleep(1.5)  # past the one-second deadline of ask_now
    ticked = cpf("tick")
    assert ticked.exit_code == 0
    assert ticked.envelope["result"]["advanced"] == [
        {"run_id": run_id, "status": "waiting", "timed_out": ["both.hasty.ask_now"]}
    ]
    status = cpf("status", "--run-id", run_id)
    assert [w["wait_id"] for w in status.envelope["waits"]] == ["both.patient.ask_later"]
    assert cpf("tick").envelope["result"]["advanced"] == []  # nothing more is overdue
    done = cpf("resume", "--run-id", run_id, "--event", "later", "--input", "{}")
    assert done.envelope["result"] == {"patient": {}, "hasty": "gave up"}
