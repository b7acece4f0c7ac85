"""Workflow documents: safe YAML parsing, every problem at once, and the built model."""

from __future__ import annotations

import copy
import http.server
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from checkpointflow.checks import Problem
from checkpointflow.document import (
    find_problems,
    parse_yaml,
    raise_problems,
    workflow_from_bytes,
)
from checkpointflow.errors import ValidationFailure
from checkpointflow.expressions import parse
from checkpointflow.model import (
    AwaitEventStep,
    CliStep,
    EndStep,
    ParallelStep,
    Retry,
    Transition,
)

HEAD = "schema_version: checkpointflow/v1\nworkflow:\n"


def doc(steps: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {
        "schema_version": "checkpointflow/v1",
        "workflow": {"id": "wf", "steps": steps, **fields},
    }


def yaml_error(data: bytes) -> ValidationFailure:
    with pytest.raises(ValidationFailure) as caught:
        parse_yaml(data, "wf.yaml")
    return caught.value


# --- parse_yaml ---------------------------------------------------------------------------


def test_parse_yaml_gives_plain_json_data() -> None:
    data = (HEAD + "  id: wf\n  steps:\n    - {id: a, kind: cli, command: 'echo hi'}\n").encode()
    document = parse_yaml(data, "wf.yaml")
    assert document == {
        "schema_version": "checkpointflow/v1",
        "workflow": {"id": "wf", "steps": [{"id": "a", "kind": "cli", "command": "echo hi"}]},
    }
    assert type(document) is dict
    assert type(document["workflow"]) is dict
    assert type(document["workflow"]["steps"]) is list


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\na: 2\n",
        "workflow:\n  id: x\n  id: y\n",
        "steps:\n  - id: a\n    kind: cli\n    kind: end\n",
    ],
)
def test_duplicate_keys_are_rejected(text: str) -> None:
    error = yaml_error(text.encode())
    assert error.code == "ERR_YAML_PARSE"
    assert "wf.yaml" in error.message
    assert "<unicode string>" not in error.message


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", "", "42\n", "null\n", "~\n"])
def test_non_mapping_documents_are_rejected(text: str) -> None:
    error = yaml_error(text.encode())
    assert error.code == "ERR_VALIDATION_WORKFLOW"
    assert "mapping" in error.message


@pytest.mark.parametrize(
    "text", ["a: [1, 2\n", "a: 'unclosed\n", "a:\n\t- tab\n", "a: b: c\n", "{a: 1\n", "a: *nope\n"]
)
def test_invalid_yaml_is_rejected(text: str) -> None:
    assert yaml_error(text.encode()).code == "ERR_YAML_PARSE"


def test_yaml_dates_become_iso_strings() -> None:
    document = parse_yaml(
        b"day: 2024-01-02\nwhen: 2024-01-02T03:04:05Z\nlist: [2023-12-31]\n", "wf.yaml"
    )
    assert document["day"] == "2024-01-02"
    assert isinstance(document["when"], str)
    assert document["when"].startswith("2024-01-02T03:04:05")
    assert document["list"] == ["2023-12-31"]


@pytest.mark.parametrize("value", [".inf", "-.inf", ".Inf", ".nan", ".NaN", "[1, .inf]"])
def test_non_finite_numbers_are_rejected(value: str) -> None:
    assert yaml_error(f"x: {value}\n".encode()).code == "ERR_YAML_PARSE"


def test_binary_values_are_rejected() -> None:
    assert yaml_error(b"x: !!binary aGVsbG8=\n").code == "ERR_YAML_PARSE"


@pytest.mark.parametrize(
    "text",
    [
        "x: !!python/object/apply:os.system ['touch pwned']\n",
        "x: !!python/name:os.system\n",
        "x: !custom 1\n",
    ],
)
def test_unsafe_tags_are_rejected(text: str) -> None:
    assert yaml_error(text.encode()).code == "ERR_YAML_PARSE"


def test_non_utf8_is_rejected() -> None:
    error = yaml_error(b"x: \xff\xfe\n")
    assert error.code == "ERR_YAML_PARSE"
    assert "UTF-8" in error.message


def test_alias_bomb_is_rejected() -> None:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, 10):
        refs = ", ".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    error = yaml_error("\n".join(lines).encode())
    assert error.code == "ERR_YAML_PARSE"
    assert "alias" in error.message.lower() or "expands" in error.message


def test_modest_aliases_are_expanded() -> None:
    document = parse_yaml(b"base: &b {x: 1}\ncopy: *b\n", "wf.yaml")
    assert document == {"base": {"x": 1}, "copy": {"x": 1}}
    document["copy"]["x"] = 2
    assert document["base"] == {"x": 1}, "aliases must become independent JSON copies"


@pytest.mark.parametrize("depth", [200, 5000])
def test_deep_nesting_is_a_parse_error(depth: int) -> None:
    text = "x: " + "[" * depth + "]" * depth
    if depth == 200:
        # Moderately deep documents are fine.
        value: Any = parse_yaml(text.encode(), "wf.yaml")["x"]
        for _ in range(depth - 1):
            assert isinstance(value, list) and len(value) == 1
            value = value[0]
        assert value == []
    else:
        assert yaml_error(text.encode()).code == "ERR_YAML_PARSE"


def test_non_string_keys_become_their_json_text() -> None:
    document = parse_yaml(b"7: a\ntrue: b\nnull: c\n1.5: d\n", "wf.yaml")
    assert document == {"7": "a", "true": "b", "null": "c", "1.5": "d"}


# --- find_problems ------------------------------------------------------------------------


def test_a_valid_document_has_no_problems() -> None:
    document = doc(
        [
            {
                "id": "a",
                "kind": "cli",
                "command": "echo ${inputs.x}",
                "outputs": {"type": "object"},
            },
            {
                "id": "w",
                "kind": "await_event",
                "audience": "user",
                "event_name": "go",
                "input_schema": {"type": "object"},
                "transitions": [{"when": "event.ok", "next": "done"}, {"next": "a"}],
            },
            {"id": "done", "kind": "end", "result": {"a": "${steps.a.outputs}"}},
        ],
        inputs={"type": "object", "properties": {"x": {"type": "string"}}},
    )
    assert find_problems(document) == []


def test_all_broken_steps_are_reported_at_once() -> None:
    document = doc(
        [
            {"id": "no_command", "kind": "cli"},
            {"id": "ok", "kind": "cli", "command": "true"},
            {"id": "extra", "kind": "cli", "command": "x", "bogus": 1},
            {"id": "no_schema", "kind": "await_event", "audience": "user", "event_name": "e"},
            {"id": "bad_kind", "kind": "teleport"},
            {"id": "bad_retry", "kind": "cli", "command": "x", "retry": {"max_attempts": 0}},
            {"id": "end", "kind": "end"},
        ]
    )
    problems = find_problems(document)
    assert all(isinstance(problem, Problem) for problem in problems)
    by_step = {problem.step_id: problem for problem in problems}
    assert len(problems) == 5
    assert set(by_step) == {"no_command", "extra", "no_schema", "bad_kind", "bad_retry"}
    assert by_step["no_command"].path.startswith("/workflow/steps/0")
    assert by_step["extra"].path.startswith("/workflow/steps/2")
    assert by_step["no_schema"].path.startswith("/workflow/steps/3")
    assert by_step["bad_kind"].path == "/workflow/steps/4/kind"
    assert by_step["bad_retry"].path.startswith("/workflow/steps/5")
    assert "bogus" in by_step["extra"].message
    assert "teleport" in by_step["bad_kind"].message
    for problem in problems:
        assert problem.code == "ERR_VALIDATION_WORKFLOW"
        assert problem.to_json() == {
            "path": problem.path,
            "message": problem.message,
            "step_id": problem.step_id,
            "code": problem.code,
        }


def test_all_semantic_problems_are_reported_at_once() -> None:
    document = doc(
        [
            {"id": "a", "kind": "cli", "command": "echo ${foo.bar}"},
            {"id": "b", "kind": "cli", "command": "echo ${steps.zz.outputs}", "if": "${"},
            {"id": "c", "kind": "end", "transitions": [{"next": "nowhere"}]},
            {"id": "d", "kind": "cli", "command": "x", "shell": "'unclosed"},
            {"id": "e", "kind": "end", "result": {"x": "${event.y}"}},
        ]
    )
    problems = find_problems(document)
    paths = {(problem.step_id, problem.path) for problem in problems}
    assert paths == {
        ("a", "/workflow/steps/0/command"),
        ("b", "/workflow/steps/1/if"),
        ("b", "/workflow/steps/1/command"),
        ("c", "/workflow/steps/2/transitions/0/next"),
        ("d", "/workflow/steps/3/shell"),
        ("e", "/workflow/steps/4/result/x"),
    }


def test_duplicate_step_ids_are_reported() -> None:
    document = doc([{"id": "a", "kind": "end"}, {"id": "a", "kind": "end"}])
    problems = find_problems(document)
    assert [(p.code, p.path, p.step_id) for p in problems] == [
        ("ERR_DUPLICATE_STEP_ID", "/workflow/steps/1/id", "a")
    ]


def test_a_document_level_problem_is_reported_with_its_path() -> None:
    problems = find_problems({"schema_version": "v2", "workflow": {"id": "wf", "steps": []}})
    assert problems
    assert problems[0].step_id is None
    assert problems[0].path.startswith("/")


@pytest.mark.parametrize(
    "schema",
    [{"type": 5}, {"type": "nonsense"}, {"properties": 3}, {"required": "x"}, {"pattern": "("}],
)
def test_invalid_user_json_schemas_are_reported(schema: Any) -> None:
    document = doc(
        [
            {
                "id": "w",
                "kind": "await_event",
                "audience": "user",
                "event_name": "e",
                "input_schema": schema,
            },
            {"id": "c", "kind": "cli", "command": "x", "outputs": schema},
        ],
        inputs=schema,
    )
    problems = find_problems(document)
    assert {(p.path, p.step_id) for p in problems} == {
        ("/workflow/inputs", None),
        ("/workflow/steps/0/input_schema", "w"),
        ("/workflow/steps/1/outputs", "c"),
    }


class _Recorder(http.server.BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        body = b'{"type": "string"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def schema_server() -> Iterator[str]:
    _Recorder.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_remote_ref_is_reported_and_never_fetched(schema_server: str) -> None:
    unique = uuid.uuid4().hex
    remote = {"$ref": f"{schema_server}/{unique}/input.json"}
    nested = {"type": "object", "properties": {"a": {"$ref": f"{schema_server}/{unique}/a.json"}}}
    based = {"$id": f"{schema_server}/{unique}/base.json", "$ref": "other.json"}
    document = doc(
        [
            {
                "id": "w",
                "kind": "await_event",
                "audience": "user",
                "event_name": "e",
                "input_schema": remote,
            },
            {"id": "c", "kind": "cli", "command": "x", "outputs": nested},
            {
                "id": "v",
                "kind": "await_event",
                "audience": "user",
                "event_name": "e",
                "input_schema": based,
            },
        ],
        inputs={"$ref": f"{schema_server}/{unique}/inputs.json"},
    )
    problems = find_problems(document)
    assert {(p.path, p.step_id) for p in problems} == {
        ("/workflow/inputs", None),
        ("/workflow/steps/0/input_schema", "w"),
        ("/workflow/steps/1/outputs", "c"),
        ("/workflow/steps/2/input_schema", "v"),
    }
    assert any("remote" in p.message or "$ref" in p.message for p in problems)
    assert _Recorder.requests == []


@pytest.mark.parametrize("ref", ["file:///etc/passwd", "other.json", "https://example.invalid/x"])
def test_other_non_local_refs_are_reported(ref: str) -> None:
    document = doc([{"id": "c", "kind": "cli", "command": "x", "outputs": {"$ref": ref}}])
    problems = find_problems(document)
    assert [(p.path, p.step_id) for p in problems] == [("/workflow/steps/0/outputs", "c")]


def test_local_refs_are_fine() -> None:
    schema = {
        "definitions": {"name": {"type": "string"}},
        "type": "object",
        "properties": {"n": {"$ref": "#/definitions/name"}},
    }
    document = doc([{"id": "c", "kind": "cli", "command": "x", "outputs": schema}])
    assert find_problems(document) == []


def test_find_problems_does_not_modify_the_document() -> None:
    document = doc(
        [
            {"id": "a", "kind": "cli", "command": "x", "outputs": {"type": 5}},
            {"id": "b", "kind": "end", "result": "${inputs.x}"},
        ],
        inputs={"type": "object", "properties": {"x": {"default": 1}}},
    )
    before = copy.deepcopy(document)
    find_problems(document)
    assert document == before


# --- raise_problems and the whole pipeline -------------------------------------------------


def test_raise_problems_lists_every_problem() -> None:
    problems = [
        Problem("/workflow/steps/0", "first", "a"),
        Problem("/workflow/steps/1", "second", "b", "ERR_DUPLICATE_STEP_ID"),
    ]
    with pytest.raises(ValidationFailure) as caught:
        raise_problems(problems, "wf.yaml")
    assert caught.value.code == "ERR_VALIDATION_WORKFLOW"
    assert caught.value.step_id == "a"
    assert caught.value.details == [problem.to_json() for problem in problems]
    assert "2 problems" in caught.value.message
    raise_problems([], "wf.yaml")  # nothing to raise


def test_workflow_from_bytes_reports_all_problems() -> None:
    text = HEAD + (
        "  id: wf\n"
        "  steps:\n"
        "    - id: a\n      kind: cli\n"
        "    - id: b\n      kind: cli\n      command: x\n      nope: 1\n"
    )
    with pytest.raises(ValidationFailure) as caught:
        workflow_from_bytes(text.encode(), "wf.yaml")
    assert caught.value.code == "ERR_VALIDATION_WORKFLOW"
    assert [problem["step_id"] for problem in caught.value.details] == ["a", "b"]


# --- build_workflow -----------------------------------------------------------------------


def test_build_workflow_makes_the_model() -> None:
    text = HEAD + (
        "  id: wf\n"
        "  name: Flow\n"
        "  version: 1.5\n"
        "  description: d\n"
        "  defaults: {shell: /bin/bash}\n"
        "  inputs: {type: object}\n"
        "  steps:\n"
        "    - id: a\n"
        "      kind: cli\n"
        "      command: echo ${inputs.x}\n"
        "      if: inputs.x != null\n"
        "      timeout_seconds: 0\n"
        "      retry: {max_attempts: 3, backoff_seconds: 1.5, strategy: exponential}\n"
        "      env: {FLAG: true, N: 3, S: text}\n"
        "      cwd: /tmp\n"
        "      shell: /bin/zsh\n"
        "      success: {exit_codes: [0, 2]}\n"
        "      outputs: {type: object}\n"
        "      transitions:\n"
        "        - when: ${steps.a.outputs.ok}\n"
        "          next: b\n"
        "        - next: c\n"
        "    - id: b\n"
        "      kind: cli\n"
        "      command: [ls, -l]\n"
        "      timeout_seconds: 2.5\n"
        "    - id: w\n"
        "      kind: await_event\n"
        "      audience: agent\n"
        "      event_name: go\n"
        "      input_schema: {type: object}\n"
        "      prompt: p\n"
        "      instructions: [one, two]\n"
        "      risk_level: high\n"
        "    - id: c\n"
        "      kind: end\n"
        "      result: {r: 1}\n"
        "    - id: s\n"
        "      kind: parallel\n"
        "      branches: [{steps: [{id: inner, kind: end}]}]\n"
    )
    wf = workflow_from_bytes(text.encode(), "wf.yaml")
    assert wf.id == "wf"
    assert wf.name == "Flow"
    assert wf.version == "1.5"
    assert wf.description == "d"
    assert wf.default_shell == "/bin/bash"
    assert wf.inputs_schema == {"type": "object"}
    assert [step.id for step in wf.steps] == ["a", "b", "w", "c", "s"]
    assert wf.positions == {"a": 0, "b": 1, "w": 2, "c": 3, "s": 4}
    a = wf.step("a")
    assert isinstance(a, CliStep)
    assert a.command == "echo ${inputs.x}"
    assert a.condition == parse("inputs.x != null")
    assert a.timeout_seconds is None
    assert a.retry == Retry(max_attempts=3, backoff_seconds=1.5, strategy="exponential")
    assert a.env == (("FLAG", "true"), ("N", "3"), ("S", "text"))
    assert a.cwd == "/tmp"
    assert a.shell == "/bin/zsh"
    assert a.success_exit_codes == frozenset({0, 2})
    assert a.outputs_schema == {"type": "object"}
    assert a.transitions == (
        Transition(parse("steps.a.outputs.ok"), "b"),
        Transition(None, "c"),
    )
    b = wf.step("b")
    assert isinstance(b, CliStep)
    assert b.command == ("ls", "-l")
    assert b.timeout_seconds == 2.5
    assert b.retry == Retry()
    assert b.success_exit_codes == frozenset({0})
    assert b.outputs_schema is None
    w = wf.step("w")
    assert isinstance(w, AwaitEventStep)
    assert (w.audience, w.event_name, w.prompt, w.summary) == ("agent", "go", "p", None)
    assert w.instructions == ("one", "two")
    assert w.risk_level == "high"
    c = wf.step("c")
    assert isinstance(c, EndStep)
    assert c.result == {"r": 1}
    assert isinstance(wf.step("s"), ParallelStep)


def test_retry_delays() -> None:
    exponential = Retry(max_attempts=5, backoff_seconds=2, strategy="exponential")
    assert [exponential.delay_before(n) for n in range(1, 6)] == [0.0, 2.0, 4.0, 8.0, 16.0]
    fixed = Retry(max_attempts=5, backoff_seconds=3)
    assert [fixed.delay_before(n) for n in range(1, 5)] == [0.0, 3.0, 3.0, 3.0]
