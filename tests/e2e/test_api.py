"""`api` steps: the request sent, the body as outputs, the response's status and headers
under `steps.<id>.response`, failures with their own codes, and run folders that verify."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest
from e2e_helpers import inspect
from http_server import Server, serving


@pytest.fixture
def server() -> Iterator[Server]:
    yield from serving()


HEAD = "schema_version: checkpointflow/v1\nworkflow:\n  id: calls\n"


def run(cpf, steps: str, *args: str):
    cpf.write("flow.yaml", HEAD + "  steps:\n" + steps)
    return cpf("run", "-f", "flow.yaml", *args)


def api_step(url: str, extra: str = "") -> str:
    return f"""\
    - id: call
      kind: api
      method: POST
      url: {url}/items
      headers: {{X-Trace: "${{inputs.trace}}"}}
      query: {{q: "${{inputs.query}}", page: 2}}
      body: {{name: "${{inputs.name}}", count: "${{inputs.count}}"}}
{extra}    - {{id: done, kind: end, result: "${{steps.call.outputs}}"}}
"""


INPUTS = json.dumps({"trace": "t-1", "query": "a b&c", "name": 'x"; rm -rf /', "count": 3})


def get_step(url: str, result: str = "${steps.call.outputs}", extra: str = "") -> str:
    return f"""\
    - id: call
      kind: api
      method: GET
      url: {url}/items
{extra}    - id: done
      kind: end
      result: {result}
"""


def test_api_sends_the_request_and_a_json_object_body_is_the_outputs(cpf, server):
    server.script = [(201, {"id": 42}, 0)]
    result = run(cpf, api_step(server.url), "--input", INPUTS)
    assert result.exit_code == 0, result.envelope
    assert result.envelope["result"] == {"id": 42}
    sent = server.requests[0]
    assert sent["method"] == "POST"
    assert sent["path"] == "/items?q=a+b%26c&page=2"
    assert sent["headers"]["X-Trace"] == "t-1"
    assert json.loads(sent["body"]) == {"name": 'x"; rm -rf /', "count": 3}


@pytest.mark.parametrize(
    ("payload", "outputs"),
    [
        ([1, 2], {"body": [1, 2]}),
        (42, {"body": 42}),
        (None, {"body": None}),
        ("plain words", {"body": "plain words"}),
        ("", {}),
        ("  \n", {}),
    ],
    ids=["list", "number", "null", "text", "empty", "blank"],
)
def test_a_body_that_is_not_a_json_object_is_under_body(cpf, server, payload, outputs):
    server.script = [(200, payload, 0)]
    result = run(cpf, get_step(server.url))
    assert result.exit_code == 0, result.envelope
    assert result.envelope["result"] == outputs


def test_status_and_headers_are_the_response_not_the_outputs(cpf, server):
    server.script = [(201, {"status": "queued"}, 0, {"Set-Cookie": "a=1", "X-Request-Id": "r7"})]
    result = run(
        cpf,
        get_step(
            server.url,
            "{status: '${steps.call.response.status}', "
            "id: '${steps.call.response.headers[\"x-request-id\"]}', "
            "body: '${steps.call.outputs.status}'}",
        ),
    )
    assert result.envelope["result"] == {"status": 201, "id": "r7", "body": "queued"}
    state = inspect(cpf, result.envelope["run_id"])["state"]
    response = state["steps"]["call"]["response"]
    assert response["status"] == 201
    assert response["headers"]["x-served-by"] == "test"  # names in lower case
    assert response["headers"]["content-type"] == "application/json"


def test_transitions_can_route_on_the_response_status(cpf, server):
    steps = """\
    - id: call
      kind: api
      method: GET
      url: URL/items
      success: {status_codes: [200, 202]}
      transitions:
        - when: steps.call.response.status == 202
          next: later
        - next: now
    - {id: now, kind: end, result: now}
    - {id: later, kind: end, result: later}
""".replace("URL", server.url)
    server.script = [(202, {}, 0)]
    assert run(cpf, steps).envelope["result"] == "later"
    server.script = [(200, {}, 0)]
    assert run(cpf, steps).envelope["result"] == "now"


def test_outputs_schema_validates_the_body(cpf, server):
    strict = "      outputs: {type: object, required: [id]}\n"
    server.script = [(200, {"id": 7}, 0)]
    assert run(cpf, get_step(server.url, extra=strict)).envelope["result"] == {"id": 7}
    server.script = [(200, {"name": "no id"}, 0)]
    missing = run(cpf, get_step(server.url, extra=strict))
    assert (missing.exit_code, missing.error_code) == (30, "ERR_STEP_OUTPUT_INVALID")
    assert "id" in missing.envelope["error"]["message"]
    server.script = [(200, "plain words", 0)]
    text = run(cpf, get_step(server.url, extra="      outputs: {type: object}\n"))
    assert (text.exit_code, text.error_code) == (30, "ERR_STEP_OUTPUT_INVALID")
    assert "not JSON" in text.envelope["error"]["message"]
    server.script = [(200, [1, 2], 0)]
    listed = run(cpf, get_step(server.url, extra="      outputs: {type: array}\n"))
    assert listed.envelope["result"] == {"body": [1, 2]}


def test_status_outside_success_codes_fails_and_on_error_reads_the_response(cpf, server):
    server.script = [(503, {"error": "busy"}, 0)]
    result = run(cpf, api_step(server.url), "--input", INPUTS)
    assert (result.exit_code, result.error_code) == (30, "ERR_HTTP_STATUS")
    assert "503" in result.envelope["error"]["message"]
    steps = get_step(server.url, extra="      on_error: {next: handle}\n") + (
        "    - id: handle\n      kind: end\n"
        "      result: {status: '${steps.call.response.status}', "
        "outputs: '${steps.call.outputs}', code: '${steps.call.error.code}'}\n"
    )
    server.script = [(404, {"error": "gone"}, 0)]
    handled = run(cpf, steps)
    assert handled.envelope["result"] == {"status": 404, "outputs": None, "code": "ERR_HTTP_STATUS"}


def test_api_retries_a_server_that_fails_twice(cpf, server):
    server.script = [(500, {}, 0), (502, {}, 0), (200, {"ok": True}, 0)]
    steps = api_step(server.url, "      retry: {max_attempts: 3, backoff_seconds: 0.05}\n")
    result = run(cpf, steps, "--input", INPUTS)
    assert result.envelope["result"] == {"ok": True}
    assert len(server.requests) == 3
    state = inspect(cpf, result.envelope["run_id"])["state"]
    assert [a["http_status"] for a in state["steps"]["call"]["attempts"]] == [500, 502, 200]


def test_api_timeout_and_connection_errors_have_their_own_codes(cpf, server):
    server.script = [(200, {}, 3)]
    slow = api_step(server.url, "      timeout_seconds: 0.5\n")
    result = run(cpf, slow, "--input", INPUTS)
    assert (result.exit_code, result.error_code) == (30, "ERR_TIMEOUT")
    refused = run(cpf, api_step("http://127.0.0.1:9"), "--input", INPUTS)
    assert (refused.exit_code, refused.error_code) == (30, "ERR_HTTP_CONNECTION")
    state = inspect(cpf, refused.envelope["run_id"])["state"]
    assert state["steps"]["call"]["response"] is None
    not_http = run(cpf, api_step("file:///etc"), "--input", INPUTS)
    assert not_http.error_code == "ERR_HTTP_CONNECTION"


def test_api_secrets_never_reach_the_run_folder(cpf, server):
    secret = "tok-9f8e7d6c5b4a"
    server.script = [(200, {"echo": secret}, 0, {"X-Echo": f"Bearer {secret}"})]
    steps = api_step(server.url).replace(
        'X-Trace: "${inputs.trace}"', 'Authorization: "Bearer ${env.API_TOKEN}"'
    )
    cpf.write("flow.yaml", HEAD + "  steps:\n" + steps)
    result = cpf("run", "-f", "flow.yaml", "--input", INPUTS, env={"API_TOKEN": secret})
    assert server.requests[0]["headers"]["Authorization"] == f"Bearer {secret}"
    assert result.envelope["result"] == {"echo": "***"}
    response = inspect(cpf, result.envelope["run_id"])["state"]["steps"]["call"]["response"]
    assert response["headers"]["x-echo"] == "Bearer ***"
    found = subprocess.run(["grep", "-r", secret, str(cpf.root)], capture_output=True, check=False)
    assert found.returncode == 1, found.stdout


def test_validate_knows_which_steps_have_a_response(cpf):
    steps = """\
    - {id: call, kind: api, method: GET, url: "https://example.invalid/"}
    - {id: hello, kind: cli, command: echo hi}
    - id: done
      kind: end
      result: {a: "${steps.call.response.status}", b: "${steps.hello.response}"}
"""
    cpf.write("flow.yaml", HEAD + "  steps:\n" + steps)
    result = cpf("validate", "-f", "flow.yaml")
    assert result.error_code == "ERR_VALIDATION_WORKFLOW"
    [problem] = result.envelope["error"]["details"]
    assert problem["path"] == "/workflow/steps/2/result/b"
    assert "only an api step has a response" in problem["message"]


# --- cpf verify -------------------------------------------------------------------------------


def test_runs_with_api_steps_verify(cpf, server):
    server.script = [(200, {"id": 1}, 0)]
    passed = run(cpf, get_step(server.url))
    server.script = [(500, "down", 0)]
    failed = run(cpf, get_step(server.url))
    unreachable = run(cpf, get_step("http://127.0.0.1:9"))
    assert [r.envelope["status"] for r in (passed, failed, unreachable)] == ["completed"] + [
        "failed"
    ] * 2
    for result in (passed, failed, unreachable):
        verified = cpf("verify", "--run-id", result.envelope["run_id"])
        assert verified.exit_code == 0, verified.envelope
        assert verified.envelope["result"]["runs"][0]["problems"] == []
