"""Crash consistency: SIGKILL `cpf` anywhere, then prove nothing persisted is lost or lies.

Kill points come from a seeded generator: random moments during a 50-step run (mostly
inside step execution), plus exact torn writes of the N-th log record or state file
(CHECKPOINTFLOW_TEST_CRASH), and the same for `resume` and `cancel`. After each kill,
`status` and `inspect` work, state.json and every complete log line parse, and the log
replays to the state. Then `cpf recover` (or a second resume) finishes the run, and every
step's side effect happened exactly once, except the step in flight at the kill, which ran
at most once more and is reported as interrupted.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import CPF

STEPS = 50


def fifty_steps(wait_after: int | None = None) -> str:
    lines = ["schema_version: checkpointflow/v1", "workflow:", "  id: crash", "  steps:"]
    for number in range(1, STEPS + 1):
        lines += [
            f"    - id: s{number:02d}",
            "      kind: cli",
            f"      command: echo s{number:02d} >> side.txt",
            "      retry: {max_attempts: 2}",
        ]
        if number == wait_after:
            lines += [
                "    - id: gate",
                "      kind: await_event",
                "      audience: agent",
                "      event_name: go",
                "      input_schema: {type: object}",
            ]
    return "\n".join(lines) + "\n"


def start(cpf, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [CPF, *args],
        cwd=cpf.cwd,
        env={**cpf.env, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def kill_at(process: subprocess.Popen[bytes], delay: float) -> None:
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.communicate()


def only_run_id(cpf) -> str | None:
    runs = [p for p in (cpf.root / "runs").glob("*") if (p / "events.jsonl").is_file()]
    assert len(runs) <= 1
    return runs[0].name if runs else None


def check_consistent(cpf, run_id: str) -> dict:
    """What must hold right after a kill, before anything repairs the run."""
    from checkpointflow import history, store
    from checkpointflow.state import state_to_json

    status = cpf("status", "--run-id", run_id)
    assert cpf("inspect", "--run-id", run_id).envelope["status"] == status.envelope["status"]
    folder_path = cpf.run_folder(run_id)
    if (folder_path / "state.json").exists():
        json.loads((folder_path / "state.json").read_text())
    data = (folder_path / "events.jsonl").read_bytes()
    complete = data[: data.rfind(b"\n") + 1].splitlines()
    for line in complete[:-1]:
        json.loads(line)  # only the very last line may be torn by a kill
    folder = store.RunFolder(run_id, folder_path)
    loaded = state_to_json(history.load_state(cpf.root, folder))
    assert loaded == state_to_json(history.replay_run(cpf.root, folder))
    return status.envelope


def verified(cpf, run_id: str) -> None:
    """`cpf verify` finds the run folder whole: what the state records is on disk."""
    result = cpf("verify", "--run-id", run_id)
    assert result.exit_code == 0, result.envelope


def finish_and_count(cpf, run_id: str, status: dict) -> None:
    """Repair the run, let it complete, and check each side effect happened once."""
    in_flight = status.get("current_step_id") if status["status"] == "running" else None
    verified(cpf, run_id)
    if status["status"] == "running":
        assert cpf("recover", "--run-id", run_id).envelope["status"] in ("completed", "waiting")
        verified(cpf, run_id)
    if cpf("status", "--run-id", run_id).envelope["status"] == "waiting":
        assert cpf("resume", "--run-id", run_id, "--event", "go").exit_code == 0
    assert cpf("status", "--run-id", run_id).envelope["status"] == "completed"
    counts = Counter((cpf.cwd / "side.txt").read_text().split())
    for number in range(1, STEPS + 1):
        step = f"s{number:02d}"
        allowed = (1, 2) if step == in_flight else (1,)
        assert counts[step] in allowed, (step, counts[step], in_flight)
    if in_flight:
        state = cpf("inspect", "--run-id", run_id).envelope["result"]["state"]
        errors = [a["error"] for a in state["steps"][in_flight]["attempts"] if a["error"]]
        assert errors and errors[0]["code"] == "ERR_INTERRUPTED"


def kill_points(seed: int, count: int) -> list[tuple[str, float | str]]:
    """A seeded mix: random moments, and torn writes of a chosen record or state file."""
    generator = random.Random(seed)
    points: list[tuple[str, float | str]] = []
    for _ in range(count):
        roll = generator.random()
        if roll < 0.6:
            points.append(("moment", generator.uniform(0.05, 0.6)))
        elif roll < 0.85:
            points.append(("tear", f"append:{generator.randint(1, STEPS + 1)}"))
        else:
            points.append(("tear", f"state:{generator.randint(1, 2)}"))
    return points


def kill_run(cpf, how: str, where: float | str) -> None:
    if how == "moment":
        kill_at(start(cpf, "run", "-f", "flow.yaml", "-q"), float(where))
    else:
        process = start(
            cpf, "run", "-f", "flow.yaml", "-q", env={"CHECKPOINTFLOW_TEST_CRASH": str(where)}
        )
        process.communicate()
        assert process.returncode == -signal.SIGKILL


def run_kill_points(cpf, points) -> None:
    checked = 0
    for how, where in points:
        (cpf.cwd / "side.txt").unlink(missing_ok=True)
        shutil.rmtree(cpf.root / "runs", ignore_errors=True)
        cpf.write("flow.yaml", fifty_steps())
        kill_run(cpf, how, where)
        run_id = only_run_id(cpf)
        if run_id is None:
            continue  # killed before the run was born: nothing persisted, nothing to check
        status = check_consistent(cpf, run_id)
        finish_and_count(cpf, run_id, status)
        checked += 1
    # most kill points must land after the run is born, or the test proves little
    assert checked >= len(points) // 2, (checked, len(points))


def test_kills_during_run_short(cpf):
    run_kill_points(cpf, kill_points(seed=7, count=30))


@pytest.mark.long
def test_kills_during_run_long(cpf):
    run_kill_points(cpf, kill_points(seed=11, count=200))


def waiting_run(cpf) -> str:
    cpf.write("flow.yaml", fifty_steps(wait_after=10))
    started = cpf("run", "-f", "flow.yaml", "-q")
    assert started.exit_code == 40
    return started.envelope["run_id"]


@pytest.mark.parametrize("tear", ["append:1", "append:2", "append:5", "append:41", "state:1"])
def test_torn_write_during_resume_then_recover(cpf, tear):
    run_id = waiting_run(cpf)
    process = start(
        cpf,
        "resume",
        "--run-id",
        run_id,
        "--event",
        "go",
        "-q",
        env={"CHECKPOINTFLOW_TEST_CRASH": tear},
    )
    process.communicate()
    assert process.returncode == -signal.SIGKILL
    status = check_consistent(cpf, run_id)
    finish_and_count(cpf, run_id, status)


@pytest.mark.parametrize("delay", [0.05, 0.15, 0.3])
def test_kill_during_resume_then_recover(cpf, delay):
    run_id = waiting_run(cpf)
    kill_at(start(cpf, "resume", "--run-id", run_id, "--event", "go", "-q"), delay)
    status = check_consistent(cpf, run_id)
    finish_and_count(cpf, run_id, status)


@pytest.mark.parametrize("tear", ["append:1", "state:1"])
def test_torn_write_during_cancel(cpf, tear):
    run_id = waiting_run(cpf)
    process = start(cpf, "cancel", "--run-id", run_id, env={"CHECKPOINTFLOW_TEST_CRASH": tear})
    process.communicate()
    assert process.returncode == -signal.SIGKILL
    status = check_consistent(cpf, run_id)
    # A torn cancel record never happened; a cancel that was logged stands.
    expected = "waiting" if tear == "append:1" else "cancelled"
    assert status["status"] == expected
    if expected == "waiting":
        assert cpf("cancel", "--run-id", run_id).envelope["status"] == "cancelled"
    assert cpf("status", "--run-id", run_id).exit_code == 50


def test_a_dead_process_is_reported_and_recover_is_refused_while_alive(cpf):
    cpf.write(
        "slow.yaml",
        "schema_version: checkpointflow/v1\nworkflow:\n  id: slow\n  steps:\n"
        "    - {id: nap, kind: cli, command: 'sleep 30'}\n",
    )
    process = start(cpf, "run", "-f", "slow.yaml", "-q")
    deadline = time.monotonic() + 30
    while only_run_id(cpf) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    run_id = only_run_id(cpf)
    time.sleep(0.3)
    busy = cpf("recover", "--run-id", run_id)
    assert busy.error_code == "ERR_LOCK_CONFLICT" and busy.exit_code == 70
    process.send_signal(signal.SIGKILL)
    process.communicate()
    status = cpf("status", "--run-id", run_id)
    assert status.envelope["status"] == "running"
    assert any("cpf recover" in warning for warning in status.envelope["warnings"])
    recovered = cpf("recover", "--run-id", run_id)
    assert recovered.envelope["status"] == "failed"
    assert recovered.envelope["error"]["code"] == "ERR_INTERRUPTED"
    assert any("Stopped process group" in w for w in recovered.envelope["warnings"])
    again = cpf("recover", "--run-id", run_id)
    assert again.error_code == "ERR_RUN_NOT_INTERRUPTED" and again.exit_code == 20


def test_a_damaged_state_json_is_rebuilt_from_the_log(cpf):
    run_id = waiting_run(cpf)
    state_file = cpf.run_folder(run_id) / "state.json"
    state_file.write_text("{ half a checkpoint")
    assert cpf("status", "--run-id", run_id).exit_code == 40
    assert cpf("verify", "--run-id", run_id).error_code == "ERR_VERIFY_FAILED"
    assert cpf("resume", "--run-id", run_id, "--event", "go", "-q").exit_code == 0
    json.loads(state_file.read_text())  # the next checkpoint healed it
    assert cpf("verify", "--run-id", run_id).exit_code == 0


def test_recover_finds_an_orphan_by_its_environment_without_a_pid_file(cpf):
    """A command quicker than the pid-file delay has no pid file; if cpf dies in that
    window, recover still finds the command by CPF_RUN_ID/CPF_STEP_ID and stops it."""
    cpf.write(
        "slow.yaml",
        "schema_version: checkpointflow/v1\nworkflow:\n  id: slow\n  steps:\n"
        "    - {id: nap, kind: cli, command: 'sleep 30'}\n",
    )
    process = start(cpf, "run", "-f", "slow.yaml", "-q")
    deadline = time.monotonic() + 30
    pid_files: list[Path] = []
    while not pid_files and time.monotonic() < deadline:
        time.sleep(0.05)
        pid_files = list((cpf.root / "runs").glob("*/steps/nap/1.pid"))
    assert pid_files, "the long command should have been noted for recover"
    group = int(pid_files[0].read_text())
    process.send_signal(signal.SIGKILL)
    process.communicate()
    pid_files[0].unlink()  # as if cpf had died before noting it
    run_id = pid_files[0].parents[2].name
    recovered = cpf("recover", "--run-id", run_id)
    assert (
        f"Stopped process group {group}, left running by step nap."
        in recovered.envelope["warnings"]
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Path(f"/proc/{group}").exists():
        time.sleep(0.05)
    assert (
        not Path(f"/proc/{group}").exists()
        or "Z" in Path(f"/proc/{group}/stat").read_text().split()[2]
    )


BACKOFF = """\
schema_version: checkpointflow/v1
workflow:
  id: backoff
  steps:
    - id: flaky
      kind: cli
      command: '[ -f marker ] || { touch marker; exit 1; }; echo done >> side.txt'
      retry: {max_attempts: 2, backoff_seconds: 600}
"""


def test_a_kill_during_a_retry_backoff_leaves_a_run_verify_accepts(cpf):
    """Attempt 2 was announced but never began: its output files do not exist, and the
    state says so instead of naming files that were never written."""
    cpf.write("flow.yaml", BACKOFF)
    process = start(cpf, "run", "-f", "flow.yaml", "-q")
    deadline = time.monotonic() + 60
    while not list(cpf.root.glob("runs/*/steps/flaky/1.stderr")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # inside the 600 s backoff of attempt 2
    kill_at(process, 0)
    run_id = only_run_id(cpf)
    assert run_id is not None
    status = check_consistent(cpf, run_id)
    assert status["status"] == "running"
    verified(cpf, run_id)
    recovered = cpf("recover", "--run-id", run_id)  # no attempt left: the step fails
    assert recovered.envelope["error"]["code"] == "ERR_INTERRUPTED"
    verified(cpf, run_id)
    assert cpf("retry", "--run-id", run_id).envelope["status"] == "completed"
    verified(cpf, run_id)
    assert (cpf.cwd / "side.txt").read_text().split() == ["done"]


MANY = """\
schema_version: checkpointflow/v1
workflow:
  id: many
  steps:
    - id: each
      kind: foreach
      items: ${inputs.items}
      concurrency: 8
      body:
        - id: work
          kind: cli
          command: 'sleep 0.0${item}; echo ${item} >> side.txt'
          retry: {max_attempts: 2, backoff_seconds: 0.2}
"""


def kill_foreach_at(cpf, delay: float) -> None:
    shutil.rmtree(cpf.root / "runs", ignore_errors=True)
    (cpf.cwd / "side.txt").unlink(missing_ok=True)
    items = json.dumps({"items": list(range(1, 10)) * 3})
    kill_at(start(cpf, "run", "-f", "many.yaml", "--input", items, "-q"), delay)
    run_id = only_run_id(cpf)
    if run_id is None:
        return
    status = check_consistent(cpf, run_id)
    verified(cpf, run_id)
    if status["status"] == "running":
        assert cpf("recover", "--run-id", run_id).envelope["status"] in ("completed", "failed")
        verified(cpf, run_id)


def test_kills_inside_a_foreach_running_eight_at_once(cpf):
    cpf.write("many.yaml", MANY)
    generator = random.Random(5)
    for _ in range(8):
        kill_foreach_at(cpf, generator.uniform(0.1, 0.6))


@pytest.mark.long
def test_kills_inside_a_foreach_running_eight_at_once_long(cpf):
    cpf.write("many.yaml", MANY)
    generator = random.Random(13)
    for _ in range(40):
        kill_foreach_at(cpf, generator.uniform(0.05, 0.8))
