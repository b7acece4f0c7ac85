"""Handing a run over: `cpf export` / `cpf import` between two state roots, and a run
folder carried through git. The receiving side resumes the run to completion."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile

import pytest
from conftest import CPF, Cpf, check_run_folders
from e2e_helpers import resume
from ops_helpers import holding_lock, waiting_run


@pytest.fixture
def elsewhere(tmp_path):
    """A second machine: its own state root and working folder."""
    work = tmp_path / "elsewhere"
    work.mkdir()
    other = Cpf(tmp_path / "state2", work)
    yield other
    check_run_folders(other.root)


def test_export_import_resume_in_a_second_root(cpf, elsewhere, tmp_path):
    run_id = waiting_run(cpf)
    archive = tmp_path / "run.tar.gz"
    exported = cpf("export", "--run-id", run_id, "--out", str(archive))
    assert exported.exit_code == 0 and exported.envelope["result"]["archive"] == str(archive)
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert all(name == run_id or name.startswith(run_id + "/") for name in names)
    assert f"{run_id}/events.jsonl" in names and f"{run_id}/lock" not in names

    imported = elsewhere("import", str(archive))
    assert imported.exit_code == 0 and imported.envelope["result"]["run_id"] == run_id
    assert imported.envelope["result"]["run_status"] == "waiting"
    assert elsewhere("verify", "--run-id", run_id).exit_code == 0
    done = resume(elsewhere, run_id, "go", {})
    assert done.exit_code == 0 and done.envelope["result"] == "finished"
    assert cpf("status", "--run-id", run_id).envelope["status"] == "waiting"
    assert not [p for p in elsewhere.root.iterdir() if p.name.startswith(".import")]


def test_import_never_overwrites(cpf, tmp_path):
    run_id = waiting_run(cpf)
    archive = tmp_path / "run.tar.gz"
    cpf("export", "--run-id", run_id, "--out", str(archive))
    before = (cpf.run_folder(run_id) / "events.jsonl").read_bytes()
    result = cpf("import", str(archive))
    assert result.exit_code == 10 and result.error_code == "ERR_RUN_EXISTS"
    assert (cpf.run_folder(run_id) / "events.jsonl").read_bytes() == before


def test_export_refuses_to_overwrite_without_force(cpf, tmp_path):
    run_id = waiting_run(cpf)
    archive = tmp_path / "run.tar.gz"
    archive.write_text("keep me")
    refused = cpf("export", "--run-id", run_id, "--out", str(archive))
    assert refused.exit_code == 10 and refused.error_code == "ERR_FILE_EXISTS"
    assert archive.read_text() == "keep me"
    assert cpf("export", "--run-id", run_id, "--out", str(archive), "--force").exit_code == 0
    assert tarfile.is_tarfile(archive)


def test_export_refuses_a_run_in_progress(cpf, tmp_path):
    run_id = waiting_run(cpf)
    with holding_lock(cpf.run_folder(run_id)):
        locked = cpf("export", "--run-id", run_id, "--out", str(tmp_path / "a.tgz"))
    assert locked.exit_code == 70 and locked.error_code == "ERR_LOCK_CONFLICT"


def test_export_refuses_a_running_run(cpf, tmp_path):
    cpf.write(
        "crash.yaml",
        "schema_version: checkpointflow/v1\nworkflow:\n  id: c\n  steps:\n"
        "    - id: a\n      kind: cli\n      command: echo a\n",
    )
    subprocess.run(
        [CPF, "run", "-f", "crash.yaml"],
        cwd=cpf.cwd,
        env={**cpf.env, "CHECKPOINTFLOW_TEST_CRASH": "append:2"},
        capture_output=True,
        check=False,
        timeout=60,
    )
    run_id = next((cpf.root / "runs").iterdir()).name
    assert cpf("status", "--run-id", run_id).envelope["status"] == "running"
    result = cpf("export", "--run-id", run_id, "--out", str(tmp_path / "a.tgz"))
    assert result.exit_code == 20 and result.error_code == "ERR_RUN_ACTIVE"
    assert not (tmp_path / "a.tgz").exists()
    assert cpf("recover", "--run-id", run_id).envelope["status"] == "failed"  # settle it


def _tar(tmp_path, entries, name="bad.tar.gz"):
    """An archive from (TarInfo fields, data) pairs."""
    path = tmp_path / name
    with tarfile.open(path, "w:gz") as tar:
        for fields, data in entries:
            info = tarfile.TarInfo(fields.pop("name"))
            for key, value in fields.items():
                setattr(info, key, value)
            info.size = len(data) if data is not None else 0
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


RUN = "20260101T000000000Z-0123456789"
GOOD = [({"name": f"{RUN}/events.jsonl"}, b"{}\n"), ({"name": f"{RUN}/workflow.yaml"}, b"x")]


@pytest.mark.parametrize(
    "entries, words",
    [
        ([*GOOD, ({"name": f"{RUN}/../../evil.txt"}, b"x")], "outside its folder"),
        ([*GOOD, ({"name": "/tmp/evil.txt"}, b"x")], "absolute path"),
        (
            [
                *GOOD,
                ({"name": f"{RUN}/link", "type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}, None),
            ],
            "link, device",
        ),
        (
            [
                *GOOD,
                (
                    {
                        "name": f"{RUN}/hard",
                        "type": tarfile.LNKTYPE,
                        "linkname": f"{RUN}/events.jsonl",
                    },
                    None,
                ),
            ],
            "link, device",
        ),
        ([*GOOD, ({"name": f"{RUN}/dev", "type": tarfile.CHRTYPE}, None)], "link, device"),
        ([*GOOD, ({"name": "other/events.jsonl"}, b"x")], "more than one top folder"),
        (
            [
                ({"name": "not a run!/events.jsonl"}, b"{}\n"),
                ({"name": "not a run!/workflow.yaml"}, b"x"),
            ],
            "is not a run id",
        ),
        ([({"name": f"{RUN}/notes.txt"}, b"hello")], "is not a run folder"),
        ([], "is empty"),
        ([*GOOD, ({"name": f"{RUN}/events.jsonl"}, b"again")], "same file twice"),
    ],
)
def test_import_refuses_unsafe_archives(cpf, tmp_path, entries, words):
    result = cpf("import", str(_tar(tmp_path, [(dict(f), d) for f, d in entries])))
    assert result.exit_code == 10 and result.error_code == "ERR_ARCHIVE_INVALID", result.envelope
    assert words in result.envelope["error"]["message"]
    assert not (tmp_path / "evil.txt").exists() and not (cpf.root / "runs").exists()
    assert not list(cpf.root.glob(".import-*"))


def test_import_refuses_what_is_not_a_tar(cpf, tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"\x1f\x8b not really gzip")
    result = cpf("import", str(junk))
    assert result.exit_code == 10 and result.error_code == "ERR_ARCHIVE_INVALID"
    missing = cpf("import", str(tmp_path / "nope.tar.gz"))
    assert missing.exit_code == 10 and missing.error_code == "ERR_FILE_NOT_FOUND"


def test_import_refuses_a_run_that_does_not_verify(cpf, elsewhere, tmp_path):
    run_id = waiting_run(cpf)
    copy = tmp_path / "copy" / run_id
    shutil.copytree(cpf.run_folder(run_id), copy)
    state = json.loads((copy / "state.json").read_text())
    state["inputs"] = {"tampered": True}
    (copy / "state.json").write_text(json.dumps(state))
    archive = tmp_path / "tampered.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(copy, arcname=run_id)
    result = elsewhere("import", str(archive))
    assert result.exit_code == 20 and result.error_code == "ERR_VERIFY_FAILED"
    assert not (elsewhere.root / "runs" / run_id).exists()
    assert not list(elsewhere.root.glob(".import-*"))


def _git(*args, cwd):
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        timeout=60,
    )


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_a_run_folder_carried_through_git_resumes_elsewhere(cpf, elsewhere, tmp_path):
    run_id = waiting_run(cpf)
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copytree(cpf.run_folder(run_id), repo / run_id)
    _git("init", "-q", cwd=repo)
    _git("add", ".", cwd=repo)
    _git("commit", "-q", "-m", "paused run", cwd=repo)
    _git("clone", "-q", str(repo), str(tmp_path / "clone"), cwd=tmp_path)
    (elsewhere.root / "runs").mkdir(parents=True)
    shutil.copytree(tmp_path / "clone" / run_id, elsewhere.root / "runs" / run_id)
    assert elsewhere("verify", "--run-id", run_id).exit_code == 0
    assert elsewhere("status", "--run-id", run_id).envelope["status"] == "waiting"
    done = resume(elsewhere, run_id, "go", {})
    assert done.exit_code == 0 and done.envelope["result"] == "finished"
    assert cpf("status", "--run-id", run_id).envelope["status"] == "waiting"
