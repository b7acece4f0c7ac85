"""Small helpers shared by the end-to-end tests (imported as a plain module)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

HEAD = "schema_version: checkpointflow/v1\nworkflow:\n"


def doc(body: str) -> str:
    """A workflow document from the body of its `workflow:` mapping (written at column 0)."""
    return HEAD + textwrap.indent(textwrap.dedent(body).strip("\n"), "  ") + "\n"


def start(cpf: Any, body: str, inputs: Any = None, *args: str, name: str = "wf.yaml") -> Any:
    """Write the workflow and `cpf run` it, with inputs as inline JSON when given."""
    cpf.write(name, doc(body))
    extra = ["--input", json.dumps(inputs)] if inputs is not None else []
    return cpf("run", "-f", name, *extra, *args)


def resume(cpf: Any, run_id: str, event: str, data: Any = None) -> Any:
    extra = ["--input", json.dumps(data)] if data is not None else []
    return cpf("resume", "--run-id", run_id, "--event", event, *extra)


def step_output(
    cpf: Any, run_id: str, step_id: str, attempt: int = 1, stream: str = "stdout"
) -> str:
    path = cpf.run_folder(run_id) / "steps" / step_id / f"{attempt}.{stream}"
    return path.read_text()


def inspect(cpf: Any, run_id: str) -> dict[str, Any]:
    return cpf("inspect", "--run-id", run_id).envelope["result"]


def run_folders(cpf: Any) -> list[Path]:
    runs = cpf.root / "runs"
    if not runs.is_dir():
        return []
    return sorted(p for p in runs.iterdir() if (p / "events.jsonl").is_file())


def step_history(cpf: Any, run_id: str) -> dict[str, list[dict[str, Any]]]:
    """`inspect`'s step_results grouped by step key, oldest first: the history of steps
    whose records left state.json when their iteration, branch or sub-workflow completed."""
    rows: dict[str, list[dict[str, Any]]] = {}
    result = cpf("inspect", "--run-id", run_id).envelope["result"]
    for row in result["step_results"]:
        rows.setdefault(row["step_id"], []).append(row)
    return rows
