"""The workflow as the interpreter sees it: immutable steps built from a validated document."""

from __future__ import annotations

from typing import Any

import attrs

from checkpointflow.expressions import Node

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


@attrs.frozen(kw_only=True)
class EndStep(Step):
    result: JSON = None


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

    positions: dict[str, int] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        positions = {step.id: index for index, step in enumerate(self.steps)}
        object.__setattr__(self, "positions", positions)

    def step(self, step_id: str) -> Step:
        return self.steps[self.positions[step_id]]
