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


def run(cpf, steps: str, *args: str, extra: str = ""):
    cpf.write("flow.yaml", HEAD + extra + "  steps:\n" + steps)
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


def test_api_steps_take_timeout_and_retry_from_the_defaults(cpf, server):
    defaults = "  defaults:\n    timeout_seconds: 0.5\n    retry: {max_attempts: 2}\n"
    server.script = [(200, {}, 3), (200, {}, 3)]
    result = run(cpf, api_step(server.url), "--input", INPUTS, extra=defaults)
    assert (result.exit_code, result.error_code) == (30, "ERR_TIMEOUT"), result.envelope
    assert len(server.requests) == 2
    server.script = [(500, {}, 0), (200, {"ok": True}, 0)]
    own = api_step(server.url, "      retry: {max_attempts: 1}\n")
    result = run(cpf, own, "--input", INPUTS, extra=defaults)
    assert (result.exit_code, result.error_code) == (30, "ERR_HTTP_STATUS"), result.envelope
    assert len(server.requests) == 3  # the step's own retry: one attempt only


def test_api_timeout_and_connection_errors_have_their_own_codes(cpf, server):
    server.script = [(200, {}, 3)]
    slow = api_step(server.url, "      timeout_seconds: 0.5\n")
    result = run(cpf, slow, "--input", INPUTS)
    assert (result.exit_code, result.error_code) == (30, "ERR_TIMEOUT")
    refused = run(cpf, api_step("http://127.0.0.1:9"), "--input", INPUTS)
    assert (refused.exit_code, refused.error_code) == (30, "ERR_HTTP_CONNECTION")
    state = inspect(cpf, refused.envelope["run_id"])["state"]
    assert state["steps"]["call"].get("response") is None  # no response: left out
    not_http = run(cpf, api_step("file:///etc"), "--input", INPUTS)
    assert not_http.error_code == "ERR_HTTP_CONNECTION"


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/caf\u00e9", "http://127.0.0.1:9/a b"])
def test_a_url_that_needs_encoding_is_refused_with_a_hint(cpf, url):
    result = run(cpf, get_step(url))
    assert (result.exit_code, result.error_code) == (30, "ERR_HTTP_CONNECTION")
    assert "percent-encode" in result.envelope["error"]["message"]


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


# --- private addresses --------------------------------------------------------------------

FROM_DATA = {
    "inputs": ("", "${inputs.base}"),
    "step outputs": (
        '    - id: find\n      kind: cli\n      argv: [printf, \'{"base": "BASE"}\']\n',
        "${steps.find.outputs.base}",
    ),
}


@pytest.mark.parametrize("source", FROM_DATA)
def test_a_host_from_the_runs_data_may_not_reach_a_loopback_address(cpf, server, source):
    before, base = FROM_DATA[source]
    steps = before.replace("BASE", server.url) + get_step(
        base, extra="      retry: {max_attempts: 3, backoff_seconds: 0.01}\n"
    )
    result = run(cpf, steps, "--input", json.dumps({"base": server.url}))
    assert (result.exit_code, result.error_code) == (30, "ERR_HTTP_FORBIDDEN_ADDRESS")
    message = result.envelope["error"]["message"]
    assert "'call'" in message and "127.0.0.1" in message and "loopback" in message
    assert "allow_private_network: true" in message
    assert server.requests == []
    state = inspect(cpf, result.envelope["run_id"])["state"]
    assert len(state["steps"]["call"]["attempts"]) == 1  # another attempt would be refused too


def test_an_event_answer_may_not_choose_a_local_host(cpf, server):
    steps = """\
    - {id: ask, kind: await_event, audience: user, event_name: target, input_schema: {type: object}}
""" + get_step(
        "http://${steps.ask.outputs.host}:PORT".replace("PORT", server.url.rsplit(":", 1)[1])
    )
    waiting = run(cpf, steps)
    run_id = waiting.envelope["run_id"]
    answered = cpf(
        "resume", "--run-id", run_id, "--event", "target", "--input", '{"host": "2130706433"}'
    )
    assert answered.error_code == "ERR_HTTP_FORBIDDEN_ADDRESS"
    assert "'2130706433' at 127.0.0.1" in answered.envelope["error"]["message"]
    assert server.requests == []


def test_the_opt_in_lets_a_host_from_data_reach_a_local_service(cpf, server):
    server.script = [(200, {"local": True}, 0)]
    steps = get_step("${inputs.base}", extra="      allow_private_network: true\n")
    result = run(cpf, steps, "--input", json.dumps({"base": server.url}))
    assert result.envelope["result"] == {"local": True}


def test_a_host_from_the_environment_counts_as_written(cpf, server):
    server.script = [(200, {"ok": 1}, 0)]
    cpf.write("flow.yaml", HEAD + "  steps:\n" + get_step("${env.LOCAL_API}"))
    result = cpf("run", "-f", "flow.yaml", env={"LOCAL_API": server.url})
    assert result.envelope["result"] == {"ok": 1}


def test_a_refused_address_can_be_handled_by_on_error(cpf, server):
    steps = get_step("${inputs.base}", extra="      on_error: {next: fallback}\n") + (
        "    - {id: fallback, kind: end, result: '${steps.call.error.code}'}\n"
    )
    result = run(cpf, steps, "--input", json.dumps({"base": "http://127.0.0.1:9"}))
    assert result.envelope["result"] == "ERR_HTTP_FORBIDDEN_ADDRESS"


def redirect_to(location: str) -> tuple:
    return (302, "", 0, {"Location": location})


def test_a_written_url_may_redirect_on_its_own_host_and_port(cpf, server):
    server.script = [redirect_to("/moved"), (200, {"moved": True}, 0)]
    result = run(cpf, get_step(server.url))
    assert result.envelope["result"] == {"moved": True}
    assert [r["path"] for r in server.requests] == ["/items", "/moved"]


def test_a_redirect_to_another_loopback_port_is_refused(cpf, server):
    other = Server()
    try:
        server.script = [redirect_to(other.url + "/elsewhere")]
        result = run(cpf, get_step(server.url))
        assert (result.exit_code, result.error_code) == (30, "ERR_HTTP_FORBIDDEN_ADDRESS")
        assert "redirect" in result.envelope["error"]["message"]
        assert other.requests == []
    finally:
        other.close()


def test_with_the_opt_in_a_redirect_elsewhere_is_followed_without_credentials(cpf, server):
    port = server.url.rsplit(":", 1)[1]
    server.script = [redirect_to(f"http://localhost:{port}/next"), (200, {"ok": True}, 0)]
    steps = get_step(
        server.url,
        extra="      headers: {Authorization: Bearer t0k3n, X-Kept: yes}\n"
        "      allow_private_network: true\n",
    )
    result = run(cpf, steps)
    assert result.envelope["result"] == {"ok": True}
    first, second = server.requests
    assert first["headers"]["Authorization"] == "Bearer t0k3n"
    assert "Authorization" not in second["headers"] and second["headers"]["X-Kept"] == "yes"


def test_through_a_proxy_the_target_is_checked_before_the_proxy_is_asked(cpf, server):
    server.script = [(200, {"via": "proxy"}, 0)]
    proxy = {"http_proxy": server.url, "no_proxy": ""}
    cpf.write("flow.yaml", HEAD + "  steps:\n" + get_step("http://service.invalid"))
    written = cpf("run", "-f", "flow.yaml", env=proxy)
    assert written.envelope["result"] == {"via": "proxy"}
    assert server.requests[0]["path"] == "http://service.invalid/items"
    cpf.write("flow.yaml", HEAD + "  steps:\n" + get_step("${inputs.base}"))
    inputs = json.dumps({"base": "http://10.1.2.3"})
    refused = cpf("run", "-f", "flow.yaml", "--input", inputs, env=proxy)
    assert refused.error_code == "ERR_HTTP_FORBIDDEN_ADDRESS"
    assert "10.1.2.3" in refused.envelope["error"]["message"]
    assert len(server.requests) == 1


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
