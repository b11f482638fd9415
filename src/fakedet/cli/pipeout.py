"""CLI layer: the ``fakedet`` command's stdout and stderr when they are pipes, so that a signal
ends the command even when nobody reads them any more.

A Ctrl-C, SIGTERM or SIGHUP lets the command finish what it was writing (a batch of records, the
``]`` that closes a json array): the records are kept whole. When the reader of the pipe has
stopped reading, that writing blocks for ever, and one signal did not end the command. Here the
pipe is written in chunks of at most :data:`CHUNK` bytes (each goes in whole once there is room),
and the bytes each stream has put in are counted: what the reader has taken is that count less
what is still in the pipe (FIONREAD; for a socket its send queue, TIOCOUTQ, with smaller chunks).
After a signal, a watcher ends the process (the signal's status, a message on stderr) once a
write has waited :data:`GIVE_UP_S` seconds in which the reader took nothing. A reader that is
slow but reads, even a few bytes at a time, keeps every record however long the rest takes; one
that stopped loses what had not gone out.

Each write to these streams is also one piece as far as the command's signal handlers go
(``fakedet.cli.common.uninterrupted``): an interruption raised between a chunk going out and the
buffer counting it would make the buffer send the chunk again. An interruption that came during
a write that then fails (the reader went away) is raised, not dropped with the write's error.

Installed only by the command's own entry point (:func:`fakedet.cli.main`), whose process ends
with the command; a program that runs a command in-process (a test) keeps its streams.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import sys
import threading
import time
from typing import Callable, ContextManager, Optional

CHUNK = 4096  # PIPE_BUF on Linux: a write of this size goes in whole once the pipe has room
# A socket's send queue (TIOCOUTQ) counts whole buffers, one per write, until each is read to its
# end: smaller writes let a reader that takes a few bytes at a time be seen taking them.
SOCKET_CHUNK = 512
GIVE_UP_S = 10.0  # after a signal: how long a write may wait with nothing taken by the reader
_POLL_S = 0.25

_outputs: list = []  # the _TimedPipe objects installed
_installed = False  # install() ran: the command's own process, whose streams it may take over
_armed = threading.Event()
_guard: Callable[[], ContextManager] = contextlib.nullcontext


class _TimedPipe(io.FileIO):
    """A pipe's descriptor written in chunks: the bytes put in so far, and since when a write has
    been waiting (None while none is)."""

    def __init__(self, fd: int, pipe: tuple, socket: bool, name: str = "", closefd: bool = False) -> None:
        super().__init__(fd, "wb", closefd=closefd)
        self.pipe, self.socket = pipe, socket  # (st_dev, st_ino): stdout and stderr may share one
        self.name = name or ("stdout" if fd == 1 else "stderr")  # what the give-up message calls it
        self.sent = 0
        self.waiting_since: Optional[float] = None

    def write(self, b) -> Optional[int]:
        self.waiting_since = time.monotonic()
        try:
            n = super().write(memoryview(b).cast("B")[:SOCKET_CHUNK if self.socket else CHUNK])
        finally:
            self.waiting_since = None
        if n:
            self.sent += n
        return n


class _GuardedText(io.TextIOWrapper):
    """A text stream whose writes and flushes are each one piece for the command's signal
    handlers (see the module's docstring). Only in the main thread, where the handlers run: the
    guard's count is the process's, and a write of another thread (a warning) must neither
    hold back an interruption nor raise it there."""

    def write(self, s: str) -> int:
        with _piece():
            return super().write(s)

    def flush(self) -> None:
        with _piece():
            super().flush()


def _piece() -> ContextManager:
    return _guard() if threading.current_thread() is threading.main_thread() else contextlib.nullcontext()


class _FlushingWriter(io.BufferedWriter):
    """For a stream that was unbuffered (``python -u``, PYTHONUNBUFFERED): each write goes out at
    once, as it did; the buffer only lets the chunks go out whole."""

    def write(self, b) -> int:
        n = super().write(b)
        self.flush()
        return n


def _pipe_of(fd: int) -> Optional[os.stat_result]:
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    return st if stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode) else None


def _queued(raw: _TimedPipe) -> Optional[int]:
    """Bytes in the pipe (or the socket's send queue) not read yet; None where it cannot be told."""
    try:
        import fcntl
        import struct
        import termios

        request = termios.TIOCOUTQ if raw.socket else termios.FIONREAD
        return struct.unpack("i", fcntl.ioctl(raw.fileno(), request, b"\0\0\0\0"))[0]
    except (ImportError, AttributeError, OSError, ValueError):
        return None


def _wrapped(stream, fd: int):
    """``stream`` (a text stream on ``fd``) again, over a :class:`_TimedPipe`; None where it is not
    the standard text stream of a pipe."""
    st = _pipe_of(fd)
    if not isinstance(stream, io.TextIOWrapper) or st is None:
        return None
    try:
        if stream.fileno() != fd:
            return None
        stream.flush()
    except (OSError, ValueError):
        return None
    raw = _TimedPipe(fd, (st.st_dev, st.st_ino), stat.S_ISSOCK(st.st_mode))
    unbuffered = isinstance(stream.buffer, io.FileIO)
    buffer = (_FlushingWriter if unbuffered else io.BufferedWriter)(raw)
    new = _GuardedText(buffer, encoding=stream.encoding, errors=stream.errors, newline="\n",
                       line_buffering=stream.line_buffering, write_through=stream.write_through)
    _outputs.append(raw)
    return new


def install(guard: Optional[Callable[[], ContextManager]] = None) -> None:
    """Puts stdout and stderr, where each is a pipe or socket, over counted chunked writes, each
    write inside ``guard()`` (the command's ``uninterrupted``). Not on Windows, whose console and
    pipes take other paths."""
    global _guard, _installed
    if os.name == "nt" or _installed:
        return
    _installed = True
    if guard is not None:
        _guard = guard
    for name, fd in (("stdout", 1), ("stderr", 2)):
        new = _wrapped(getattr(sys, name), fd)
        if new is not None:
            setattr(sys, name, new)


def open_output(path: str) -> io.TextIOWrapper:
    """The ``-o`` file ``path`` that is a named pipe, opened for writing (the open waits for a
    reader: the caller opens it where a signal can end that wait). Where :func:`install` ran, it
    is written as stdout is when a pipe: a reader that stopped cannot hold up a signal."""
    fd = os.open(path, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
    text = dict(encoding="utf-8", errors="surrogateescape", newline="")
    try:
        st = os.fstat(fd)
        if not _installed or not stat.S_ISFIFO(st.st_mode):
            return open(fd, "w", **text)
        raw = _TimedPipe(fd, (st.st_dev, st.st_ino), False, name=path, closefd=True)
    except BaseException:
        os.close(fd)
        raise
    _outputs.append(raw)
    return _GuardedText(io.BufferedWriter(raw), **text)


def arm(status: int, word: str) -> None:
    """A signal came (``word``: "interrupted", "terminated"): from now on a write to a pipe that
    waits :data:`GIVE_UP_S` seconds with nothing taken ends the process with ``status``. Once;
    nothing where no pipe was installed."""
    if not _outputs or _armed.is_set():
        return
    _armed.set()
    try:
        threading.Thread(target=_watch, args=(status, word, time.monotonic()), name=WATCHER,
                         daemon=True).start()
    except RuntimeError:  # no thread to be had (a limit on processes): the signal acts as before
        pass


def armed() -> bool:
    return _armed.is_set()


WATCHER = "fakedet-output-watch"  # the watcher thread's name


def _watch(status: int, word: str, signalled: float) -> None:
    taken = {}  # for each pipe: the most its reader had taken, and when that last grew
    while True:
        time.sleep(_POLL_S)
        now = time.monotonic()
        for pipe in {raw.pipe for raw in _outputs}:
            raws = [raw for raw in _outputs if raw.pipe == pipe]
            queued = _queued(raws[0])
            if queued is None:
                continue  # a chunk going out is still progress (waiting_since)
            sent = sum(raw.sent for raw in raws)
            if pipe not in taken:  # the reader's count when the watch began
                taken[pipe] = (sent - queued, signalled)
            elif sent - queued > taken[pipe][0]:
                taken[pipe] = (sent - queued, now)
        stuck = [raw for raw in _outputs if raw.waiting_since is not None
                 and now - max(raw.waiting_since, taken.get(raw.pipe, (0, signalled))[1]) >= GIVE_UP_S]
        if stuck:
            names = " and ".join(raw.name for raw in stuck)
            _last_word(f"fakedet: {word}; its reader took nothing from {names} for {GIVE_UP_S:g} s: "
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
