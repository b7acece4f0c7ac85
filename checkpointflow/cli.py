"""The `cpf` command line: parse options, call one engine function, print its envelope.

No engine logic lives here. Engine modules are imported inside each command so that
`--version`, `--help` and `guide` start as fast as Click itself.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from checkpointflow import __version__, interruptions
from checkpointflow.cli_output import (
    format_option,
    live_option,
    offer_text_format,
    output_format,
    shown,
)
from checkpointflow.errors import EXIT_INTERNAL, CpfError, ValidationFailure

Envelope = dict[str, Any]


def quiet_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--quiet", "-q", is_flag=True, help="No progress on stderr (also: LLM=true)."
    )(function)


def run_id_option(function: Callable[..., Any]) -> Callable[..., Any]:
    from checkpointflow import cli_operations

    return cli_operations.run_id_option()(function)


def run_id_option_alone(function: Callable[..., Any]) -> Callable[..., Any]:
    """--run-id without --workflow (for `retry`, whose --workflow is an edited file)."""
    from checkpointflow import cli_operations

    return cli_operations.run_id_option(workflow_filter=False)(function)


def actor_option(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--actor",
        default=None,
        help="Who is acting, for the record (default: CPF_ACTOR, else the OS user).",
    )(function)


def input_option(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--input",
        "input_text",
        default=None,
        help=f"{what} as inline JSON, @file.json, or - (or @-) for stdin.",
    )


def _complete_flow_id(context: click.Context, parameter: click.Parameter, text: str) -> list[Any]:
    from checkpointflow.cli_operations import complete_flow_id

    return complete_flow_id(context, parameter, text)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    __version__, "--version", "-v", prog_name="cpf", message="%(prog)s %(version)s"
)
@format_option
def cli() -> None:
    """Run YAML workflows as deterministic, resumable state machines.

    Every command prints one JSON envelope on stdout and exits with a documented code
    (0 done, 10 invalid, 20 runtime, 30 step failed, 40 waiting, 50 cancelled,
    60 persistence, 70 lock conflict, 80 unsupported, 90 internal). `cpf guide` explains.
    """


@cli.command()
@click.option("--file", "-f", "path", default="checkpointflow.yaml", show_default=True)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(path: str, force: bool) -> Envelope:
    """Write a starter workflow that runs as-is."""
    from checkpointflow import engine

    return engine.init(path, force)


@cli.command()
@click.option("--file", "-f", "path", required=True, help="The workflow YAML file.")
def validate(path: str) -> Envelope:
    """Check a workflow file and report every problem at once."""
    from checkpointflow import engine

    return engine.validate(path)


@cli.command(short_help="Start a workflow run and drive it until it waits or ends.")
@click.argument("flow_id", required=False, shell_complete=_complete_flow_id)
@click.option("--file", "-f", "path", default=None, help="The workflow YAML file.")
@input_option("Workflow inputs")
@actor_option
@quiet_option
@live_option
def run(
    flow_id: str | None, path: str | None, input_text: str | None, actor: str | None, quiet: bool
) -> Envelope:
    """Start a run of -f FILE (or of a flow from `cpf flows`, by id or name) and drive it
    until it waits, completes or fails."""
    from checkpointflow import engine

    if (flow_id is None) == (path is None):
        raise click.UsageError("Pass either -f FILE or a flow id (`cpf flows` lists them).")
    if flow_id is not None:
        from checkpointflow.discovery import find_flow

        path = find_flow(flow_id)
    assert path is not None
    return engine.run(path, input_text, actor, quiet)


@cli.command()
@run_id_option
@click.option("--event", "event_name", required=True, help="The event the run waits for.")
@input_option("The event's data")
@click.option("--token", default=None, help="Apply only if this is the pending wait's token.")
@click.option(
    "--wait-id",
    default=None,
    help="Which wait takes the event, when several wait for it (e.g. deploy_all[2].confirm).",
)
@actor_option
@quiet_option
@live_option
def resume(
    run_id: str,
    event_name: str,
    input_text: str | None,
    token: str | None,
    wait_id: str | None,
    actor: str | None,
    quiet: bool,
) -> Envelope:
    """Deliver the event a waiting run asks for, and drive it on."""
    from checkpointflow import engine

    return engine.resume(run_id, event_name, input_text, token, actor, quiet, wait_id)


@cli.command(short_help="Continue a failed run from its failed step (or --from one).")
@run_id_option_alone
@click.option("--from", "from_step", default=None, help="Restart from this earlier step.")
@click.option(
    "--workflow", "workflow_path", default=None, help="Retry against this edited workflow file."
)
@actor_option
@quiet_option
@live_option
def retry(
    run_id: str, from_step: str | None, workflow_path: str | None, actor: str | None, quiet: bool
) -> Envelope:
    """Continue a failed run from the step that failed (or --from an earlier one)."""
    from checkpointflow import engine

    return engine.retry(run_id, from_step, workflow_path, actor, quiet)


@cli.command(short_help="Where a run stands; exits with the run's own code.")
@run_id_option
def status(run_id: str) -> Envelope:
    """Where a run stands; exits with the run's own code (40 waiting, 30 failed, ...)."""
    from checkpointflow import engine

    return engine.status(run_id)


@cli.command(short_help="A run's state and history; exits with the run's own code.")
@run_id_option
@click.option("--full", is_flag=True, help="Everything, with large values inlined.")
@click.option("--at", "at", type=int, default=None, help="The state right after event SEQ.")
@click.option("--events", is_flag=True, help="Page through the event log (with --since/--limit).")
@click.option("--since", type=int, default=None, help="With --events: events after SEQ.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="With --events: at most N.")
def inspect(
    run_id: str, full: bool, at: int | None, events: bool, since: int | None, limit: int | None
) -> Envelope:
    """A run's state and history (compact by default); exits with the run's own code."""
    from checkpointflow import engine

    if events and since is None and limit is None:
        since = 0
    return engine.inspect(run_id, full, at, since, limit)


@cli.command()
@run_id_option
@click.option("--reason", default=None, help="Why, for the record.")
@actor_option
def cancel(run_id: str, reason: str | None, actor: str | None) -> Envelope:
    """Stop a waiting run for good."""
    from checkpointflow import engine

    return engine.cancel(run_id, reason, actor)


@cli.command(short_help="Settle a run whose cpf process died in the middle of a step.")
@run_id_option
@quiet_option
@live_option
def recover(run_id: str, quiet: bool) -> Envelope:
    """Settle a run whose cpf process died mid-step: retry that step if allowed, else fail it."""
    from checkpointflow import engine

    return engine.recover(run_id, quiet)


@cli.command(short_help="Time out the waits past their deadline (run it from cron).")
@quiet_option
def tick(quiet: bool) -> Envelope:
    """Time out every wait past its deadline and drive those runs on (run it from cron)."""
    from checkpointflow import engine

    return engine.tick(quiet)


def _complete_topic(context: click.Context, parameter: click.Parameter, text: str) -> list[Any]:
    from checkpointflow import guide_topics

    found = guide_topics.topics(guide_topics.read_guide())
    return [topic.slug for topic in found if topic.slug.startswith(guide_topics.slug(text))]


@cli.command(short_help="Print the guide, or one topic of it (--list names them).")
@click.argument("topic", required=False, shell_complete=_complete_topic)
@click.option("--list", "listing", is_flag=True, help="List the topics (an envelope).")
def guide(topic: str | None, listing: bool) -> Envelope | None:
    """Print the guide: every command, step kind, field and code; or only TOPIC, named by
    its heading, the start of it, or a word of it (`cpf guide cli`, `cpf guide logs`)."""
    from checkpointflow import guide_topics

    text = guide_topics.read_guide()
    if listing:
        from checkpointflow import envelope

        result = {"topics": guide_topics.listing(text)}
        return envelope.envelope("guide", ok=True, status="completed", exit_code=0, result=result)
    click.echo(guide_topics.section(text, topic) if topic else text, nl=False)
    return None


@cli.command(short_help="Print the JSON Schema of workflow files, for editors.")
@click.option(
    "--output", "-o", default=None, help="Write it to this file and report it in an envelope."
)
def schema(output: str | None) -> Envelope | None:
    """Print the JSON Schema of workflow files (one JSON object, not an envelope), or write
    it to --output FILE. `cpf init` points editors at the copy installed with cpf."""
    from checkpointflow import editor

    if output is not None:
        return editor.write_schema(output)
    click.echo(editor.schema_text(), nl=False)
    return None


def _register_operations() -> None:
    """Commands for operating many runs live in their own module."""
    from checkpointflow.cli_operations import register

    register(cli)


_register_operations()
offer_text_format(cli)


def main(argv: list[str] | None = None) -> None:
    """Entry point: exactly one envelope on stdout, and its exit code."""
    arguments = sys.argv[1:] if argv is None else argv
    interruptions.install()
    try:
        outcome = cli.main(args=arguments, prog_name="cpf", standalone_mode=False)
        interruptions.hold()  # the work is done; only the report is left to print
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except (click.exceptions.Abort, interruptions.Interrupted) as stop:
        interruptions.hold()
        outcome = _interrupted(arguments, stop)
    except click.UsageError as error:
        outcome = _refused(_usage_problem(error, arguments), arguments)
    except click.ClickException as error:
        outcome = _refused(ValidationFailure("ERR_USAGE", error.format_message()), arguments)
    except CpfError as error:
        outcome = _refused(error, arguments)
    except Exception as error:  # the last line of defence: never a traceback
        outcome = _internal(_command_name(arguments), error)
    if not isinstance(outcome, dict):
        sys.exit(0)
    _emit(outcome, output_format(arguments))
    sys.exit(outcome["exit_code"])


def _refused(error: CpfError, arguments: list[str]) -> Envelope:
    """A refusal's envelope, saying where the run stands when the command named one."""
    from checkpointflow import engine

    command = cli.commands.get(_command_name(arguments))
    name = command.name if command is not None and command.name else "cpf"
    return engine.refusal(name, error, _named_run(command, arguments))


def _named_run(command: click.Command | None, arguments: list[str]) -> str | None:
    """The --run-id a command line gives (the last, as Click takes it), if the command
    has that option."""
    if command is None or not any(param.name == "run_id" for param in command.params):
        return None
    found = None
    for index, word in enumerate(arguments):
        if word == "--":
            break
        if word == "--run-id" and index + 1 < len(arguments):
            found = arguments[index + 1]
        elif word.startswith("--run-id="):
            found = word.partition("=")[2]
    return found


def _usage_problem(error: click.UsageError, arguments: list[str]) -> CpfError:
    """Usage problems get an envelope too; the usage text goes to stderr for people."""
    command = error.ctx.command if error.ctx else None
    name = command.name if command is not None and command is not cli else None
    if not arguments:
        sys.stderr.write(cli.get_help(click.Context(cli, info_name="cpf")) + "\n")
        message = "No command given. Run `cpf --help` to see the commands."
    else:
        message = f"{error.format_message()} Run `cpf {name + ' ' if name else ''}--help`."
        sys.stderr.write(f"cpf: {message}\n")
    return ValidationFailure("ERR_USAGE", message)


def _command_name(arguments: list[str]) -> str:
    """The command a command line names: its first word that is neither an option nor the
    value of the top-level --format."""
    for index, word in enumerate(arguments):
        if not word.startswith("-") and (index == 0 or arguments[index - 1] != "--format"):
            return word
    return "cpf"


def _failure(command: str, code: str, message: str, exit_code: int) -> Envelope:
    from checkpointflow import envelope

    return envelope.envelope(
        command,
        ok=False,
        status="failed",
        exit_code=exit_code,
        error={"code": code, "message": message, "step_id": None, "details": None},
    )


def _interrupted(arguments: list[str], stop: BaseException) -> Envelope:
    """A signal stopped a command while no step ran (a command advancing a run reports
    where the run stopped itself); a run it names is reported as it stands."""
    from checkpointflow.errors import Interruption

    name = stop.signal_name if isinstance(stop, interruptions.Interrupted) else "SIGINT"
    message = f"{name} stopped `cpf {_command_name(arguments)}` before it finished."
    return _refused(Interruption(name, message, None, None), arguments)


def _internal(command: str, error: Exception) -> Envelope:
    import os
    import traceback

    if os.environ.get("CPF_DEBUG"):
        traceback.print_exc()
    message = (
        f"Unexpected internal error ({type(error).__name__}: {error}). Set CPF_DEBUG=1 for details."
    )
    return _failure(command, "ERR_INTERNAL", message, EXIT_INTERNAL)


def _emit(outcome: Envelope, chosen_format: str) -> None:
    """The envelope as JSON, or as text for people when asked (exit codes stay the same)."""
    text = shown(outcome, chosen_format)
    try:
        sys.stdout.buffer.write(text.encode("utf-8", "backslashreplace"))
        sys.stdout.flush()
    except OSError:  # a closed pipe, or a terminal that hung up: nobody to tell
        pass
