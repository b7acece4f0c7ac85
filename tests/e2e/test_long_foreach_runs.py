"""Long runs: a foreach over hundreds of items keeps a small state and a clean run folder
(no files for empty output), and replay, verify, export/import, inspect, logs and recover
all work with what it leaves. Nothing here measures time."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import CPF, Cpf, check_run_folders
from e2e_helpers import doc, start, step_history

ITEMS = 500

QUIET_FOREACH = """
id: many
inputs: {type: object}
steps:
  - id: each
    kind: foreach
    items: ${inputs.items}
    body:
      - id: t
        kind: cli
        command: "true"
  - id: done
    kind: end
    result: ${steps.each.outputs}
"""


@pytest.fixture
def elsewhere(tmp_path):
    """A second machine: its own state root and working folder."""
    work = tmp_path / "elsewhere"
    work.mkdir()
    other = Cpf(tmp_path / "state2", work)
    yield other
    check_run_folders(other.root)


def state_json(cpf, run_id: str) -> dict:
    return json.loads((cpf.run_folder(run_id) / "state.json").read_text())


def test_a_long_foreach_keeps_a_small_state_and_no_files_for_empty_output(cpf, elsewhere, tmp_path):
    result = start(cpf, QUIET_FOREACH, {"items": list(range(ITEMS))}, "-q")
    assert (result.exit_code, result.envelope["status"]) == (0, "completed"), result.envelope
    assert result.envelope["result"] == [None] * ITEMS
    run_id = result.envelope["run_id"]
    folder = cpf.run_folder(run_id)
    # every iteration left the state when it completed; the log keeps them all
    assert sorted(state_json(cpf, run_id)["steps"]) == ["done", "each"]
    log = (folder / "events.jsonl").read_text().splitlines()
    finished = [json.loads(line) for line in log if '"step_finished"' in line]
    assert len(finished) == ITEMS
    assert {(r["payload"]["stdout"], r["payload"]["stderr"]) for r in finished} == {(None, None)}
    # no output, no files and no folders
    assert [path.name for path in (folder / "steps").iterdir()] == []
    assert cpf("verify", "--run-id", run_id).exit_code == 0

    inspected = cpf("inspect", "--run-id", run_id)
    assert inspected.exit_code == 0
    rows = [
        row for row in inspected.envelope["result"]["step_results"] if row["step_id"] == "each[7].t"
    ]
    assert [(row["status"], row["stdout_path"]) for row in rows] == [("completed", None)]

    logged = cpf("logs", "--run-id", run_id, "--output", "each[7].t")
    assert logged.exit_code == 0, logged.envelope
    output = logged.envelope["result"]
    assert output["attempt"] == 1
    for stream in ("stdout", "stderr"):
        assert output[stream] == {"path": None, "bytes": 0, "text": "", "truncated": False}
    missing = cpf("logs", "--run-id", run_id, "--output", "each[7].t:2")
    assert missing.error_code == "ERR_OUTPUT_NOT_FOUND"

    archive = tmp_path / "run.tar.gz"
    assert cpf("export", "--run-id", run_id, "--out", str(archive)).exit_code == 0
    imported = elsewhere("import", str(archive))
    assert imported.exit_code == 0, imported.envelope
    assert elsewhere("verify", "--run-id", run_id).exit_code == 0
    assert elsewhere("status", "--run-id", run_id).envelope["result"] == [None] * ITEMS


def test_only_streams_that_printed_keep_a_file(cpf):
    body = """
id: some
inputs: {type: object}
steps:
  - id: each
    kind: foreach
    items: ${inputs.items}
    body:
      - id: t
        kind: cli
        command: 'if [ "${item}" = loud ]; then echo out; echo err >&2; fi'
"""
    result = start(cpf, body, {"items": ["quiet", "loud", "quiet"]})
    assert result.exit_code == 0, result.envelope
    run_id = result.envelope["run_id"]
    steps = cpf.run_folder(run_id) / "steps"
    assert sorted(path.name for path in steps.iterdir()) == ["each[1].t"]
    assert (steps / "each[1].t" / "1.stdout").read_text() == "out\n"
    assert (steps / "each[1].t" / "1.stderr").read_text() == "err\n"
    loud = cpf("logs", "--run-id", run_id, "--output", "each[1].t").envelope["result"]
    assert (loud["stdout"]["text"], loud["stderr"]["text"]) == ("out\n", "err\n")
    assert loud["stdout"]["path"] == str(steps / "each[1].t" / "1.stdout")
    quiet = cpf("logs", "--run-id", run_id, "--output", "each[2].t").envelope["result"]
    assert quiet["stdout"]["path"] is None and quiet["stdout"]["text"] == ""


def test_a_second_pass_of_a_foreach_keeps_the_first_pass_output(cpf):
    """Output files are numbered by attempt; the records of the first pass left the state,
    and the second pass still numbers its attempts after theirs."""
    body = """
id: twice
inputs: {type: object}
steps:
  - id: each
    kind: foreach
    items: ${inputs.items}
    body:
      - id: t
        kind: cli
        command: 'echo "${item} pass $(cat pass.txt)"'
  - id: again
    kind: await_event
    audience: user
    event_name: go
    input_schema: {type: object}
    transitions:
      - when: ${event.again == true}
        next: each
      - next: done
  - id: done
    kind: end
"""
    (cpf.cwd / "pass.txt").write_text("1")
    started = start(cpf, body, {"items": ["a", "b"]})
    assert started.exit_code == 40, started.envelope
    run_id = started.envelope["run_id"]
    (cpf.cwd / "pass.txt").write_text("2")
    again = cpf("resume", "--run-id", run_id, "--event", "go", "--input", '{"again": true}')
    assert again.exit_code == 40, again.envelope
    steps = cpf.run_folder(run_id) / "steps"
    for index, item in enumerate(["a", "b"]):
        assert (steps / f"each[{index}].t" / "1.stdout").read_text() == f"{item} pass 1\n"
        assert (steps / f"each[{index}].t" / "2.stdout").read_text() == f"{item} pass 2\n"
    history = step_history(cpf, run_id)
    assert [row["attempt"] for row in history["each[1].t"]] == [1, 2]
    assert cpf("verify", "--run-id", run_id).exit_code == 0


LONG_STEP = """
id: slow
steps:
  - id: nap
    kind: cli
    command: 'echo started; sleep 30'
"""


def test_a_long_command_writes_in_place_and_recover_keeps_only_what_it_printed(cpf):
    cpf.write("slow.yaml", doc(LONG_STEP))
    process = subprocess.Popen(
        [CPF, "run", "-f", "slow.yaml", "-q"],
        cwd=cpf.cwd,
        env=cpf.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    stdout: list[Path] = []
    while not stdout and time.monotonic() < deadline:  # a hang guard, not a timing check
        time.sleep(0.05)
        stdout = list(cpf.root.glob("runs/*/steps/nap/1.stdout"))
    assert stdout, "a command running long writes its output in its place"
    while stdout[0].read_text() != "started\n" and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    run_id = stdout[0].parents[2].name
    recovered = cpf("recover", "--run-id", run_id)
    assert recovered.envelope["status"] == "failed", recovered.envelope
    [attempt] = state_json(cpf, run_id)["steps"]["nap"]["attempts"]
    assert (attempt["stdout"], attempt["stderr"]) == ("steps/nap/1.stdout", None)
    assert sorted(path.name for path in stdout[0].parent.iterdir()) == ["1.stdout"]
    assert cpf("verify", "--run-id", run_id).exit_code == 0
