"""Shortcuts for people at a terminal: `--run-id last`, the start of an id as git takes
short ids, completion of run ids, and a hint when `--input` names a file without `@`."""

from __future__ import annotations

from e2e_helpers import doc, resume, start
from test_completion import complete

ASK = """
id: {name}
steps:
  - id: ask
    kind: await_event
    audience: user
    event_name: go
    input_schema: {{type: object}}
  - id: done
    kind: end
"""


def waiting(cpf, name):
    return start(cpf, ASK.format(name=name), name=f"{name}.yaml").envelope["run_id"]


def shortest_unique_start(run_id, others):
    for length in range(1, len(run_id) + 1):
        if not any(other.startswith(run_id[:length]) for other in others):
            return run_id[:length]
    raise AssertionError("ids are unique")


def common_start(first, second):
    length = next(i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b)
    return first[:length]


def test_last_is_the_run_started_last(cpf):
    first = waiting(cpf, "deploy")
    second = waiting(cpf, "release")
    status = cpf("status", "--run-id", "last")
    assert (status.exit_code, status.envelope["run_id"]) == (40, second)
    of_deploy = cpf("status", "--run-id", "last", "--workflow", "deploy")
    assert of_deploy.envelope["run_id"] == first
    done = resume(cpf, "last", "go", {})
    assert (done.exit_code, done.envelope["run_id"]) == (0, second)
    cancelled = cpf("cancel", "--run-id", "last", "--workflow", "deploy")
    assert (cancelled.exit_code, cancelled.envelope["run_id"]) == (0, first)


def test_the_start_of_an_id_stands_for_the_one_id_it_begins(cpf):
    first = waiting(cpf, "deploy")
    second = waiting(cpf, "deploy")
    short = shortest_unique_start(first, [second])
    assert cpf("inspect", "--run-id", short).envelope["run_id"] == first
    logs = cpf("logs", "--run-id", shortest_unique_start(second, [first]))
    assert logs.envelope["run_id"] == second
    assert cpf("status", "--run-id", first).envelope["run_id"] == first  # a whole id


def test_an_ambiguous_start_is_refused_with_the_candidates(cpf):
    first = waiting(cpf, "deploy")
    second = waiting(cpf, "release")
    shared = common_start(first, second)
    refused = resume(cpf, shared, "go", {})
    assert (refused.exit_code, refused.error_code) == (10, "ERR_RUN_AMBIGUOUS")
    assert refused.envelope["error"]["details"] == {"candidates": [second, first]}
    assert shared in refused.envelope["error"]["message"]
    # --workflow narrows the candidates to one
    narrowed = cpf("status", "--run-id", shared, "--workflow", "deploy")
    assert narrowed.envelope["run_id"] == first
    for run_id in (first, second):
        assert cpf("status", "--run-id", run_id).exit_code == 40  # nothing was resumed


def test_nothing_to_pick_is_refused(cpf):
    empty = cpf("status", "--run-id", "last")
    assert (empty.exit_code, empty.error_code) == (10, "ERR_RUN_NOT_FOUND")
    waiting(cpf, "deploy")
    for args in (["--run-id", "zz"], ["--run-id", "last", "--workflow", "other"]):
        missing = cpf("status", *args)
        assert (missing.exit_code, missing.error_code) == (10, "ERR_RUN_NOT_FOUND"), args


def test_text_that_is_not_an_id_is_never_used_as_a_path(cpf):
    waiting(cpf, "deploy")
    (cpf.root / "runs" / "evil").mkdir()
    for text in ("../runs", "2*", "", "."):
        refused = cpf("status", "--run-id", text)
        assert (refused.exit_code, refused.error_code) == (10, "ERR_RUN_NOT_FOUND"), text
    # a folder that is not a run is no candidate
    assert cpf("status", "--run-id", "ev").error_code == "ERR_RUN_NOT_FOUND"


def test_retry_takes_last_too(cpf):
    failed = start(cpf, "id: fails\nsteps:\n  - {id: boom, kind: cli, command: exit 3}\n")
    run_id = failed.envelope["run_id"]
    cpf.write("fails.yaml", doc("id: fails\nsteps:\n  - {id: boom, kind: cli, command: 'true'}"))
    retried = cpf("retry", "--run-id", "last", "--workflow", "fails.yaml")
    assert (retried.exit_code, retried.envelope["run_id"]) == (0, run_id)


def test_completion_offers_last_and_ids_newest_first_with_their_workflow(cpf):
    first = waiting(cpf, "deploy")
    second = waiting(cpf, "release")
    words = complete(cpf, "bash_complete", COMP_WORDS="cpf status --run-id ", COMP_CWORD="3")
    assert words.splitlines() == ["plain,last", f"plain,{second}", f"plain,{first}"]
    zsh = complete(cpf, "zsh_complete", COMP_WORDS="cpf status --run-id ", COMP_CWORD="3")
    assert "release waiting" in zsh and "deploy waiting" in zsh
    only = complete(cpf, "bash_complete", COMP_WORDS="cpf status --run-id la", COMP_CWORD="3")
    assert only.splitlines() == ["plain,last"]


def test_an_input_naming_a_file_without_the_at_gets_a_hint(cpf):
    cpf.write("input.json", '{"name": "Ada"}')
    cpf.write("wf.yaml", doc("id: wf\nsteps:\n  - {id: done, kind: end}"))
    refused = cpf("run", "-f", "wf.yaml", "--input", "input.json")
    assert (refused.exit_code, refused.error_code) == (10, "ERR_VALIDATION_INPUT")
    assert "did you mean @input.json?" in refused.envelope["error"]["message"].lower()
    plain = cpf("run", "-f", "wf.yaml", "--input", "not-a-file.json")
    assert "@" not in plain.envelope["error"]["message"]
    assert cpf("run", "-f", "wf.yaml", "--input", "@input.json").exit_code == 0
