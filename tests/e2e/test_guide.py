"""`cpf guide TOPIC` prints one section of the guide, found the forgiving way; `--list`
names the topics; help one-liners are whole."""

from __future__ import annotations

import subprocess

import pytest
from conftest import CPF
from test_completion import complete

from checkpointflow import guide_topics


def text_of(cpf, *args):
    done = subprocess.run(
        [CPF, "guide", *args],
        capture_output=True,
        text=True,
        cwd=cpf.cwd,
        env=cpf.env,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    return done.stdout


@pytest.mark.parametrize(
    "typed", ["cli", "CLI", "cli-run-a-command", "`cli`: run a command", "Cli Run"]
)
def test_a_topic_prints_its_section_only(cpf, typed):
    section = text_of(cpf, typed)
    assert section.startswith("### `cli`: run a command\n")
    assert "kind: cli" in section
    assert "### `await_event`" not in section
    assert len(section) < len(text_of(cpf)) / 5


def test_a_topic_is_found_by_a_word_of_its_heading(cpf):
    assert text_of(cpf, "logs").startswith("### A run's history: `cpf logs`\n")
    assert text_of(cpf, "Exit codes").startswith("## Exit codes\n")


def test_a_top_level_topic_includes_its_subsections_and_stops_at_the_next(cpf):
    section = text_of(cpf, "operating-runs")
    assert section.startswith("## Operating runs\n")
    assert "### Listing runs: `cpf list`" in section
    assert "## The workflow file" not in section


def test_an_unknown_topic_is_refused_with_the_topics(cpf):
    refused = cpf("guide", "teleport")
    assert (refused.exit_code, refused.error_code) == (10, "ERR_UNKNOWN_TOPIC")
    topics = refused.envelope["error"]["details"]["topics"]
    assert "exit-codes" in topics and "cli-run-a-command" in topics
    assert "exit-codes" in refused.envelope["error"]["message"]


def test_a_topic_that_could_be_several_names_them(cpf):
    refused = cpf("guide", "codes")
    assert (refused.exit_code, refused.error_code) == (10, "ERR_UNKNOWN_TOPIC")
    assert refused.envelope["error"]["details"] == {"topics": ["exit-codes", "error-codes"]}


def test_list_names_every_topic_in_an_envelope(cpf):
    listed = cpf("guide", "--list")
    assert listed.exit_code == 0
    topics = listed.envelope["result"]["topics"]
    assert topics[0] == {"topic": "a-first-run", "title": "A first run", "level": 2}
    assert {"topic": "cli-run-a-command", "title": "cli: run a command", "level": 3} in topics
    slugs = [topic["topic"] for topic in topics]
    assert len(slugs) == len(set(slugs)), "two headings share a slug"
    guide = guide_topics.read_guide()
    for slug in slugs:  # each topic finds itself, not another
        assert guide_topics.find(guide_topics.topics(guide), slug).slug == slug


def test_headings_inside_code_blocks_are_not_topics():
    guide = "# T\n\n## One\n\n```bash\n# a comment\n## not a heading\n```\n\n### Two\nx\n"
    assert [(t.slug, t.level) for t in guide_topics.topics(guide)] == [("one", 2), ("two", 3)]
    assert guide_topics.section(guide, "one") == guide[guide.index("## One") :]


def test_topics_complete_in_the_shell(cpf):
    words = complete(cpf, "bash_complete", COMP_WORDS="cpf guide exi", COMP_CWORD="2")
    assert words.splitlines() == ["plain,exit-codes"]


def test_no_help_one_liner_is_cut_off(cpf):
    done = subprocess.run(
        [CPF, "--help"],
        capture_output=True,
        text=True,
        env={**cpf.env, "COLUMNS": "80"},
        check=False,
        timeout=60,
    )
    commands = done.stdout.split("Commands:\n", 1)[1].splitlines()
    assert len(commands) >= 20
    cut = [line for line in commands if line.rstrip().endswith("...")]
    assert cut == [], cut


def test_the_codes_of_the_shortcuts_and_topics_are_documented(cpf):
    codes = text_of(cpf, "error-codes")
    for code in ("ERR_RUN_AMBIGUOUS", "ERR_UNKNOWN_TOPIC", "ERR_RUN_NOT_FOUND"):
        assert f"| `{code}` | 10 |" in codes
    for topic in ("picking-a-run", "reading-the-guide", "what-validation-says", "editor"):
        assert text_of(cpf, topic).startswith("### ")
