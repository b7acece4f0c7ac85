"""Secrets through `${env.NAME}`: the command sees the real value, nothing `cpf` stores or
prints ever holds it, and a step that needs a missing variable runs nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from e2e_helpers import doc

from tests.conftest import Result

SECRETS = {
    "plain": "tok-Q7x9Zr2LmKp4Wv8N",
    "shell-hostile": "s3cr\"et' $(touch pwned) `id` ;x\\y-Q7x9Zr2L",
}

USES = """
id: uses_secret
steps:
  - id: use
    kind: cli
    cwd: vault-${env.SECRET_TOKEN}-dir
    env:
      HEADER: Bearer ${env.SECRET_TOKEN}
    command: |-
      echo "token=${env.SECRET_TOKEN}"
      echo "$HEADER" >&2
      printf '%s' "$HEADER" | sha256sum | cut -c1-64
      printf '%s' "${env.SECRET_TOKEN}" | sha256sum | cut -c1-64
      test "$HEADER" = "Bearer $EXPECTED_TOKEN" && echo header-ok
      test "${env.SECRET_TOKEN}" = "$EXPECTED_TOKEN" && echo command-ok
      case "$PWD" in */"vault-$EXPECTED_TOKEN-dir") echo cwd-ok;; esac
      pwd
  - id: leak
    kind: cli
    command: |-
      printf '{"leak": "%s"}' "${env.SECRET_TOKEN}"
  - id: argv_form
    kind: cli
    argv: ["printf", "[%s]", "${env.SECRET_TOKEN}"]
  - id: list_form
    kind: cli
    command: ["printf '[%s]' '${env.SECRET_TOKEN}'", "printf '(%s)' ${env.SECRET_TOKEN}"]
  - id: done
    kind: end
    result:
      leaked: ${steps.leak.outputs.leak}
      status: ${steps.use.status}
"""


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def all_files(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()]


def assert_nowhere(value: str, results: list[Result], folders: list[Path]) -> None:
    secret = value.encode()
    for result in results:
        assert value not in result.stdout, (
            f"the secret is in the {result.envelope['command']} envelope"
        )
        assert value not in result.stderr, (
            f"the secret is in the stderr of {result.envelope['command']}"
        )
    checked = 0
    for folder in folders:
        for path in all_files(folder):
            checked += 1
            assert secret not in path.read_bytes(), f"the secret is stored in {path}"
    assert checked > 0


def secret_env(cpf, value: str) -> dict[str, str]:
    return {"SECRET_TOKEN": value, "EXPECTED_TOKEN": value}


@pytest.mark.parametrize("value", SECRETS.values(), ids=SECRETS.keys())
def test_secret_reaches_the_command_and_is_stored_nowhere(cpf, value):
    (cpf.cwd / f"vault-{value}-dir").mkdir()
    cpf.write("wf.yaml", doc(USES))
    env = secret_env(cpf, value)
    ran = cpf("run", "-f", "wf.yaml", env=env)  # not quiet: progress must not leak either
    assert ran.exit_code == 0, ran.envelope
    run_id = ran.envelope["run_id"]
    folder = cpf.run_folder(run_id)

    stdout = (folder / "steps" / "use" / "1.stdout").read_text()
    stderr = (folder / "steps" / "use" / "1.stderr").read_text()
    lines = stdout.splitlines()
    # the command saw the real value, in the command text, the env map and the cwd ...
    assert lines[0] == "token=***"
    assert lines[1] == sha(f"Bearer {value}")
    assert lines[2] == sha(value)
    assert lines[3:6] == ["header-ok", "command-ok", "cwd-ok"], stdout
    # ... and the captured output shows *** where the value was
    assert lines[6].endswith("/vault-***-dir"), lines[6]
    assert stderr == "Bearer ***\n"
    assert (folder / "steps" / "argv_form" / "1.stdout").read_text() == "[***]"
    assert (folder / "steps" / "list_form" / "1.stdout").read_text() == "[***](***)"
    assert ran.envelope["result"] == {"leaked": "***", "status": "completed"}
    assert not list(cpf.cwd.rglob("pwned")), "a secret value was run as code"

    queries = [cpf(query, "--run-id", run_id, env=env) for query in ("status", "inspect")]
    assert [q.exit_code for q in queries] == [0, 0]
    inspected = queries[1].envelope["result"]
    assert inspected["step_outputs"]["leak"] == {"leak": "***"}
    assert_nowhere(value, [ran, *queries], [cpf.root / "runs", cpf.root / "cache"])


@pytest.mark.parametrize("value", SECRETS.values(), ids=SECRETS.keys())
def test_secret_in_a_failing_step_is_masked_in_the_error(cpf, value):
    body = """
id: fails
steps:
  - id: boom
    kind: cli
    env:
      AUTH: "x-${env.SECRET_TOKEN}-y"
    command: |-
      echo "stdout ${env.SECRET_TOKEN}"
      echo "auth $AUTH" >&2
      echo "raw ${env.SECRET_TOKEN}" >&2
      exit 3
"""
    cpf.write("wf.yaml", doc(body))
    env = secret_env(cpf, value)
    ran = cpf("run", "-f", "wf.yaml", env=env)
    assert (ran.exit_code, ran.error_code) == (30, "ERR_STEP_FAILED"), ran.envelope
    tail = ran.envelope["error"]["details"]["stderr_tail"]
    assert "auth x-***-y" in tail and "raw ***" in tail, tail
    run_id = ran.envelope["run_id"]
    queries = [cpf(query, "--run-id", run_id, env=env) for query in ("status", "inspect")]
    assert [q.exit_code for q in queries] == [30, 30]
    assert_nowhere(value, [ran, *queries], [cpf.root / "runs", cpf.root / "cache"])


def test_secret_in_timed_out_retried_attempts_is_masked(cpf):
    value = SECRETS["plain"]
    body = """
id: slow
steps:
  - id: slow
    kind: cli
    timeout_seconds: 1
    retry: {max_attempts: 2}
    command: |-
      echo "out ${env.SECRET_TOKEN}"
      echo "err ${env.SECRET_TOKEN}" >&2
      sleep 30
"""
    cpf.write("wf.yaml", doc(body))
    ran = cpf("run", "-f", "wf.yaml", env=secret_env(cpf, value), timeout=60)
    assert (ran.exit_code, ran.error_code) == (30, "ERR_TIMEOUT"), ran.envelope
    steps = cpf.run_folder(ran.envelope["run_id"]) / "steps" / "slow"
    for attempt in (1, 2):
        assert (steps / f"{attempt}.stdout").read_text() == "out ***\n"
        assert (steps / f"{attempt}.stderr").read_text() == "err ***\n"
    inspected = cpf("inspect", "--run-id", ran.envelope["run_id"])
    assert_nowhere(value, [ran, inspected], [cpf.root / "runs", cpf.root / "cache"])


def test_secret_in_a_missing_cwd_is_masked_in_the_error(cpf):
    value = SECRETS["plain"]
    body = """
id: nocwd
steps:
  - id: s
    kind: cli
    cwd: missing-${env.SECRET_TOKEN}
    command: "true"
"""
    cpf.write("wf.yaml", doc(body))
    ran = cpf("run", "-f", "wf.yaml", env=secret_env(cpf, value))
    assert (ran.exit_code, ran.error_code) == (30, "ERR_STEP_FAILED"), ran.envelope
    assert "missing-***" in ran.envelope["error"]["message"]
    status = cpf("status", "--run-id", ran.envelope["run_id"])
    assert_nowhere(value, [ran, status], [cpf.root / "runs", cpf.root / "cache"])


def test_secret_split_across_output_chunks_is_masked(cpf):
    """Masking streams the captured files; a value straddling a chunk boundary is caught too."""
    value = SECRETS["plain"]
    body = """
id: chunks
steps:
  - id: big
    kind: cli
    command: |-
      for n in 1 2 3; do
        head -c $((1048576 * n - 7)) /dev/zero | tr '\\0' a
        printf '%s' "${env.SECRET_TOKEN}"
      done
"""
    cpf.write("wf.yaml", doc(body))
    ran = cpf("run", "-f", "wf.yaml", "-q", env=secret_env(cpf, value), timeout=120)
    assert ran.exit_code == 0, ran.envelope
    data = (cpf.run_folder(ran.envelope["run_id"]) / "steps" / "big" / "1.stdout").read_bytes()
    assert value.encode() not in data
    assert data.count(b"***") == 3
    assert len(data) == sum(1048576 * n - 7 for n in (1, 2, 3)) + 3 * 3


# ---------------------------------------------------------------------------------------
# resuming where the variable is missing

PAUSES = """
id: pauses
steps:
  - id: before
    kind: cli
    command: echo "before ${env.SECRET_TOKEN}" > /dev/null; echo before >> ran.txt
  - id: ask
    kind: await_event
    audience: user
    event_name: go
    input_schema: {type: object}
  - id: after
    kind: cli
    SITE
  - id: done
    kind: end
    result: finished
"""

SITES = {
    "command": 'command: echo after >> ran.txt; echo "${env.SECRET_TOKEN}" > /dev/null',
    "env": "env: {TOKEN: '${env.SECRET_TOKEN}'}\n    command: echo after >> ran.txt",
    "cwd": "cwd: ./${env.SECRET_TOKEN}\n    command: echo after >> ran.txt",
}


@pytest.mark.parametrize("site", SITES.keys())
def test_resume_without_the_variable_runs_nothing(cpf, site):
    value = SECRETS["plain"]
    (cpf.cwd / value).mkdir()
    cpf.write("wf.yaml", doc(PAUSES.replace("SITE", SITES[site])))
    cpf.env.pop("SECRET_TOKEN", None)
    waiting = cpf("run", "-f", "wf.yaml", env=secret_env(cpf, value))
    assert waiting.exit_code == 40, waiting.envelope
    run_id = waiting.envelope["run_id"]
    assert (cpf.cwd / "ran.txt").read_text() == "before\n"

    resumed = cpf("resume", "--run-id", run_id, "--event", "go", "--input", "{}")
    assert (resumed.exit_code, resumed.error_code) == (30, "ERR_MISSING_ENV"), resumed.envelope
    assert resumed.envelope["error"]["step_id"] == "after"
    assert "SECRET_TOKEN" in resumed.envelope["error"]["message"]
    assert (cpf.cwd / "ran.txt").read_text() == "before\n", "the step ran without its variable"
    ran_txt = list((cpf.cwd / value).glob("ran.txt"))
    assert ran_txt == []
    status = cpf("status", "--run-id", run_id)
    assert (status.exit_code, status.envelope["status"]) == (30, "failed")
    inspected = cpf("inspect", "--run-id", run_id)
    assert inspected.envelope["result"]["state"]["status"] == "failed"
    assert_nowhere(value, [waiting, resumed, status, inspected], [cpf.root / "runs"])


def test_empty_but_set_variable_is_not_missing(cpf):
    body = """
id: empty
steps:
  - id: s
    kind: cli
    command: printf '[%s]' "${env.SECRET_TOKEN}"
"""
    cpf.write("wf.yaml", doc(body))
    ran = cpf("run", "-f", "wf.yaml", "-q", env={"SECRET_TOKEN": ""})
    assert ran.exit_code == 0, ran.envelope
    out = (cpf.run_folder(ran.envelope["run_id"]) / "steps" / "s" / "1.stdout").read_text()
    assert out == "[]"


# ---------------------------------------------------------------------------------------
# where `${env.X}` is refused

REFUSED = {
    "if-bare": """
  - id: s
    kind: cli
    if: env.SECRET_TOKEN == "x"
    command: "true"
""",
    "if-template": """
  - id: s
    kind: cli
    if: ${env.SECRET_TOKEN}
    command: "true"
""",
    "when": """
  - id: s
    kind: cli
    command: "true"
    transitions:
      - when: env.SECRET_TOKEN == "1"
        next: e
      - next: e
  - id: e
    kind: end
""",
    "when-on-await": """
  - id: s
    kind: await_event
    audience: user
    event_name: go
    input_schema: {type: object}
    transitions:
      - when: startsWith(env.SECRET_TOKEN, "a")
        next: e
      - next: e
  - id: e
    kind: end
""",
    "result": """
  - id: e
    kind: end
    result: {token: "${env.SECRET_TOKEN}"}
""",
    "result-nested": """
  - id: e
    kind: end
    result: [{deep: ["Bearer ${env.SECRET_TOKEN}"]}]
""",
    "prompt": """
  - id: s
    kind: await_event
    audience: user
    event_name: go
    prompt: Your token is ${env.SECRET_TOKEN}
    input_schema: {type: object}
""",
    "summary": """
  - id: s
    kind: await_event
    audience: user
    event_name: go
    summary: ${env.SECRET_TOKEN}
    input_schema: {type: object}
""",
}


@pytest.mark.parametrize("steps", REFUSED.values(), ids=REFUSED.keys())
def test_env_is_refused_where_values_stay_in_the_run(cpf, steps):
    cpf.write(
        "wf.yaml",
        "schema_version: checkpointflow/v1\nworkflow:\n  id: r\n  steps:"
        + steps.replace("\n", "\n  "),
    )
    env = {"SECRET_TOKEN": SECRETS["plain"]}
    validated = cpf("validate", "-f", "wf.yaml", env=env)
    assert (validated.exit_code, validated.error_code) == (10, "ERR_VALIDATION_WORKFLOW"), (
        validated.envelope
    )
    messages = [validated.envelope["error"]["message"]]
    messages += [problem["message"] for problem in validated.envelope["error"]["details"] or []]
    assert any("env" in message for message in messages), messages
    ran = cpf("run", "-f", "wf.yaml", env=env)
    assert (ran.exit_code, ran.error_code) == (10, "ERR_VALIDATION_WORKFLOW"), ran.envelope
    assert not (cpf.root / "runs").exists() or not any((cpf.root / "runs").iterdir())
    assert SECRETS["plain"] not in validated.stdout + ran.stdout


def test_env_is_allowed_in_command_cwd_and_env(cpf):
    """The counterpart of the refusals above: the same document shape validates."""
    cpf.write("wf.yaml", doc(USES))
    validated = cpf("validate", "-f", "wf.yaml")
    assert validated.exit_code == 0, validated.envelope
