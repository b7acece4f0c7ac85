"""Runs that travel through git: two clones answer the same wait differently and one
pulls the other. Whatever the merge (a union merge, -X ours, -X theirs, conflict markers
left in place), no reader silently reads a mixed or one-sided history: each answers with
ERR_RUN_DIVERGED naming `cpf verify`, verify describes both histories or the files no
event accounts for, and `cpf reconcile` keeps one history and records the other's."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import Cpf, check_run_folders
from e2e_helpers import doc

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

SHIP = """
id: ship
steps:
  - id: approval
    kind: await_event
    audience: user
    event_name: approval
    input_schema:
      type: object
      required: [decision]
      properties: {decision: {type: string}, note: {type: string}}
    transitions:
      - when: event.decision == "approve"
        next: deploy
      - next: rejected
  - id: rejected
    kind: end
    result: rejected
  - id: deploy
    kind: cli
    command: echo "deploying ${steps.approval.outputs.note:-now}"
  - id: confirm
    kind: await_event
    audience: user
    event_name: confirm
    input_schema: {type: object}
  - id: done
    kind: end
    result: ${steps.approval.outputs.decision}
"""


def git(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "git",
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "-c",
            "init.defaultBranch=main",
            *args,
        ],
        cwd=cwd,
        check=check,
        capture_output=True,
        text=True,
        timeout=60,
    )


class Clones:
    """Two clones of one repository that holds a state root: `a` (theirs, pushed
    first) and `b` (ours, which pulls), each with a `cpf` of its own."""

    def __init__(self, cpf: Cpf, tmp_path: Path) -> None:
        git("init", "-q", "--bare", "origin.git", cwd=tmp_path)
        git("clone", "-q", "origin.git", "a", cwd=tmp_path)
        self.a, self.b = tmp_path / "a", tmp_path / "b"
        (self.a / ".gitignore").write_text("cache/\n")
        self.cpf_a, self.cpf_b = Cpf(self.a, cpf.cwd), Cpf(self.b, cpf.cwd)
        cpf.write("ship.yaml", doc(SHIP))
        self.run_id = self.cpf_a("run", "-f", "ship.yaml", "-q").envelope["run_id"]
        self.tmp = tmp_path

    def commit(self, where: Path, message: str) -> None:
        git("add", "-A", cwd=where)
        git("commit", "-q", "-m", message, cwd=where)

    def share(self) -> None:
        """Commit the waiting run in `a`, push it, and clone it as `b`."""
        self.commit(self.a, "start")
        git("push", "-q", "origin", "HEAD:main", cwd=self.a)
        git("clone", "-q", "origin.git", "b", cwd=self.tmp)

    def answer(self, where: str, data: dict[str, Any], actor: str) -> None:
        runner, folder = (self.cpf_a, self.a) if where == "a" else (self.cpf_b, self.b)
        done = runner(
            "resume", "--run-id", self.run_id, "--event", "approval", "--input", json.dumps(data),
            "--actor", actor, "-q",
        )  # fmt: skip
        assert done.envelope["ok"], done.envelope
        self.commit(folder, f"{actor} answers")
        if where == "a":
            git("push", "-q", "origin", "HEAD:main", cwd=self.a)

    def pull(self, *options: str) -> subprocess.CompletedProcess[str]:
        return git("pull", "-q", "--no-rebase", *options, "origin", "main", cwd=self.b, check=False)

    @property
    def folder(self) -> Path:
        return self.b / "runs" / self.run_id

    def events(self) -> list[dict[str, Any]]:
        return [
            json.loads(line) for line in (self.folder / "events.jsonl").read_bytes().splitlines()
        ]


def diverged(
    cpf: Cpf,
    tmp_path: Path,
    older: bool = False,
    ours: dict | None = None,
    theirs: dict | None = None,
) -> Clones:
    """Alice approves in `a` (the deploy runs; it waits for confirm), Bob rejects in `b`.
    `older`: the run folder has no .gitattributes (written before `cpf` shipped one)."""
    clones = Clones(cpf, tmp_path)
    if older:
        (clones.a / "runs" / clones.run_id / ".gitattributes").unlink()
    clones.share()
    clones.answer("a", theirs or {"decision": "approve"}, "alice")
    clones.answer("b", ours or {"decision": "reject"}, "bob")
    return clones


def refused_as_diverged(runner: Cpf, run_id: str, *args: str) -> str:
    result = runner(*args, "--run-id", run_id)
    assert (result.exit_code, result.error_code) == (60, "ERR_RUN_DIVERGED"), result.envelope
    message: str = result.envelope["error"]["message"]
    assert f"cpf verify --run-id {run_id}" in message and "cpf reconcile" in message
    return message


def verify_problems(runner: Cpf, run_id: str) -> list[dict[str, str]]:
    result = runner("verify", "--run-id", run_id)
    assert result.error_code == "ERR_VERIFY_FAILED", result.envelope
    return [p for run in result.envelope["error"]["details"] for p in run["problems"]]


def reconciled(runner: Cpf, run_id: str, *args: str) -> dict[str, Any]:
    result = runner("reconcile", "--run-id", run_id, *args)
    assert result.exit_code == 0 and result.envelope["result"]["reconciled"], result.envelope
    return result.envelope


def test_a_union_merge_is_found_by_every_reader_and_reconciled(cpf, tmp_path):
    clones = diverged(cpf, tmp_path)
    clones.pull()  # the run's .gitattributes makes git keep both logs
    run_id, b = clones.run_id, clones.cpf_b
    assert "union merge" in refused_as_diverged(b, run_id, "status")
    listed = b("list")  # reads summaries; the run's own is in conflict, so it says why
    assert listed.envelope["result"]["runs"] == []
    assert "holds two histories" in listed.envelope["warnings"][0]
    for command in (("inspect",), ("logs",), ("cancel",), ("recover",)):
        refused_as_diverged(b, run_id, *command)
    refused_as_diverged(b, run_id, "resume", "--event", "confirm")
    (problem,) = [p for p in verify_problems(b, run_id) if p["file"].endswith("events.jsonl")]
    assert "two histories (union merge)" in problem["problem"]
    assert "by bob" in problem["problem"] and "by alice" in problem["problem"]
    assert "cpf reconcile" in problem["fix"]
    which = b("reconcile", "--run-id", run_id)
    assert (which.exit_code, which.error_code) == (10, "ERR_USAGE")
    assert "--keep ours or --keep theirs" in which.envelope["error"]["message"]

    envelope = reconciled(b, run_id, "--keep", "theirs")
    assert envelope["status"] == "waiting" and envelope["wait"]["event_name"] == "confirm"
    merged = clones.events()[-1]
    assert merged["type"] == "history_merged" and merged["payload"]["kept"] == "theirs"
    (other,) = merged["payload"]["events"]
    assert (other["type"], other["payload"]["input"]) == ("event_received", {"decision": "reject"})
    assert b("verify", "--run-id", run_id).exit_code == 0
    done = b("resume", "--run-id", run_id, "--event", "confirm", "-q")
    assert (done.exit_code, done.envelope["result"]) == (0, "approve")
    clones.commit(clones.b, "reconciled")  # nothing conflicted is left for git
    check_run_folders(clones.b)


@pytest.mark.parametrize("strategy", ["ours", "theirs"])
def test_a_merge_strategy_that_favours_one_side_still_keeps_both_logs(cpf, tmp_path, strategy):
    clones = diverged(cpf, tmp_path)
    pulled = clones.pull("-X", strategy)
    assert pulled.returncode == 0, pulled.stderr  # git saw no conflict to report
    run_id, b = clones.run_id, clones.cpf_b
    refused_as_diverged(b, run_id, "status")
    envelope = reconciled(b, run_id, "--keep", strategy)
    if strategy == "ours":  # Bob's rejection stays; Alice's deploy is recorded, files aside
        assert (envelope["status"], envelope["result"]["kept"]) == ("completed", "ours")
        moved = {f["file"]: f["kept_at"] for f in envelope["result"]["files"]}
        assert set(moved) == {"steps/deploy/1.stdout"}  # an empty stderr leaves no file
        assert (clones.folder / moved["steps/deploy/1.stdout"]).read_text() == "deploying now\n"
        assert not (clones.folder / "steps" / "deploy").exists() or not any(
            (clones.folder / "steps" / "deploy").iterdir()
        )
        assert envelope["result"]["other_events"] == 2
    else:
        assert envelope["status"] == "waiting" and envelope["result"]["files"] == []
    assert b("verify", "--run-id", run_id).exit_code == 0
    check_run_folders(clones.b)


def test_conflict_markers_left_in_place_are_found_and_reconciled(cpf, tmp_path):
    clones = diverged(cpf, tmp_path, older=True)
    pulled = clones.pull()
    assert pulled.returncode != 0  # git reports the conflicts, markers are in the files
    assert b"<<<<<<<" in (clones.folder / "events.jsonl").read_bytes()
    run_id, b = clones.run_id, clones.cpf_b
    assert "conflict marker" in refused_as_diverged(b, run_id, "status")
    refused_as_diverged(b, run_id, "resume", "--event", "approval", "--input", '{"decision": "x"}')
    problems = verify_problems(b, run_id)
    assert any("two histories (conflict markers)" in p["problem"] for p in problems)
    envelope = reconciled(b, run_id, "--keep", "ours")
    assert (envelope["status"], envelope["result"]["kept"]) == ("completed", "ours")
    assert b("status", "--run-id", run_id).envelope["result"] == "rejected"
    assert b("verify", "--run-id", run_id).exit_code == 0
    clones.commit(clones.b, "reconciled")
    check_run_folders(clones.b)


def test_a_merge_that_took_one_side_leaves_files_that_verify_reports(cpf, tmp_path):
    """Without the run's .gitattributes, -X ours keeps Bob's log whole; Alice's deploy
    really ran, and its output files are all that is left of it: verify names them and
    reconcile records them."""
    clones = diverged(cpf, tmp_path, older=True)
    assert clones.pull("-X", "ours").returncode == 0
    run_id, b = clones.run_id, clones.cpf_b
    assert b("status", "--run-id", run_id).envelope["result"] == "rejected"  # Bob's history
    stray = [p for p in verify_problems(b, run_id) if "no event" in p["problem"]]
    assert sorted(Path(p["file"]).name for p in stray) == ["1.stdout"]  # stderr was empty
    assert all("cpf reconcile" in p["fix"] for p in stray)
    envelope = reconciled(b, run_id)
    assert envelope["result"]["kept"] == "log" and envelope["result"]["other_events"] == 0
    assert len(envelope["result"]["files"]) == 1
    assert b("verify", "--run-id", run_id).exit_code == 0
    again = b("reconcile", "--run-id", run_id)
    assert again.exit_code == 0 and again.envelope["result"] == {"reconciled": False}
    check_run_folders(clones.b)


def test_an_output_file_both_sides_wrote_keeps_each_version(cpf, tmp_path):
    clones = diverged(
        cpf,
        tmp_path,
        older=True,
        ours={"decision": "approve", "note": "from b"},
        theirs={"decision": "approve", "note": "from a"},
    )
    clones.pull()
    assert b"<<<<<<<" in (clones.folder / "steps" / "deploy" / "1.stdout").read_bytes()
    envelope = reconciled(clones.cpf_b, clones.run_id, "--keep", "ours")
    assert envelope["status"] == "waiting"
    assert (clones.folder / "steps" / "deploy" / "1.stdout").read_text() == "deploying from b\n"
    aside = {f["file"]: f["kept_at"] for f in envelope["result"]["files"]}
    assert (clones.folder / aside["steps/deploy/1.stdout"]).read_text() == "deploying from a\n"
    assert clones.cpf_b("verify", "--run-id", clones.run_id).exit_code == 0
    done = clones.cpf_b("resume", "--run-id", clones.run_id, "--event", "confirm", "-q")
    assert done.envelope["result"] == "approve"
    check_run_folders(clones.b)


def test_a_state_json_of_another_history_is_refused_and_rebuilt_by_reconcile(cpf):
    """The checkpoint says its last event is one the log does not hold at that place
    (here: the same event at another time), as when state.json and events.jsonl come
    from two copies: readers refuse, and reconcile rebuilds the state from the log."""
    cpf.write("ship.yaml", doc(SHIP))
    run_id = cpf("run", "-f", "ship.yaml", "-q").envelope["run_id"]
    log = cpf.run_folder(run_id) / "events.jsonl"
    data = log.read_bytes()
    record = json.loads(data.splitlines()[-1])
    at = record["at"]  # ...T10:00:00.123Z: another millisecond, same length
    changed = at[:-2] + ("8" if at[-2] == "9" else "9") + "Z"
    log.write_bytes(data.replace(f'"at":"{at}"'.encode(), f'"at":"{changed}"'.encode()))
    message = refused_as_diverged(cpf, run_id, "status")
    assert "state.json is the checkpoint of event 1" in message
    fixed = cpf("reconcile", "--run-id", run_id)
    assert fixed.exit_code == 0 and fixed.envelope["result"] == {"reconciled": False}
    assert cpf("status", "--run-id", run_id).envelope["status"] == "waiting"
    assert cpf("verify", "--run-id", run_id).exit_code == 0
