"""Diagram text for a workflow graph: Mermaid (for Markdown) or Graphviz DOT.

Every node is declared before any edge uses it, nodes of a group are declared inside it,
and step statuses of a run become colours.
"""

from __future__ import annotations

from collections.abc import Iterator

from checkpointflow.graph import (
    CHOICE,
    END,
    FAILURE,
    GROUP,
    JOIN,
    LOOP,
    MISSING,
    SKIP,
    TERMINAL,
    Edge,
    Graph,
    Group,
    Node,
)

FORMATS = ("mermaid", "dot")
COLOURS = {  # step status -> (fill, border)
    "completed": ("#c8e6c9", "#2e7d32"),
    "failed": ("#ffcdd2", "#c62828"),
    "waiting": ("#fff59d", "#f9a825"),
    "running": ("#bbdefb", "#1565c0"),
    "skipped": ("#e0e0e0", "#757575"),
}


def render(graph: Graph, format: str) -> str:
    lines = mermaid(graph) if format == "mermaid" else dot(graph)
    return "\n".join(lines) + "\n"


# --- Mermaid ---------------------------------------------------------------------------

_MERMAID_SHAPES = {
    END: ('(["', '"])'),
    CHOICE: ('{"', '"}'),
    GROUP: ('[["', '"]]'),
    TERMINAL: ('(("', '"))'),
    JOIN: ('{{"', '"}}'),
    MISSING: ('>"', '"]'),
}
_MERMAID_ARROWS = {SKIP: "-.->", LOOP: "-.->", FAILURE: "==>"}


def mermaid(graph: Graph) -> Iterator[str]:
    nodes = {node.id: node for node in graph.nodes}
    yield "flowchart TD"
    for node_id in graph.top_nodes:
        yield "    " + _mermaid_node(nodes[node_id])
    for group in graph.groups:
        yield from _mermaid_group(group, nodes, "    ")
    for edge in graph.edges:
        yield "    " + _mermaid_edge(edge)
    yield from _mermaid_colours(graph)


def _mermaid_node(node: Node) -> str:
    opening, closing = _MERMAID_SHAPES.get(node.shape, ('["', '"]'))
    text = "<br/>".join(_mermaid_text(line) for line in node.label)
    return f"{node.id}{opening}{text}{closing}"


def _mermaid_group(group: Group, nodes: dict[str, Node], indent: str) -> Iterator[str]:
    yield f'{indent}subgraph {group.id}["{_mermaid_text(group.label)}"]'
    for node_id in group.nodes:
        yield indent + "    " + _mermaid_node(nodes[node_id])
    for inner in group.groups:
        yield from _mermaid_group(inner, nodes, indent + "    ")
    yield f"{indent}end"


def _mermaid_edge(edge: Edge) -> str:
    arrow = _MERMAID_ARROWS.get(edge.style, "-->")
    label = f'|"{_mermaid_text(edge.label)}"|' if edge.label else ""
    return f"{edge.source} {arrow}{label} {edge.target}"


def _mermaid_colours(graph: Graph) -> Iterator[str]:
    for status, (fill, border) in COLOURS.items():
        members = [node.id for node in graph.nodes if node.status == status]
        if members:
            yield f"    classDef {status} fill:{fill},stroke:{border}"
            yield f"    class {','.join(members)} {status}"


def _mermaid_text(text: str) -> str:
    """Mermaid entity codes for the characters that would end or confuse a label."""
    for character, code in (
        ("#", "#35;"),
        ('"', "#quot;"),
        ("<", "#lt;"),
        (">", "#gt;"),
        ("|", "#124;"),
    ):
        text = text.replace(character, code)
    return " ".join(text.split())


# --- Graphviz DOT ----------------------------------------------------------------------

_DOT_SHAPES = {
    END: 'shape=box, style="rounded,bold", peripheries=2',
    CHOICE: "shape=diamond",
    GROUP: "shape=box3d",
    TERMINAL: "shape=circle",
    JOIN: "shape=hexagon",
    MISSING: 'shape=note, color="#c62828"',
}
_DOT_EDGES = {SKIP: "style=dashed", LOOP: "style=dotted", FAILURE: 'color="#c62828"'}


def dot(graph: Graph) -> Iterator[str]:
    nodes = {node.id: node for node in graph.nodes}
    yield f"digraph {_dot_text(graph.title)} {{"
    yield "    rankdir=TB;"
    yield '    node [shape=box, style=rounded, fontname="Helvetica"];'
    yield '    edge [fontname="Helvetica", fontsize=10];'
    for node_id in graph.top_nodes:
        yield "    " + _dot_node(nodes[node_id])
    for group in graph.groups:
        yield from _dot_group(group, nodes, "    ")
    for edge in graph.edges:
        yield "    " + _dot_edge(edge)
    yield "}"


def _dot_node(node: Node) -> str:
    attributes = [f"label={_dot_text(chr(10).join(node.label))}"]
    if node.shape in _DOT_SHAPES:
        attributes.append(_DOT_SHAPES[node.shape])
    if node.status in COLOURS:
        fill, border = COLOURS[node.status]
        style = "filled,bold" if node.shape == END else "filled,rounded"
        attributes.append(f'style="{style}", fillcolor="{fill}", color="{border}"')
    return f"{node.id} [{', '.join(attributes)}];"


def _dot_group(group: Group, nodes: dict[str, Node], indent: str) -> Iterator[str]:
    yield f"{indent}subgraph cluster_{group.id} {{"
    yield f"{indent}    label={_dot_text(group.label)};"
    yield f"{indent}    style=dashed;"
    for node_id in group.nodes:
        yield indent + "    " + _dot_node(nodes[node_id])
    for inner in group.groups:
        yield from _dot_group(inner, nodes, indent + "    ")
    yield f"{indent}}}"


def _dot_edge(edge: Edge) -> str:
    attributes = [f"label={_dot_text(edge.label)}"] if edge.label else []
    if edge.style in _DOT_EDGES:
        attributes.append(_DOT_EDGES[edge.style])
    suffix = f" [{', '.join(attributes)}]" if attributes else ""
    return f"{edge.source} -> {edge.target}{suffix};"


def _dot_text(text: str) -> str:
    """A DOT quoted string; a newline becomes a centred line break."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\r", "").replace("\n", "\\n") + '"'
