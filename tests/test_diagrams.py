"""The workflow graph and its Mermaid and DOT text, built from plain documents."""

from __future__ import annotations

from diagram_checks import check_dot, check_mermaid

from checkpointflow import diagrams, graph


def document(*steps):
    return {"schema_version": "checkpointflow/v1", "workflow": {"id": "wf", "steps": list(steps)}}


def edges_by_label(built):
    names = {node.id: node.step_id or node.label[0] for node in built.nodes}
    return {(names[e.source], names[e.target], e.label, e.style) for e in built.edges}


def both(built):
    check_mermaid(diagrams.render(built, "mermaid"))
    check_dot(diagrams.render(built, "dot"))


def test_sequence_from_start_to_finish():
    built = graph.build(document({"id": "a", "kind": "cli"}, {"id": "b", "kind": "cli"}))
    assert edges_by_label(built) == {
        ("start", "a", None, "normal"),
        ("a", "b", None, "normal"),
        ("b", "finish", None, "normal"),
    }
    both(built)


def test_end_steps_stop_and_if_steps_can_be_skipped():
    built = graph.build(
        document({"id": "stop", "kind": "end", "if": "inputs.x > 1"}, {"id": "go", "kind": "end"})
    )
    assert ("stop", "go", "if false: skipped", "skip") in edges_by_label(built)
    assert not [e for e in built.edges if e.target == "finish"]
    assert "finish" not in {node.label[0] for node in built.nodes}


def test_transitions_and_failure_handlers():
    built = graph.build(
        document(
            {
                "id": "ask",
                "kind": "await_event",
                "event_name": "ok",
                "audience": "user",
                "transitions": [{"when": 'event.x == "y"', "next": "yes"}, {"next": "no"}],
                "on_error": {"next": "no"},
                "on_timeout": {"next": "yes"},
            },
            {"id": "yes", "kind": "end"},
            {"id": "no", "kind": "end"},
        )
    )
    edges = edges_by_label(built)
    assert ("ask", "yes", 'event.x == "y"', "normal") in edges
    assert ("ask", "no", None, "normal") in edges
    assert ("ask", "no", "on error", "failure") in edges
    assert ("ask", "yes", "on timeout", "failure") in edges
    text = diagrams.render(built, "mermaid")
    assert "==>" in text and "#quot;y#quot;" in text
    both(built)


def test_switch_cases_and_default():
    built = graph.build(
        document(
            {
                "id": "pick",
                "kind": "switch",
                "cases": [{"when": "inputs.a", "next": "x"}],
                "default": "y",
            },
            {"id": "x", "kind": "end"},
            {"id": "y", "kind": "end"},
        )
    )
    assert edges_by_label(built) >= {
        ("pick", "x", "inputs.a", "normal"),
        ("pick", "y", "default", "normal"),
    }
    assert built.nodes[1].shape == graph.CHOICE


def test_foreach_parallel_and_workflow_become_groups():
    built = graph.build(
        document(
            {
                "id": "each",
                "kind": "foreach",
                "items": [1, 2],
                "body": [{"id": "b1", "kind": "cli"}],
            },
            {
                "id": "par",
                "kind": "parallel",
                "branches": [
                    {
                        "start_at": "p2",
                        "steps": [{"id": "p1", "kind": "cli"}, {"id": "p2", "kind": "cli"}],
                    },
                    {"start_at": "shared"},
                ],
            },
            {"id": "sub", "kind": "workflow", "workflow_ref": "child.yaml"},
            {"id": "each2", "kind": "foreach", "items": "${inputs.l}", "workflow_ref": "item.yaml"},
            {"id": "shared", "kind": "end"},
        )
    )
    edges = edges_by_label(built)
    assert ("each", "b1", "each item", "normal") in edges
    assert ("b1", "each", "next item", "loop") in edges
    assert ("par", "p2", "branch p2", "normal") in edges
    assert ("par", "shared", "branch shared", "normal") in edges
    assert ("p2", "join", None, "normal") in edges and ("join", "sub", None, "normal") in edges
    assert ("sub", "workflow", "runs", "normal") in edges
    assert [group.label for group in built.groups] == [
        "each: for each item",
        "par: branch p2",
        "sub: sub-workflow",
        "each2: for each item",
    ]
    both(built)


def test_unknown_targets_are_drawn_as_missing_nodes():
    built = graph.build(document({"id": "a", "kind": "cli", "transitions": [{"next": "ghost"}]}))
    missing = [node for node in built.nodes if node.shape == graph.MISSING]
    assert missing[0].label == ("ghost", "no such step")
    both(built)


def test_statuses_colour_the_steps():
    built = graph.build(
        document(
            {"id": "a", "kind": "cli"}, {"id": "b", "kind": "cli"}, {"id": "c", "kind": "cli"}
        ),
        {"a": "completed", "b": "failed", "c": "running"},
    )
    text = diagrams.render(built, "mermaid")
    assert "class n1 completed" in text and "class n2 failed" in text and "class n3 running" in text
    assert 'fillcolor="#ffcdd2"' in diagrams.render(built, "dot")


def test_labels_are_escaped():
    tricky = 'a "quoted" <b> | #1 \\ back'
    built = graph.build(document({"id": "a", "kind": "cli", "name": tricky, "if": tricky}))
    mermaid, dot = diagrams.render(built, "mermaid"), diagrams.render(built, "dot")
    check_mermaid(mermaid)
    check_dot(dot)
    assert "#quot;quoted#quot; #lt;b#gt; #124; #35;1" in mermaid
    assert 'a \\"quoted\\" <b> | #1 \\\\ back' in dot


def test_step_ids_that_are_keywords_are_safe():
    built = graph.build(document({"id": "end", "kind": "cli"}, {"id": "subgraph", "kind": "end"}))
    nodes, _ = check_mermaid(diagrams.render(built, "mermaid"))
    assert nodes == {"n0", "n1", "n2"}


def test_transitions_that_may_match_nothing_also_go_on_in_list_order():
    built = graph.build(
        document(
            {
                "id": "check",
                "kind": "cli",
                "transitions": [{"when": "steps.check.outputs.changed", "next": "deploy"}],
            },
            {"id": "note", "kind": "cli"},
            {"id": "deploy", "kind": "cli"},
            {"id": "fan", "kind": "parallel", "branches": [{"start_at": "lint"}]},
            {"id": "lint", "kind": "cli", "transitions": [{"when": "inputs.fix", "next": "fix"}]},
            {"id": "fix", "kind": "cli"},
        )
    )
    edges = edges_by_label(built)
    assert ("check", "deploy", "steps.check.outputs.changed", "normal") in edges
    assert ("check", "note", "no match", "normal") in edges
    assert ("lint", "join", "no match", "normal") in edges  # the branch ends
    both(built)
