"""Workflows and helpers shared by the tests of the run-operations commands."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from e2e_helpers import resume, start

WAITS = """
id: waits
version: "1.0"
steps:
  - id: hello
    kind: cli
    command: echo hello; echo oops >&2
  - id: ask
    kind: await_event
    audience: agent
    event_name: go
    input_schema: {type: object}
  - id: done
    kind: end
    result: finished
"""

FAILS = """
id: fails
steps:
  - id: broken
    kind: cli
    command: exit 3
"""

QUICK = """
id: quick
steps:
  - id: only
    kind: cli
    command: echo '{"n": 1}'
"""


def waiting_run(cpf: Any) -> str:
    return str(start(cpf, WAITS, name="waits.yaml").envelope["run_id"])


def completed_run(cpf: Any) -> str:
    run_id = waiting_run(cpf)
    assert resume(cpf, run_id, "go", {}).exit_code == 0
    return run_id


def failed_run(cpf: Any) -> str:
    return str(start(cpf, FAILS, name="fails.yaml").envelope["run_id"])


@contextlib.contextmanager
def holding_lock(folder: Path) -> Iterator[None]:
    """Hold a run's lock as a `cpf` advancing it would."""
    descriptor = os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def age_summary(cpf: Any, run_id: str, updated_at: str) -> None:
    """Pretend a run was last updated long ago, as `cpf list` sees it."""
    path = cpf.run_folder(run_id) / "summary.json"
    summary = json.loads(path.read_text())
    summary["updated_at"] = updated_at
    path.write_text(json.dumps(summary))
