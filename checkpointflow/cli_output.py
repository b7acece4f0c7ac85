"""How a command's output reaches people: `--format json|text` for the envelope on
stdout, `--live/--no-live` for the lines running steps print on stderr.

Both options only record a choice (the commands never see them): `--format` is read when
the envelope is printed, `--live` when a command sets up its progress.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click

FORMATS = ("json", "text")
_chosen: dict[str, str] = {}  # what the command line asked for: {"format": "text"}
Decorated = Callable[..., Any]


def _choose_format(context: click.Context, parameter: click.Parameter, value: str | None) -> None:
    if value is not None:
        _chosen["format"] = value.lower()


def format_option(function: Decorated) -> Decorated:
    return click.option(
        "--format",
        type=click.Choice(FORMATS, case_sensitive=False),
        envvar="CPF_FORMAT",
        expose_value=False,
        is_eager=True,
        callback=_choose_format,
        help="json (the default, for programs) or text (a short summary for people); "
        "also: CPF_FORMAT.",
    )(function)


def offer_text_format(group: click.Group) -> None:
    """Every command takes --format too (`cpf list --format text`), except `graph`, whose
    --format picks the diagram language (`cpf --format text graph ...` works)."""
    for command in group.commands.values():
        if not any("--format" in getattr(param, "opts", ()) for param in command.params):
            format_option(command)


def output_format(arguments: list[str]) -> str:
    """json or text: as Click read --format (or CPF_FORMAT); when the command line was
    refused before Click got to it, as written."""
    if "format" in _chosen:
        return _chosen["format"]
    written = os.environ.get("CPF_FORMAT", "json").lower()
    for index, word in enumerate(arguments):
        if word == "--":
            break
        following = arguments[index + 1] if index + 1 < len(arguments) else ""
        value = following if word == "--format" else word.partition("=")[2]
        if word.startswith("--format") and value.lower() in FORMATS:
            written = value.lower()
    return written


def shown(outcome: dict[str, Any], chosen_format: str) -> str:
    """The envelope as JSON, or as text for people (the renderer loads only then)."""
    if chosen_format == "text":
        from checkpointflow import text_format

        return text_format.render(outcome)
    from checkpointflow import envelope

    return envelope.dumps(outcome) + "\n"


def _choose_live(context: click.Context, parameter: click.Parameter, value: bool | None) -> None:
    if value is not None:
        from checkpointflow.progress import choose_live

        choose_live(value)


def live_option(function: Decorated) -> Decorated:
    return click.option(
        "--live/--no-live",
        default=None,
        expose_value=False,
        callback=_choose_live,
        help="Show the lines running steps print, on stderr, as they come (the default when "
        "stderr is a terminal; also: CPF_LIVE=1 or 0).",
    )(function)
