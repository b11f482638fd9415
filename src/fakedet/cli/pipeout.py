"""CLI layer: the ``fakedet`` command's stdout and stderr when they are pipes, so that a signal
ends the command even when nobody reads them any more.

A Ctrl-C, SIGTERM or SIGHUP lets the command finish what it was writing (a batch of records, the
``]`` that closes a json array): the records are kept whole. When the reader of the pipe has
stopped reading, that writing blocks for ever, and one signal did not end the command. Here the
pipe is written in chunks of at most :data:`CHUNK` bytes, each one's time kept: after a signal,
a watcher ends the process (the signal's status, a message on stderr) once a write has waited
:data:`GIVE_UP_S` seconds with no chunk taken. A reader that is slow but reads keeps every
record, however long the rest takes; one that stopped loses what had not gone out.

Installed only by the command's own entry point (:func:`fakedet.cli.main`), whose process ends
with the command; a program that runs a command in-process (a test) keeps its streams.
"""

from __future__ import annotations

import io
import os
import stat
import sys
import threading
import time
from typing import Optional

CHUNK = 4096  # PIPE_BUF on Linux: a write of this size goes in whole once the pipe has room
GIVE_UP_S = 10.0  # after a signal: how long a write may wait with nothing taken by the reader
_POLL_S = 0.25

_outputs: list = []  # the _TimedPipe objects installed
_armed = threading.Event()


class _TimedPipe(io.FileIO):
    """A pipe's descriptor written in chunks, with the time of the last chunk taken and whether a
    write is waiting now."""

    def __init__(self, fd: int) -> None:
        super().__init__(fd, "wb", closefd=False)
        self.waiting_since: Optional[float] = None
        self.last_taken = time.monotonic()

    def write(self, b) -> int:
        view = memoryview(b).cast("B")[:CHUNK]
        self.waiting_since = time.monotonic()
        try:
            n = super().write(view)
        finally:
            self.waiting_since = None
        if n:
            self.last_taken = time.monotonic()
        return n


class _FlushingWriter(io.BufferedWriter):
    """For a stream that was unbuffered (``python -u``, PYTHONUNBUFFERED): each write goes out at
    once, as it did; the buffer only lets the chunks go out whole."""

    def write(self, b) -> int:
        n = super().write(b)
        self.flush()
        return n


def _is_pipe(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def _wrapped(stream, fd: int):
    """``stream`` (a text stream on ``fd``) again, over a :class:`_TimedPipe`; None where it is not
    the standard text stream of a pipe."""
    if not isinstance(stream, io.TextIOWrapper) or not _is_pipe(fd):
        return None
    try:
        if stream.fileno() != fd:
            return None
        stream.flush()
    except (OSError, ValueError):
        return None
    raw = _TimedPipe(fd)
    unbuffered = isinstance(stream.buffer, io.FileIO)
    buffer = (_FlushingWriter if unbuffered else io.BufferedWriter)(raw)
    new = io.TextIOWrapper(buffer, encoding=stream.encoding, errors=stream.errors, newline="\n",
                           line_buffering=stream.line_buffering, write_through=stream.write_through)
    _outputs.append(raw)
    return new


def install() -> None:
    """Puts stdout and stderr, where each is a pipe or socket, over timed chunked writes. Not on
    Windows, whose console and pipes take other paths."""
    if os.name == "nt" or _outputs:
        return
    for name, fd in (("stdout", 1), ("stderr", 2)):
        new = _wrapped(getattr(sys, name), fd)
        if new is not None:
            setattr(sys, name, new)


def arm(status: int, word: str) -> None:
    """A signal came (``word``: "interrupted", "terminated"): from now on a write to a pipe that
    waits :data:`GIVE_UP_S` seconds with nothing taken ends the process with ``status``. Once;
    nothing where no pipe was installed."""
    if not _outputs or _armed.is_set():
        return
    _armed.set()
    signalled = time.monotonic()
    threading.Thread(target=_watch, args=(status, word, signalled), name="fakedet-output-watch",
                     daemon=True).start()


def armed() -> bool:
    return _armed.is_set()


def _stuck(raw: _TimedPipe, signalled: float, now: float) -> bool:
    waiting = raw.waiting_since
    return waiting is not None and now - max(waiting, raw.last_taken, signalled) >= GIVE_UP_S


def _watch(status: int, word: str, signalled: float) -> None:
    while True:
        time.sleep(_POLL_S)
        now = time.monotonic()
        stuck = [raw for raw in _outputs if _stuck(raw, signalled, now)]
        if stuck:
            names = " and ".join("the records' output" if raw.fileno() == 1 else "stderr" for raw in stuck)
            _last_word(f"fakedet: {word}; nothing read from {names} for {GIVE_UP_S:g} s: "
                       "ending without the rest of the output\n")
            os._exit(status)


def _last_word(msg: str) -> None:
    """``msg`` on stderr if it can go at once (stderr may be the very pipe nobody reads)."""
    import select

    try:
        _, ready, _ = select.select([], [2], [], 0)
        if ready:
            os.write(2, msg.encode("utf-8", "backslashreplace"))
    except (OSError, ValueError):
        pass
