"""Hostile inputs, documents, run ids, outputs and state roots.

Whatever is thrown at `cpf`, the answer is a clear envelope error or a harmless success:
never a traceback (the `cpf` fixture and `check_output` refuse one), never exit 90, never
a command the user did not write, never a file outside the state root or the step's cwd.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from e2e_helpers import doc, start
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import CPF, Result, check_output

DOCUMENTED_EXITS = {0, 10, 20, 30, 40, 50, 60, 70, 80}


def no_internal_error(result: Result) -> Result:
    assert result.exit_code != 90, result.envelope
    assert result.error_code != "ERR_INTERNAL", result.envelope
    assert result.exit_code in DOCUMENTED_EXITS, result.envelope
    return result


def tree(base: Path) -> set[str]:
    return {str(path.relative_to(base)) for path in base.rglob("*")}


def outside(cpf, before: set[str], after: set[str]) -> set[str]:
    """New paths under the test's folder that are neither in the state root nor the cwd."""
    base = cpf.cwd.parent
    keep = (str(cpf.root.relative_to(base)), str(cpf.cwd.relative_to(base)))
    return {p for p in after - before if p.split("/")[0] not in keep}


def assert_nothing_injected(cpf) -> None:
    base = cpf.cwd.parent
    found = [str(p) for p in base.rglob("pwned*")]
    # `cwd: ../..` and friends point above the test's folder: look there too (not deep)
    for folder in [*base.parents, Path.home(), Path("/tmp")]:
        found += [str(p) for p in folder.glob("pwned*")]
    assert found == [], f"an injected command ran: {found}"


def one_step(cpf, step: str, inputs: object = None, *, name: str = "wf.yaml") -> Result:
    body = "id: hostile\nsteps:\n  - id: s\n    kind: cli\n" + step
    return no_internal_error(start(cpf, body, inputs, "-q", name=name))


def step_file(cpf, result: Result, stream: str = "stdout") -> bytes:
    path = cpf.run_folder(result.envelope["run_id"]) / "steps" / "s" / f"1.{stream}"
    return path.read_bytes()


# ---------------------------------------------------------------------------------------
# shell injection through every interpolation site

NASTY = {
    "dquote": 'x"; touch pwned; echo "',
    "squote": "x'; touch pwned; echo '",
    "subshell": "$(touch pwned)",
    "backticks": "`touch pwned`",
    "newlines": "a\ntouch pwned\nb",
    "mixed": "\"'`touch pwned`'\"$(touch pwned2);${IFS}touch pwned3",
    "dots": "../../pwned$(touch pwned)",
    "env-expansion": "${HOME:?$(touch pwned)}",
    "glob": "* pwned*",
    "dash": "-n",
}

# the command shape of each site (@@ marks the interpolation), and what it prints
SITES = {
    "double-quoted": ("command: printf '%s' \"@@\"", "{}"),
    "bare": ("command: printf '%s' @@", "{}"),
    "single-quoted": ("command: printf '%s' '@@'", "{}"),
    "mid-word": ("command: printf '%s' pre@@post", "pre{}post"),
    "argv": ('argv: ["printf", "%s", "<@@>"]', "<{}>"),
    "list": ("command: [\"printf '%s' \\\"@@\\\"\", \"printf '|%s|' '@@' @@\"]", "{0}|{0}||{0}|"),
    "env": ('env:\n      V: "Bearer @@"\n    command: printf \'%s\' "$V"', "Bearer {}"),
}


@pytest.mark.parametrize("site", SITES.keys())
def test_injection_through_commands_and_env(cpf, site):
    """One step per hostile value, all through the same interpolation site."""
    shape, expected = SITES[site]
    names = {f"v{number}": label for number, label in enumerate(NASTY)}
    body = "id: hostile\nsteps:\n" + "".join(
        f"  - id: {name}\n    kind: cli\n    "
        + shape.replace("@@", "${inputs." + name + "}")
        + "\n"
        for name in names
    )
    inputs = {name: NASTY[label] for name, label in names.items()}
    before = tree(cpf.cwd.parent)
    result = no_internal_error(start(cpf, body, inputs, "-q"))
    assert result.exit_code == 0, result.envelope
    folder = cpf.run_folder(result.envelope["run_id"]) / "steps"
    for name, label in names.items():
        out = (folder / name / "1.stdout").read_text()
        assert out == expected.format(NASTY[label]), (label, out)
    assert_nothing_injected(cpf)
    assert outside(cpf, before, tree(cpf.cwd.parent)) == set()


CWD_VALUES = {
    "up-two": "../..",
    "up-many": "../../../../../../../../..",
    "subshell": "$(touch pwned)",
    "backticks": "`touch pwned`",
    "dquote": '"; touch pwned; "',
    "newline": "a\ntouch pwned",
    "absolute": "/nonexistent/$(touch pwned)",
    "semicolon": "x; touch pwned",
}


@pytest.mark.parametrize("value", CWD_VALUES.values(), ids=CWD_VALUES.keys())
def test_cwd_is_only_ever_a_folder_name(cpf, value):
    before = tree(cpf.cwd.parent)
    result = one_step(cpf, "    cwd: ${inputs.v}\n    command: pwd\n", {"v": value})
    assert_nothing_injected(cpf)
    assert outside(cpf, before, tree(cpf.cwd.parent)) == set()
    target = cpf.cwd / value
    if target.is_dir():
        assert result.exit_code == 0, result.envelope
        assert step_file(cpf, result).decode() == str(target.resolve()) + "\n"
    else:
        assert (result.exit_code, result.error_code) == (30, "ERR_STEP_FAILED"), result.envelope
        assert "is not an existing folder" in result.envelope["error"]["message"]


def test_a_folder_named_like_code_is_just_a_folder(cpf):
    odd = "$(touch pwned) `touch pwned`; touch pwned"
    (cpf.cwd / odd).mkdir()
    result = one_step(cpf, "    cwd: ${inputs.v}\n    command: pwd\n", {"v": odd})
    assert result.exit_code == 0, result.envelope
    assert step_file(cpf, result).decode() == str((cpf.cwd / odd).resolve()) + "\n"
    assert_nothing_injected(cpf)


NUL_SITES = {
    "double-quoted": "    command: printf '%s' \"${inputs.v}\"\n",
    "bare": "    command: printf '%s' ${inputs.v}\n",
    "single-quoted": "    command: printf '%s' '${inputs.v}'\n",
    "argv": '    argv: ["printf", "%s", "${inputs.v}"]\n',
    "list": '    command: ["true", "printf %s \\"${inputs.v}\\""]\n',
    "env": '    env:\n      V: "${inputs.v}"\n    command: printf \'%s\' "$V"\n',
    "cwd": '    cwd: "${inputs.v}"\n    command: pwd\n',
}


def assert_nul_refused_or_harmless(cpf, result: Result) -> None:
    assert_nothing_injected(cpf)
    if result.exit_code == 0:
        return
    assert (result.exit_code, result.error_code) == (30, "ERR_STEP_FAILED"), result.envelope
    assert "NUL" in result.envelope["error"]["message"], result.envelope
    status = cpf("status", "--run-id", result.envelope["run_id"])
    assert (status.exit_code, status.envelope["status"]) == (30, "failed")


@pytest.mark.parametrize("site", NUL_SITES.keys())
def test_nul_in_an_interpolated_value(cpf, site):
    result = one_step(cpf, NUL_SITES[site], {"v": "a\u0000b; touch pwned"})
    assert_nul_refused_or_harmless(cpf, result)


LITERAL_NUL = {
    "command": '    command: "printf a\\0b"\n',
    "env-value": '    env: {V: "a\\0b"}\n    command: "true"\n',
    "cwd": '    cwd: "a\\0b"\n    command: "true"\n',
    "step-shell": '    shell: "bash\\0"\n    command: "true"\n',
    "shell-argument": '    shell: "bash -e\\0x"\n    command: "true"\n',
}


@pytest.mark.parametrize("step", LITERAL_NUL.values(), ids=LITERAL_NUL.keys())
def test_nul_written_into_the_workflow(cpf, step):
    """A NUL written in the document itself: refused by validation or by the step."""
    result = one_step(cpf, step)
    assert result.exit_code in (10, 30), result.envelope
    assert "NUL" in json.dumps(result.envelope["error"]), result.envelope
    if result.exit_code == 30:
        status = cpf("status", "--run-id", result.envelope["run_id"])
        assert (status.exit_code, status.envelope["status"]) == (30, "failed")


def test_nul_in_the_default_shell(cpf):
    body = (
        'id: hostile\ndefaults: {shell: "sh\\0"}\n'
        "steps:\n  - id: s\n    kind: cli\n    command: 'true'\n"
    )
    result = no_internal_error(start(cpf, body, None, "-q"))
    assert result.exit_code in (10, 30), result.envelope
    assert "NUL" in json.dumps(result.envelope["error"]), result.envelope


def test_hostile_env_names(cpf):
    names = ["A=B", "", "A\\0B", "1X", "A B", "$(touch pwned)"]
    env = ", ".join(f'"{name}": x{number}' for number, name in enumerate(names))
    cpf.write(
        "wf.yaml",
        doc(f"id: h\nsteps:\n  - id: s\n    kind: cli\n    env: {{{env}}}\n    command: 'true'\n"),
    )
    result = no_internal_error(cpf("validate", "-f", "wf.yaml"))
    assert (result.exit_code, result.error_code) == (10, "ERR_VALIDATION_WORKFLOW"), result.envelope
    assert_nothing_injected(cpf)


# ---------------------------------------------------------------------------------------
# run ids that are not run ids

BAD_IDS = {
    "dotdot-x": "../x",
    "slash": "a/b",
    "absolute": "/etc",
    "dotdot": "..",
    "huge": "a" * 10_000,
    "spaces": "my run",
    "unicode": "ränn-☃-\u202e",
}
# asked of `status` only
MORE_BAD_IDS = {
    "dot": ".",
    "leading-dash": "-x",
    "newline": "abc\ndef",
    "valid-but-unknown": "20990101T000000000Z-0000000000",
    "not-a-run-folder": "notarun",
    "runs-itself": "runs",
}
COMMANDS = {
    "status": [],
    "inspect": [],
    "cancel": [],
    "recover": [],
    "resume": ["--event", "go", "--input", "{}"],
}


def test_bad_run_ids_are_not_found(cpf):
    real = start(
        cpf,
        "id: real\nsteps:\n  - id: ask\n    kind: await_event\n    audience: user\n"
        "    event_name: go\n    input_schema: {type: object}\n",
    )
    assert real.exit_code == 40
    (cpf.root / "runs" / "notarun").mkdir()
    (cpf.root / "runs" / "notarun" / "keep.txt").write_text("mine\n")
    before = tree(cpf.cwd.parent)
    calls = [
        (command, label, [command, f"--run-id={run_id}", *extra])
        for command, extra in COMMANDS.items()
        for label, run_id in BAD_IDS.items()
    ] + [
        ("status", label, ["status", f"--run-id={run_id}"])
        for label, run_id in MORE_BAD_IDS.items()
    ]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda call: cpf(*call[2]), calls))
    for (command, label, _), result in zip(calls, results, strict=True):
        no_internal_error(result)
        assert (result.exit_code, result.error_code) == (10, "ERR_RUN_NOT_FOUND"), (
            command,
            label,
            result.envelope,
        )
        assert len(result.stdout) < 5_000, "the error echoes a 10,000-character id in full"
    assert tree(cpf.cwd.parent) == before, "a refused run id still changed files"
    assert (cpf.root / "runs" / "notarun" / "keep.txt").read_text() == "mine\n"
    status = cpf("status", "--run-id", real.envelope["run_id"])
    assert (status.exit_code, status.envelope["status"]) == (40, "waiting")


# ---------------------------------------------------------------------------------------
# hostile documents

VALID_END = "  id: fine\n  steps:\n    - id: e\n      kind: end\n      result: ok\n"


def billion_laughs() -> str:
    lines = [
        "schema_version: checkpointflow/v1",
        'x0: &x0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
    ]
    for level in range(1, 10):
        lines.append(f"x{level}: &x{level} [" + ",".join([f"*x{level - 1}"] * 10) + "]")
    lines.append("workflow:\n  id: bomb\n  steps:\n    - id: e\n      kind: end\n      result: *x9")
    return "\n".join(lines) + "\n"


def billion_laughs_in_result() -> str:
    anchors = ["      result:", '        l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, 9):
        anchors.append(f"        l{level}: &l{level} [" + ",".join([f"*l{level - 1}"] * 8) + "]")
    return (
        "schema_version: checkpointflow/v1\nworkflow:\n  id: bomb\n  steps:\n"
        "    - id: e\n      kind: end\n" + "\n".join(anchors) + "\n"
    )


@pytest.mark.parametrize(
    ("command", "text"),
    [
        pytest.param("validate", billion_laughs(), id="validate-top-level"),
        pytest.param("run", billion_laughs_in_result(), id="run-in-result"),
        pytest.param("run", billion_laughs(), id="run-top-level", marks=pytest.mark.long),
        pytest.param(
            "validate", billion_laughs_in_result(), id="validate-in-result", marks=pytest.mark.long
        ),
    ],
)
def test_alias_bomb(cpf, command, text):
    cpf.write("bomb.yaml", text)
    result = no_internal_error(cpf(command, "-f", "bomb.yaml", timeout=60))
    assert (result.exit_code, result.error_code) == (10, "ERR_YAML_PARSE"), result.envelope
    assert not (cpf.root / "runs").exists() or not any((cpf.root / "runs").iterdir())


@pytest.mark.parametrize("command", ["run", pytest.param("validate", marks=pytest.mark.long)])
def test_document_over_the_size_cap(cpf, command):
    path = cpf.cwd / "huge.yaml"
    with open(path, "w") as handle:
        handle.write("schema_version: checkpointflow/v1\nworkflow:\n" + VALID_END)
        line = "# " + "x" * 1000 + "\n"
        for _ in range(11 * 1024):  # about 11 MiB of comments: over the 10 MiB default
            handle.write(line)
    result = no_internal_error(cpf(command, "-f", "huge.yaml", timeout=60))
    assert (result.exit_code, result.error_code) == (10, "ERR_VALIDATION_WORKFLOW"), result.envelope


@pytest.mark.parametrize("command", ["validate", "run"])
def test_document_size_cap_is_configurable(cpf, command):
    text = "schema_version: checkpointflow/v1\nworkflow:\n" + VALID_END
    text += ("# padding " + "x" * 90 + "\n") * 20
    assert 2000 <= len(text.encode()) < 3000
    cpf.write("wf.yaml", text)
    fine = no_internal_error(cpf(command, "-f", "wf.yaml"))
    assert fine.exit_code == 0, fine.envelope
    capped = no_internal_error(
        cpf(command, "-f", "wf.yaml", env={"CHECKPOINTFLOW_MAX_DOCUMENT_BYTES": "1000"})
    )
    assert (capped.exit_code, capped.error_code) == (10, "ERR_VALIDATION_WORKFLOW"), capped.envelope


@pytest.mark.parametrize(
    "text",
    [
        "schema_version: checkpointflow/v1\nworkflow:\n  id: a\n  id: b\n"
        "  steps:\n    - id: e\n      kind: end\n",
        "schema_version: checkpointflow/v1\nschema_version: checkpointflow/v1\nworkflow:\n"
        + VALID_END,
        "schema_version: checkpointflow/v1\nworkflow:\n  id: a\n  steps:\n"
        "    - id: e\n      kind: end\n      kind: cli\n",
        "schema_version: checkpointflow/v1\nworkflow:\n  id: a\n  steps:\n"
        "    - id: e\n      kind: end\n      result: {k: 1, k: 2}\n",
    ],
    ids=["workflow-key", "top-level-key", "step-key", "result-key"],
)
def test_duplicate_keys(cpf, text):
    cpf.write("dup.yaml", text)
    result = no_internal_error(cpf("run", "-f", "dup.yaml"))
    assert (result.exit_code, result.error_code) == (10, "ERR_YAML_PARSE"), result.envelope
    assert "duplicate" in result.envelope["error"]["message"].lower(), result.envelope


SLOW_DEEP = ("unclosed", "in-a-result")
DEEP_DOCUMENTS = {
    "flow-sequence": "workflow: " + "[" * 100_000 + "]" * 100_000,
    "unclosed": "workflow: " + "[" * 100_000,
    "flow-mapping": "workflow: " + "{a: " * 100_000 + "}" * 100_000,
    "block-sequence": "workflow:\n  " + "- " * 50_000 + "x",
    "in-a-result": "workflow:\n  id: x\n  steps:\n    - id: e\n      kind: end\n"
    "      result: " + "[" * 100_000 + "]" * 100_000,
}


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(text, id=label, marks=pytest.mark.long if label in SLOW_DEEP else ())
        for label, text in DEEP_DOCUMENTS.items()
    ],
)
def test_deep_nesting_in_the_document(cpf, text):
    cpf.write("deep.yaml", "schema_version: checkpointflow/v1\n" + text + "\n")
    result = no_internal_error(cpf("validate", "-f", "deep.yaml", timeout=60))
    assert (result.exit_code, result.error_code) == (10, "ERR_YAML_PARSE"), result.envelope


@pytest.mark.long
def test_run_of_a_deep_flow_sequence(cpf):
    cpf.write(
        "deep.yaml",
        "schema_version: checkpointflow/v1\nworkflow: " + "[" * 100_000 + "]" * 100_000 + "\n",
    )
    result = no_internal_error(cpf("run", "-f", "deep.yaml", timeout=60))
    assert (result.exit_code, result.error_code) == (10, "ERR_YAML_PARSE"), result.envelope
    assert not (cpf.root / "runs").exists() or not any((cpf.root / "runs").iterdir())


@pytest.mark.parametrize("depth", [pytest.param(100, marks=pytest.mark.long), 400])
def test_moderately_deep_result_in_the_document(cpf, depth):
    """Deep, but within what the parser takes: runs like any other workflow."""
    value = "[" * depth + "]" * depth
    body = f"id: x\nsteps:\n  - id: e\n    kind: end\n    result: {value}\n"
    result = no_internal_error(start(cpf, body, None, "-q"))
    if result.exit_code == 0:
        assert json.dumps(result.envelope["result"], separators=(",", ":")) == value
        assert cpf("inspect", "--run-id", result.envelope["run_id"]).exit_code == 0
    else:
        assert (result.exit_code, result.error_code) == (10, "ERR_YAML_PARSE")


@pytest.mark.parametrize(
    "data",
    [
        b"schema_version: checkpointflow/v1\nworkflow:\n  id: x\n  steps:\n"
        b'    - id: e\n      kind: end\n      result: "\xff\xfe"\n',
        b"\xef\xbb\xbf\xff schema_version: checkpointflow/v1\n",
        b"schema_version: checkpointflow/v1\n# caf\xe9 latin-1 comment\nworkflow:\n"
        + VALID_END.encode(),
        "schema_version: checkpointflow/v1\n".encode("utf-16"),
    ],
    ids=["in-a-value", "after-bom", "in-a-comment", "utf-16"],
)
def test_non_utf8_workflow(cpf, data):
    (cpf.cwd / "bad.yaml").write_bytes(data)
    result = no_internal_error(cpf("run", "-f", "bad.yaml"))
    assert (result.exit_code, result.error_code) == (10, "ERR_YAML_PARSE"), result.envelope


def test_workflow_path_is_a_fifo(cpf):
    fifo = cpf.cwd / "wf.fifo"
    os.mkfifo(fifo)
    for command in ("validate", "run"):
        result = no_internal_error(cpf(command, "-f", str(fifo), timeout=30))
        assert (result.exit_code, result.error_code) == (10, "ERR_VALIDATION_WORKFLOW"), (
            result.envelope
        )


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/null", "link-to-zero", "."])
def test_workflow_path_is_a_device_or_folder(cpf, path):
    if path == "link-to-zero":
        (cpf.cwd / path).symlink_to("/dev/zero")
    for command in ("validate", "run"):
        result = no_internal_error(cpf(command, "-f", path, timeout=30))
        assert result.exit_code == 10, result.envelope
        assert result.error_code in (
            "ERR_VALIDATION_WORKFLOW",
            "ERR_FILE_NOT_FOUND",
            "ERR_YAML_PARSE",
        ), result.envelope
    assert not (cpf.root / "runs").exists() or not any((cpf.root / "runs").iterdir())


# ---------------------------------------------------------------------------------------
# hostile --input

WAITS = """
id: waits
inputs:
  type: object
steps:
  - id: ask
    kind: await_event
    audience: agent
    event_name: go
    input_schema:
      type: object
      required: [decision]
      properties:
        decision: {type: string, enum: [approve, reject]}
  - id: done
    kind: end
    result: ${steps.ask.outputs.decision}
"""


def waiting_run(cpf) -> str:
    result = start(cpf, WAITS, None, "-q", name="waits.yaml")
    assert result.exit_code == 40, result.envelope
    return result.envelope["run_id"]


def assert_still_waiting(cpf, run_id: str, records: int) -> None:
    status = cpf("status", "--run-id", run_id)
    assert (status.exit_code, status.envelope["status"]) == (40, "waiting"), status.envelope
    log = (cpf.run_folder(run_id) / "events.jsonl").read_bytes().splitlines()
    assert len(log) == records, "a refused resume changed the event log"


def deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("how", ["file", "stdin", "object-file"])
def test_deeply_nested_input(cpf, how):
    text = deep_json(100_000) if how != "object-file" else '{"a":' * 100_000 + "1" + "}" * 100_000
    cpf.write("deep.json", text)
    cpf.write("wf.yaml", doc(WAITS))
    source = "-" if how == "stdin" else "@deep.json"
    stdin = text if how == "stdin" else ""
    result = no_internal_error(
        cpf("run", "-f", "wf.yaml", "--input", source, stdin=stdin, timeout=60)
    )
    assert (result.exit_code, result.error_code) == (10, "ERR_VALIDATION_INPUT"), result.envelope

    run_id = waiting_run(cpf)
    refused = no_internal_error(
        cpf(
            "resume",
            "--run-id",
            run_id,
            "--event",
            "go",
            "--input",
            source,
            stdin=stdin,
            timeout=60,
        )
    )
    assert (refused.exit_code, refused.error_code) == (10, "ERR_VALIDATION_EVENT_INPUT")
    assert_still_waiting(cpf, run_id, 1)


NO_SCHEMA = """
id: deep
steps:
  - id: ask
    kind: await_event
    audience: agent
    event_name: go
    input_schema: {}
  - id: done
    kind: end
    result: done
"""


@pytest.mark.parametrize(
    ("depth", "schema"),
    [
        (400, "no-inputs-schema"),
        (600, "no-inputs-schema"),
        (600, "object-schema"),
        pytest.param(400, "object-schema", marks=pytest.mark.long),
        pytest.param(900, "no-inputs-schema", marks=pytest.mark.long),
    ],
)
def test_moderately_deep_input(cpf, depth, schema):
    """Deep JSON that the JSON parser still takes: accepted and stored, or refused cleanly."""
    body = (
        NO_SCHEMA
        if schema == "no-inputs-schema"
        else NO_SCHEMA.replace("steps:", "inputs: {type: object}\nsteps:")
    )
    cpf.write("wf.yaml", doc(body))
    cpf.write("deep.json", '{"a": ' + deep_json(depth) + "}")
    result = no_internal_error(cpf("run", "-f", "wf.yaml", "--input", "@deep.json", "-q"))
    if result.exit_code == 10:
        assert result.error_code == "ERR_VALIDATION_INPUT", result.envelope
        runs = list((cpf.root / "runs").glob("*/events.jsonl"))
        assert runs == [], "a refused run left a run folder behind"
        return
    assert result.exit_code == 40, result.envelope
    run_id = result.envelope["run_id"]
    for query in ("status", "inspect"):
        assert no_internal_error(cpf(query, "--run-id", run_id)).exit_code == 40
    event = no_internal_error(
        cpf("resume", "--run-id", run_id, "--event", "go", "--input", "@deep.json", "-q")
    )
    if event.exit_code == 10:
        assert event.error_code == "ERR_VALIDATION_EVENT_INPUT", event.envelope
        assert_still_waiting(cpf, run_id, 1)
    else:
        assert (event.exit_code, event.envelope["result"]) == (0, "done"), event.envelope


def test_fifty_megabyte_input(cpf):
    path = cpf.cwd / "big.json"
    with open(path, "w") as handle:
        handle.write('{"blob": "')
        chunk = "a" * (1 << 20)
        for _ in range(50):
            handle.write(chunk)
        handle.write('", "items": [' + ",".join(["1"] * 1000) + "]}")
    body = "id: big\ninputs: {type: object}\nsteps:\n  - id: e\n    kind: end\n    result: done\n"
    cpf.write("wf.yaml", doc(body))
    result = no_internal_error(
        cpf("run", "-f", "wf.yaml", "--input", "@big.json", "-q", timeout=120)
    )
    if result.exit_code != 0:
        assert (result.exit_code, result.error_code) == (10, "ERR_VALIDATION_INPUT"), (
            result.envelope
        )
    else:
        assert result.envelope["result"] == "done"
        status = cpf("status", "--run-id", result.envelope["run_id"], timeout=120)
        assert (status.exit_code, status.envelope["status"]) == (0, "completed")
    assert len(result.stdout) < 100_000, "the envelope echoes the 50 MB input"


TWO_KB = json.dumps({"decision": "approve", "padding": "p" * 2000})
CAP = {"CHECKPOINTFLOW_MAX_INPUT_BYTES": "1000"}
SOURCES = {"inline": TWO_KB, "file": "@two-kb.json", "stdin": "-"}


def two_kb_input(cpf, how: str) -> tuple[str, str]:
    assert 2000 < len(TWO_KB) < 3000
    cpf.write("two-kb.json", TWO_KB)
    cpf.write("wf.yaml", doc(WAITS))
    return SOURCES[how], TWO_KB if how == "stdin" else ""


@pytest.mark.parametrize("how", SOURCES.keys())
def test_input_size_cap_for_run(cpf, how):
    source, stdin = two_kb_input(cpf, how)
    capped = no_internal_error(
        cpf("run", "-f", "wf.yaml", f"--input={source}", stdin=stdin, env=CAP)
    )
    assert (capped.exit_code, capped.error_code) == (10, "ERR_VALIDATION_INPUT"), capped.envelope
    assert "CHECKPOINTFLOW_MAX_INPUT_BYTES" in capped.envelope["error"]["message"]
    fine = no_internal_error(cpf("run", "-f", "wf.yaml", f"--input={source}", stdin=stdin))
    assert fine.exit_code == 40, fine.envelope


@pytest.mark.parametrize("how", SOURCES.keys())
def test_input_size_cap_for_resume(cpf, how):
    source, stdin = two_kb_input(cpf, how)
    run_id = waiting_run(cpf)
    resume = ["resume", "--run-id", run_id, "--event", "go", f"--input={source}"]
    refused = no_internal_error(cpf(*resume, stdin=stdin, env=CAP))
    assert (refused.exit_code, refused.error_code) == (10, "ERR_VALIDATION_EVENT_INPUT"), (
        refused.envelope
    )
    assert_still_waiting(cpf, run_id, 1)
    done = no_internal_error(cpf(*resume, stdin=stdin))
    assert (done.exit_code, done.envelope["result"]) == (0, "approve")


def test_non_utf8_input(cpf):
    cpf.write("wf.yaml", doc(WAITS))
    (cpf.cwd / "latin1.json").write_bytes(b'{"name": "caf\xe9"}')
    for source, stdin in (("@latin1.json", b""), ("-", b'{"name": "caf\xe9"}')):
        result = no_internal_error(cpf("run", "-f", "wf.yaml", "--input", source, stdin=stdin))
        assert (result.exit_code, result.error_code) == (10, "ERR_VALIDATION_INPUT"), (
            result.envelope
        )


# ---------------------------------------------------------------------------------------
# hostile step output

BAD_BYTES = r"""printf '\377\376{"a": 1}\200'"""


def test_non_utf8_stdout_with_an_outputs_schema(cpf):
    result = one_step(cpf, f"    command: {json.dumps(BAD_BYTES)}\n    outputs: {{type: object}}\n")
    assert (result.exit_code, result.error_code) == (30, "ERR_STEP_OUTPUT_INVALID"), result.envelope
    assert step_file(cpf, result) == b'\xff\xfe{"a": 1}\x80'


def test_non_utf8_stdout_without_an_outputs_schema(cpf):
    result = one_step(cpf, f"    command: {json.dumps(BAD_BYTES)}\n")
    assert result.exit_code == 0, result.envelope
    assert step_file(cpf, result) == b'\xff\xfe{"a": 1}\x80'
    inspected = cpf("inspect", "--run-id", result.envelope["run_id"])
    assert inspected.exit_code == 0


def test_non_utf8_stderr_of_a_failing_step(cpf):
    command = r"printf 'bad \377\376 bytes\n' >&2; exit 3"
    result = one_step(cpf, f"    command: {json.dumps(command)}\n")
    assert (result.exit_code, result.error_code) == (30, "ERR_STEP_FAILED"), result.envelope
    assert "bytes" in result.envelope["error"]["details"]["stderr_tail"]
    for query in ("status", "inspect"):
        assert cpf(query, "--run-id", result.envelope["run_id"]).exit_code == 30


MEASURE = """
import resource, subprocess, sys
limit, report, *command = sys.argv[1:]
def cap():
    resource.setrlimit(resource.RLIMIT_AS, (int(limit), int(limit)))
code = subprocess.call(command, preexec_fn=cap)
with open(report, "w") as handle:
    handle.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(code)
"""


def run_measured(cpf, address_space: int, *args: str, timeout: float) -> tuple[Result, int]:
    """Run `cpf` (alone in a fresh parent) under an address-space limit; return its max RSS (KiB)."""
    report = cpf.cwd.parent / "maxrss.txt"
    process = subprocess.run(
        [sys.executable, "-c", MEASURE, str(address_space), str(report), CPF, *args],
        cwd=cpf.cwd,
        env=cpf.env,
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    result = check_output(process.returncode, process.stdout, process.stderr)
    return result, int(report.read_text())


def huge_stdout(cpf, size: int, address_space: int) -> None:
    body = (
        "id: flood\nsteps:\n  - id: s\n    kind: cli\n"
        f"    command: head -c {size} /dev/zero | tr '\\0' a\n"
        "  - id: e\n    kind: end\n    result: survived\n"
    )
    cpf.write("wf.yaml", doc(body))
    result, max_rss_kib = run_measured(
        cpf, address_space, "run", "-f", "wf.yaml", "-q", timeout=300
    )
    no_internal_error(result)
    assert (result.exit_code, result.envelope.get("result")) == (0, "survived"), result.envelope
    stdout = cpf.run_folder(result.envelope["run_id"]) / "steps" / "s" / "1.stdout"
    assert stdout.stat().st_size == size
    with open(stdout, "rb") as handle:
        assert handle.read(16) == b"a" * 16
    assert max_rss_kib < 100 * 1024, f"cpf grew to {max_rss_kib} KiB for {size} bytes of stdout"
    inspected = cpf("inspect", "--run-id", result.envelope["run_id"], timeout=120)
    assert inspected.exit_code == 0
    assert len(inspected.stdout) < 1_000_000


def test_two_hundred_megabytes_of_stdout_are_streamed(cpf):
    # 256 MB of address space: enough for cpf, far too little to hold the output in memory
    huge_stdout(cpf, 200_000_000, 256 * 1024 * 1024)


@pytest.mark.long
def test_one_gigabyte_of_stdout_is_streamed(cpf):
    huge_stdout(cpf, 1_000_000_000, 400 * 1024 * 1024)


def test_output_cap_for_an_outputs_schema(cpf):
    command = "printf '{\"pad\": \"'; head -c 5000000 /dev/zero | tr '\\0' a; printf '\"}'"
    step = f"    command: {json.dumps(command)}\n    outputs: {{type: object}}\n"
    cpf.write("wf.yaml", doc("id: capped\nsteps:\n  - id: s\n    kind: cli\n" + step))
    cap = {"CHECKPOINTFLOW_MAX_OUTPUT_BYTES": "1000000"}
    result = no_internal_error(cpf("run", "-f", "wf.yaml", "-q", env=cap, timeout=60))
    assert (result.exit_code, result.error_code) == (30, "ERR_STEP_OUTPUT_INVALID"), result.envelope
    message = result.envelope["error"]["message"]
    assert "1000000" in message or "CHECKPOINTFLOW_MAX_OUTPUT_BYTES" in message, message
    # the same 5 MB of valid JSON is accepted under the default 16 MiB cap
    fine = no_internal_error(cpf("run", "-f", "wf.yaml", "-q", timeout=60))
    assert fine.exit_code == 0, fine.envelope


# ---------------------------------------------------------------------------------------
# state root problems

GATE = """
id: gate
steps:
  - id: ask
    kind: await_event
    audience: agent
    event_name: go
    input_schema: {type: object}
  - id: work
    kind: cli
    command: echo x >> side.txt
  - id: done
    kind: end
    result: finished
"""

FLOOD = """
id: flood
steps:
  - id: ask
    kind: await_event
    audience: agent
    event_name: go
    input_schema: {type: object}
  - id: fill
    kind: cli
    command: head -c 2000000 /dev/zero
  - id: done
    kind: end
    result: finished
"""


@pytest.mark.parametrize("shape", ["file", "under-a-file"])
def test_state_root_is_a_regular_file(cpf, shape):
    blocker = cpf.cwd.parent / "blocker"
    blocker.write_text("not a folder\n")
    root = blocker if shape == "file" else blocker / "state"
    cpf.write("wf.yaml", doc(GATE))
    result = no_internal_error(
        cpf("run", "-f", "wf.yaml", env={"CHECKPOINTFLOW_BASE_DIR": str(root)})
    )
    assert (result.exit_code, result.error_code) == (60, "ERR_PERSISTENCE"), result.envelope
    assert blocker.read_text() == "not a folder\n"
    status = no_internal_error(
        cpf(
            "status",
            "--run-id",
            "20990101T000000000Z-0000000000",
            env={"CHECKPOINTFLOW_BASE_DIR": str(root)},
        )
    )
    assert status.exit_code in (10, 60), status.envelope


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def check_waiting_run_intact(cpf, root: dict[str, str], run_id: str, state_dir: Path) -> None:
    state = json.loads((state_dir / "runs" / run_id / "state.json").read_text())
    assert state["status"] == "waiting"
    status = no_internal_error(cpf("status", "--run-id", run_id, env=root))
    assert (status.exit_code, status.envelope["status"]) == (40, "waiting"), status.envelope
    inspected = no_internal_error(cpf("inspect", "--run-id", run_id, env=root))
    assert inspected.envelope["result"]["state"]["status"] == "waiting"


def test_full_disk_while_a_step_writes(cpf):
    with small_tmpfs(cpf.cwd.parent / "small", "512k") as mount:
        root = {"CHECKPOINTFLOW_BASE_DIR": str(mount)}
        cpf.write("gate.yaml", doc(GATE))
        cpf.write("flood.yaml", doc(FLOOD))
        kept = no_internal_error(cpf("run", "-f", "gate.yaml", "-q", env=root))
        assert kept.exit_code == 40, kept.envelope
        flood = no_internal_error(cpf("run", "-f", "flood.yaml", "-q", env=root))
        assert flood.exit_code == 40, flood.envelope
        kept_id, flood_id = kept.envelope["run_id"], flood.envelope["run_id"]

        full = no_internal_error(
            cpf("resume", "--run-id", flood_id, "--event", "go", "-q", env=root, timeout=60)
        )
        assert (full.exit_code, full.error_code) in (
            (60, "ERR_PERSISTENCE"),
            (30, "ERR_STEP_FAILED"),
        ), full.envelope

        # the disk is still full: what was persisted before is intact and readable
        check_waiting_run_intact(cpf, root, kept_id, mount)
        flood_status = no_internal_error(cpf("status", "--run-id", flood_id, env=root))
        assert flood_status.envelope["ok"] is True, flood_status.envelope
        # and a new run on the full disk is a persistence error, not a crash
        more = no_internal_error(cpf("run", "-f", "gate.yaml", "-q", env=root))
        assert (more.exit_code, more.error_code) == (60, "ERR_PERSISTENCE"), more.envelope
        check_waiting_run_intact(cpf, root, kept_id, mount)

        # free the space: the kept run resumes as if nothing happened
        for big in (mount / "runs" / flood_id / "steps").rglob("*.stdout"):
            big.unlink()
        done = no_internal_error(
            cpf("resume", "--run-id", kept_id, "--event", "go", "-q", env=root)
        )
        assert (done.exit_code, done.envelope.get("result")) == (0, "finished"), done.envelope
        assert (cpf.cwd / "side.txt").read_text() == "x\n"


def test_full_disk_from_many_runs(cpf):
    # the first run also fills the code cache of compiled schemas (about 170 KB), so the
    # disk must hold that with room for a few runs
    with small_tmpfs(cpf.cwd.parent / "small", "320k") as mount:
        root = {"CHECKPOINTFLOW_BASE_DIR": str(mount)}
        cpf.write("gate.yaml", doc(GATE))
        waiting: list[str] = []
        last = None
        for _ in range(200):
            last = no_internal_error(cpf("run", "-f", "gate.yaml", "-q", env=root))
            if last.exit_code != 40:
                break
            waiting.append(last.envelope["run_id"])
        assert last is not None
        assert (last.exit_code, last.error_code) == (60, "ERR_PERSISTENCE"), last.envelope
        assert waiting, "the first run already failed: the tmpfs is too small for this test"
        if "run_id" in last.envelope:
            # the run that hit the full disk is readable, whatever it managed to record
            half = no_internal_error(cpf("status", "--run-id", last.envelope["run_id"], env=root))
            assert half.exit_code in (10, 40, 60), half.envelope
        for run_id in waiting:
            check_waiting_run_intact(cpf, root, run_id, mount)


def test_read_only_state_root(cpf):
    with small_tmpfs(cpf.cwd.parent / "ro", "4m") as mount:
        root = {"CHECKPOINTFLOW_BASE_DIR": str(mount)}
        cpf.write("gate.yaml", doc(GATE))
        waiting = no_internal_error(cpf("run", "-f", "gate.yaml", "-q", env=root))
        assert waiting.exit_code == 40, waiting.envelope
        run_id = waiting.envelope["run_id"]
        before = {
            name: (mount / "runs" / run_id / name).read_bytes()
            for name in ("state.json", "events.jsonl", "workflow.yaml")
        }

        remount = subprocess.run(
            ["mount", "-o", "remount,ro", str(mount)], capture_output=True, text=True, check=False
        )
        if remount.returncode != 0:
            pytest.skip(f"cannot remount the tmpfs read-only: {remount.stderr.strip()}")
        try:
            resumed = no_internal_error(
                cpf("resume", "--run-id", run_id, "--event", "go", "-q", env=root)
            )
            assert (resumed.exit_code, resumed.error_code) == (60, "ERR_PERSISTENCE"), (
                resumed.envelope
            )
            assert not (cpf.cwd / "side.txt").exists(), (
                "the step ran though nothing could be recorded"
            )
            cancelled = no_internal_error(cpf("cancel", "--run-id", run_id, env=root))
            assert (cancelled.exit_code, cancelled.error_code) == (60, "ERR_PERSISTENCE"), (
                cancelled.envelope
            )
            started = no_internal_error(cpf("run", "-f", "gate.yaml", "-q", env=root))
            assert (started.exit_code, started.error_code) == (60, "ERR_PERSISTENCE"), (
                started.envelope
            )
            check_waiting_run_intact(cpf, root, run_id, mount)
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(mount)], check=False)

        for name, data in before.items():
            assert (mount / "runs" / run_id / name).read_bytes() == data, name
        done = no_internal_error(cpf("resume", "--run-id", run_id, "--event", "go", "-q", env=root))
        assert (done.exit_code, done.envelope.get("result")) == (0, "finished"), done.envelope
        assert (cpf.cwd / "side.txt").read_text() == "x\n"
        # let the fixture check the finished run's schemas and replay too
        shutil.copytree(mount / "runs", cpf.root / "runs", dirs_exist_ok=True)


# ---------------------------------------------------------------------------------------
# fuzzing --input of run and resume

FUZZ = settings(
    max_examples=35,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

RUN_INPUTS = """
id: fuzz
inputs:
  type: object
  required: [name]
  properties:
    name: {type: string, maxLength: 50}
    count: {type: integer, minimum: 0, default: 1}
steps:
  - id: greet
    kind: cli
    command: printf '%s' "${inputs.name}" > /dev/null
  - id: ask
    kind: await_event
    audience: agent
    event_name: go
    input_schema: {type: object}
"""

ARG_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=200,
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
RUN_JSON = JSON_VALUES | st.fixed_dictionaries(
    {"name": st.text(max_size=60)}, optional={"count": JSON_VALUES, "extra": JSON_VALUES}
)


def encodable(text: str) -> bool:
    return "\x00" not in text


RUN_PAYLOADS = st.one_of(ARG_TEXT, RUN_JSON.map(json.dumps).filter(encodable))


def check_run_input(cpf, payload: str) -> None:
    cpf.write("fuzz.yaml", doc(RUN_INPUTS))
    result = no_internal_error(cpf("run", "-f", "fuzz.yaml", "-q", f"--input={payload}", stdin=""))
    assert result.exit_code in {0, 10, 20, 30, 40}, result.envelope
    if result.exit_code == 10:
        assert result.error_code in ("ERR_VALIDATION_INPUT", "ERR_FILE_NOT_FOUND"), result.envelope
    if result.exit_code == 40:
        assert result.envelope["wait"]["event_name"] == "go"


EVENT_JSON = JSON_VALUES | st.fixed_dictionaries(
    {"decision": st.sampled_from(["approve", "reject", "APPROVE", ""])},
    optional={"extra": JSON_VALUES},
)


EVENT_PAYLOADS = st.one_of(ARG_TEXT, EVENT_JSON.map(json.dumps).filter(encodable))


def check_resume_input(cpf, payload: str) -> None:
    # one waiting run serves every example until an example is accepted
    run_id = getattr(cpf, "fuzz_run_id", None) or waiting_run(cpf)
    cpf.fuzz_run_id = run_id
    records = len((cpf.run_folder(run_id) / "events.jsonl").read_bytes().splitlines())
    result = no_internal_error(
        cpf("resume", "--run-id", run_id, "--event", "go", "-q", f"--input={payload}", stdin="")
    )
    assert result.exit_code in {0, 10, 20, 30, 40}, result.envelope
    if result.exit_code == 0:
        assert result.envelope["result"] in ("approve", "reject")
        cpf.fuzz_run_id = None
    else:
        assert result.error_code in (
            "ERR_VALIDATION_EVENT_INPUT",
            "ERR_FILE_NOT_FOUND",
        ), result.envelope
        assert_still_waiting(cpf, run_id, records)


@settings(FUZZ, max_examples=25)
@given(payload=RUN_PAYLOADS)
def test_fuzz_run_input(cpf, payload):
    check_run_input(cpf, payload)


@settings(FUZZ, max_examples=15)
@given(payload=EVENT_PAYLOADS)
def test_fuzz_resume_input(cpf, payload):
    check_resume_input(cpf, payload)


@pytest.mark.long
@settings(FUZZ, max_examples=300)
@given(payload=RUN_PAYLOADS)
def test_fuzz_run_input_long(cpf, payload):
    check_run_input(cpf, payload)


@pytest.mark.long
@settings(FUZZ, max_examples=300)
@given(payload=EVENT_PAYLOADS)
def test_fuzz_resume_input_long(cpf, payload):
    check_resume_input(cpf, payload)
