"""Shell completion through Click's own mechanism (`_CPF_COMPLETE=...`), for bash, zsh
and fish, working through cpf's own entry point."""

from __future__ import annotations

import subprocess

import pytest
from conftest import CPF
from ops_helpers import waiting_run


def complete(cpf, variable, **extra):
    done = subprocess.run(
        [CPF],
        cwd=cpf.cwd,
        env={**cpf.env, "_CPF_COMPLETE": variable, **extra},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


@pytest.mark.parametrize(
    "shell, words",
    [
        ("bash", ["complete", "_cpf_completion"]),
        ("zsh", ["#compdef cpf", "compdef"]),
        ("fish", ["complete", "--command cpf"]),
    ],
)
def test_each_shell_gets_a_script(cpf, shell, words):
    script = complete(cpf, f"{shell}_source")
    for word in words:
        assert word in script


def test_bash_completes_command_names(cpf):
    out = complete(cpf, "bash_complete", COMP_WORDS="cpf ", COMP_CWORD="1")
    names = {line.split(",", 1)[1] for line in out.splitlines()}
    expected = {
        "run",
        "resume",
        "status",
        "list",
        "logs",
        "flows",
        "graph",
        "delete",
        "gc",
        "verify",
        "export",
        "import",
    }
    assert expected <= names


def test_bash_completes_options_and_run_ids(cpf):
    run_id = waiting_run(cpf)
    options = complete(cpf, "bash_complete", COMP_WORDS="cpf logs --", COMP_CWORD="2")
    assert "plain,--follow" in options.splitlines()
    ids = complete(
        cpf, "bash_complete", COMP_WORDS=f"cpf logs --run-id {run_id[:6]}", COMP_CWORD="3"
    )
    assert f"plain,{run_id}" in ids.splitlines()


def test_zsh_and_fish_complete_commands(cpf):
    zsh = complete(cpf, "zsh_complete", COMP_WORDS="cpf li", COMP_CWORD="1")
    assert "list" in zsh
    fish = complete(cpf, "fish_complete", COMP_WORDS="cpf ver", COMP_CWORD="ver")
    assert "verify" in fish
