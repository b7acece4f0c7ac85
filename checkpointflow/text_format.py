"""`--format text`: any envelope as a short summary for a person at a terminal.

A pure function of the envelope: the JSON stays the contract (and the default), this is
only another way to show it. A run is told in a few lines that end with the next command
to type; `list` is a table; every other command gets a title and its result as
`key: value` lines. Imported only when text is asked for.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from typing import Any

Envelope = dict[str, Any]
WIDTH = 100  # values longer than this are cut with "…"
RUN_COMMANDS = ("run", "resume", "retry", "recover", "status", "cancel", "inspect")


def render(envelope: Envelope) -> str:
    """The envelope as text for people, ending with a newline."""
    if envelope.get("ok") or _run_outcome(envelope):
        shown = _RENDERERS.get(envelope.get("command", ""), _generic)
    else:
        shown = _refusal
    try:
        lines = shown(envelope)
    except (KeyError, TypeError, AttributeError, ValueError):  # a shape this text cannot tell
        lines = _generic(envelope)
    lines += [f"warning: {text}" for text in envelope.get("warnings") or []]
    return "\n".join(lines) + "\n"


def _run_outcome(envelope: Envelope) -> bool:
    """A run that failed or was cancelled while this command drove it (exit 30 or 50), as
    opposed to a command that was refused."""
    return bool(envelope.get("run_id")) and envelope.get("exit_code") in (30, 50)


# --- runs -------------------------------------------------------------------------------


def _run(envelope: Envelope) -> list[str]:
    """A run in a few lines: where it stands, what it produced or needs, what to type next."""
    lines = [_run_title(envelope), _standing(envelope)]
    status, result = envelope["status"], envelope.get("result")
    if isinstance(result, dict) and result.get("queued") is True:
        return [*lines, *_queued(envelope, result)]
    if status == "waiting":
        lines += _waiting(envelope)
    elif status == "failed" and envelope.get("error"):
        lines += _failure(envelope)
    elif status == "running":
        lines.append(f"  follow it: cpf logs --run-id {envelope.get('run_id')} --follow")
    elif envelope["command"] == "cancel" and isinstance(result, dict) and result.get("reason"):
        lines.append(f"reason: {_value(result['reason'])}")
    elif status == "completed" and "result" in envelope and envelope["command"] != "inspect":
        lines.append(f"result: {_value(result)}")
    if envelope["command"] == "inspect" and isinstance(result, dict):
        lines += _steps(result)
    return lines


def _queued(envelope: Envelope, result: dict[str, Any]) -> list[str]:
    """An answer queued for a busy run: not applied yet, and where to see what became of it."""
    return [
        f"answer to {result.get('wait_id')} queued: the run is busy, and the process advancing "
        "it applies the answer at its next step",
        f"  see what became of it: cpf logs --run-id {envelope.get('run_id')}",
    ]


def _run_title(envelope: Envelope) -> str:
    workflow = " ".join(
        part for part in (envelope.get("workflow_id"), envelope.get("workflow_version")) if part
    )
    name = envelope.get("workflow_name")
    named = f', "{name}"' if name else ""
    return f"run {envelope.get('run_id', '?')} ({workflow}{named})"


def _standing(envelope: Envelope) -> str:
    status, step = envelope["status"], envelope.get("current_step_id")
    where = f" at step {step}" if step and status in ("waiting", "running", "failed") else ""
    return f"{status}{where} (exit {envelope['exit_code']})"


def _waiting(envelope: Envelope) -> list[str]:
    """Each pending wait: who is asked what, until when, and the command that answers it.
    The first wait's schema (in `wait`) gives the fields and an answer to start from."""
    first = envelope.get("wait") or {}
    lines = []
    for entry in envelope.get("waits") or []:
        asked = f": {entry['prompt']}" if entry.get("prompt") else ""
        lines.append(f"waiting for {entry['event_name']} from {entry['audience']}{asked}")
        if len(envelope.get("waits") or []) > 1:
            lines.append(f"  wait id: {entry['wait_id']}")
        if entry.get("deadline"):
            lines.append(f"  deadline: {entry['deadline']}")
        schema = first.get("input_schema") if entry["wait_id"] == first.get("wait_id") else None
        lines += [f"  {line}" for line in _fields(schema)]
        lines.append(f"  next: {_answer_command(entry['resume']['command'], schema)}")
    return lines


def _failure(envelope: Envelope) -> list[str]:
    error, run_id = envelope["error"], envelope.get("run_id", "ID")
    lines = [f"error {error['code']}: {error['message']}"]
    step = error.get("step_id") or envelope.get("current_step_id")
    if step and error["code"] != "ERR_INTERRUPTED":
        lines.append(f"  see its output: cpf logs --run-id {run_id} --output {shlex.quote(step)}")
    lines.append(f"  next: cpf retry --run-id {run_id}")
    return lines


def _steps(result: dict[str, Any]) -> list[str]:
    rows = result.get("step_results") or []
    table = [["STEP", "KIND", "STATUS", "ATTEMPT", "EXIT"]] + [
        [
            row.get("step_id"),
            row.get("step_kind"),
            row.get("status"),
            row.get("attempt"),
            row.get("exit_code"),
        ]
        for row in rows
    ]
    return _table(table) if rows else []


# --- waits: the fields an answer needs -------------------------------------------------


def _fields(schema: Any) -> list[str]:
    """One line per field of an object schema: its name, whether required, its values."""
    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
        return []
    required = set(schema.get("required") or [])
    lines = []
    for name, field in list(schema["properties"].items())[:12]:
        field = field if isinstance(field, dict) else {}
        kind = field.get("type", "any")
        kinds = " or ".join(kind) if isinstance(kind, list) else str(kind)
        values = f", one of {', '.join(map(_value, field['enum']))}" if "enum" in field else ""
        need = " (required)" if name in required else ""
        lines.append(f"field {name}{need}: {kinds}{values}")
    return lines


def _answer_command(command: str, schema: Any) -> str:
    """The resume command with an answer inline, when the schema says enough to write one
    (every required field has an enum, a const, a default or is a boolean); else as given."""
    example = _example(schema)
    if example is None:
        return command
    inline = shlex.quote(json.dumps(example, ensure_ascii=False))
    return command.replace("--input @event.json", f"--input {inline}")


def _example(schema: Any) -> dict[str, Any] | None:
    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
        return {} if schema in ({"type": "object"}, {}, True) else None
    example = {}
    for name in schema.get("required") or []:
        field = schema["properties"].get(name)
        if not isinstance(field, dict):
            return None
        if field.get("enum"):
            example[name] = field["enum"][0]
        elif "const" in field or "default" in field:
            example[name] = field.get("const", field.get("default"))
        elif field.get("type") == "boolean":
            example[name] = True
        else:
            return None
    return example


# --- refusals ---------------------------------------------------------------------------


def _refusal(envelope: Envelope) -> list[str]:
    error = envelope.get("error") or {"code": "ERR_INTERNAL", "message": "no error given"}
    command = envelope.get("command", "cpf")
    name = command if command == "cpf" else f"cpf {command}"
    lines = [f"{name}: {error['code']}: {error['message']}"]
    lines += [f"  - {line}" for line in _details(error.get("details"))]
    if envelope.get("run_id"):
        lines += [f"the run is unchanged: {_run_title(envelope)}", _standing_of_run(envelope)]
        for entry in envelope.get("waits") or []:
            lines.append(f"  answer {entry['wait_id']}: {entry['resume']['command']}")
    return lines


def _standing_of_run(envelope: Envelope) -> str:
    step = envelope.get("current_step_id")
    return f"  it is {envelope['status']}" + (f" at step {step}" if step else "")


def _details(details: Any) -> list[str]:
    """Problems one per line: validation problems by message, path and step."""
    if isinstance(details, dict) and "input_schema" in details:
        return _fields(details["input_schema"]) or [f"input_schema: {_value(details)}"]
    if not isinstance(details, list):
        return [] if details is None else [_value(details)]
    lines = []
    for problem in details[:20]:
        if isinstance(problem, dict) and "message" in problem:
            where = ", ".join(
                f"{label} {problem[key]}"
                for key, label in (("file", "in"), ("step_id", "step"), ("path", "at"))
                if problem.get(key)
            )
            lines.append(problem["message"] + (f" ({where})" if where else ""))
        else:
            lines.append(_value(problem))
    return lines + ([f"... and {len(details) - 20} more"] if len(details) > 20 else [])


# --- other commands ---------------------------------------------------------------------


def _list(envelope: Envelope) -> list[str]:
    result = envelope["result"]
    rows = [["RUN ID", "WORKFLOW", "STATUS", "STEP", "UPDATED", "WAITING FOR"]]
    for run in result["runs"]:
        waiting = f"{run['event_name']} ({run.get('audience')})" if run.get("event_name") else ""
        workflow = " ".join(p for p in (run.get("workflow_id"), run.get("workflow_version")) if p)
        rows.append(
            [
                run["run_id"],
                workflow,
                run.get("status"),
                run.get("current_step_id"),
                run.get("updated_at"),
                waiting,
            ]
        )
    shown = (
        f"{result['count']} of {result['matched']}"
        if result["count"] < result["matched"]
        else str(result["count"])
    )
    return [*_table(rows), f"{shown} run{'s' if result['matched'] != 1 else ''}"]


def _logs(envelope: Envelope) -> list[str]:
    result = envelope.get("result") or {}
    if "events" not in result:
        return _captured(result)
    rows = [["SEQ", "AT", "TYPE", "STEP", "SUMMARY"]] + [
        [_seq(row), row.get("at"), row.get("type"), row.get("step_id"), row.get("summary")]
        for row in result["events"]
    ]
    return [_run_title(envelope), _standing(envelope), *_table(rows)]


def _seq(row: dict[str, Any]) -> Any:
    """Rows that follow from the log (a step started, a wait began) have no number."""
    return None if row.get("type") in ("step_started", "waiting") else row.get("seq")


def _captured(result: dict[str, Any]) -> list[str]:
    """A step attempt's stdout and stderr, as they were printed."""
    lines = []
    for stream in ("stdout", "stderr"):
        output = result.get(stream) or {}
        cut = (
            f", last {len(output.get('text', '').encode())} shown"
            if output.get("truncated")
            else ""
        )
        header = f"{stream} of {result.get('step_id')} attempt {result.get('attempt')}"
        lines.append(f"--- {header} ({output.get('bytes', 0)} bytes{cut}) ---")
        lines += (output.get("text") or "").splitlines()
    return lines


def _validate(envelope: Envelope) -> list[str]:
    result = envelope["result"]
    workflow = " ".join(
        p for p in (envelope.get("workflow_id"), envelope.get("workflow_version")) if p
    )
    return [
        f"{result['file']} is valid: workflow {workflow}, {result['steps']} steps",
        f"next: cpf run -f {shlex.quote(result['file'])}",
    ]


def _init(envelope: Envelope) -> list[str]:
    file = envelope["result"]["file"]
    return [f"wrote {file}", f"next: cpf run -f {shlex.quote(file)}"]


def _flows(envelope: Envelope) -> list[str]:
    result = envelope["result"]
    if "flows" not in result:
        return _generic(envelope)
    rows = [["ID", "NAME", "VERSION", "PATH", "PROBLEM"]] + [
        [f["id"], f.get("name"), f.get("version"), f["path"], f.get("error")]
        for f in result["flows"]
    ]
    found = _table(rows) if result["flows"] else []
    return [*found, f"{result['count']} flows in {', '.join(result['folders'])}"]


def _graph(envelope: Envelope) -> list[str]:
    return str(envelope["result"]["graph"]).rstrip("\n").splitlines()


def _generic(envelope: Envelope) -> list[str]:
    """A title, then the result as `key: value` lines."""
    title = f"cpf {envelope.get('command')}: {envelope['status']} (exit {envelope['exit_code']})"
    lines = [title]
    if envelope.get("run_id"):
        lines.append(_run_title(envelope))
    result = envelope.get("result")
    if isinstance(result, dict):
        for key, value in result.items():
            lines += _entry(key, value)
    elif result is not None:
        lines.append(f"result: {_value(result)}")
    return lines


def _entry(key: str, value: Any) -> list[str]:
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        return [f"{key}:"] + [f"  - {_value(item)}" for item in value[:50]]
    if isinstance(value, list):
        return [f"{key}: {', '.join(_value(item) for item in value) or '(none)'}"]
    return [f"{key}: {_value(value)}"]


# --- small pieces -----------------------------------------------------------------------


def _value(value: Any) -> str:
    """A value on one line: text as is, anything else as compact JSON; cut at WIDTH."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split()) if isinstance(value, str) else text
    return text if len(text) <= WIDTH else text[: WIDTH - 1] + "…"


def _table(rows: list[list[Any]]) -> list[str]:
    """Rows as aligned columns; empty cells as "-"."""
    cells = [["-" if cell in (None, "") else _value(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    ]


_RENDERERS: dict[str, Callable[[Envelope], list[str]]] = {
    **dict.fromkeys(RUN_COMMANDS, _run),
    "list": _list,
    "logs": _logs,
    "validate": _validate,
    "init": _init,
    "flows": _flows,
    "graph": _graph,
}
