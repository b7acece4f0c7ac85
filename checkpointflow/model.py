"""The workflow as the interpreter sees it: immutable steps built from a validated document."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from checkpointflow.expressions import Node, parse_condition
from checkpointflow.workflow_outputs import Outputs, build_outputs

JSON = Any
DEFAULT_SHELL = "/bin/sh"


@attrs.frozen(slots=False)
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


@attrs.frozen(slots=False)
class Transition:
    condition: Node | None  # None: always taken
    next: str


@attrs.frozen(kw_only=True, slots=False)
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


@attrs.frozen(kw_only=True, slots=False)
class CliStep(Step):
    command: str | tuple[str, ...] = ""  # a shell template, or templates run in sequence
    argv: tuple[str, ...] | None = None  # instead of command: one template per argument
    shell: str | None = None
    cwd: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    outputs_schema: JSON = None
    success_exit_codes: frozenset[int] = frozenset({0})


@attrs.frozen(kw_only=True, slots=False)
class AwaitEventStep(Step):
    audience: str
    event_name: str
    input_schema: JSON
    prompt: str | None = None
    summary: str | None = None
    instructions: tuple[str, ...] | None = None
    on_timeout: str | None = None  # where the run goes when nobody answers in time
    audience_actors: tuple[str, ...] | None = None  # who may answer (a guard, not auth)


@attrs.frozen(kw_only=True, slots=False)
class EndStep(Step):
    result: JSON = None


@attrs.frozen(kw_only=True, slots=False)
class SwitchStep(Step):
    cases: tuple[Transition, ...]
    default: str | None = None


@attrs.frozen(kw_only=True, slots=False)
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
    allow_private_network: bool = False  # a host from the run's data may be non-public


@attrs.frozen(kw_only=True, slots=False)
class WorkflowStep(Step):
    """Run another workflow document as one step; its result becomes the step's outputs."""

    workflow_ref: str
    workflow: Workflow
    inputs: JSON = None  # a template mapping, rendered when the step starts
    outputs_schema: JSON = None


@attrs.frozen(kw_only=True, slots=False)
class ForeachStep(Step):
    """Run `body` (or the workflow `workflow_ref` names) once per item of a list."""

    items: Node
    body: tuple[Step, ...] = ()
    workflow_ref: str | None = None
    workflow: Workflow | None = None
    inputs: JSON = None  # for a workflow_ref: its inputs, rendered per item
    concurrency: int = 1
    fail_fast: bool = True
    outputs_schema: JSON = None


@attrs.frozen(slots=False)
class Branch:
    """One branch of a parallel step: inline `steps` (from the first, or from `start_at`
    among them), or, without steps, the enclosing list's steps from `start_at`, following
    transitions only."""

    id: str
    start_at: str | None = None
    steps: tuple[Step, ...] = ()


@attrs.frozen(kw_only=True, slots=False)
class ParallelStep(Step):
    branches: tuple[Branch, ...]
    max_concurrency: int | None = None
    outputs_schema: JSON = None


CONTAINER_KINDS = frozenset({"foreach", "parallel", "workflow"})


@attrs.frozen(slots=False)
class Scope:
    """One list of steps and where it lives: the run's own steps (name ""), a foreach body,
    a parallel branch or a sub-workflow. Step keys inside it start with `name` + "."."""

    name: str
    steps: tuple[Step, ...]
    workflow: Workflow  # the document the steps belong to (shell default, outputs)
    isolated: bool  # a sub-workflow sees only its own inputs and steps
    parent: str | None  # the scope whose steps stay visible here (None when isolated)

    positions: dict[str, int] = attrs.field(init=False, eq=False, repr=False)
    following: tuple[int, ...] = attrs.field(init=False, eq=False, repr=False)
    first: int = attrs.field(init=False, eq=False, repr=False)
    owned: frozenset[str] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        positions = {step.id: index for index, step in enumerate(self.steps)}
        owned = branch_owned(self.steps)
        following, next_free = [], len(self.steps)
        for index in range(len(self.steps) - 1, -1, -1):
            following.append(next_free)
            if self.steps[index].id not in owned:
                next_free = index
        object.__setattr__(self, "positions", positions)
        object.__setattr__(self, "following", tuple(reversed(following)))
        object.__setattr__(self, "first", next_free)
        object.__setattr__(self, "owned", owned)

    @property
    def prefix(self) -> str:
        return f"{self.name}." if self.name else ""

    def step(self, step_id: str) -> Step:
        return self.steps[self.positions[step_id]]


def branch_owned(steps: tuple[Step, ...]) -> frozenset[str]:
    """Ids of the steps that `start_at` branches run: the start and whatever it jumps to.
    The list order skips them; only their branch runs them."""
    owned: set[str] = set()
    for step in steps:
        if isinstance(step, ParallelStep):
            for branch in step.branches:
                if branch.start_at is not None and not branch.steps:
                    owned |= reachable(steps, branch.start_at)
    return frozenset(owned)


def reachable(steps: tuple[Step, ...], start: str) -> set[str]:
    """The step `start` and every step its jumps lead to, within one list."""
    by_id = {step.id: step for step in steps}
    return closure(start, lambda step_id: jump_targets(by_id[step_id]), set(by_id))


def closure(start: str, successors: Callable[[str], Iterable[str]], known: set[str]) -> set[str]:
    """`start` and everything `successors` leads to from it, among the `known` ids."""
    seen: set[str] = set()
    pending = [start]
    while pending:
        step_id = pending.pop()
        if step_id in seen or step_id not in known:
            continue
        seen.add(step_id)
        pending.extend(successors(step_id))
    return seen


def jump_targets(step: Step) -> list[str]:
    targets = [transition.next for transition in step.transitions]
    if isinstance(step, SwitchStep):
        targets += [case.next for case in step.cases]
        targets += [step.default] if step.default else []
    if isinstance(step, AwaitEventStep) and step.on_timeout:
        targets.append(step.on_timeout)
    if step.on_error:
        targets.append(step.on_error)
    return targets


@attrs.frozen(slots=False)
class Workflow:
    id: str
    name: str | None
    version: str | None
    description: str | None
    inputs_schema: JSON
    steps: tuple[Step, ...]
    default_shell: str | None = None
    outputs: Outputs | None = None  # the result when no `end` step gives one

    positions: dict[str, int] = attrs.field(init=False, eq=False, repr=False)
    scopes: dict[str, Scope] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        positions = {step.id: index for index, step in enumerate(self.steps)}
        object.__setattr__(self, "positions", positions)
        scopes: dict[str, Scope] = {}
        _add_scopes(scopes, Scope("", self.steps, self, isolated=True, parent=None))
        object.__setattr__(self, "scopes", scopes)

    def step(self, step_id: str) -> Step:
        return self.steps[self.positions[step_id]]

    def step_at(self, key: str) -> Step | None:
        """The step a step key names (`deploy_all[2].confirm`), if the workflow has it."""
        scope_name, _, step_id = re.sub(r"\[\d+\]", "", key).rpartition(".")
        scope = self.scopes.get(scope_name)
        if scope is None or step_id not in scope.positions:
            return None
        return scope.step(step_id)


def _add_scopes(scopes: dict[str, Scope], scope: Scope) -> None:
    scopes[scope.name] = scope
    for step in scope.steps:
        name = scope.prefix + step.id
        if isinstance(step, ForeachStep):
            if step.workflow is not None:
                _add_scopes(scopes, Scope(name, step.workflow.steps, step.workflow, True, None))
            else:
                _add_scopes(scopes, Scope(name, step.body, scope.workflow, False, scope.name))
        elif isinstance(step, WorkflowStep):
            _add_scopes(scopes, Scope(name, step.workflow.steps, step.workflow, True, None))
        elif isinstance(step, ParallelStep):
            for branch in step.branches:
                if branch.steps:
                    inner = Scope(
                        f"{name}.{branch.id}", branch.steps, scope.workflow, False, scope.name
                    )
                    _add_scopes(scopes, inner)


# --- building the model from a checked document --------------------------------------------


@attrs.frozen(slots=False)
class _Document:
    """What every step of one document is built with: the workflows its `workflow_ref`s
    name, and its `defaults`, which fill in what its cli and api steps do not set."""

    subworkflows: Mapping[str, Workflow]
    defaults: Mapping[str, Any]

    def workflow(self, ref: str) -> Workflow:
        if ref not in self.subworkflows:
            raise KeyError(f"workflow_ref {ref!r} was not loaded")
        return self.subworkflows[ref]

    def setting(self, spec: dict[str, Any], field: str) -> Any:
        """The step's own `field`, else (for cli and api steps) the document's default."""
        if field in spec:
            return spec[field]
        return self.defaults.get(field) if spec["kind"] in DEFAULTED_KINDS else None


DEFAULTED_KINDS = frozenset({"cli", "api"})


def build_workflow(
    document: dict[str, Any], subworkflows: Mapping[str, Workflow] | None = None
) -> Workflow:
    """The immutable model of a document that `document.find_problems` found no fault in.

    `subworkflows` holds the workflow each `workflow_ref` of this document names, by the
    reference as written.
    """
    spec = document["workflow"]
    outputs = spec.get("outputs")
    defaults = spec.get("defaults", {})
    building = _Document(subworkflows or {}, defaults)
    return Workflow(
        id=spec["id"],
        name=spec.get("name"),
        version=None if spec.get("version") is None else str(spec["version"]),
        description=spec.get("description"),
        inputs_schema=spec.get("inputs"),
        steps=tuple(_build_step(step, building) for step in spec["steps"]),
        default_shell=defaults.get("shell"),
        outputs=None if outputs is None else build_outputs(outputs),
    )


def _transitions(entries: list[dict[str, Any]]) -> tuple[Transition, ...]:
    return tuple(
        Transition(parse_condition(entry["when"]) if "when" in entry else None, entry["next"])
        for entry in entries
    )


def _build_step(spec: dict[str, Any], building: _Document) -> Step:
    common: dict[str, Any] = {
        "id": spec["id"],
        "kind": spec["kind"],
        "name": spec.get("name"),
        "condition": parse_condition(spec["if"]) if "if" in spec else None,
        "transitions": _transitions(spec.get("transitions", [])),
        "timeout_seconds": building.setting(spec, "timeout_seconds") or None,  # 0: no limit
        "risk_level": spec.get("risk_level"),
        "retry": Retry(**(building.setting(spec, "retry") or {})),
        "on_error": spec.get("on_error", {}).get("next"),
    }
    kind = spec["kind"]
    if kind == "foreach":
        return _foreach(spec, common, building)
    if kind == "parallel":
        return _parallel(spec, common, building)
    if kind == "workflow":
        ref = spec["workflow_ref"]
        return WorkflowStep(
            **common,
            workflow_ref=ref,
            workflow=building.workflow(ref),
            inputs=spec.get("inputs"),
            outputs_schema=spec.get("outputs"),
        )
    return _BUILDERS[kind](spec, common)


def _foreach(spec: dict[str, Any], common: dict[str, Any], building: _Document) -> Step:
    ref = spec.get("workflow_ref")
    return ForeachStep(
        **common,
        items=parse_condition(spec["items"]),
        body=tuple(_build_step(step, building) for step in spec.get("body", ())),
        workflow_ref=ref,
        workflow=None if ref is None else building.workflow(ref),
        inputs=spec.get("inputs"),
        concurrency=spec.get("concurrency", 1),
        fail_fast=spec.get("fail_fast", True),
        outputs_schema=spec.get("outputs"),
    )


def _parallel(spec: dict[str, Any], common: dict[str, Any], building: _Document) -> Step:
    branches = tuple(
        Branch(
            id=branch_id(entry, index),
            start_at=entry.get("start_at"),
            steps=tuple(_build_step(step, building) for step in entry.get("steps", ())),
        )
        for index, entry in enumerate(spec["branches"])
    )
    return ParallelStep(
        **common,
        branches=branches,
        max_concurrency=spec.get("max_concurrency"),
        outputs_schema=spec.get("outputs"),
    )


def branch_id(entry: dict[str, Any], index: int) -> str:
    """A branch's name: its `id`, else its `start_at`, else its position."""
    return str(entry.get("id") or entry.get("start_at") or f"branch_{index + 1}")


def _cli(spec: dict[str, Any], common: dict[str, Any]) -> Step:
    command = spec.get("command", "")
    return CliStep(
        **common,
        command=command if isinstance(command, str) else tuple(command),
        argv=tuple(spec["argv"]) if "argv" in spec else None,
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
        allow_private_network=spec.get("allow_private_network", False),
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
