"""Hand a run to someone else: a run folder as a .tar.gz, and back into a state root.

An archive holds one folder, `<run_id>/`, with regular files only. Importing checks every
member before anything is written (no absolute paths, no `..`, no links or devices, one
run folder with a valid id and its log and workflow), extracts into a temporary folder in
the state root, verifies the run, and only then renames it into `runs/`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tarfile
from pathlib import Path, PurePosixPath

import attrs

from checkpointflow import store
from checkpointflow.errors import ValidationFailure

LEFT_OUT = ("lock",)  # machine-local files that never travel
REQUIRED = (store.EVENTS_FILE, store.WORKFLOW_FILE)


@attrs.frozen(slots=False)
class Member:
    """One checked archive entry: where it goes inside the run folder."""

    relative: PurePosixPath  # below `<run_id>/`; empty for the folder itself
    is_folder: bool
    entry: tarfile.TarInfo = attrs.field(eq=False, repr=False)


def exported_files(folder: store.RunFolder) -> list[Path]:
    """The run folder's files and folders that travel, in a stable order."""
    kept = []
    for path in sorted(folder.path.rglob("*")):
        relative = path.relative_to(folder.path)
        if path.is_symlink() or relative.name in LEFT_OUT or relative.name.endswith(".tmp"):
            continue
        if path.is_file() or path.is_dir():
            kept.append(path)
    return kept


def write_archive(folder: store.RunFolder, out: Path) -> int:
    """Write `<run_id>/...` to `out` (via a temporary file); returns the number of files."""
    temporary = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    count = 0
    with store.persisting(out):
        try:
            with tarfile.open(temporary, "w:gz") as archive:
                archive.add(folder.path, arcname=folder.run_id, recursive=False, filter=_plain)
                for path in exported_files(folder):
                    arcname = f"{folder.run_id}/{path.relative_to(folder.path).as_posix()}"
                    archive.add(path, arcname=arcname, recursive=False, filter=_plain)
                    count += path.is_file()
            os.replace(temporary, out)
        finally:
            with contextlib.suppress(OSError):
                temporary.unlink()
    return count


def _plain(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """No owner names or ids from this machine."""
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def check_members(entries: list[tarfile.TarInfo], source: str) -> tuple[str, list[Member]]:
    """The run id and the checked members of an archive; the first bad member is refused."""
    run_ids: set[str] = set()
    members: list[Member] = []
    for entry in entries:
        parts = _safe_parts(entry, source)
        run_ids.add(parts[0])
        if len(run_ids) > 1:
            raise _refused(source, f"holds more than one top folder ({', '.join(sorted(run_ids))})")
        members.append(Member(PurePosixPath(*parts[1:]), entry.isdir(), entry))
    names = [str(member.relative) for member in members if not member.is_folder]
    if len(names) != len(set(names)):
        raise _refused(source, "holds the same file twice")
    if not run_ids:
        raise _refused(source, "is empty")
    run_id = run_ids.pop()
    if not store.RUN_ID_PATTERN.fullmatch(run_id):
        raise _refused(source, f"top folder {run_id!r} is not a run id (letters, digits, _ and -)")
    present = {str(member.relative) for member in members if not member.is_folder}
    missing = [name for name in REQUIRED if name not in present]
    if missing:
        raise _refused(source, f"is not a run folder: {run_id}/{' and '.join(missing)} missing")
    return run_id, members


def _safe_parts(entry: tarfile.TarInfo, source: str) -> tuple[str, ...]:
    """The path parts of a member that stays inside its folder and is a file or folder."""
    name = entry.name
    if not (entry.isfile() or entry.isdir()):
        raise _refused(source, f"member {name!r} is a link, device or other special file")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise _refused(source, f"member {name!r} has an absolute path")
    if "\\" in name:
        raise _refused(source, f"member {name!r} has a backslash in its path")
    parts = tuple(part for part in PurePosixPath(name).parts if part != ".")
    if ".." in parts:
        raise _refused(source, f"member {name!r} points outside its folder (..)")
    if not parts:
        raise _refused(source, f"member {name!r} has no name")
    return parts


def _refused(source: str, why: str) -> ValidationFailure:
    return ValidationFailure(
        "ERR_ARCHIVE_INVALID",
        f"{source} {why}; nothing was imported. An archive from `cpf export` holds one "
        "<run_id>/ folder with events.jsonl and workflow.yaml.",
    )


def read_members(path: Path) -> tuple[tarfile.TarFile, str, list[Member]]:
    """Open an archive and check all its members; the caller closes it."""
    try:
        archive = tarfile.open(path, "r:*")  # noqa: SIM115 (closed by the caller)
    except FileNotFoundError:
        raise ValidationFailure("ERR_FILE_NOT_FOUND", f"Archive {path} does not exist.") from None
    except (tarfile.TarError, OSError, EOFError) as error:
        raise _refused(str(path), f"is not a tar archive ({error})") from None
    try:
        run_id, members = check_members(archive.getmembers(), str(path))
    except (tarfile.TarError, OSError, EOFError) as error:
        archive.close()
        raise _refused(str(path), f"is damaged ({error})") from None
    except ValidationFailure:
        archive.close()
        raise
    return archive, run_id, members


def extract(archive: tarfile.TarFile, members: list[Member], target: Path) -> None:
    """Write the checked members below `target` as plain files and folders."""
    target.mkdir(parents=True)
    for member in members:
        destination = target.joinpath(*member.relative.parts)
        if member.is_folder:
            destination.mkdir(parents=True, exist_ok=True)
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        source = archive.extractfile(member.entry)
        if source is None:
            continue
        with source, open(destination, "xb") as handle:
            shutil.copyfileobj(source, handle)


def scratch_folder(root: Path, run_id: str) -> Path:
    """A temporary folder in the state root, on the same disk as `runs/` for the rename."""
    return root / f".import-{run_id}-{os.urandom(4).hex()}"


def move_into_runs(scratch: Path, root: Path, run_id: str) -> store.RunFolder:
    """Rename the extracted run into place, refusing to replace a run that appeared since."""
    destination = root / "runs" / run_id
    with store.persisting(destination):
        (root / "runs").mkdir(parents=True, exist_ok=True)
        if destination.exists():
            raise run_exists(run_id, root)
        os.rename(scratch, destination)
    return store.RunFolder(run_id, destination)


def run_exists(run_id: str, root: Path) -> ValidationFailure:
    return ValidationFailure(
        "ERR_RUN_EXISTS",
        f"Run {run_id} already exists under {root / 'runs'}; nothing was imported. "
        f"Delete it first (`cpf delete --run-id {run_id}`) if the archive should replace it.",
    )


def remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        shutil.rmtree(path)
