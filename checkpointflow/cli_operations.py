"""Commands for operating runs: list, logs, flows, graph, delete, gc, verify, reconcile,
export, import.

Each parses its options and calls one function of `operations.py`, which returns the
envelope. Engine modules are imported inside each command to keep start-up fast.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

Envelope = dict[str, Any]
Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def complete_run_id(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Completion of --run-id: `last` and the ids in the state root, newest first, each
    with its workflow and status where the shell shows them (zsh, fish)."""
    from click.shell_completion import CompletionItem

    from checkpointflow import operations

    return [
        CompletionItem(run_id, help=about)
        for run_id, about in operations.complete_run_ids(incomplete)
    ]


def complete_flow_id(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """Completion of flow ids: the valid flows `cpf flows` finds."""
    from click.shell_completion import CompletionItem

    from checkpointflow import discovery

    ids = {flow.id for flow in discovery.discover() if flow.id and flow.valid}
    return [CompletionItem(flow_id) for flow_id in sorted(ids) if flow_id.startswith(incomplete)]


RUN_ID_HELP = "The run to act on: its id, the start of it, or `last`."


def run_id_option(
    required: bool = True,
    help: str = RUN_ID_HELP,
    workflow_filter: bool = True,
    exclusive_with: tuple[str, ...] = (),
) -> Decorator:
    """--run-id, resolved to a whole id before the command sees it: `last` is the run
    started last, and the start of an id stands for the one id it begins. With
    `workflow_filter`, --workflow ID keeps only that workflow's runs. Beside any of the
    `exclusive_with` options it is left as given, for the command to refuse the pair."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def resolved(*args: Any, run_id: str | None, **kwargs: Any) -> Any:
            workflow_id = kwargs.pop("run_workflow", None)
            if run_id is not None and not any(kwargs.get(name) for name in exclusive_with):
                from checkpointflow import catalog, store

                run_id = _resolved(catalog, store, run_id, workflow_id)
            return function(*args, run_id=run_id, **kwargs)

        if workflow_filter:
            resolved = click.option(
                "--workflow",
                "run_workflow",
                default=None,
                help="With --run-id last or an id's start: only runs of this workflow id.",
                shell_complete=complete_flow_id,
            )(resolved)
        return click.option(
            "--run-id", required=required, help=help, shell_complete=complete_run_id
        )(resolved)

    return decorate


def _resolved(catalog: Any, store: Any, run_id: str, workflow_id: str | None) -> str:
    """The whole id; an id that names no run is passed on as given, so that the command
    reports it beside whatever else is wrong with the command line."""
    from checkpointflow.errors import CpfError

    try:
        return str(catalog.resolve_run_id(store.state_root(), run_id, workflow_id))
    except CpfError as error:
        if error.code != "ERR_RUN_NOT_FOUND" or run_id == catalog.LAST or workflow_id:
            raise
        return run_id


@click.command("list")
@click.option("--status", "statuses", help="Only runs in these statuses (comma list).")
@click.option("--workflow", "workflow_id", help="Only runs of this workflow id.")
@click.option("--since", help="Updated since: an ISO date/time, or a duration (2d, 12h, 30m).")
@click.option("--older-than", help="Not updated for this long (2d, 12h, 30m).")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many runs.")
def list_command(
    statuses: str | None,
    workflow_id: str | None,
    since: str | None,
    older_than: str | None,
    limit: int | None,
) -> Envelope:
    """The runs in the state root, newest first."""
    from checkpointflow import operations

    return operations.list_runs(statuses, workflow_id, since, older_than, limit)


@click.command()
@run_id_option()
@click.option("--step", "step_id", help="Only events of this step.")
@click.option("--output", help="Show a step attempt's captured stdout/stderr: STEP or STEP:N.")
@click.option("--attempt", type=click.IntRange(min=1), help="The attempt for --output.")
@click.option("--follow", is_flag=True, help="Stream new events to stderr while the run runs.")
@click.option("--timeout", default=600.0, show_default=True, help="Stop following after this.")
@click.option("--max-bytes", default=65536, show_default=True, type=click.IntRange(min=1))
def logs(
    run_id: str,
    step_id: str | None,
    output: str | None,
    attempt: int | None,
    follow: bool,
    timeout: float,
    max_bytes: int,
) -> Envelope:
    """A run's events in order, or one step attempt's captured output."""
    from checkpointflow import operations

    return operations.logs(run_id, step_id, output, attempt, follow, timeout, max_bytes)


@click.command(short_help="The workflows found here and in ~/.checkpointflow/flows/.")
@click.option(
    "--detail",
    "flow_id",
    help="Show one flow (by id, or by id or name ignoring case): inputs, steps, a run command.",
    shell_complete=complete_flow_id,
)
def flows(flow_id: str | None) -> Envelope:
    """Workflow files in ./.checkpointflow/, ~/.checkpointflow/flows/ and ~/.checkpointflow/."""
    from checkpointflow import operations

    return operations.flows(flow_id)


@click.command()
@click.option("--file", "-f", "path", help="The workflow YAML file.")
@click.option(
    "--flow", "flow_id", help="A flow id from `cpf flows`.", shell_complete=complete_flow_id
)
@run_id_option(
    required=False,
    help="Draw this run's workflow, coloured by step status (an id, its start, or `last`).",
    workflow_filter=False,
    exclusive_with=("path", "flow_id"),
)
@click.option(
    "--format",
    "format_name",
    type=click.Choice(["mermaid", "dot"]),
    default="mermaid",
    show_default=True,
)
@click.option("--raw", is_flag=True, help="Print only the diagram text (for Markdown or dot).")
def graph(
    path: str | None, flow_id: str | None, run_id: str | None, format_name: str, raw: bool
) -> Envelope | None:
    """Draw a workflow as a Mermaid or Graphviz diagram."""
    from checkpointflow import operations

    outcome = operations.graph(path, flow_id, run_id, format_name)
    if not raw:
        return outcome
    click.echo(outcome["result"]["graph"], nl=False)
    return None


@click.command()
@run_id_option()
@click.option("--force", is_flag=True, help="Delete even a waiting or running run.")
def delete(run_id: str, force: bool) -> Envelope:
    """Delete one run folder."""
    from checkpointflow import operations

    return operations.delete(run_id, force)


@click.command()
@click.option("--older-than", required=True, help="Runs not updated for this long (30d).")
@click.option(
    "--status", "statuses", help="Statuses to remove [default: completed,failed,cancelled]."
)
@click.option("--dry-run", is_flag=True, help="Only report what would be deleted.")
def gc(older_than: str, statuses: str | None, dry_run: bool) -> Envelope:
    """Delete old finished runs."""
    from checkpointflow import operations

    return operations.gc(older_than, statuses, dry_run)


@click.command(short_help="Check that a run's log, state, snapshot and outputs agree.")
@run_id_option(
    required=False,
    help="The run to check (an id, its start, or `last`).",
    exclusive_with=("every",),
)
@click.option("--all", "every", is_flag=True, help="Check every run in the state root.")
def verify(run_id: str | None, every: bool) -> Envelope:
    """Check that a run's log, state, workflow snapshot and outputs agree."""
    from checkpointflow import operations

    return operations.verify(run_id, every)


@click.command()
@run_id_option()
@click.option("--out", required=True, help="The archive to write, e.g. run.tar.gz.")
@click.option("--force", is_flag=True, help="Overwrite an existing archive.")
def export(run_id: str, out: str, force: bool) -> Envelope:
    """Pack a run folder into a .tar.gz to hand to someone else."""
    from checkpointflow import operations

    return operations.export(run_id, out, force)


@click.command("import", short_help="Unpack a run archive from `cpf export`, after checking it.")
@click.argument("archive", type=click.Path(dir_okay=False))
def import_command(archive: str) -> Envelope:
    """Unpack a run archive from `cpf export` into the state root, after checking it."""
    from checkpointflow import operations

    return operations.import_run(archive)


@click.command()
@run_id_option()
@click.option(
    "--keep",
    type=click.Choice(["ours", "theirs"]),
    default=None,
    help="Which history to keep when the log holds two (git's ours and theirs).",
)
@click.option("--actor", default=None, help="Who is acting, for the record.")
def reconcile(run_id: str, keep: str | None, actor: str | None) -> Envelope:
    """Keep one history of a run merged from two copies (git).

    The other copy's events and output files are recorded in a history_merged event."""
    from checkpointflow import operations

    return operations.reconcile(run_id, keep, actor)


COMMANDS = (
    list_command,
    logs,
    flows,
    graph,
    delete,
    gc,
    verify,
    reconcile,
    export,
    import_command,
)


def register(group: click.Group) -> None:
    """Add the operations commands to the `cpf` group."""
    for command in COMMANDS:
        group.add_command(command)
