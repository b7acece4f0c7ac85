"""Many `cpf` processes at once on one state root: locks hold, nothing runs twice, every
process prints exactly one envelope, and every run folder stays readable."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from e2e_helpers import doc, start

from tests.conftest import CPF, Result, check_output

TIMEOUT = 120

GATED = """
id: gated
steps:
  - id: ask
    kind: await_event
    audience: agent
    event_name: go
    input_schema: {type: object}
  - id: work
    kind: cli
    command: SLEEP echo x >> side.txt
  - id: done
    kind: end
    result: finished
"""

# the same, but the run waits again after the side effect
GATED_TWICE = """
id: gated_twice
steps:
  - id: ask
    kind: await_event
    audience: agent
    event_name: go
    input_schema: {type: object}
  - id: work
    kind: cli
    command: SLEEP echo x >> side.txt
  - id: again
    kind: await_event
    audience: agent
    event_name: again
    input_schema: {type: object}
  - id: done
    kind: end
    result: finished
"""

SMALL = """
id: small
steps:
  - id: s
    kind: cli
    command: |-
      test -n "$CPF_RUN_ID" && echo '{"n": 1}'
  - id: done
    kind: end
    result: ${steps.s.outputs.n}
"""


def spawn(cpf, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [CPF, *args],
        cwd=cpf.cwd,
        env=cpf.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def collect(process: subprocess.Popen[bytes]) -> Result:
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail(f"cpf {process.args} hung for {TIMEOUT}s")
    return check_output(process.returncode, stdout, stderr)


def run_once(cpf, *args: str) -> Result:
    process = subprocess.run(
        [CPF, *args],
        cwd=cpf.cwd,
        env=cpf.env,
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    return check_output(process.returncode, process.stdout, process.stderr)


def log_records(cpf, run_id: str) -> list[dict]:
    data = (cpf.run_folder(run_id) / "events.jsonl").read_bytes()
    return [json.loads(line) for line in data.splitlines()]


# ---------------------------------------------------------------------------------------
# 8 resumes of one waiting run


@pytest.mark.parametrize(
    ("body", "winner_code", "sleep"),
    [
        (GATED, 0, ""),
        (GATED, 0, "sleep 0.5;"),
        (GATED_TWICE, 40, ""),
        (GATED_TWICE, 40, "sleep 0.5;"),
    ],
    ids=["completes", "completes-slow-step", "waits-again", "waits-again-slow-step"],
)
def test_eight_resumes_apply_the_event_once(cpf, body, winner_code, sleep):
    """One answer is applied; each other resume is refused at once, or queued while the
    winner held the run and then logged as answer_stale, never applied."""
    waiting = start(cpf, body.replace("SLEEP", sleep))
    assert waiting.exit_code == 40, waiting.envelope
    run_id = waiting.envelope["run_id"]
    processes = [
        spawn(cpf, "resume", "--run-id", run_id, "--event", "go", "--input", "{}") for _ in range(8)
    ]
    results = [collect(process) for process in processes]
    envelopes = [r.envelope for r in results]
    queued = [r for r in results if is_queued(r)]
    winners = [r for r in results if r.exit_code == winner_code and not is_queued(r)]
    assert len(winners) == 1, envelopes
    assert winners[0].envelope["ok"] is True
    assert winners[0].envelope["run_id"] == run_id
    # refused at once; or queued, then folded in by the resume itself, too late
    refusals = [(20, "ERR_RUN_NOT_WAITING"), (10, "ERR_STALE_WAIT")]
    if winner_code == 40:
        # a late resume finds the run waiting for the *next* event
        refusals.append((20, "ERR_RESUME_EVENT_MISMATCH"))
    for loser in results:
        if loser is winners[0] or loser in queued:
            continue
        assert (loser.exit_code, loser.error_code) in refusals, envelopes
        assert loser.envelope["ok"] is False
    # the step after the event ran exactly once
    assert (cpf.cwd / "side.txt").read_text() == "x\n"
    received = [r for r in log_records(cpf, run_id) if r["type"] == "event_received"]
    assert len(received) == 1
    status = cpf("status", "--run-id", run_id)
    stale = {
        r["payload"]["queued"]["id"]
        for r in log_records(cpf, run_id)
        if r["type"] == "answer_stale"
    }
    assert {r.envelope["result"]["answer_id"] for r in queued} <= stale
    folded_here = [r for r in results if r.error_code == "ERR_STALE_WAIT"]
    assert len(stale) == len(queued) + len(folded_here), envelopes
    if winner_code == 0:
        assert (status.exit_code, status.envelope["status"]) == (0, "completed")
        assert winners[0].envelope["result"] == "finished"
    else:
        assert (status.exit_code, status.envelope["status"]) == (40, "waiting")
        assert status.envelope["wait"]["event_name"] == "again"
    work_attempts = [
        r
        for r in log_records(cpf, run_id)
        if r["type"] == "step_finished" and r["payload"]["step_id"] == "work"
    ]
    assert len(work_attempts) == 1


def is_queued(result: Result) -> bool:
    answer = result.envelope.get("result")
    return isinstance(answer, dict) and answer.get("queued") is True and result.exit_code == 40


# ---------------------------------------------------------------------------------------
# many runs into one state root


def many_runs(cpf, count: int) -> None:
    cpf.write("wf.yaml", doc(SMALL))
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(
            pool.map(lambda _: run_once(cpf, "run", "-f", "wf.yaml", "-q"), range(count))
        )
    envelopes = [r.envelope for r in results]
    failed = [e.get("error") for e in envelopes if e["exit_code"]]
    assert failed == [], failed
    assert all(e["result"] == 1 for e in envelopes)
    run_ids = [e["run_id"] for e in envelopes]
    assert len(set(run_ids)) == count
    folders = sorted(p.name for p in (cpf.root / "runs").iterdir())
    assert folders == sorted(run_ids)

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda rid: run_once(cpf, "status", "--run-id", rid), run_ids))
    for run_id, status in zip(run_ids, statuses, strict=True):
        assert (status.exit_code, status.envelope["status"]) == (0, "completed"), status.envelope
        assert status.envelope["run_id"] == run_id
        assert status.envelope["result"] == 1
        json.loads((cpf.run_folder(run_id) / "state.json").read_text())

    strays = [
        str(path)
        for path in Path(cpf.root).rglob("*")
        if path.name.endswith((".tmp", ".masking")) or path.name.startswith(".state.json.")
    ]
    assert strays == [], strays


def test_forty_runs_eight_at_a_time(cpf):
    many_runs(cpf, 40)


@pytest.mark.long
def test_two_hundred_runs_eight_at_a_time(cpf):
    many_runs(cpf, 200)


# ---------------------------------------------------------------------------------------
# cancel racing resume


def race_cancel_and_resume(cpf, rounds: int, sleep: str) -> dict[str, int]:
    cpf.write("wf.yaml", doc(GATED.replace("SLEEP", sleep)))
    wins = {"cancel": 0, "resume": 0}
    for number in range(rounds):
        side = cpf.cwd / "side.txt"
        side.unlink(missing_ok=True)
        waiting = run_once(cpf, "run", "-f", "wf.yaml", "-q")
        assert waiting.exit_code == 40, waiting.envelope
        run_id = waiting.envelope["run_id"]
        pair = [
            ["resume", "--run-id", run_id, "--event", "go", "--input", "{}", "-q"],
            ["cancel", "--run-id", run_id, "--reason", f"round {number}"],
        ]
        if number % 2:
            pair.reverse()  # alternate which one is started first
        processes = {args[0]: spawn(cpf, *args) for args in pair}
        resumed = collect(processes["resume"])
        cancelled = collect(processes["cancel"])
        outcome = (resumed.envelope, cancelled.envelope)

        assert [resumed.exit_code, cancelled.exit_code].count(0) == 1, outcome
        loser = resumed if cancelled.exit_code == 0 else cancelled
        assert (loser.exit_code, loser.error_code) in (
            (70, "ERR_LOCK_CONFLICT"),
            (20, "ERR_RUN_NOT_WAITING"),
        ), outcome

        status = run_once(cpf, "status", "--run-id", run_id)
        inspected = run_once(cpf, "inspect", "--run-id", run_id)
        records = log_records(cpf, run_id)
        types = [r["type"] for r in records]
        history = [r["type"] for r in inspected.envelope["result"]["history"]]
        assert history == types
        if cancelled.exit_code == 0:
            wins["cancel"] += 1
            assert cancelled.envelope["status"] == "cancelled"
            assert (status.exit_code, status.envelope["status"]) == (50, "cancelled")
            assert inspected.envelope["result"]["state"]["status"] == "cancelled"
            assert inspected.exit_code == 50
            assert types[-1] == "run_cancelled", types
            assert "event_received" not in types
            assert not side.exists(), "the step after the wait ran although cancel won"
        else:
            wins["resume"] += 1
            assert resumed.envelope["status"] == "completed"
            assert (status.exit_code, status.envelope["status"]) == (0, "completed")
            assert inspected.envelope["result"]["state"]["status"] == "completed"
            assert inspected.exit_code == 0
            assert "run_cancelled" not in types
            assert types.count("event_received") == 1
            assert types[-1] in ("step_finished", "event_received"), types
            assert side.read_text() == "x\n"
    return wins


def test_cancel_racing_resume_has_one_winner(cpf):
    wins = race_cancel_and_resume(cpf, 8, "")
    assert sum(wins.values()) == 8


def test_cancel_racing_a_slow_resume_has_one_winner(cpf):
    wins = race_cancel_and_resume(cpf, 4, "sleep 0.3;")
    assert sum(wins.values()) == 4


@pytest.mark.long
def test_cancel_racing_resume_many_rounds(cpf):
    wins = race_cancel_and_resume(cpf, 60, "")
    assert sum(wins.values()) == 60
