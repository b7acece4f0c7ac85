"""The work a step asks for: command and HTTP effects, rendered from the run's data.

Pure: templates are rendered against the expression context, and `${env.NAME}` stays a
Secret for the driver to fill in at the moment the effect runs.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from checkpointflow.addresses import Piece, address_check
from checkpointflow.expressions import Template, parse_template
from checkpointflow.model import DEFAULT_SHELL, ApiStep, CliStep, Workflow
from checkpointflow.shell import (
    argv_script,
    secret_names,
    sequence_script,
    shell_script,
    text_with_secrets,
)
from checkpointflow.state import RunCommand, Secret, SendRequest, Text

# Marks a secret inside rendered JSON text; NUL never occurs in dumped JSON otherwise.
_MARK = "\0"


def command_effect(
    workflow: Workflow, step: CliStep, context: Mapping[str, Any], attempt: int, retry: int
) -> RunCommand:
    """The next attempt of a cli step (raises ExpressionError for a broken template)."""
    script, values, secrets = _script(step, context)
    cwd = None
    if step.cwd:
        cwd, names = text_with_secrets(parse_template(step.cwd), context)
        secrets += names
    env = _pairs(step.env, context, secrets)
    return RunCommand(
        step_id=step.id,
        attempt=attempt,
        script=script,
        shell=shell_words(step.shell or workflow.default_shell or DEFAULT_SHELL),
        values=values,
        env=env,
        cwd=cwd,
        timeout_seconds=step.timeout_seconds,
        delay_seconds=step.retry.delay_before(retry),
        parse_stdout=step.outputs_schema is not None,
        secrets=tuple(dict.fromkeys(secrets)),
    )


def _script(step: CliStep, context: Mapping[str, Any]) -> tuple[str, tuple[str, ...], list[str]]:
    """The step's shell script, the values it interpolates, and the secrets it reads."""
    items = step.argv if step.argv is not None else step.command
    templates = tuple(map(parse_template, (items,) if isinstance(items, str) else items))
    secrets = [name for template in templates for name in secret_names(template)]
    if step.argv is not None:
        script, values = argv_script(templates, context)
    elif isinstance(step.command, str):
        script, values = shell_script(templates[0], context)
    else:
        script, values = sequence_script(templates, context)
    return script, values, secrets


@lru_cache(maxsize=64)
def shell_words(shell: str) -> tuple[str, ...]:
    return tuple(shlex.split(shell))


def request_effect(
    step: ApiStep, context: Mapping[str, Any], attempt: int, retry: int
) -> SendRequest:
    """The next attempt of an api step (raises ExpressionError for a broken template)."""
    secrets: list[str] = []
    url, names, pieces = _url(parse_template(step.url), context)
    secrets += names
    headers = _pairs(step.headers, context, secrets)
    query = _pairs(step.query, context, secrets)
    body = _json_text(step.body, context, secrets) if step.has_body else None
    return SendRequest(
        step_id=step.id,
        attempt=attempt,
        method=step.method,
        url=url,
        headers=headers,
        query=query,
        body=body,
        timeout_seconds=step.timeout_seconds,
        delay_seconds=step.retry.delay_before(retry),
        secrets=tuple(dict.fromkeys(secrets)),
        address_check=address_check(pieces, step.allow_private_network),
    )


def _url(template: Template, context: Mapping[str, Any]) -> tuple[Text, list[str], list[Piece]]:
    """The rendered URL, the env variables it reads, and its pieces marked by where they
    came from (the workflow's text, the run's data, or the environment)."""
    text: list[str | Secret] = []
    names: list[str] = []
    pieces: list[Piece] = []
    for part in template.parts:
        rendered, read = text_with_secrets(Template((part,)), context)
        text += rendered
        names += read
        for item in rendered:
            if isinstance(item, Secret):
                pieces.append(Piece(None))
            else:
                pieces.append(Piece(item, from_data=not isinstance(part, str)))
    return tuple(text), names, pieces


def _pairs(
    pairs: tuple[tuple[str, str], ...], context: Mapping[str, Any], secrets: list[str]
) -> tuple[tuple[str, Text], ...]:
    rendered = []
    for name, value in pairs:
        text, names = text_with_secrets(parse_template(value), context)
        rendered.append((name, text))
        secrets += names
    return tuple(rendered)


def _json_text(body: Any, context: Mapping[str, Any], secrets: list[str]) -> Text:
    """The body as JSON text; each secret becomes a Secret part inside a JSON string."""
    dumped = json.dumps(_render_marking_secrets(body, context, secrets), ensure_ascii=False)
    parts: list[str | Secret] = []
    for index, piece in enumerate(dumped.split(_MARK)):
        parts.append(Secret(piece) if index % 2 else piece)
    return tuple(parts)


def _render_marking_secrets(value: Any, context: Mapping[str, Any], secrets: list[str]) -> Any:
    if isinstance(value, str):
        template = parse_template(value)
        parts, names = text_with_secrets(template, context)
        secrets += names
        if not names and template.is_single_expression:
            from checkpointflow.expressions import render

            return render(template, context)
        return "".join(p if isinstance(p, str) else f"{_MARK}{p.name}{_MARK}" for p in parts)
    if isinstance(value, list):
        return [_render_marking_secrets(item, context, secrets) for item in value]
    if isinstance(value, dict):
        return {k: _render_marking_secrets(v, context, secrets) for k, v in value.items()}
    return value
