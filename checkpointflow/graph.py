"""The shape of a workflow as nodes, edges and nested groups, ready to draw.

Built from the parsed document (not the model), so every step kind is drawn with all its
fields: transitions and their `when`, `if` conditions (an `if` step can be skipped),
`switch` cases, `foreach` bodies, `parallel` branches, sub-workflows, and `on_error` /
`on_timeout` targets. `diagrams.py` turns the result into Mermaid or Graphviz text.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

STEP, END, CHOICE, GROUP, TERMINAL, JOIN, MISSING = (
    "step",
    "end",
    "choice",
    "group",
    "terminal",
    "join",
    "missing",
)
NORMAL, SKIP, LOOP, FAILURE = "normal", "skip", "loop", "failure"
FINISH = "\0finish"  # where a run goes after the last step of the workflow; drawn when used


@attrs.frozen(slots=False)
class Node:
    id: str  # the diagram's id: n1, n2, ... (step ids may clash with keywords like `end`)
    label: tuple[str, ...]  # lines
    shape: str
    step_id: str | None = None
    status: str | None = None


@attrs.frozen(slots=False)
class Edge:
    source: str
    target: str
    label: str | None = None
    style: str = NORMAL


@attrs.frozen(slots=False)
class Group:
    """A box around the steps of a foreach body, a parallel branch or a sub-workflow."""

    id: str
    label: str
    nodes: tuple[str, ...]
    groups: tuple[Group, ...]


@attrs.frozen(slots=False)
class Graph:
    title: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    top_nodes: tuple[str, ...]  # nodes outside every group
    groups: tuple[Group, ...]


Lookup = dict[str, str]  # step id -> node id, for one scope


class _Builder:
    """Collects nodes, edges and groups while walking the document's scopes."""

    def __init__(self, statuses: dict[str, str]) -> None:
        self.statuses = statuses
        self.nodes: list[Node] = []
        self.edges: list[Edge] = []
        self.members: list[list[str]] = [[]]
        self.groups: list[list[Group]] = [[]]
        self.missing: dict[str, str] = {}
        self.loops: set[str] = set()  # foreach nodes: leaving the body goes to the next item

    def node(self, label: tuple[str, ...], shape: str, step_id: str | None = None) -> str:
        node_id = f"n{len(self.nodes)}"
        status = self.statuses.get(step_id) if step_id is not None else None
        self.nodes.append(Node(node_id, label, shape, step_id, status))
        self.members[-1].append(node_id)
        return node_id

    def edge(self, source: str, target: str, label: str | None = None, style: str = NORMAL) -> None:
        if target == FINISH:
            target = self.finish()
        if target in self.loops and style == NORMAL and label is None:
            label, style = "next item", LOOP
        self.edges.append(Edge(source, target, label, style))

    def finish(self) -> str:
        if FINISH not in self.missing:
            self.missing[FINISH] = self.node(("finish",), TERMINAL)
        return self.missing[FINISH]

    def open_group(self) -> None:
        self.members.append([])
        self.groups.append([])

    def close_group(self, group_id: str, label: str) -> None:
        nodes, groups = self.members.pop(), self.groups.pop()
        self.groups[-1].append(Group(group_id, label, tuple(nodes), tuple(groups)))

    def resolve(self, scopes: list[Lookup], step_id: str) -> str:
        """The node of a step named in `next`, looked up from the innermost scope out."""
        for scope in reversed(scopes):
            if step_id in scope:
                return scope[step_id]
        if step_id not in self.missing:
            self.missing[step_id] = self.node((step_id, "no such step"), MISSING)
        return self.missing[step_id]


def build(document: dict[str, Any], statuses: dict[str, str] | None = None) -> Graph:
    """The graph of a parsed workflow document; `statuses` colours steps by their status."""
    spec = document["workflow"]
    builder = _Builder(statuses or {})
    start = builder.node(("start",), TERMINAL)
    first, _ = _scope(builder, spec.get("steps") or [], FINISH, [])
    builder.edges.insert(0, Edge(start, builder.finish() if first == FINISH else first))
    return Graph(
        title=str(spec.get("id", "workflow")),
        nodes=tuple(builder.nodes),
        edges=tuple(builder.edges),
        top_nodes=tuple(builder.members[0]),
        groups=tuple(builder.groups[0]),
    )


def _scope(
    builder: _Builder, steps: list[Any], exit_node: str, outer: list[Lookup]
) -> tuple[str, Lookup]:
    """Draw one list of steps; returns the node a run enters it by, and its steps' nodes."""
    steps = [step for step in steps if isinstance(step, dict)]
    lookup: Lookup = {}
    for step in steps:
        step_id = str(step.get("id", "?"))
        lookup[step_id] = builder.node(_label(step), _shape(step), step_id)
    scopes = [*outer, lookup]
    joins = {
        str(step.get("id", "?")): builder.node(("join",), JOIN)
        for step in steps
        if step.get("kind") == "parallel"
    }
    owned = _branch_owned(steps)  # run only by a start_at branch: list order skips them
    free = [str(step.get("id", "?")) for step in steps if str(step.get("id", "?")) not in owned]
    for step in steps:
        step_id = str(step.get("id", "?"))
        if step_id in owned:
            following = joins.get(owned[step_id], exit_node)
        else:
            later = free[free.index(step_id) + 1 :]
            following = lookup[later[0]] if later else exit_node
        _step_edges(builder, step, lookup[step_id], following, scopes, joins.get(step_id))
    return (lookup[free[0]] if free else exit_node), lookup


def _branch_owned(steps: list[dict[str, Any]]) -> dict[str, str]:
    """Steps of a list that `start_at` branches (without inline steps) run, by the id of
    their parallel step: each branch's start and the steps its jumps lead to."""
    by_id = {str(step.get("id", "?")): step for step in steps}
    owned: dict[str, str] = {}
    for step in steps:
        if step.get("kind") != "parallel":
            continue
        for branch in step.get("branches") or []:
            if not isinstance(branch, dict) or "steps" in branch or "start_at" not in branch:
                continue
            pending = [str(branch["start_at"])]
            while pending:
                step_id = pending.pop()
                if step_id in owned or step_id not in by_id:
                    continue
                owned[step_id] = str(step.get("id", "?"))
                pending.extend(_jump_targets(by_id[step_id]))
    return owned


def _jump_targets(step: dict[str, Any]) -> list[str]:
    targets = [
        str(entry["next"])
        for field in ("transitions", "cases")
        for entry in step.get(field) or []
        if isinstance(entry, dict) and "next" in entry
    ]
    for field in ("on_error", "on_timeout"):
        if isinstance(step.get(field), dict) and "next" in step[field]:
            targets.append(str(step[field]["next"]))
    if "default" in step:
        targets.append(str(step["default"]))
    return targets


def _step_edges(
    builder: _Builder,
    step: dict[str, Any],
    node: str,
    following: str,
    scopes: list[Lookup],
    join: str | None = None,
) -> None:
    """Every way out of one step: nested parts, transitions or the next step, failures."""
    kind = step.get("kind")
    if "if" in step:
        builder.edge(node, following, "if false: skipped", SKIP)
    after = _nested(builder, step, node, scopes, join)
    if kind == "switch":
        _switch_edges(builder, step, node, scopes)
    elif step.get("transitions"):
        for transition in step["transitions"]:
            if isinstance(transition, dict) and "next" in transition:
                target = builder.resolve(scopes, str(transition["next"]))
                builder.edge(after, target, _condition(transition.get("when")))
        if all(isinstance(t, dict) and "when" in t for t in step["transitions"]):
            builder.edge(after, following, "no match")  # the list goes on
    elif kind != "end":
        builder.edge(after, following)
    for field, label in (("on_error", "on error"), ("on_timeout", "on timeout")):
        handler = step.get(field)
        if isinstance(handler, dict) and "next" in handler:
            builder.edge(node, builder.resolve(scopes, str(handler["next"])), label, FAILURE)


def _switch_edges(builder: _Builder, step: dict[str, Any], node: str, scopes: list[Lookup]) -> None:
    for case in step.get("cases") or []:
        if isinstance(case, dict) and "next" in case:
            target = builder.resolve(scopes, str(case["next"]))
            builder.edge(node, target, _condition(case.get("when")))
    if "default" in step:
        builder.edge(node, builder.resolve(scopes, str(step["default"])), "default")


def _nested(
    builder: _Builder, step: dict[str, Any], node: str, scopes: list[Lookup], join: str | None
) -> str:
    """Draw the group a foreach, parallel or workflow step holds; returns the node the run
    leaves the step from."""
    kind, step_id = step.get("kind"), str(step.get("id", "?"))
    if kind == "foreach":
        builder.loops.add(node)
        builder.open_group()
        if isinstance(step.get("body"), list):
            entry, _ = _scope(builder, step["body"], node, scopes)
            if entry != node:
                builder.edge(node, entry, "each item")
        elif "workflow_ref" in step:
            _sub_workflow(builder, node, str(step["workflow_ref"]), "each item")
        builder.close_group(f"{node}_body", f"{step_id}: for each item")
        return node
    if kind == "parallel":
        return _branches(builder, step, node, scopes, join or builder.node(("join",), JOIN))
    if kind == "workflow":
        builder.open_group()
        _sub_workflow(builder, node, str(step.get("workflow_ref", "?")), "runs")
        builder.close_group(f"{node}_sub", f"{step_id}: sub-workflow")
    return node


def _sub_workflow(builder: _Builder, node: str, ref: str, label: str) -> None:
    inner = builder.node(("workflow", ref), GROUP)
    builder.edge(node, inner, label)
    builder.edge(inner, node, "returns", LOOP)


def _branches(
    builder: _Builder, step: dict[str, Any], node: str, scopes: list[Lookup], join: str
) -> str:
    """One group per branch, all meeting at a join node the run leaves the step from."""
    for index, branch in enumerate(step.get("branches") or [], start=1):
        if not isinstance(branch, dict):
            continue
        name = str(branch.get("id") or branch.get("start_at") or index)
        if isinstance(branch.get("steps"), list):
            builder.open_group()
            entry = _branch_entry(builder, branch, join, scopes)
            builder.close_group(f"{node}_b{index}", f"{step.get('id', '?')}: branch {name}")
        else:
            entry = builder.resolve(scopes, str(branch.get("start_at", "?")))
        builder.edge(node, entry, f"branch {name}")
    return join


def _branch_entry(
    builder: _Builder, branch: dict[str, Any], join: str, scopes: list[Lookup]
) -> str:
    """The node a branch starts at: `start_at`, else its first step."""
    first, lookup = _scope(builder, branch["steps"], join, scopes)
    start_at = branch.get("start_at")
    return first if start_at is None else builder.resolve([*scopes, lookup], str(start_at))


def _label(step: dict[str, Any]) -> tuple[str, ...]:
    kind = str(step.get("kind", "?"))
    detail = {
        "cli": None,
        "await_event": f"await {step.get('event_name', '?')} ({step.get('audience', '?')})",
        "foreach": f"foreach {_short(step.get('items'))}",
        "workflow": f"workflow {step.get('workflow_ref', '?')}",
    }.get(kind, kind)
    lines = [str(step.get("id", "?"))]
    if step.get("name"):
        lines.append(str(step["name"]))
    lines.append(detail or kind)
    if "if" in step:
        lines.append(f"if {_condition(step['if'])}")
    return tuple(lines)


def _shape(step: dict[str, Any]) -> str:
    return {"end": END, "switch": CHOICE, "foreach": GROUP, "parallel": GROUP}.get(
        str(step.get("kind")), STEP
    )


def _condition(when: Any) -> str | None:
    if when is None:
        return None
    return _short(when)


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
