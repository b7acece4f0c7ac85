"""Progress for people on stderr; stdout is only ever the one JSON envelope."""

from __future__ import annotations

from e2e_helpers import doc, resume

BODY = """
id: chatty
steps:
  - id: first_step
    kind: cli
    command: echo out; echo err >&2
  - id: gate
    kind: await_event
    audience: user
    event_name: go
    input_schema: {type: object}
  - id: second_step
    kind: cli
    command: echo again
"""


def test_progress_on_stderr_names_the_steps(cpf):
    cpf.write("wf.yaml", doc(BODY))
    started = cpf("run", "-f", "wf.yaml")
    assert "first_step" in started.stderr
    assert "err" not in started.stderr.replace("cpf:", "")  # the step's own stderr goes to its file
    assert started.stdout.strip().startswith("{") and started.stdout.strip().endswith("}")
    assert "out\n" not in started.stdout
    done = resume(cpf, started.envelope["run_id"], "go", {})
    assert "second_step" in done.stderr
    assert "\x1b[" not in started.stderr + done.stderr


def test_quiet_silences_stderr(cpf):
    cpf.write("wf.yaml", doc(BODY))
    started = cpf("run", "-f", "wf.yaml", "--quiet")
    assert started.exit_code == 40
    assert started.stderr == ""
    done = cpf("resume", "--run-id", started.envelope["run_id"], "--event", "go", "-q")
    assert done.exit_code == 0
    assert done.stderr == ""


def test_llm_env_silences_stderr(cpf):
    cpf.write("wf.yaml", doc(BODY))
    started = cpf("run", "-f", "wf.yaml", env={"LLM": "true"})
    assert started.exit_code == 40
    assert started.stderr == ""
    done = cpf(
        "resume", "--run-id", started.envelope["run_id"], "--event", "go", env={"LLM": "true"}
    )
    assert done.exit_code == 0
    assert done.stderr == ""


def test_failures_also_leave_stdout_a_single_envelope(cpf):
    cpf.write(
        "wf.yaml",
        doc("id: f\nsteps:\n  - id: bad\n    kind: cli\n    command: echo noise; exit 3\n"),
    )
    failed = cpf("run", "-f", "wf.yaml")
    assert failed.exit_code == 30
    assert "noise" not in failed.stdout
    assert "bad" in failed.stderr


def test_no_ansi_even_when_forcing_colour_variables(cpf):
    cpf.write("wf.yaml", doc(BODY))
    started = cpf("run", "-f", "wf.yaml", env={"TERM": "xterm-256color", "FORCE_COLOR": "1"})
    assert "\x1b[" not in started.stderr
    assert started.stderr != ""
