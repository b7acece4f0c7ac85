"""Moving through a workflow: `if`, transitions, loops, await steps, end results and
the expression language in conditions."""

from __future__ import annotations

import pytest
from e2e_helpers import inspect, resume, start, step_output


def test_if_false_skips_and_true_runs(cpf):
    body = """
id: conditional
steps:
  - id: skipped
    kind: cli
    if: inputs.n > 5
    command: touch skipped.txt
  - id: braced
    kind: cli
    if: ${inputs.n > 5}
    command: touch braced.txt
  - id: taken
    kind: cli
    if: inputs.n < 5
    command: touch taken.txt
  - id: taken_braced
    kind: cli
    if: "${inputs.n == 1}"
    command: touch taken_braced.txt
"""
    result = start(cpf, body, {"n": 1})
    assert result.exit_code == 0, result.envelope
    assert not (cpf.cwd / "skipped.txt").exists()
    assert not (cpf.cwd / "braced.txt").exists()
    assert (cpf.cwd / "taken.txt").exists()
    assert (cpf.cwd / "taken_braced.txt").exists()
    steps = inspect(cpf, result.envelope["run_id"])["state"]["steps"]
    assert steps["skipped"]["status"] == "skipped"
    assert steps["braced"]["status"] == "skipped"
    assert steps["taken"]["status"] == "completed"


def test_if_on_missing_input_reads_as_null(cpf):
    body = """
id: optional
steps:
  - id: full
    kind: cli
    if: inputs.mode == "full"
    command: touch full.txt
  - id: unset
    kind: cli
    if: inputs.mode == null
    command: touch unset.txt
"""
    result = start(cpf, body)
    assert result.exit_code == 0, result.envelope
    assert not (cpf.cwd / "full.txt").exists()
    assert (cpf.cwd / "unset.txt").exists()
    assert inspect(cpf, result.envelope["run_id"])["state"]["steps"]["full"]["status"] == "skipped"


def test_if_boolean_literal(cpf):
    body = """
id: literal
steps:
  - id: never
    kind: cli
    if: false
    command: touch never.txt
  - id: always
    kind: cli
    if: true
    command: touch always.txt
"""
    assert start(cpf, body).exit_code == 0
    assert not (cpf.cwd / "never.txt").exists()
    assert (cpf.cwd / "always.txt").exists()


def test_if_on_end_step_skips_to_later_end(cpf):
    body = """
id: ends
steps:
  - id: early
    kind: end
    if: inputs.early
    result: early
  - id: late
    kind: end
    result: late
"""
    assert start(cpf, body, {"early": True}).envelope["result"] == "early"
    assert start(cpf, body, {"early": False}, name="b.yaml").envelope["result"] == "late"


def test_cli_transitions_choose_the_next_step(cpf):
    body = """
id: branch
steps:
  - id: check
    kind: cli
    command: |-
      echo '{"big": ${inputs.n}}'
    transitions:
      - when: steps.check.outputs.big > 10
        next: big
      - next: small
  - id: big
    kind: end
    result: big
  - id: small
    kind: end
    result: small
"""
    assert start(cpf, body, {"n": 50}).envelope["result"] == "big"
    assert start(cpf, body, {"n": 2}, name="b.yaml").envelope["result"] == "small"


def test_cli_transition_without_match_goes_on_in_list_order(cpf):
    body = """
id: nomatch
steps:
  - id: check
    kind: cli
    command: echo 1
    transitions:
      - when: inputs.go == true
        next: done
  - id: next_in_list
    kind: end
    result: next
  - id: done
    kind: end
    result: done
"""
    assert start(cpf, body).envelope["result"] == "next"
    assert start(cpf, body, {"go": True}, name="b.yaml").envelope["result"] == "done"


def test_loop_back_to_earlier_step(cpf):
    body = """
id: loop
steps:
  - id: count
    kind: cli
    command: |-
      echo x >> side.txt; printf '{"n": %s}' $(wc -l < side.txt)
    outputs:
      type: object
      properties:
        n: {type: integer}
    transitions:
      - when: steps.count.outputs.n >= 3
        next: done
      - next: count
  - id: never
    kind: cli
    command: touch never.txt
  - id: done
    kind: end
    result:
      n: ${steps.count.outputs.n}
"""
    result = start(cpf, body)
    assert result.exit_code == 0, result.envelope
    assert result.envelope["result"] == {"n": 3}
    assert (cpf.cwd / "side.txt").read_text() == "x\nx\nx\n"
    assert not (cpf.cwd / "never.txt").exists()
    run_id = result.envelope["run_id"]
    for execution in (1, 2, 3):
        assert step_output(cpf, run_id, "count", execution) == f'{{"n": {execution}}}'
    rows = [row for row in inspect(cpf, run_id)["step_results"] if row["step_id"] == "count"]
    assert len(rows) == 3


AWAIT = """
id: gate
steps:
  - id: ask
    kind: await_event
    audience: agent
    event_name: decide
    prompt: Decide for ${inputs.who}
    summary: a summary
    input_schema:
      type: object
      required: [choice]
      properties:
        choice: {type: string}
    transitions:
      - when: event.choice == "a"
        next: path_a
      - when: event.choice == "b"
        next: path_b
  - id: path_a
    kind: end
    result: A
  - id: path_b
    kind: end
    result:
      chosen: ${steps.ask.outputs.choice}
"""


def test_await_wait_block(cpf):
    started = start(cpf, AWAIT, {"who": "zoe"})
    assert started.exit_code == 40
    wait = started.envelope["wait"]
    assert wait["audience"] == "agent"
    assert wait["event_name"] == "decide"
    assert wait["prompt"] == "Decide for zoe"
    assert wait["summary"] == "a summary"
    assert wait["input_schema"]["required"] == ["choice"]
    assert started.envelope["run_id"] in wait["resume"]["command"]


def test_await_transitions(cpf):
    run_a = start(cpf, AWAIT, {"who": "x"}).envelope["run_id"]
    run_b = start(cpf, AWAIT, {"who": "x"}).envelope["run_id"]
    assert resume(cpf, run_a, "decide", {"choice": "a"}).envelope["result"] == "A"
    assert resume(cpf, run_b, "decide", {"choice": "b"}).envelope["result"] == {"chosen": "b"}


def test_await_without_matching_transition_goes_on_in_list_order(cpf):
    run_id = start(cpf, AWAIT, {"who": "x"}).envelope["run_id"]
    done = resume(cpf, run_id, "decide", {"choice": "zzz"})
    assert (done.exit_code, done.envelope["result"]) == (0, "A"), done.envelope
    assert inspect(cpf, run_id)["state"]["steps"]["ask"]["outputs"] == {"choice": "zzz"}


def test_await_loop_can_wait_again(cpf):
    body = """
id: again
steps:
  - id: ask
    kind: await_event
    audience: user
    event_name: answer
    input_schema: {type: object}
    transitions:
      - when: event.ok == true
        next: done
      - next: ask
  - id: done
    kind: end
    result: ${steps.ask.outputs}
"""
    run_id = start(cpf, body).envelope["run_id"]
    again = resume(cpf, run_id, "answer", {"ok": False})
    assert again.exit_code == 40
    assert again.envelope["wait"]["event_name"] == "answer"
    done = resume(cpf, run_id, "answer", {"ok": True, "v": 1})
    assert done.envelope["result"] == {"ok": True, "v": 1}
    assert len(inspect(cpf, run_id)["events"]) == 2


def test_end_result_is_type_preserving(cpf):
    body = """
id: result
steps:
  - id: done
    kind: end
    result:
      number: ${inputs.n}
      flag: ${inputs.flag}
      list: ${inputs.list}
      nothing: ${inputs.none}
      text: "n is ${inputs.n}"
      constant: 12
      nested:
        deeper: ["${inputs.n}", "x${inputs.n}", {k: "${inputs.flag}"}]
"""
    inputs = {"n": 4, "flag": True, "list": [1, "a"], "none": None}
    result = start(cpf, body, inputs)
    assert result.exit_code == 0, result.envelope
    assert result.envelope["result"] == {
        "number": 4,
        "flag": True,
        "list": [1, "a"],
        "nothing": None,
        "text": "n is 4",
        "constant": 12,
        "nested": {"deeper": [4, "x4", {"k": True}]},
    }


def test_end_step_stops_the_run(cpf):
    body = """
id: stops
steps:
  - id: done
    kind: end
    result: first
  - id: after
    kind: cli
    command: touch after.txt
"""
    result = start(cpf, body)
    assert result.envelope["result"] == "first"
    assert not (cpf.cwd / "after.txt").exists()


def test_workflow_without_end_completes_without_result(cpf):
    body = """
id: noend
steps:
  - id: a
    kind: cli
    command: echo plain text
"""
    result = start(cpf, body)
    assert result.exit_code == 0
    assert result.envelope["status"] == "completed"
    assert result.envelope.get("result") is None


# --- expressions in conditions -------------------------------------------------------------

TRUE_CONDITIONS = [
    "inputs.n == 3",
    "inputs.n != 4",
    "inputs.n < 4",
    "inputs.n <= 3",
    "inputs.n > 2",
    "inputs.n >= 3",
    "inputs.n == 3.0",
    "-inputs.n < 0",
    '"b" in inputs.list',
    '"z" not in inputs.list',
    '"ell" in inputs.s',
    '"k" in inputs.obj',
    "inputs.n == 3 and inputs.s == 'hello'",
    "inputs.n == 4 or inputs.s == 'hello'",
    "not inputs.flag",
    "not (inputs.n == 4)",
    "(inputs.n == 4 or inputs.n == 3) and not (inputs.s == 'x')",
    "length(inputs.list) == 3",
    "length(inputs.s) == 5",
    "length(inputs.obj) == 1",
    "contains(inputs.list, 'c')",
    "contains(inputs.s, 'll')",
    "startsWith(inputs.s, 'he')",
    "endsWith(inputs.s, 'lo')",
    "inputs.tricky == 'a and b'",
    "inputs.tricky2 == 'x or y'",
    "inputs.tricky3 == 'p == q'",
    'inputs.tricky4 == "it\'s"',
    "inputs.list[0] == 'a'",
    "inputs.obj['k'] == 1",
    "inputs.missing == null",
    "inputs.obj.k == 1",
    "true",
    "inputs.list",
    "inputs.n",
]
FALSE_CONDITIONS = [
    "inputs.n == 4",
    "inputs.n != 3",
    "inputs.n > 3",
    "inputs.n < 3",
    "'z' in inputs.list",
    "inputs.n == 3 and inputs.s == 'nope'",
    "inputs.n == 1 or inputs.s == 'nope'",
    "not (inputs.n == 3)",
    "inputs.flag",
    "startsWith(inputs.s, 'lo')",
    "endsWith(inputs.s, 'he')",
    "contains(inputs.list, 'zz')",
    "inputs.tricky == 'a'",
    "inputs.n == '3'",
    "inputs.flag == 0",
    "inputs.missing",
    "inputs.empty",
    "length(inputs.empty) > 0",
]
CONDITION_INPUTS = {
    "n": 3,
    "list": ["a", "b", "c"],
    "s": "hello",
    "obj": {"k": 1},
    "flag": False,
    "empty": "",
    "tricky": "a and b",
    "tricky2": "x or y",
    "tricky3": "p == q",
    "tricky4": "it's",
}


def condition_workflow(conditions: list[str]) -> str:
    lines = ["id: conditions", "steps:"]
    for index, condition in enumerate(conditions):
        lines += [
            f"  - id: c{index}",
            "    kind: cli",
            f"    if: {_yaml_string(condition)}",
            f"    command: echo {index}",
        ]
    return "\n".join(lines) + "\n"


def _yaml_string(text: str) -> str:
    import json

    return json.dumps(text)


@pytest.mark.parametrize("truth", [True, False])
def test_conditions(cpf, truth):
    conditions = TRUE_CONDITIONS if truth else FALSE_CONDITIONS
    result = start(cpf, condition_workflow(conditions), CONDITION_INPUTS)
    assert result.exit_code == 0, result.envelope
    steps = inspect(cpf, result.envelope["run_id"])["state"]["steps"]
    expected = "completed" if truth else "skipped"
    wrong = [
        condition
        for index, condition in enumerate(conditions)
        if steps[f"c{index}"]["status"] != expected
    ]
    assert wrong == [], f"conditions that should be {truth}: {wrong}"


def test_condition_type_error_fails_the_run(cpf):
    body = """
id: typeerr
steps:
  - id: s
    kind: cli
    if: inputs.s < 3
    command: touch ran.txt
"""
    result = start(cpf, body, {"s": "text"})
    assert (result.exit_code, result.error_code) == (30, "ERR_EXPRESSION")
    assert result.envelope["error"]["step_id"] == "s"
    assert not (cpf.cwd / "ran.txt").exists()


def test_conditions_read_earlier_step_status_and_outputs(cpf):
    body = """
id: refs
steps:
  - id: first
    kind: cli
    command: |-
      echo '{"ok": true}'
  - id: second
    kind: cli
    if: steps.first.status == "completed" and steps.first.outputs.ok
    command: touch second.txt
"""
    result = start(cpf, body)
    assert result.exit_code == 0, result.envelope
    assert (cpf.cwd / "second.txt").exists()
