"""`cpf guide TOPIC`: one section of the guide, found the forgiving way.

Every `##` and `###` heading of guide.md is a topic, named by its slug (`### \\`cli\\`: run a
command` is `cli-run-a-command`). A topic is found by its slug, by the start of exactly one
slug, or by words that appear in exactly one slug, whatever the case or punctuation
(`cpf guide cli`, `cpf guide "Exit codes"`, `cpf guide logs`). A section runs to the next
heading of its level or above, so a `##` topic includes its `###` ones.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import attrs

from checkpointflow.errors import ValidationFailure

_HEADING = re.compile(r"(#{2,3}) (.+)")
_FENCE = "```"


@attrs.frozen(slots=False)
class Topic:
    slug: str
    title: str
    level: int
    start: int  # line numbers in the guide: the heading, and the line after the section
    end: int


def read_guide() -> str:
    from importlib import resources

    return resources.files("checkpointflow").joinpath("guide.md").read_text(encoding="utf-8")


def slug(text: str) -> str:
    """`cli-run-a-command` for "`cli`: run a command"; used for topics and what is typed."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def topics(guide: str) -> list[Topic]:
    """The guide's sections, in order; headings inside code blocks are not headings."""
    lines = guide.splitlines()
    found = list(_headings(lines))
    result = []
    for index, (line, level, title) in enumerate(found):
        end = next((n for n, lvl, _ in found[index + 1 :] if lvl <= level), len(lines))
        result.append(Topic(slug(title), title.replace("`", ""), level, line, end))
    return result


def _headings(lines: list[str]) -> Iterator[tuple[int, int, str]]:
    fenced = False
    for number, line in enumerate(lines):
        if line.startswith(_FENCE):
            fenced = not fenced
            continue
        match = None if fenced else _HEADING.fullmatch(line.rstrip())
        if match:
            yield number, len(match.group(1)), match.group(2)


def section(guide: str, wanted: str) -> str:
    """The text of the one topic `wanted` names; refused with the candidates otherwise."""
    found = topics(guide)
    topic = find(found, wanted)
    lines = guide.splitlines(keepends=True)
    return "".join(lines[topic.start : topic.end]).rstrip("\n") + "\n"


def find(found: list[Topic], wanted: str) -> Topic:
    key = slug(wanted)
    tiers = (
        lambda topic: topic.slug == key,
        lambda topic: topic.slug.startswith(key),
        lambda topic: f"-{key}-" in f"-{topic.slug}-",
    )
    for matches in tiers:
        chosen = [topic for topic in found if key and matches(topic)]
        if len(chosen) == 1:
            return chosen[0]
        if chosen:
            raise _unknown(wanted, chosen, "could be any of")
    raise _unknown(wanted, found, "is not a topic of the guide; the topics are")


def _unknown(wanted: str, candidates: list[Topic], what: str) -> ValidationFailure:
    names = [topic.slug for topic in candidates]
    return ValidationFailure(
        "ERR_UNKNOWN_TOPIC",
        f"{wanted!r} {what}: {', '.join(names)}. Run `cpf guide --list` to see every topic.",
        details={"topics": names},
    )


def listing(guide: str) -> list[dict[str, Any]]:
    """What `cpf guide --list` shows: each topic's slug, title and level."""
    return [
        {"topic": topic.slug, "title": topic.title, "level": topic.level} for topic in topics(guide)
    ]
