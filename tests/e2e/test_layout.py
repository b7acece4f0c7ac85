"""What a run leaves on disk: the run folder a user can read with cat and jq."""

from __future__ import annotations

import json

from e2e_helpers import doc, resume

BODY = """
id: layout
steps:
  - id: hello
    kind: cli
    command: echo hi; echo warn >&2
  - id: gate
    kind: await_event
    audience: user
    event_name: go
    input_schema: {type: object}
  - id: done
    kind: end
    result: ok
"""


def test_run_folder_layout(cpf):
    text = doc(BODY) + "# trailing comment keeps bytes distinct\n"
    cpf.write("wf.yaml", text)
    started = cpf("run", "-f", "wf.yaml")
    run_id = started.envelope["run_id"]
    resume(cpf, run_id, "go", {"a": 1})
    folder = cpf.run_folder(run_id)

    raw_state = (folder / "state.json").read_text()
    state = json.loads(raw_state)
    assert raw_state.endswith("}\n")
    assert raw_state == json.dumps(state, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert raw_state.splitlines()[1].startswith('  "')
    assert state["status"] == "completed"
    assert state["run_id"] == run_id

    lines = (folder / "events.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [record["seq"] for record in records] == list(range(1, len(records) + 1))
    for record in records:
        assert {"seq", "type", "at", "payload"} <= set(record)
    assert records[0]["type"] == "run_started"
    assert [r["type"] for r in records].count("event_received") == 1

    assert (folder / "workflow.yaml").read_bytes() == (cpf.cwd / "wf.yaml").read_bytes()
    assert (folder / "steps" / "hello" / "1.stdout").read_text() == "hi\n"
    assert (folder / "steps" / "hello" / "1.stderr").read_text() == "warn\n"


def test_each_run_gets_its_own_folder(cpf):
    cpf.write("wf.yaml", doc(BODY))
    first = cpf("run", "-f", "wf.yaml").envelope["run_id"]
    second = cpf("run", "-f", "wf.yaml").envelope["run_id"]
    assert first != second
    assert cpf.run_folder(first).is_dir() and cpf.run_folder(second).is_dir()
    resume(cpf, first, "go", {})
    assert cpf("status", "--run-id", second).exit_code == 40


def test_snapshot_survives_edits(cpf):
    cpf.write("wf.yaml", doc(BODY))
    run_id = cpf("run", "-f", "wf.yaml").envelope["run_id"]
    original = (cpf.run_folder(run_id) / "workflow.yaml").read_bytes()
    cpf.write("wf.yaml", doc(BODY.replace("result: ok", "result: changed")))
    assert (cpf.run_folder(run_id) / "workflow.yaml").read_bytes() == original
    assert resume(cpf, run_id, "go", {}).envelope["result"] == "ok"
