"""Shared fixtures: an isolated state root per test and a `cpf` that checks every envelope.

Every call of the real `cpf` is checked for the project's promises: stdout holds exactly
one JSON object valid against schemas/envelope.schema.json, the process exit code equals
the envelope's exit_code, and stderr never shows a traceback. After each test, every run
folder it left is checked: state.json and every event line match their schemas, and
replaying events.jsonl reproduces state.json.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastjsonschema
import pytest

REPO = Path(__file__).resolve().parent.parent
SCHEMAS = REPO / "schemas"
CPF = shutil.which("cpf", path=str(Path(sys.executable).parent)) or "cpf"


def _compile(name: str) -> Any:
    return fastjsonschema.compile(json.loads((SCHEMAS / name).read_text()))


ENVELOPE = _compile("envelope.schema.json")
STATE = _compile("state.schema.json")
EVENT = _compile("event.schema.json")


@dataclass
class Result:
    """One finished `cpf` process."""

    exit_code: int
    envelope: dict[str, Any]
    stdout: str
    stderr: str

    @property
    def error_code(self) -> str | None:
        error = self.envelope.get("error")
        return error["code"] if error else None


class Cpf:
    """Runs the installed `cpf` in a test's own state root and working folder."""

    def __init__(self, root: Path, cwd: Path) -> None:
        self.root = root
        self.cwd = cwd
        self.env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("LLM", "CPF_DEBUG", "NO_COLOR") and not key.startswith("CHECKPOINTFLOW_")
        }
        self.env["CHECKPOINTFLOW_BASE_DIR"] = str(root)

    def __call__(
        self,
        *args: str,
        stdin: str | bytes | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 120,
    ) -> Result:
        process = subprocess.run(
            [CPF, *args],
            input=stdin.encode() if isinstance(stdin, str) else stdin,
            capture_output=True,
            cwd=self.cwd,
            env={**self.env, **(env or {})},
            timeout=timeout,
            check=False,
        )
        return check_output(process.returncode, process.stdout, process.stderr)

    def write(self, name: str, text: str) -> Path:
        """Write a file (a workflow, an input) into the test's working folder."""
        path = self.cwd / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def run_folder(self, run_id: str) -> Path:
        return self.root / "runs" / run_id

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        """Start `cpf` in the background (to signal or kill it); `finish` collects it."""
        return subprocess.Popen(
            [CPF, *args],
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def finish(self, process: subprocess.Popen[bytes], guard: float = 120) -> Result:
        """Wait for a started `cpf`; `guard` only stops a hang from stalling the suite."""
        try:
            stdout, stderr = process.communicate(timeout=guard)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            pytest.fail(f"cpf {process.args} did not finish within its {guard} s hang guard")
        return check_output(process.returncode, stdout, stderr)


def check_output(returncode: int, stdout: bytes, stderr: bytes) -> Result:
    """The envelope contract, checked for every command a test runs."""
    out = stdout.decode()
    err = stderr.decode(errors="replace")
    assert "Traceback" not in err, err
    try:
        envelope = json.loads(out)
    except ValueError:
        pytest.fail(f"stdout is not exactly one JSON object:\n{out}\nstderr:\n{err}")
    assert isinstance(envelope, dict), out
    ENVELOPE(envelope)
    assert envelope["exit_code"] == returncode, (envelope, err)
    assert "\x1b[" not in err, "ANSI codes on a stderr that is not a terminal"
    return Result(returncode, envelope, out, err)


@pytest.fixture
def cpf(tmp_path: Path) -> Iterator[Cpf]:
    root = tmp_path / "state"
    work = tmp_path / "work"
    work.mkdir()
    runner = Cpf(root, work)
    yield runner
    check_run_folders(root)


@pytest.fixture
def cpu_load() -> Iterator[None]:
    """Two busy processes for the length of a test, as on a shared 2-core machine: races
    that need a slow thread or a late process start show up under them."""
    busy = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL)
        for _ in range(2)
    ]
    try:
        yield
    finally:
        for process in busy:
            process.kill()
            process.wait()


def check_run_folders(root: Path) -> None:
    """Schemas of state.json and events.jsonl, and the replay property, for every run.

    state.json is a checkpoint: replaying the log up to its `seq` reproduces it exactly,
    its `log_offset` is where that record ends, and the whole log replays to the state
    every command reports (checkpoint plus the events logged after it).
    """
    from checkpointflow import history, store
    from checkpointflow.state import OLDER_STATE_SCHEMAS, event_from_record, state_to_json

    runs = root / "runs"
    if not runs.is_dir():
        return
    for path in sorted(runs.iterdir()):
        if not (path / "events.jsonl").is_file():
            continue
        folder = store.RunFolder(path.name, path)
        records = [json.loads(line) for line in (path / "events.jsonl").read_bytes().splitlines()]
        for record in records:
            EVENT(record)
        assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
        stored = None
        if (path / "state.json").exists():
            stored = json.loads((path / "state.json").read_text())
            STATE(stored)
        if stored is not None and stored["schema_version"] not in OLDER_STATE_SCHEMAS:
            offset = stored.pop("log_offset")
            stored.pop("checksum", None)  # the file's seal, not part of the state
            prefix = [event_from_record(r) for r in records[: stored["seq"]]]
            assert state_to_json(history.fold(root, folder, prefix)) == stored, path
            log = (path / "events.jsonl").read_bytes()
            assert offset == len(
                b"".join(line + b"\n" for line in log.splitlines()[: stored["seq"]])
            )
        replayed = state_to_json(history.replay_run(root, folder))
        loaded = state_to_json(history.load_state(root, folder))
        assert replayed == loaded, f"replaying {path}/events.jsonl does not give the run's state"


WORKFLOW_HEAD = "schema_version: checkpointflow/v1\nworkflow:\n"


def workflow(body: str) -> str:
    """A workflow document from the indented body of its `workflow:` mapping."""
    return WORKFLOW_HEAD + body
