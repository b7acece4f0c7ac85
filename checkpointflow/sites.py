"""Where expressions live in a step, and what each place may read.

`validate` checks every place (checks.py) and warns about some of them (optional_reads.py);
both walk the same list, so a field that gains expressions is checked everywhere at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs

from checkpointflow.expressions import templates_in

DATA_ROOTS = frozenset({"inputs", "steps"})


@attrs.frozen(slots=False)
class Site:
    """One place in a step that holds an expression, and what it may read. `strict`: a
    path that does not exist there fails the step (False in conditions and shown text)."""

    path: str
    text: Any
    roots: frozenset[str]
    condition: bool = False
    strict: bool = True


def expression_sites(
    step: dict[str, Any], base: str, data: frozenset[str] = DATA_ROOTS
) -> Iterator[Site]:
    """Every place in `step` that may hold an expression, with its JSON-pointer-like path."""
    if "if" in step:
        yield Site(f"{base}/if", step["if"], data, condition=True, strict=False)
    when_roots = data | {"event"} if step["kind"] == "await_event" else data
    for index, transition in enumerate(step.get("transitions", ())):
        if "when" in transition:
            path = f"{base}/transitions/{index}/when"
            yield Site(path, transition["when"], when_roots, condition=True, strict=False)
    for index, case in enumerate(step.get("cases", ())):
        when = case["when"]
        yield Site(f"{base}/cases/{index}/when", when, data, condition=True, strict=False)
    outward = data | {"env"}
    for field in ("command", "argv"):
        value = step.get(field)
        if isinstance(value, list):
            for index, part in enumerate(value):
                yield Site(f"{base}/{field}/{index}", part, outward)
        elif value is not None:
            yield Site(f"{base}/{field}", value, outward)
    for field in ("cwd", "url"):
        if field in step:
            yield Site(f"{base}/{field}", step[field], outward)
    for field in ("env", "headers", "query"):
        for name, value in step.get(field, {}).items():
            if isinstance(value, str):
                yield Site(f"{base}/{field}/{name}", value, outward)
    if step["kind"] == "api" and "body" in step:
        for path, text in templates_in(step["body"]):
            yield Site(f"{base}/body{path}", text, outward)
    for field in ("prompt", "summary"):
        if field in step:
            yield Site(f"{base}/{field}", step[field], data, strict=False)
    for index, line in enumerate(step.get("instructions", ())):
        yield Site(f"{base}/instructions/{index}", line, data, strict=False)
    if step["kind"] == "end" and "result" in step:
        for path, text in templates_in(step["result"]):
            yield Site(f"{base}/result{path}", text, data)
    if step["kind"] == "foreach" and isinstance(step["items"], str):
        yield Site(f"{base}/items", step["items"], data, condition=True)
    if step["kind"] in ("workflow", "foreach") and "inputs" in step:
        inputs_roots = data | {"item", "item_index"} if step["kind"] == "foreach" else data
        for path, text in templates_in(step["inputs"]):
            yield Site(f"{base}/inputs{path}", text, inputs_roots)
