"""fakedet.cli.pipeout's counting of what a pipe's or socket's reader has taken."""

import io
import os
import socket
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="FIONREAD/TIOCOUTQ as on Linux")


def _taken_after_reading(r_read, raw, n_reads):
    from fakedet.cli import pipeout

    stream = io.BufferedWriter(raw)
    stream.write(b"x" * 3 * pipeout.CHUNK)
    stream.flush()
    before = raw.sent - pipeout._queued(raw)
    for _ in range(n_reads):
        assert len(r_read(100)) == 100
    return before, raw.sent - pipeout._queued(raw)


def test_a_pipe_reader_is_seen_taking_a_few_bytes():
    from fakedet.cli import pipeout

    r, w = os.pipe()
    try:
        st = os.fstat(w)
        raw = pipeout._TimedPipe(w, (st.st_dev, st.st_ino), socket=False)
        before, after = _taken_after_reading(lambda n: os.read(r, n), raw, 1)
        assert (before, after) == (0, 100)
    finally:
        os.close(r)
        os.close(w)


def test_a_socket_reader_is_seen_taking_a_few_bytes():
    """A Unix socket's send queue counts whole buffers, one per write, until each is read to its
    end: with 4 KiB writes a reader taking 100 bytes at a time showed no progress for 41 reads.
    The socket's writes are small enough that six reads of 100 bytes show."""
    from fakedet.cli import pipeout

    a, b = socket.socketpair()
    try:
        st = os.fstat(b.fileno())
        raw = pipeout._TimedPipe(b.fileno(), (st.st_dev, st.st_ino), socket=True)
        before, after = _taken_after_reading(a.recv, raw, 6)
        assert after > before
    finally:
        a.close()
        b.close()
