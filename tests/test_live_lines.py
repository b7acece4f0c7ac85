"""The reader behind live output: whole lines however the writer splits its writes, long
lines in pieces, terminal controls dropped, secrets masked."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from checkpointflow.live_output import MAX_LINE_BYTES, FileTail, Followed, LiveOutput, printable

LINES = st.lists(
    st.text(st.characters(exclude_characters="\n\r", exclude_categories=("Cs",)), max_size=30),
    max_size=12,
)


@given(lines=LINES, cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8))
def test_lines_come_whole_however_the_writes_are_cut(lines, cuts):
    data = "".join(line + "\n" for line in lines).encode()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "1.stdout"
        tail = FileTail(path)
        seen = tail.lines(final=False)  # the file does not exist yet
        with open(path, "wb") as writer:
            start = 0
            for cut in [*sorted({min(cut, len(data)) for cut in cuts}), len(data)]:
                writer.write(data[start:cut])
                writer.flush()
                start = max(start, cut)
                seen += tail.lines(final=False)
        seen += tail.lines(final=True)
        tail.close()
    assert [line.decode() for line in seen] == lines


def test_a_last_line_without_newline_and_a_long_line():
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "1.stdout"
        path.write_bytes(b"x" * (MAX_LINE_BYTES * 2 + 5) + b"\nend")
        tail = FileTail(path)
        assert [len(line) for line in tail.lines(final=False)] == [
            MAX_LINE_BYTES,
            MAX_LINE_BYTES,
            5,
        ]
        assert tail.lines(final=True) == [b"end"]
        tail.close()


def test_followed_output_is_masked_and_shown_after_its_key():
    shown: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as folder:
        out, err = Path(folder) / "1.stdout", Path(folder) / "1.stderr"
        out.write_bytes(b"key=hunter22 ok\n\x1b[1mbold\x1b[0m\n")
        err.write_bytes(b"line one of the secret\nnot secret\n")
        live = LiveOutput(lambda key, text: shown.append((key, text)), colour=False)
        secret = "hunter22"
        with live.following("build#1", "build", (out, err), (secret, "line one of the secret\nx")):
            pass
    assert shown == [
        ("build", "key=*** ok"),
        ("build", "bold"),
        ("build", "***"),
        ("build", "not secret"),
    ]


def test_a_multi_line_secret_masks_only_its_longer_lines():
    followed = Followed("k", (), ("ab\nlonger part",))
    assert followed._masked("ab longer part") == "ab ***"


def test_terminal_controls():
    assert printable("\x1b[32mok\x1b[0m", colour=True) == "\x1b[32mok\x1b[0m"
    assert printable("\x1b[32mok\x1b[0m", colour=False) == "ok"
    assert printable("10%\r50%\r100%\r", colour=True) == "100%"
    assert printable("\x1b]0;title\x07bell\x07", colour=True) == "bell"
    assert printable("\x1b[2Jcleared", colour=True) == "cleared"
