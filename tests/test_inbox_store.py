"""The inbox store: create-only entries, numbered in arrival order, never two writers on
one number, a reader never seeing half an entry."""

from __future__ import annotations

import threading
from pathlib import Path

from checkpointflow import store
from checkpointflow.inbox import Inbox


def inbox_in(tmp_path: Path) -> Inbox:
    return Inbox(store.RunFolder("r", tmp_path))


def test_entries_come_back_in_arrival_order(tmp_path):
    inbox = inbox_in(tmp_path)
    assert inbox.names() == [] and inbox.entries() == []
    names = [inbox.put({"n": n}) for n in range(3)]
    assert names == ["000000000001.json", "000000000002.json", "000000000003.json"]
    assert [entry.answer["n"] for entry in inbox.entries()] == [0, 1, 2]
    inbox.remove(names[0])
    assert [entry.answer["n"] for entry in inbox.entries()] == [1, 2]
    assert inbox.put({"n": 3}) == "000000000004.json"


def test_writers_at_once_each_get_their_own_entry(tmp_path):
    inbox = inbox_in(tmp_path)
    threads = [threading.Thread(target=inbox.put, args=({"n": n},)) for n in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    entries = inbox.entries()
    assert sorted(entry.answer["n"] for entry in entries) == list(range(16))
    assert len({entry.name for entry in entries}) == 16
    assert not [p for p in (tmp_path / "inbox").iterdir() if p.name.startswith(".")]


def test_a_half_written_temporary_file_is_not_an_entry(tmp_path):
    inbox = inbox_in(tmp_path)
    inbox.put({"n": 1})
    (tmp_path / "inbox" / ".123.abcd.tmp").write_bytes(b'{"n": ')
    assert [entry.answer for entry in inbox.entries()] == [
        {"schema_version": "checkpointflow-inbox/v1", "n": 1}
    ]
