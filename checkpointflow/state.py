"""The data the interpreter reads and writes: run state, events and effects.

All records are frozen; the interpreter changes them only through `attrs.evolve`. Here and
elsewhere they are built without __slots__ (`slots=False`): attrs builds a slotted class
twice, and the sixty-odd classes `cpf` defines at start-up would cost every command ~10 ms. Each
converts to and from the plain JSON that lives in `state.json` and `events.jsonl`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import attrs

from checkpointflow.persistent import Slots, StepMap

STATE_SCHEMA = "checkpointflow-state/v2"
# v1 kept the steps of completed iterations, branches and sub-workflows; a v1 state.json is
# an older checkpoint: readers rebuild the state from the log (the record) instead.
OLDER_STATE_SCHEMAS = ("checkpointflow-state/v1",)

# Run statuses.
RUNNING = "running"
WAITING = "waiting"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
FINISHED = frozenset({COMPLETED, FAILED, CANCELLED})

JSON = Any


# --- effects: work the interpreter asks the driver to do ----------------------------------


@attrs.frozen(slots=False)
class Secret:
    """`${env.NAME}`: read from the environment where the step runs, never stored."""

    name: str


Text = tuple[str | Secret, ...]  # text whose secret parts the driver fills in


@attrs.frozen(slots=False)
class RunCommand:
    """Run `script` with `shell -c`; interpolated values travel as environment variables.

    `secrets` names every environment variable the command, `cwd` or `env` read through
    `${env.NAME}`: the driver checks they exist and masks their values in captured output.
    """

    step_id: str
    attempt: int
    script: str
    shell: tuple[str, ...]
    values: tuple[str, ...]
    env: tuple[tuple[str, Text], ...]
    cwd: Text | None
    timeout_seconds: float | None
    delay_seconds: float
    parse_stdout: bool
    secrets: tuple[str, ...] = ()


@attrs.frozen(slots=False)
class SendRequest:
    """Send one HTTP request; `body` is JSON text whose secret parts the driver fills in."""

    step_id: str
    attempt: int
    method: str
    url: Text
    headers: tuple[tuple[str, Text], ...]
    query: tuple[tuple[str, Text], ...]
    body: Text | None
    timeout_seconds: float | None
    delay_seconds: float
    secrets: tuple[str, ...] = ()
    address_check: str = "other_hosts"  # which connections must reach public addresses


Effect = RunCommand | SendRequest


# --- events: everything that happens to a run, in the order it happened --------------------


@attrs.frozen(slots=False)
class RunStarted:
    run_id: str
    workflow_id: str
    workflow_version: str | None
    workflow_sha256: str
    workflow_path: str | None
    inputs: JSON
    at: str
    secret: str = ""  # random, from the driver: the seed of the run's wait tokens
    actor: str | None = None
    workflow_name: str | None = None  # for people (absent from older logs)
    workflow_description: str | None = None


@attrs.frozen(slots=False)
class StepFinished:
    """The outcome of one command attempt, as the driver observed it."""

    step_id: str
    attempt: int
    exit_code: int | None
    timed_out: bool
    duration_ms: int
    failure: str | None  # could not start, and why
    failure_code: str | None  # the error code for `failure`
    stdout: str | None  # paths relative to the run folder; None: nothing was printed
    stderr: str | None
    output: JSON  # parsed stdout when the step declares outputs
    output_problem: str | None  # why stdout could not be parsed
    stderr_tail: str
    at: str


@attrs.frozen(slots=False)
class ResponseReceived:
    """The outcome of one HTTP attempt, as the driver observed it."""

    step_id: str
    attempt: int
    status: int | None
    headers: dict[str, str]  # names in lower case
    body: JSON  # parsed JSON; text when it is not JSON; None when too large to read
    body_is_json: bool
    failure: str | None  # no response, and why
    failure_code: str | None
    duration_ms: int
    body_file: str  # the raw response body, relative to the run folder
    at: str


@attrs.frozen(slots=False)
class WaitExpired:
    """A command touched a waiting run after its wait's deadline."""

    step_id: str
    at: str


@attrs.frozen(slots=False)
class EventReceived:
    event_name: str
    input: JSON
    at: str
    token: str | None = None  # when given, only the wait with this token may take the event
    actor: str | None = None
    wait_id: str | None = None  # when given, only this wait (a step key) may take the event
    # An answer that waited in the run's inbox while the run was busy: {id, at} (when it
    # was queued). Left out of the record when absent, as in logs written before it.
    queued: dict[str, str] | None = None


@attrs.frozen(slots=False)
class AnswerStale:
    """A queued answer that no longer fits the run when its turn came (its wait was
    answered, timed out or gone); kept in full, with why it was not applied."""

    event_name: str
    input: JSON
    token: str | None
    actor: str | None
    wait_id: str | None
    queued: dict[str, str]
    code: str
    message: str
    at: str


@attrs.frozen(slots=False)
class HistoryMerged:
    """Two copies of the run went separate ways (through git, say) and were joined:
    the history of one was kept, and what the other did is recorded here, for people
    only. `events` are the other copy's records after the shared part; `files` its output
    files (relative to the run folder) that the kept history does not name, each with
    where its content lies now."""

    kept: str
    events: tuple[dict[str, Any], ...]
    files: tuple[dict[str, Any], ...]
    at: str
    actor: str | None = None


@attrs.frozen(slots=False)
class RunCancelled:
    reason: str | None
    at: str
    actor: str | None = None


@attrs.frozen(slots=False)
class RunRetried:
    """Continue a failed run from the step that failed, or from an earlier one."""

    from_step: str | None
    at: str
    actor: str | None = None
    # With --workflow: the edited file becomes the run's workflow. Its snapshot hash; then
    # (absent from older logs, which keep the run's first path and version) where it was
    # read from and what it says of itself.
    workflow_sha256: str | None = None
    workflow_path: str | None = None
    workflow_version: str | None = None
    workflow_name: str | None = None
    workflow_description: str | None = None


@attrs.frozen(slots=False)
class RunRecovered:
    """The process advancing the run died while a step ran; that attempt never reported."""

    step_id: str
    attempt: int
    stdout: str | None  # None: the attempt never created the file (killed before it began)
    stderr: str | None
    at: str


@attrs.frozen(slots=False)
class RunInterrupted:
    """A signal stopped `cpf` while steps ran; it stopped them and recorded this. Each
    attempt names the output files it left (None where it never created them)."""

    signal: str
    attempts: tuple[dict[str, Any], ...]  # {step_id, attempt, stdout, stderr}
    at: str


Event = (
    RunStarted
    | StepFinished
    | ResponseReceived
    | EventReceived
    | WaitExpired
    | RunCancelled
    | RunRecovered
    | RunRetried
    | RunInterrupted
    | AnswerStale
    | HistoryMerged
)

EVENT_TYPES: dict[str, type[Event]] = {
    "run_started": RunStarted,
    "step_finished": StepFinished,
    "response_received": ResponseReceived,
    "wait_expired": WaitExpired,
    "event_received": EventReceived,
    "run_cancelled": RunCancelled,
    "run_recovered": RunRecovered,
    "run_retried": RunRetried,
    "run_interrupted": RunInterrupted,
    "answer_stale": AnswerStale,
    "history_merged": HistoryMerged,
}
_TYPE_NAMES = {cls: name for name, cls in EVENT_TYPES.items()}
OPTIONAL_PAYLOAD: dict[type, tuple[str, ...]] = {EventReceived: ("queued",)}


def event_to_record(event: Event, seq: int, schema: str) -> dict[str, Any]:
    payload = attrs.asdict(event, recurse=False)  # the values are JSON already
    at = payload.pop("at")
    for key in OPTIONAL_PAYLOAD.get(type(event), ()):
        if payload[key] is None:
            del payload[key]  # so records of events without it read as they always did
    return {
        "schema_version": schema,
        "seq": seq,
        "type": _TYPE_NAMES[type(event)],
        "at": at,
        "payload": payload,
    }


def event_from_record(record: dict[str, Any]) -> Event:
    cls = EVENT_TYPES[record["type"]]
    return cls(**record["payload"], at=record["at"])


# --- state --------------------------------------------------------------------------------


@attrs.frozen(slots=False)
class Attempt:
    attempt: int
    exit_code: int | None
    timed_out: bool
    duration_ms: int
    stdout: str | None  # None: nothing was captured (empty, or stopped before it began)
    stderr: str | None
    error: JSON
    finished_at: str
    http_status: int | None = None  # for api steps


@attrs.frozen(slots=False)
class StepRecord:
    """The latest visit of one step; earlier visits live in the event log."""

    status: str
    visits: int = 0
    executions: int = 0  # command attempts over all visits; numbers the output files
    attempts: tuple[Attempt, ...] = ()  # this visit's attempts
    outputs: JSON = None
    error: JSON = None
    started_at: str | None = None
    finished_at: str | None = None
    progress: JSON = None  # a foreach or parallel step's bookkeeping while it runs
    response: JSON = None  # an api step's latest response: {status, headers}


@attrs.frozen(slots=False)
class Frame:
    """Steps running inside a container step: one foreach iteration, one parallel branch
    or one sub-workflow. Its path names it: `deploy_all[2]`, `checks.lint`, `provision`."""

    owner: str  # key of the container step that opened it
    parent: str  # path of the frame the owner runs in ("" is the run's own steps)
    scope: str  # which list of steps runs here (see model.Scope)
    prefix: str  # what the keys of its steps start with
    follow_list: bool = True  # False for start_at branches: only transitions move on
    current: str | None = None  # key of the step it is at
    last: str | None = None  # key of the last step that finished in it
    item: JSON = None
    item_index: int | None = None
    inputs: JSON = None  # a sub-workflow's inputs
    index: int = 0  # position among its owner's iterations or branches


def step_map(steps: Mapping[str, StepRecord]) -> StepMap[str, StepRecord]:
    """Step records as a persistent map: a change copies one short path, not all of them."""
    return steps if isinstance(steps, StepMap) else StepMap(steps.items())


@attrs.frozen(slots=False)
class RunState:
    run_id: str
    workflow_id: str
    workflow_version: str | None
    workflow_sha256: str
    workflow_path: str | None
    status: str
    inputs: JSON
    created_at: str
    updated_at: str
    seq: int
    current_step_id: str | None = None
    steps: StepMap[str, StepRecord] = attrs.field(factory=StepMap, converter=step_map)
    wait: JSON = None
    result: JSON = None
    error: JSON = None
    cancel_reason: str | None = None
    secret: str = ""
    waits: tuple[JSON, ...] = ()  # every pending wait; `wait` is the first of them
    in_flight: dict[str, str] = attrs.field(factory=dict)  # "key#attempt" -> frame, while it runs
    frames: dict[str, Frame] = attrs.field(factory=dict)  # open frames by path
    workflow_name: str | None = None  # left out of state.json when None
    workflow_description: str | None = None
    # Records that left `steps` during the last event because their frame completed, for
    # readers of the history (`inspect`, via `left_records`); never saved, and not part of
    # the state's value. A chain (earlier chain, records), so that adding costs the same
    # however many iterations one event completes.
    left: tuple[Any, ...] = attrs.field(default=(), eq=False)


Record = TypeVar("Record")


def changed(record: Record, **changes: Any) -> Record:
    """`attrs.evolve` without its per-field work, for the copies the interpreter makes on
    every event (a run state has twenty fields). For the records of this package (frozen,
    without __slots__); values are taken as given: no converter runs, so `steps` must
    already be a StepMap."""
    copy = object.__new__(type(record))
    copy.__dict__.update(record.__dict__)
    copy.__dict__.update(changes)
    return copy


def left_records(state: RunState) -> list[tuple[str, StepRecord]]:
    """The records that left `steps` during the last event, in the order they left."""
    chunks, chain = [], state.left
    while chain:
        chain, records = chain
        chunks.append(records)
    return [record for chunk in reversed(chunks) for record in chunk]


def flight(key: str, attempt: int) -> str:
    """How `in_flight` names one running attempt: `deploy_all[2].deploy#1`."""
    return f"{key}#{attempt}"


def flight_parts(entry: str) -> tuple[str, int]:
    key, _, attempt = entry.rpartition("#")
    return key, int(attempt)


OPTIONAL_KEYS = ("workflow_name", "workflow_description")


def state_to_json(state: RunState) -> dict[str, Any]:
    data = attrs.asdict(state, recurse=False)
    data["steps"] = {step_id: _step_to_json(record) for step_id, record in state.steps.items()}
    data["waits"] = list(state.waits)
    data["frames"] = {path: attrs.asdict(frame) for path, frame in state.frames.items()}
    del data["left"]
    data["schema_version"] = STATE_SCHEMA
    for key in OPTIONAL_KEYS:
        if data[key] is None:
            del data[key]  # so a state.json written before they existed still matches
    return data


def _step_to_json(record: StepRecord) -> dict[str, Any]:
    data = attrs.asdict(record, recurse=False)
    data["attempts"] = [attrs.asdict(attempt) for attempt in record.attempts]
    if record.response is None:
        del data["response"]  # so a state.json written before api responses matches
    progress = record.progress
    if progress is not None and isinstance(progress.get("results"), Slots):
        data["progress"] = {**progress, "results": progress["results"].to_list()}
    return data


def _step_from_json(record: dict[str, Any]) -> StepRecord:
    progress = record.get("progress")
    if progress is not None and progress.get("items") is not None:  # a foreach's results
        results = progress["results"]
        progress = {**progress, "results": Slots(len(results), results)}
    return StepRecord(
        **{
            **record,
            "attempts": tuple(Attempt(**attempt) for attempt in record["attempts"]),
            "progress": progress,
        }
    )


def state_from_json(data: dict[str, Any]) -> RunState:
    fields = {name: data[name] for name in attrs.fields_dict(RunState) if name in data}
    fields["steps"] = StepMap(
        (step_id, _step_from_json(record)) for step_id, record in data.get("steps", {}).items()
    )
    fields["waits"] = tuple(data.get("waits", ()))
    fields["frames"] = {path: Frame(**frame) for path, frame in data.get("frames", {}).items()}
    return RunState(**fields)
