"""The workflow as the interpreter sees it: immutable steps built from a validated document."""

from __future__ import annotations

from typing import Any

import attrs

from checkpointflow.expressions import Node, parse_condition

JSON = Any
DEFAULT_SHELL = "/bin/sh"


@attrs.frozen
class Retry:
    max_attempts: int = 1
    backoff_seconds: float = 0.0
    strategy: str = "fixed"  # or "exponential"

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before attempt number `attempt` (the first retry is attempt 2)."""
        if attempt <= 1:
            return 0.0
        if self.strategy == "exponential":
            return float(self.backoff_seconds * 2 ** (attempt - 2))
        return float(self.backoff_seconds)


@attrs.frozen
class Transition:
    condition: Node | None  # None: always taken
    next: str


@attrs.frozen(kw_only=True)
class Step:
    """Fields every step kind has."""

    id: str
    kind: str
    name: str | None = None
    condition: Node | None = None
    transitions: tuple[Transition, ...] = ()
    timeout_seconds: float | None = None
    retry: Retry = Retry()
    risk_level: str | None = None
    on_error: str | None = None  # where a failure of this step goes instead of failing the run


@attrs.frozen(kw_only=True)
class CliStep(Step):
    command: str | tuple[str, ...]  # a shell template, or one template per argument
    shell: str | None = None
    cwd: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    outputs_schema: JSON = None
    success_exit_codes: frozenset[int] = frozenset({0})


@attrs.frozen(kw_only=True)
class AwaitEventStep(Step):
    audience: str
    event_name: str
    input_schema: JSON
    prompt: str | None = None
    summary: str | None = None
    instructions: tuple[str, ...] | None = None
    on_timeout: str | None = None  # where the run goes when nobody answers in time
    audience_actors: tuple[str, ...] | None = None  # who may answer (a guard, not auth)


@attrs.frozen(kw_only=True)
class EndStep(Step):
    result: JSON = None


@attrs.frozen(kw_only=True)
class SwitchStep(Step):
    cases: tuple[Transition, ...]
    default: str | None = None


@attrs.frozen(kw_only=True)
class ApiStep(Step):
    """An HTTP request; every string may hold templates, rendered when the step starts."""

    method: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    query: tuple[tuple[str, str], ...] = ()
    body: JSON = None
    has_body: bool = False
    outputs_schema: JSON = None
    success_status_codes: frozenset[int] = frozenset({200, 201, 204})


@attrs.frozen(kw_only=True)
class PlannedStep(Step):
    """A step kind the schema knows but this version cannot run yet."""


@attrs.frozen
class Workflow:
    id: str
    name: str | None
    version: str | None
    description: str | None
    inputs_schema: JSON
    steps: tuple[Step, ...]
    default_shell: str | None = None
    outputs: tuple[tuple[str, Node], ...] | None = None  # `from:` of each workflow output

    positions: dict[str, int] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        positions = {step.id: index for index, step in enumerate(self.steps)}
        object.__setattr__(self, "positions", positions)

    def step(self, step_id: str) -> Step:
        return self.steps[self.positions[step_id]]


# --- building the model from a checked document --------------------------------------------


def build_workflow(document: dict[str, Any]) -> Workflow:
    """The immutable model of a document that `document.find_problems` found no fault in."""
    spec = document["workflow"]
    outputs = spec.get("outputs")
    return Workflow(
        id=spec["id"],
        name=spec.get("name"),
        version=None if spec.get("version") is None else str(spec["version"]),
        description=spec.get("description"),
        inputs_schema=spec.get("inputs"),
        steps=tuple(_build_step(step) for step in spec["steps"]),
        default_shell=spec.get("defaults", {}).get("shell"),
        outputs=None
        if outputs is None
        else tuple(
            (name, parse_condition(entry["from"] if isinstance(entry, dict) else entry))
            for name, entry in outputs.items()
        ),
    )


def _transitions(entries: list[dict[str, Any]]) -> tuple[Transition, ...]:
    return tuple(
        Transition(parse_condition(entry["when"]) if "when" in entry else None, entry["next"])
        for entry in entries
    )


def _build_step(spec: dict[str, Any]) -> Step:
    common: dict[str, Any] = {
        "id": spec["id"],
        "kind": spec["kind"],
        "name": spec.get("name"),
        "condition": parse_condition(spec["if"]) if "if" in spec else None,
        "transitions": _transitions(spec.get("transitions", [])),
        "timeout_seconds": spec.get("timeout_seconds") or None,  # 0 means no limit
        "risk_level": spec.get("risk_level"),
        "retry": Retry(**spec.get("retry", {})),
        "on_error": spec.get("on_error", {}).get("next"),
    }
    builder = _BUILDERS.get(spec["kind"])
    return builder(spec, common) if builder else PlannedStep(**common)


def _cli(spec: dict[str, Any], common: dict[str, Any]) -> Step:
    command = spec["command"]
    return CliStep(
        **common,
        command=command if isinstance(command, str) else tuple(command),
        shell=spec.get("shell"),
        cwd=spec.get("cwd"),
        env=_text_pairs(spec.get("env", {})),
        outputs_schema=spec.get("outputs"),
        success_exit_codes=frozenset(spec.get("success", {}).get("exit_codes", [0])),
    )


def _await_event(spec: dict[str, Any], common: dict[str, Any]) -> Step:
    instructions = spec.get("instructions")
    return AwaitEventStep(
        **common,
        audience=spec["audience"],
        event_name=spec["event_name"],
        input_schema=spec["input_schema"],
        prompt=spec.get("prompt"),
        summary=spec.get("summary"),
        instructions=None if instructions is None else tuple(instructions),
        on_timeout=spec.get("on_timeout", {}).get("next"),
        audience_actors=tuple(spec["audience_actors"]) if "audience_actors" in spec else None,
    )


def _end(spec: dict[str, Any], common: dict[str, Any]) -> Step:
    return EndStep(**common, result=spec.get("result"))


def _switch(spec: dict[str, Any], common: dict[str, Any]) -> Step:
    return SwitchStep(**common, cases=_transitions(spec["cases"]), default=spec.get("default"))


def _api(spec: dict[str, Any], common: dict[str, Any]) -> Step:
    codes = spec.get("success", {}).get("status_codes", [200, 201, 204])
    return ApiStep(
        **common,
        method=spec["method"],
        url=spec["url"],
        headers=_text_pairs(spec.get("headers", {})),
        query=_text_pairs(spec.get("query", {})),
        body=spec.get("body"),
        has_body="body" in spec,
        outputs_schema=spec.get("outputs"),
        success_status_codes=frozenset(codes),
    )


def _text_pairs(mapping: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple((name, _text(value)) for name, value in mapping.items())


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_BUILDERS = {
    "cli": _cli,
    "await_event": _await_event,
    "end": _end,
    "switch": _switch,
    "api": _api,
}
