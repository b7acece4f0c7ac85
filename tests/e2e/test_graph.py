"""`cpf graph`: Mermaid and DOT for files, flows and runs; --raw; errors stay envelopes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import CPF, REPO
from diagram_checks import check_dot, check_mermaid
from e2e_helpers import doc
from ops_helpers import failed_run, waiting_run

EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))

KINDS = """
id: kinds
steps:
  - id: pick
    kind: switch
    cases:
      - when: inputs.mode == "each"
        next: each
      - when: inputs.mode == "par"
        next: par
    default: sub
  - id: each
    kind: foreach
    items: ${inputs.list}
    body:
      - id: say
        kind: cli
        command: echo hi
  - id: par
    kind: parallel
    branches:
      - start_at: a
        steps:
          - id: a
            kind: cli
            command: echo a
      - start_at: b
        steps:
          - id: b
            kind: cli
            command: echo b
  - id: sub
    kind: workflow
    workflow_ref: other.yaml
  - id: fin
    kind: end
"""


def labels(text):
    return {label for _, _, label in check_mermaid(text)[1]}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_every_example_draws_as_mermaid_and_dot(cpf, example):
    mermaid = cpf("graph", "-f", str(example))
    assert mermaid.exit_code == 0 and mermaid.envelope["result"]["format"] == "mermaid"
    nodes, edges = check_mermaid(mermaid.envelope["result"]["graph"])
    assert len(nodes) >= 3 and edges
    dot = cpf("graph", "-f", str(example), "--format", "dot")
    assert check_dot(dot.envelope["result"]["graph"]) and dot.envelope["result"]["format"] == "dot"


def test_release_example_shows_conditions_and_skips(cpf):
    text = cpf("graph", "-f", str(REPO / "examples" / "release.yaml")).envelope["result"]["graph"]
    assert "event.decision == #quot;approve#quot;" in labels(text)
    assert "if false: skipped" in labels(text)


def test_every_kind_is_drawn(cpf):
    cpf.write("kinds.yaml", doc(KINDS))
    text = cpf("graph", "-f", "kinds.yaml").envelope["result"]["graph"]
    check_mermaid(text)
    assert {"default", "each item", "next item", "branch a", "branch b"} <= labels(text)
    assert text.count("subgraph ") == 4
    check_dot(cpf("graph", "-f", "kinds.yaml", "--format", "dot").envelope["result"]["graph"])


def test_raw_prints_only_the_diagram(cpf):
    cpf.write("kinds.yaml", doc(KINDS))
    for fmt, first in (("mermaid", "flowchart TD"), ("dot", 'digraph "kinds" {')):
        done = subprocess.run(
            [CPF, "graph", "-f", "kinds.yaml", "--format", fmt, "--raw"],
            cwd=cpf.cwd,
            env=cpf.env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0 and done.stdout.splitlines()[0] == first
        (check_mermaid if fmt == "mermaid" else check_dot)(done.stdout)


def test_raw_errors_are_still_envelopes(cpf):
    result = cpf("graph", "-f", "missing.yaml", "--raw")
    assert result.exit_code == 10 and result.error_code == "ERR_FILE_NOT_FOUND"


def test_invalid_workflow_is_reported(cpf):
    cpf.write("bad.yaml", doc("id: bad\nsteps:\n  - id: x\n    kind: cli\n"))
    result = cpf("graph", "-f", "bad.yaml")
    assert result.exit_code == 10 and result.error_code == "ERR_VALIDATION_WORKFLOW"


def test_a_run_is_coloured_by_step_status(cpf):
    run_id = waiting_run(cpf)
    result = cpf("graph", "--run-id", run_id)
    assert result.exit_code == 0 and result.envelope["run_id"] == run_id
    text = result.envelope["result"]["graph"]
    check_mermaid(text)
    assert "classDef completed" in text and "classDef waiting" in text
    dot = cpf("graph", "--run-id", run_id, "--format", "dot").envelope["result"]["graph"]
    check_dot(dot)
    assert "#fff59d" in dot and "#c8e6c9" in dot


def test_a_failed_run_is_red(cpf):
    text = cpf("graph", "--run-id", failed_run(cpf)).envelope["result"]["graph"]
    assert "classDef failed" in text


def test_a_run_uses_its_snapshot(cpf):
    run_id = waiting_run(cpf)
    Path(cpf.cwd / "waits.yaml").write_text(doc("id: other\nsteps:\n  - id: z\n    kind: end\n"))
    assert "hello" in cpf("graph", "--run-id", run_id).envelope["result"]["graph"]


def test_a_flow_by_id(cpf, tmp_path):
    cpf.write(".checkpointflow/kinds.yaml", doc(KINDS))
    result = cpf("graph", "--flow", "kinds", env={"HOME": str(tmp_path / "home")})
    assert result.exit_code == 0 and "pick" in result.envelope["result"]["graph"]


@pytest.mark.parametrize(
    "args, code",
    [
        ((), "ERR_USAGE"),
        (("--run-id", "20260101T000000000Z-0000000000"), "ERR_RUN_NOT_FOUND"),
        (("--flow", "nope"), "ERR_FLOW_NOT_FOUND"),
        (("-f", "x.yaml", "--run-id", "abc"), "ERR_RUN_NOT_FOUND"),  # wins over the usage
        (("-f", "x.yaml", "--format", "png"), "ERR_USAGE"),
    ],
)
def test_bad_requests(cpf, tmp_path, args, code):
    result = cpf("graph", *args, env={"HOME": str(tmp_path / "home")})
    assert result.exit_code == 10 and result.error_code == code


START_AT = """\
id: fan
steps:
  - id: checks
    kind: parallel
    branches:
      - start_at: lint
      - start_at: unit
  - id: lint
    kind: cli
    command: echo lint
  - id: unit
    kind: cli
    command: echo unit
    transitions:
      - next: unit_report
  - id: unit_report
    kind: cli
    command: echo report
  - id: ship
    kind: end
"""


def test_start_at_branches_end_at_the_join_and_the_list_skips_them(cpf):
    cpf.write("fan.yaml", doc(START_AT))
    text = cpf("graph", "-f", "fan.yaml").envelope["result"]["graph"]
    nodes, edges = check_mermaid(text)
    names = {}
    for line in text.splitlines():
        line = line.strip()
        for node in nodes:
            if (
                line.startswith(f"{node}[")
                or line.startswith(f"{node}(")
                or line.startswith(f"{node}{{")
            ):
                names[node] = line
    by_label = {
        next(
            (w for w in ("lint", "unit_report", "unit", "ship", "join", "checks") if w in names[n]),
            n,
        ): n
        for n in names
    }
    pairs = {(source, target) for source, target, _ in edges}
    assert (by_label["lint"], by_label["join"]) in pairs
    assert (by_label["unit_report"], by_label["join"]) in pairs
    assert (by_label["join"], by_label["ship"]) in pairs
    assert (by_label["lint"], by_label["unit"]) not in pairs  # list order skips branch steps
