"""Structural checks of diagram text: Mermaid flowcharts and Graphviz DOT.

They check what the renderers promise: every line is a known statement, groups are
balanced, and every edge joins two declared nodes. With Graphviz installed, DOT is also
rendered by `dot -Tsvg`.
"""

from __future__ import annotations

import re
import shutil
import subprocess

_M_NODE = re.compile(r'(n\d+)(\(\(|\(\[|\[\[|\{\{|\[|\{|>)"([^"]*)"(\)\)|\]\)|\]\]|\}\}|\]|\})')
_M_EDGE = re.compile(r'(n\d+) (-->|-\.->|==>)(?:\|"([^"]*)"\|)? (n\d+)')
_M_GROUP = re.compile(r'subgraph (\w+)\["([^"]*)"\]')
_M_CLASS = re.compile(r"(classDef \w+ [\w:#,]+|class [\w,]+ \w+)")
_D_NODE = re.compile(r"(n\d+) \[(.*)\];")
_D_EDGE = re.compile(r"(n\d+) -> (n\d+)(?: \[(.*)\])?;")


def check_mermaid(text: str) -> tuple[set[str], list[tuple[str, str, str | None]]]:
    """The declared nodes and the edges (source, target, label) of a Mermaid flowchart."""
    lines = text.splitlines()
    assert lines[0] == "flowchart TD", lines[0]
    nodes: set[str] = set()
    edges: list[tuple[str, str, str | None]] = []
    depth = 0
    for line in (line.strip() for line in lines[1:]):
        if match := _M_NODE.fullmatch(line):
            assert match.group(1) not in nodes, f"{match.group(1)} declared twice"
            nodes.add(match.group(1))
        elif match := _M_EDGE.fullmatch(line):
            edges.append((match.group(1), match.group(4), match.group(3)))
        elif _M_GROUP.fullmatch(line):
            depth += 1
        elif line == "end":
            depth -= 1
            assert depth >= 0, "`end` without `subgraph`"
        else:
            assert _M_CLASS.fullmatch(line), f"not a Mermaid statement: {line!r}"
    assert depth == 0, "unclosed subgraph"
    for source, target, _ in edges:
        assert source in nodes and target in nodes, (source, target)
    return nodes, edges


def check_dot(text: str) -> set[str]:
    """The declared nodes of a DOT digraph; rendered with `dot` when it is installed."""
    if shutil.which("dot"):
        done = subprocess.run(
            ["dot", "-Tsvg"], input=text, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0 and "<svg" in done.stdout, done.stderr
    lines = [line.strip() for line in text.splitlines()]
    assert lines[0].startswith("digraph ") and lines[0].endswith("{"), lines[0]
    assert text.count("{") == text.count("}")
    nodes = {m.group(1) for line in lines if (m := _D_NODE.fullmatch(line))}
    for line in lines:
        if match := _D_EDGE.fullmatch(line):
            assert match.group(1) in nodes and match.group(2) in nodes, line
    return nodes
