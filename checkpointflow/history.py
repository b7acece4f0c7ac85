"""A run's history: the workflow snapshots it ran with, and its log folded into state.

Readers (`status`, `inspect`, `list`, `verify`) need only this and the store; the driver
uses it to pick a run up where it stands.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from checkpointflow import divergence, document, json_schema, store
from checkpointflow.cache import DiskCache
from checkpointflow.composition import Fetch, Parse, Tree, load_tree
from checkpointflow.errors import InternalFailure, PersistenceFailure, ValidationFailure
from checkpointflow.interpreter import advance, wait_deadline
from checkpointflow.model import Workflow
from checkpointflow.state import (
    OLDER_STATE_SCHEMAS,
    Event,
    RunRetried,
    RunStarted,
    RunState,
    event_from_record,
    state_from_json,
)

if TYPE_CHECKING:
    from checkpointflow.checks import Problem

REFS_FILE = "refs.json"


def open_root() -> Path:
    """The state root, with schema checks set to reuse code compiled by earlier commands."""
    root = store.state_root()
    prepare(root)
    return root


def prepare(root: Path) -> None:
    """Let schema checks reuse code compiled by earlier commands."""
    json_schema.use_code_cache(DiskCache(root / "cache" / "schemas", ".py"))


def load_workflow_file(root: Path, path: str) -> tuple[Tree, bytes]:
    """A workflow file with every sub-workflow it references (relative to the file)."""
    data = document.read_document(path)
    return load_tree(data, path, _parser(root), _fetch_file), data


def workflow_from_bytes(
    root: Path, data: bytes, source: str, folder: store.RunFolder | None = None
) -> Workflow:
    """A checked document (reusing earlier checks), with its sub-workflows taken from the
    run folder's copies; without a folder it may reference none."""
    top = hashlib.sha256(data).hexdigest()
    fetch = _fetch_from(folder, top) if folder is not None else _fetch_nothing
    return load_tree(data, source, _parser(root), fetch).workflow


def _parser(root: Path) -> Parse:
    """Parse and check a document, reusing the result for bytes checked before."""
    cache = DiskCache(root / "cache" / "documents", ".json")

    def parse(data: bytes, source: str) -> tuple[dict[str, Any], list[Problem]]:
        key = hashlib.sha256(data).hexdigest()
        cached = cache.load(key)
        if cached is not None:
            return json.loads(cached), []
        parsed = document.parse_yaml(data, source)
        problems = document.find_problems(parsed)
        if not problems:
            cache.save(key, json.dumps(parsed))
        return parsed, problems

    return parse


def _fetch_file(source: str, place: str, ref: str) -> tuple[bytes, str]:
    path = Path(source).parent / ref
    return document.read_document(str(path)), str(path)


def _fetch_nothing(source: str, place: str, ref: str) -> tuple[bytes, str]:
    raise ValidationFailure("ERR_VALIDATION_WORKFLOW", "sub-workflows cannot be loaded here")


def _kept_refs(folder: store.RunFolder) -> dict[str, Any]:
    try:
        refs = json.loads((folder.path / "workflows" / REFS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return refs if isinstance(refs, dict) else {}


def _fetch_from(folder: store.RunFolder, top_sha: str) -> Fetch:
    """Sub-workflows from the run's own copies: workflows/refs.json names, for each
    version of the run's workflow, the document at each place in its tree."""
    places = _kept_refs(folder).get(top_sha)
    places = places if isinstance(places, dict) else {}

    def fetch(source: str, place: str, ref: str) -> tuple[bytes, str]:
        child = places.get(f"{place} > {ref}" if place else ref)
        path = folder.path / "workflows" / f"{child}.yaml"
        try:
            if not isinstance(child, str):
                raise FileNotFoundError
            data = path.read_bytes()
        except OSError:
            raise ValidationFailure(
                "ERR_PERSISTENCE",
                f"the run folder {folder.path} has no copy of it (workflows/{REFS_FILE})",
            ) from None
        return data, str(path)

    return fetch


def sub_workflows_differ(folder: store.RunFolder, tree: Tree) -> bool:
    """Whether the run already holds other sub-workflows for this very main document."""
    kept = _kept_refs(folder).get(tree.sha256)
    return kept is not None and kept != tree.refs


def keep_sub_workflows(folder: store.RunFolder, tree: Tree) -> None:
    """Copy every referenced document into the run folder, so the run never reads the
    originals again (workflows/<sha256>.yaml, placed by workflows/refs.json)."""
    if not tree.documents:
        return
    kept = folder.path / "workflows"
    with store.persisting(kept):
        kept.mkdir(exist_ok=True)
        for sha, data in tree.documents.items():
            if not (kept / f"{sha}.yaml").exists():
                store.write_file_atomically(kept / f"{sha}.yaml", data)
        refs = {**_kept_refs(folder), tree.sha256: tree.refs}
        text = json.dumps(refs, indent=2, sort_keys=True) + "\n"
        store.write_file_atomically(kept / REFS_FILE, text.encode())


def snapshot_workflow(root: Path, folder: store.RunFolder, sha: str | None = None) -> Workflow:
    """A workflow the run ran with, from its own folder: the one with hash `sha` (kept in
    workflows/<sha>.yaml once a retry brought an edited workflow), else workflow.yaml."""
    kept = folder.path / "workflows" / f"{sha}.yaml"
    path = kept if sha and kept.is_file() else folder.workflow_file
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InternalFailure(
            "ERR_PERSISTENCE",
            f"The run's workflow snapshot {path} cannot be read: {error.strerror}.",
        ) from None
    if sha and hashlib.sha256(data).hexdigest() != sha:
        raise InternalFailure(
            "ERR_PERSISTENCE",
            f"The run's workflow snapshot with hash {sha[:12]} is missing from {folder.path}.",
        )
    return workflow_from_bytes(root, data, str(path), folder)


def fold(
    root: Path, folder: store.RunFolder, events: Iterable[Event], state: RunState | None = None
) -> RunState:
    """Replay events onto a state, switching workflow where a retry brought a new one."""
    workflow: Workflow | None = None
    current = state.workflow_sha256 if state else None
    for event in events:
        wanted = current
        if isinstance(event, RunStarted) or (
            isinstance(event, RunRetried) and event.workflow_sha256
        ):
            wanted = event.workflow_sha256
        if workflow is None or wanted != current:
            workflow, current = snapshot_workflow(root, folder, wanted), wanted
        state, _ = advance(workflow, state, event)
    if state is None:
        raise PersistenceFailure(
            "ERR_PERSISTENCE",
            f"Run {folder.run_id} has no recorded events (it stopped while starting); "
            f"remove the folder {folder.path}.",
        )
    return state


def load_state(root: Path, folder: store.RunFolder) -> RunState:
    """The checkpoint plus any events logged after it (a crash between the two).

    A damaged, hand-edited or half-merged state.json is only a lost checkpoint: the log
    is the truth, so the state is rebuilt from it (`cpf verify` reports the damage). A
    whole checkpoint of another history than the log's, or a log that is not one
    history, is ERR_RUN_DIVERGED (or ERR_RUN_DAMAGED): reading on would mix two stories.
    """
    checkpoint = _checkpoint(folder)
    if checkpoint is None:
        records, _ = store.read_events(folder)
        return fold(root, folder, map(event_from_record, records))
    state, offset = checkpoint
    problem = divergence.checkpoint_problem(state, store.record_ending_at(folder, offset))
    if problem is not None:
        raise divergence.diverged(folder.run_id, problem)
    records, _ = store.read_events(folder, offset, first_seq=state.seq + 1)
    if records:
        state = fold(root, folder, map(event_from_record, records), state)
    return state


def _checkpoint(folder: store.RunFolder) -> tuple[RunState, int] | None:
    """state.json and where in the log its last event ends; None when it is missing,
    damaged or does not match its checksum."""
    try:
        data = store.read_state(folder)
        if not data or "log_offset" not in data:
            return None
        if data.get("schema_version") in OLDER_STATE_SCHEMAS:
            return None  # an older checkpoint format: the log rebuilds the state
        offset = int(data.pop("log_offset"))
        return state_from_json(data), offset
    except (PersistenceFailure, KeyError, TypeError, ValueError):
        return None


def replay_run(root: Path, folder: store.RunFolder) -> RunState:
    """The state rebuilt from events.jsonl alone, ignoring the state.json checkpoint."""
    records, _ = store.read_events(folder)
    return fold(root, folder, map(event_from_record, records))


def summary_of(state: RunState) -> dict[str, Any]:
    """The few fields `cpf list` shows, kept beside state.json so listing stays cheap."""
    wait = state.wait or {}
    return {
        "run_id": state.run_id,
        "workflow_id": state.workflow_id,
        "workflow_name": state.workflow_name,
        "workflow_description": state.workflow_description,
        "workflow_version": state.workflow_version,
        "status": state.status,
        "current_step_id": state.current_step_id,
        "created_at": state.created_at,
        "updated_at": state.updated_at,
        "event_name": wait.get("event_name"),
        "audience": wait.get("audience"),
        "deadline": wait_deadline(state),  # the earliest of every pending wait
        "seq": state.seq,
    }


def workflow_changed(state: RunState) -> str | None:
    """A warning when the run's workflow file (the one it started from, or the one a
    `retry --workflow` brought) is gone or differs from the snapshot the run uses."""
    if not state.workflow_path:
        return None
    try:
        digest = hashlib.sha256(Path(state.workflow_path).read_bytes()).hexdigest()
    except OSError:
        return (
            f"The workflow file {state.workflow_path} is gone; the run continues from the "
            "snapshot in its folder."
        )
    if digest != state.workflow_sha256:
        return (
            f"The workflow file {state.workflow_path} changed since the run took its "
            "snapshot; the run continues from the snapshot in its folder."
        )
    return None
