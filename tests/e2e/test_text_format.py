"""`--format text` (or CPF_FORMAT=text): envelopes as short summaries for people, with the
same exit codes; JSON stays the default."""

from __future__ import annotations

import json
import shlex
import subprocess

import pytest
from conftest import CPF
from e2e_helpers import doc
from test_startup import imported_modules

ASKS = """
id: asks
name: Asks
version: "2.1"
steps:
  - id: build
    kind: cli
    command: echo built
  - id: ask
    kind: await_event
    audience: user
    event_name: decision
    prompt: Ship it?
    input_schema:
      type: object
      required: [verdict]
      properties:
        verdict: {type: string, enum: [ship, hold]}
        note: {type: string}
  - id: done
    kind: end
    result: {verdict: "${steps.ask.outputs.verdict}"}
"""

FAILS = """
id: fails
steps:
  - id: compile
    kind: cli
    command: echo nope >&2; exit 4
"""


def text(cpf, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """A `cpf` whose stdout is text: its exit code, stdout and stderr."""
    process = subprocess.run(
        [CPF, *args],
        capture_output=True,
        text=True,
        cwd=cpf.cwd,
        env={**cpf.env, **(env or {})},
        timeout=120,
        check=False,
    )
    assert "Traceback" not in process.stderr, process.stderr
    return process.returncode, process.stdout, process.stderr


@pytest.fixture
def waiting(cpf) -> str:
    cpf.write("asks.yaml", doc(ASKS))
    started = cpf("run", "-f", "asks.yaml", "-q")
    assert started.exit_code == 40
    return started.envelope["run_id"]


def test_list_is_a_table_whichever_way_text_is_asked_for(cpf, waiting):
    failed = cpf("run", "-f", cpf.write("fails.yaml", doc(FAILS)).name, "-q").envelope["run_id"]
    outputs = {
        text(cpf, "--format", "text", "list"),
        text(cpf, "list", "--format", "text"),
        text(cpf, "list", "--format=TEXT"),
        text(cpf, "list", env={"CPF_FORMAT": "text"}),
    }
    [(code, out, _)] = outputs  # the same text each way
    header, first, second, count = out.splitlines()
    assert code == 0 and header.split() == [
        "RUN",
        "ID",
        "WORKFLOW",
        "STATUS",
        "STEP",
        "UPDATED",
        "WAITING",
        "FOR",
    ]
    assert first.split()[:3] == [failed, "fails", "failed"]
    assert first.index("failed") == header.index("STATUS")  # columns line up
    assert second.split()[:5] == [waiting, "asks", "2.1", "waiting", "ask"]
    assert second.endswith("decision (user)") and count == "2 runs"


def test_the_waiting_status_ends_with_a_command_that_answers(cpf, waiting):
    code, out, _ = text(cpf, "--format", "text", "status", "--run-id", waiting)
    assert code == 40
    lines = out.splitlines()
    assert lines[0] == f'run {waiting} (asks 2.1, "Asks")'
    assert lines[1] == "waiting at step ask (exit 40)"
    assert "waiting for decision from user: Ship it?" in lines
    assert "  field verdict (required): string, one of ship, hold" in lines
    assert "  field note: string" in lines
    typed = shlex.split(lines[-1].removeprefix("  next: "))
    assert typed[:2] == ["cpf", "resume"] and typed[-2:] == ["--input", '{"verdict": "ship"}']
    done = cpf(*typed[1:])  # typing the command it shows finishes the run
    assert (done.exit_code, done.envelope["result"]) == (0, {"verdict": "ship"})


def test_run_and_resume_say_how_the_run_ended(cpf, waiting):
    code, out, _ = text(
        cpf, "resume", "--run-id", waiting, "--event", "decision", "--format", "text",
        "--input", '{"verdict": "hold"}', "-q",
    )  # fmt: skip
    assert code == 0
    assert out.splitlines()[1:] == ["completed (exit 0)", 'result: {"verdict": "hold"}']
    cpf.write("fails.yaml", doc(FAILS))
    code, out, _ = text(cpf, "--format", "text", "run", "-f", "fails.yaml", "-q")
    run_id = out.split()[1]
    assert code == 30
    assert out.splitlines()[1:] == [
        "failed at step compile (exit 30)",
        "error ERR_STEP_FAILED: Step 'compile' exited with code 4",
        f"  see its output: cpf logs --run-id {run_id} --output compile",
        f"  next: cpf retry --run-id {run_id}",
    ]


def test_a_refusal_says_what_was_wrong_and_how_to_answer(cpf, waiting):
    log = cpf.run_folder(waiting) / "events.jsonl"
    before = log.read_bytes()
    answer = ["resume", "--run-id", waiting, "--event", "decision", "--input", '{"verdict": 1}']
    code, out, _ = text(cpf, "--format", "text", *answer)
    assert code == 10 == cpf(*answer).exit_code
    lines = out.splitlines()
    assert lines[0].startswith("cpf resume: ERR_VALIDATION_EVENT_INPUT: ")
    assert "  - field verdict (required): string, one of ship, hold" in lines
    assert lines[-1].startswith("  answer ask: cpf resume --run-id ")
    code, out, _ = text(cpf, "resume", "--format", "text", "--run-id", waiting, "--evnt", "x")
    assert code == 10 and out.startswith("cpf resume: ERR_USAGE: No such option '--evnt'")
    assert log.read_bytes() == before


def test_a_validation_failure_lists_every_problem(cpf):
    cpf.write("bad.yaml", doc("id: bad\nsteps:\n  - {id: a, kind: cli}\n  - {id: a, kind: end}\n"))
    code, out, _ = text(cpf, "--format", "text", "validate", "-f", "bad.yaml")
    assert code == 10 == cpf("validate", "-f", "bad.yaml").exit_code
    first, *problems = out.splitlines()
    assert first.startswith("cpf validate: ERR_")
    assert problems and all(line.startswith("  - ") for line in problems)


COMMAND_LINES = [  # in order: the last ones change the run
    (["inspect", "--run-id", "{run}"], 40),
    (["logs", "--run-id", "{run}"], 40),
    (["logs", "--run-id", "{run}", "--output", "build"], 40),
    (["logs", "--run-id", "{run}", "--output", "ask"], 10),
    (["verify", "--run-id", "{run}"], 0),
    (["flows"], 0),
    (["graph", "-f", "asks.yaml"], 0),
    (["gc", "--older-than", "1d", "--dry-run"], 0),
    (["tick"], 0),
    (["validate", "-f", "asks.yaml"], 0),
    (["status", "--run-id", "{run}"], 40),
    (["cancel", "--run-id", "{run}"], 0),
    (["cancel", "--run-id", "{run}"], 20),
    (["status", "--run-id", "{run}"], 50),
    (["delete", "--run-id", "{run}"], 0),
]


def test_every_command_has_a_text_form_with_the_same_exit_code(cpf, waiting):
    for line, exit_code in COMMAND_LINES:
        args = [word.replace("{run}", waiting) for word in line]
        if exit_code not in (0, 20) or args[0] not in ("cancel", "delete"):
            assert cpf(*args).exit_code == exit_code, args  # the JSON form, for comparison
        code, out, _ = text(cpf, "--format", "text", *args)
        assert code == exit_code, (args, out)
        assert out.strip() and not out.lstrip().startswith("{"), (args, out)


def test_a_few_text_forms(cpf, waiting):
    assert text(cpf, "--format", "text", "logs", "--run-id", waiting, "--output", "build")[1] == (
        "--- stdout of build attempt 1 (6 bytes) ---\nbuilt\n"
        "--- stderr of build attempt 1 (0 bytes) ---\n"
    )
    out = text(cpf, "--format", "text", "validate", "-f", "asks.yaml")[1]
    assert out.splitlines() == [
        "asks.yaml is valid: workflow asks 2.1, 3 steps",
        "next: cpf run -f asks.yaml",
        "warning: asks.yaml: step 'ask': an await_event without timeout_seconds waits forever; "
        "set timeout_seconds (and on_timeout) so a forgotten wait is noticed",
    ]
    out = text(cpf, "--format", "text", "verify", "--run-id", waiting)[1]
    assert out.splitlines()[0] == "cpf verify: completed (exit 0)"
    assert "checked: 1" in out.splitlines()


def test_json_stays_the_default_and_an_unknown_format_is_refused(cpf, waiting):
    assert json.loads(text(cpf, "list")[1])["result"]["count"] == 1
    assert json.loads(text(cpf, "list", env={"CPF_FORMAT": "json"})[1])["ok"] is True
    refused = cpf("--format", "yaml", "list")
    assert (refused.exit_code, refused.error_code) == (10, "ERR_USAGE")
    assert "'yaml' is not one of 'json', 'text'" in refused.envelope["error"]["message"]


def test_graph_keeps_its_own_format_option(cpf, waiting):
    assert cpf("graph", "-f", "asks.yaml", "--format", "dot").envelope["result"]["format"] == "dot"
    code, out, _ = text(cpf, "--format", "text", "graph", "-f", "asks.yaml", "--format", "dot")
    assert code == 0 and out.startswith("digraph")


def test_json_commands_do_not_load_the_text_renderer(cpf, waiting):
    assert "checkpointflow.text_format" not in imported_modules(cpf, "list")
    assert "checkpointflow.text_format" in imported_modules(cpf, "list", "--format", "text")


def test_command_lines_without_a_command_are_still_one_envelope(cpf):
    for args in ([], ["--bogus"], ["--format"], ["--format", "json"], ["list", "--format"]):
        refused = cpf(*args)
        assert (refused.exit_code, refused.error_code) == (10, "ERR_USAGE"), args
    code, out, _ = text(cpf, "--format", "text")
    assert code == 10 and out.startswith("cpf: ERR_USAGE: ")
    code, out, _ = text(cpf, "--format=text", "status", "--run-id")
    assert code == 10 and out.startswith("cpf status: ERR_USAGE: ")
