"""Picking work back up: wait tokens, who did what, and redriving failed runs."""

from __future__ import annotations

import getpass
from pathlib import Path

HEAD = "schema_version: checkpointflow/v1\nworkflow:\n  id: people\n  steps:\n"

LOOP = (
    HEAD
    + """\
    - id: review
      kind: await_event
      audience: agent
      event_name: verdict
      input_schema: {type: object, properties: {again: {type: boolean}}}
      transitions:
        - when: event.again == true
          next: count
        - next: done
    - id: count
      kind: cli
      command: echo x >> reviews.txt
      transitions:
        - next: review
    - {id: done, kind: end, result: done}
"""
)


def reviews(cpf) -> int:
    path = cpf.cwd / "reviews.txt"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_a_token_answers_its_wait_once_even_when_a_loop_returns_to_the_step(cpf):
    cpf.write("flow.yaml", LOOP)
    started = cpf("run", "-f", "flow.yaml")
    run_id = started.envelope["run_id"]
    first = started.envelope["wait"]["wait_token"]
    assert f"--token {first}" in started.envelope["wait"]["resume"]["command"]
    assert cpf("status", "--run-id", run_id).envelope["wait"]["wait_token"] == first

    answered = cpf(
        "resume",
        "--run-id",
        run_id,
        "--event",
        "verdict",
        "--token",
        first,
        "--input",
        '{"again": true}',
    )
    assert answered.exit_code == 40 and reviews(cpf) == 1
    second = answered.envelope["wait"]["wait_token"]
    assert second != first

    stale = cpf(
        "resume",
        "--run-id",
        run_id,
        "--event",
        "verdict",
        "--token",
        first,
        "--input",
        '{"again": true}',
    )
    assert (stale.exit_code, stale.error_code) == (10, "ERR_STALE_WAIT")
    assert reviews(cpf) == 1
    assert stale.envelope["waits"][0]["wait_token"] == second  # still waiting, unchanged

    for token in ("not-a-token", "0" * 32):
        foreign = cpf("resume", "--run-id", run_id, "--event", "verdict", "--token", token)
        assert foreign.error_code == "ERR_STALE_WAIT"
    done = cpf("resume", "--run-id", run_id, "--event", "verdict", "--token", second)
    assert done.envelope["result"] == "done"
    after = cpf("resume", "--run-id", run_id, "--event", "verdict", "--token", second)
    assert after.error_code == "ERR_STALE_WAIT"


def test_resume_without_a_token_works_as_in_1_0_4(cpf):
    cpf.write("flow.yaml", LOOP)
    run_id = cpf("run", "-f", "flow.yaml").envelope["run_id"]
    assert cpf("resume", "--run-id", run_id, "--event", "verdict").envelope["result"] == "done"


GUARDED = (
    HEAD
    + """\
    - id: approve
      kind: await_event
      audience: user
      event_name: approval
      input_schema: {type: object}
      audience_actors: [alice, bob]
    - {id: done, kind: end, result: approved}
"""
)


def history(cpf, run_id: str) -> list[dict]:
    return cpf("inspect", "--run-id", run_id).envelope["result"]["history"]


def test_actors_are_recorded_and_audience_actors_enforced(cpf):
    cpf.write("flow.yaml", GUARDED)
    run_id = cpf("run", "-f", "flow.yaml", "--actor", "ci-bot").envelope["run_id"]
    refused = cpf("resume", "--run-id", run_id, "--event", "approval", "--actor", "mallory")
    assert (refused.exit_code, refused.error_code) == (10, "ERR_NOT_ALLOWED")
    assert cpf("status", "--run-id", run_id).exit_code == 40
    done = cpf("resume", "--run-id", run_id, "--event", "approval", env={"CPF_ACTOR": "bob"})
    assert done.envelope["result"] == "approved"
    actors = [(r["type"], r["payload"].get("actor")) for r in history(cpf, run_id)]
    assert actors[0] == ("run_started", "ci-bot")
    assert ("event_received", "bob") in actors


def test_the_default_actor_is_the_os_user_and_control_characters_are_refused(cpf):
    cpf.write("flow.yaml", LOOP)
    run_id = cpf("run", "-f", "flow.yaml").envelope["run_id"]
    assert history(cpf, run_id)[0]["payload"]["actor"] == getpass.getuser()
    bad = cpf("cancel", "--run-id", run_id, "--actor", "eve\x1b[31m")
    assert (bad.exit_code, bad.error_code) == (10, "ERR_INVALID_ACTOR")
    assert cpf("status", "--run-id", run_id).exit_code == 40


FIVE = HEAD + "".join(
    f"""\
    - id: s{n}
      kind: cli
      command: echo s{n} >> ran.txt{" && test -f fixed" if n == 3 else ""}
"""
    for n in range(1, 6)
)


def ran(cpf) -> list[str]:
    return (cpf.cwd / "ran.txt").read_text().split()


def failed_at_three(cpf) -> str:
    cpf.write("flow.yaml", FIVE)
    failed = cpf("run", "-f", "flow.yaml")
    assert (failed.exit_code, failed.envelope["current_step_id"]) == (30, "s3")
    return failed.envelope["run_id"]


def test_retry_reruns_only_the_failed_step_and_what_follows(cpf):
    run_id = failed_at_three(cpf)
    assert ran(cpf) == ["s1", "s2", "s3"]
    (cpf.cwd / "fixed").touch()
    retried = cpf("retry", "--run-id", run_id, "--actor", "ops")
    assert retried.exit_code == 0
    assert ran(cpf) == ["s1", "s2", "s3", "s3", "s4", "s5"]
    assert history(cpf, run_id)[-4]["type"] == "run_retried"


def test_retry_from_an_earlier_step(cpf):
    run_id = failed_at_three(cpf)
    (cpf.cwd / "fixed").touch()
    assert cpf("retry", "--run-id", run_id, "--from", "s2").exit_code == 0
    assert ran(cpf) == ["s1", "s2", "s3", "s2", "s3", "s4", "s5"]


def test_retry_is_refused_for_runs_that_did_not_fail_and_unknown_steps(cpf):
    run_id = failed_at_three(cpf)
    unknown = cpf("retry", "--run-id", run_id, "--from", "s9")
    assert (unknown.exit_code, unknown.error_code) == (10, "ERR_STEP_NOT_FOUND")
    (cpf.cwd / "fixed").touch()
    assert cpf("retry", "--run-id", run_id).exit_code == 0
    again = cpf("retry", "--run-id", run_id)
    assert (again.exit_code, again.error_code) == (20, "ERR_RUN_NOT_FAILED")
    cpf.write("wait.yaml", LOOP)
    waiting = cpf("run", "-f", "wait.yaml").envelope["run_id"]
    assert cpf("retry", "--run-id", waiting).error_code == "ERR_RUN_NOT_FAILED"


BIG = (
    HEAD
    + """\
    - id: big
      kind: cli
      command: >-
        python3 -c "import json; print(json.dumps({'blob': 'x' * 100000}))"
    - id: ask
      kind: await_event
      audience: agent
      event_name: go
      input_schema: {type: object}
    - id: small
      kind: cli
      command: >-
        echo '{"n": 1}'
"""
)


def test_inspect_is_compact_by_default_and_complete_with_full(cpf):
    cpf.write("flow.yaml", BIG)
    run_id = cpf("run", "-f", "flow.yaml").envelope["run_id"]
    cpf("resume", "--run-id", run_id, "--event", "go")
    compact = cpf("inspect", "--run-id", run_id)
    assert len(compact.stdout) < 20_000
    note = compact.envelope["result"]["step_outputs"]["big"]
    assert note["omitted_bytes"] > 100_000
    assert "x" * 100_000 in Path(note["see"]).read_text()
    assert compact.envelope["result"]["step_outputs"]["small"] == {"n": 1}
    full = cpf("inspect", "--run-id", run_id, "--full")
    assert full.envelope["result"]["step_outputs"]["big"]["blob"] == "x" * 100_000


def test_inspect_pages_agree_with_the_full_log_and_at_replays_any_point(cpf):
    cpf.write("flow.yaml", LOOP)
    run_id = cpf("run", "-f", "flow.yaml").envelope["run_id"]
    for _ in range(3):
        cpf("resume", "--run-id", run_id, "--event", "verdict", "--input", '{"again": true}')
    full = cpf("inspect", "--run-id", run_id, "--full").envelope["result"]["history"]
    paged, since = [], 0
    while since is not None:
        page = cpf("inspect", "--run-id", run_id, "--events", "--since", str(since), "--limit", "2")
        paged += page.envelope["result"]["events"]
        since = page.envelope["result"]["next_since"]
    assert paged == full
    first = cpf("inspect", "--run-id", run_id, "--at", "1").envelope["result"]["state"]
    assert first["current_step_id"] == "review" and first["seq"] == 1
    last = cpf("inspect", "--run-id", run_id, "--at", str(len(full))).envelope["result"]["state"]
    assert last == cpf("inspect", "--run-id", run_id).envelope["result"]["state"]
    outside = cpf("inspect", "--run-id", run_id, "--at", "999")
    assert outside.error_code == "ERR_VALIDATION_INPUT"


def test_validate_warns_about_forgotten_waits_unreachable_steps_and_dead_transitions(cpf):
    cpf.write(
        "flow.yaml",
        HEAD
        + """\
    - id: ask
      kind: await_event
      audience: user
      event_name: decision
      input_schema:
        type: object
        properties: {choice: {enum: [yes, no]}}
      transitions:
        - when: event.choice == "yes"
          next: done
        - when: event.choice == "maybe"
          next: done
        - next: done
    - {id: orphan, kind: cli, command: "true"}
    - {id: done, kind: end}
""",
    )
    result = cpf("validate", "-f", "flow.yaml")
    assert result.exit_code == 0 and result.envelope["ok"] is True
    warnings = result.envelope["warnings"]
    assert len(warnings) == 3
    assert any("timeout_seconds" in w and "'ask'" in w for w in warnings)
    assert any("'orphan'" in w and "no path" in w for w in warnings)
    assert any("'maybe'" in w and "never" in w for w in warnings)
    clean = cpf.write("clean.yaml", HEAD + "    - {id: only, kind: end}\n")
    assert "warnings" not in cpf("validate", "-f", str(clean)).envelope


def test_retry_against_an_edited_workflow(cpf):
    run_id = failed_at_three(cpf)
    edited = FIVE.replace(" && test -f fixed", " && echo fixed-by-edit >> ran.txt")
    other = cpf.write("edited.yaml", edited)
    retried = cpf("retry", "--run-id", run_id, "--workflow", str(other))
    assert retried.exit_code == 0
    assert ran(cpf) == ["s1", "s2", "s3", "s3", "fixed-by-edit", "s4", "s5"]
    folder = cpf.run_folder(run_id)
    assert (folder / "workflow.yaml").read_text() == edited
    assert len(list((folder / "workflows").iterdir())) == 2  # both versions are kept


def test_retry_with_a_different_workflow_or_a_vanished_step_is_refused(cpf):
    run_id = failed_at_three(cpf)
    stranger = cpf.write("stranger.yaml", FIVE.replace("id: people", "id: someone_else"))
    refused = cpf("retry", "--run-id", run_id, "--workflow", str(stranger))
    assert (refused.exit_code, refused.error_code) == (10, "ERR_VALIDATION_WORKFLOW")
    shrunk = cpf.write("shrunk.yaml", HEAD + "    - {id: s1, kind: cli, command: 'true'}\n")
    vanished = cpf("retry", "--run-id", run_id, "--workflow", str(shrunk))
    assert (vanished.exit_code, vanished.error_code) == (10, "ERR_STEP_NOT_FOUND")
    assert cpf("status", "--run-id", run_id).exit_code == 30
    assert (cpf.run_folder(run_id) / "workflow.yaml").read_text() == FIVE


def test_logs_show_who_did_what(cpf):
    cpf.write("flow.yaml", GUARDED)
    run_id = cpf("run", "-f", "flow.yaml", "--actor", "ci-bot").envelope["run_id"]
    cpf("resume", "--run-id", run_id, "--event", "approval", "--actor", "alice")
    rows = cpf("logs", "--run-id", run_id).envelope["result"]["events"]
    assert [(row["type"], row["actor"]) for row in rows][:3] == [
        ("run_started", "ci-bot"),
        ("waiting", None),  # not an event: nobody did it
        ("event_received", "alice"),
    ]
