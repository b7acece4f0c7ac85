"""Telling two histories apart in a log that git merged: conflict markers, with or
without diff3's base section, and two logs joined end to end by a union merge."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from checkpointflow import divergence


def log(start: int, tags: list[str]) -> list[bytes]:
    """Records seq start, start+1, ... each told apart by its tag."""
    return [
        (
            json.dumps({"seq": start + n, "type": "step_finished", "payload": {"step_id": t}})
            + "\n"
        ).encode()
        for n, t in enumerate(tags)
    ]


tags = st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=6)


def split_of(
    shared: list[str], ours: list[str], theirs: list[str], how: str
) -> divergence.Split | None:
    common = log(1, shared)
    mine, yours = log(len(shared) + 1, ours), log(len(shared) + 1, theirs)
    if how == "union":
        data = b"".join(common + mine + yours)
    else:
        base = [b"||||||| merged common ancestors\n"] if how == "diff3" else []
        data = b"".join(
            [*common, b"<<<<<<< HEAD\n", *mine, *base, b"=======\n", *yours, b">>>>>>> theirs\n"]
        )
    return divergence.split_log(data)


@given(tags, tags, tags, st.sampled_from(["markers", "diff3", "union"]))
def test_both_histories_come_back_whole(shared, ours, theirs, how):
    split = split_of(shared, ["x", *ours], ["y", *theirs], how)
    assert split is not None
    assert list(split.shared) == log(1, shared)
    assert list(split.ours) == log(len(shared) + 1, ["x", *ours])
    assert list(split.theirs) == log(len(shared) + 1, ["y", *theirs])
    assert split.how == ("union merge" if how == "union" else "conflict markers")


def test_one_history_is_not_a_split():
    assert divergence.split_log(b"".join(log(1, ["a", "b"]))) is None


def test_a_log_with_a_gap_is_damaged_not_two_histories():
    lines = log(1, ["a", "b", "c"])
    assert divergence.split_log(b"".join([lines[0], lines[2]])) is None


def test_markers_are_git_markers_only():
    assert divergence.is_conflict_marker(b"<<<<<<< HEAD\n")
    assert divergence.is_conflict_marker(b"=======\n")
    assert divergence.is_conflict_marker(b">>>>>>> 1a2b3c (answer)\n")
    assert not divergence.is_conflict_marker(b"<<<<<<<<\n")
    assert not divergence.is_conflict_marker(b'{"seq": 1}\n')


def test_the_description_names_what_each_side_did():
    text = divergence.describe(split_of(["a"], ["x"], ["y", "z"], "union"))
    assert "both have event 1" in text
    assert "ours has 1 event (step_finished x)" in text
    assert "theirs has 2 events (step_finished y, step_finished z)" in text
