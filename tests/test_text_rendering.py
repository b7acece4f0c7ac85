"""The text renderer is a pure function of the envelope: it shows what matters to a person
and never fails, whatever the envelope holds."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from checkpointflow.text_format import render

RUN = {
    "schema_version": "checkpointflow-run/v1",
    "ok": True,
    "command": "run",
    "status": "waiting",
    "exit_code": 40,
    "run_id": "R1",
    "workflow_id": "sign_off",
}


def entry(key: str, prompt: str) -> dict:
    command = f"cpf resume --run-id R1 --event sign_off --token t{key} --input @event.json"
    return {
        "wait_id": key,
        "step_id": key,
        "event_name": "sign_off",
        "audience": "user",
        "prompt": prompt,
        "resume": {"command": command},
    }


def test_several_waits_are_each_shown_with_their_id_and_command():
    first, second = entry("ask[0].ok", "Web?"), entry("ask[1].ok", "Data?")
    wait = {**first, "kind": "external_event", "input_schema": {"type": "object"}}
    lines = render({**RUN, "wait": wait, "waits": [first, second]}).splitlines()
    assert lines[2:] == [
        "waiting for sign_off from user: Web?",
        "  wait id: ask[0].ok",
        "  next: cpf resume --run-id R1 --event sign_off --token task[0].ok --input '{}'",
        "waiting for sign_off from user: Data?",
        "  wait id: ask[1].ok",
        "  next: cpf resume --run-id R1 --event sign_off --token task[1].ok --input @event.json",
    ]


def test_an_answer_is_written_inline_only_when_the_schema_tells_it():
    schema = {"type": "object", "required": ["n"], "properties": {"n": {"type": "integer"}}}
    wait = {**entry("ask", "How many?"), "kind": "external_event", "input_schema": schema}
    out = render({**RUN, "wait": wait, "waits": [entry("ask", "How many?")]})
    assert "  field n (required): integer\n" in out
    assert out.endswith("--input @event.json\n")


def test_an_interrupted_run_points_at_retry_not_at_output():
    error = {"code": "ERR_INTERRUPTED", "message": "SIGINT stopped cpf", "step_id": "build"}
    out = render({**RUN, "ok": False, "status": "failed", "exit_code": 30, "error": error})
    assert out.splitlines()[1:] == [
        "failed (exit 30)",
        "error ERR_INTERRUPTED: SIGINT stopped cpf",
        "  next: cpf retry --run-id R1",
    ]


def test_an_unknown_command_gets_the_generic_form():
    envelope = {**RUN, "command": "future", "status": "completed", "exit_code": 0}
    out = render({**envelope, "result": {"items": [{"a": 1}], "names": ["x", "y"], "n": 2}})
    assert out.splitlines() == [
        "cpf future: completed (exit 0)",
        "run R1 (sign_off)",
        "items:",
        '  - {"a": 1}',
        "names: x, y",
        "n: 2",
    ]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
COMMANDS = st.sampled_from(
    ["run", "resume", "status", "inspect", "list", "logs", "validate", "init", "flows", "x"]
)


@given(
    command=COMMANDS,
    ok=st.booleans(),
    status=st.sampled_from(["running", "waiting", "completed", "failed", "cancelled"]),
    exit_code=st.sampled_from([0, 10, 20, 30, 40, 50]),
    result=JSON,
    details=JSON,
)
def test_any_envelope_renders(  # even of a shape cpf never prints
    command, ok, status, exit_code, result, details
):
    envelope = {**RUN, "command": command, "ok": ok, "status": status, "exit_code": exit_code}
    envelope.update(result=result, error={"code": "ERR_X", "message": "m", "details": details})
    assert render(envelope).endswith("\n")
