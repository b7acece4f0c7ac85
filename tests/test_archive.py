"""Checking the members of a run archive before anything is extracted."""

from __future__ import annotations

import tarfile

import pytest

from checkpointflow.archive import check_members
from checkpointflow.errors import ValidationFailure

RUN = "20260101T000000000Z-0123456789"


def entry(name, kind=tarfile.REGTYPE):
    info = tarfile.TarInfo(name)
    info.type = kind
    return info


GOOD = [entry(RUN, tarfile.DIRTYPE), entry(f"{RUN}/events.jsonl"), entry(f"{RUN}/workflow.yaml")]


def test_a_run_folder_is_accepted():
    run_id, members = check_members([*GOOD, entry(f"./{RUN}/steps/a/1.stdout")], "a.tgz")
    assert run_id == RUN
    assert [str(m.relative) for m in members] == [
        ".",
        "events.jsonl",
        "workflow.yaml",
        "steps/a/1.stdout",
    ]
    assert members[0].is_folder


@pytest.mark.parametrize(
    "extra, words",
    [
        (entry(f"{RUN}/../x"), "outside its folder"),
        (entry("../x"), "outside its folder"),
        (entry("/etc/passwd"), "absolute path"),
        (entry(f"{RUN}\\..\\x"), "backslash"),
        (entry("C:/x"), "absolute path"),
        (entry(f"{RUN}/l", tarfile.SYMTYPE), "link"),
        (entry(f"{RUN}/h", tarfile.LNKTYPE), "link"),
        (entry(f"{RUN}/d", tarfile.BLKTYPE), "device"),
        (entry(f"{RUN}/f", tarfile.FIFOTYPE), "special file"),
        (entry("other/x"), "more than one top folder"),
        (entry(f"{RUN}/events.jsonl"), "same file twice"),
        (entry("."), "has no name"),
    ],
)
def test_unsafe_members_are_refused(extra, words):
    with pytest.raises(ValidationFailure) as caught:
        check_members([*GOOD, extra], "a.tgz")
    assert caught.value.code == "ERR_ARCHIVE_INVALID"
    assert words in caught.value.message and "a.tgz" in caught.value.message


@pytest.mark.parametrize(
    "entries, words",
    [
        ([], "is empty"),
        ([entry("bad id!/events.jsonl"), entry("bad id!/workflow.yaml")], "not a run id"),
        ([entry(f"{RUN}/events.jsonl")], "workflow.yaml missing"),
        ([entry(f"{RUN}/workflow.yaml")], "events.jsonl missing"),
        (
            [entry(f"{RUN}/events.jsonl", tarfile.DIRTYPE), entry(f"{RUN}/workflow.yaml")],
            "events.jsonl missing",
        ),
    ],
)
def test_archives_that_are_not_run_folders(entries, words):
    with pytest.raises(ValidationFailure) as caught:
        check_members(entries, "a.tgz")
    assert words in caught.value.message
