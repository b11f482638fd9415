"""CLI layer: a records file that ends in whole records when a write fails half-way.

A full disk or a quota fails a write in the middle of a record (records go out in pieces that
know nothing of record ends). A file that a nightly job appends to (``>> scores.jsonl``) then
ends in half a record, and the next night's first record is glued onto it: both are lost to a
reader. :class:`RecordEnds` remembers where the last whole batch of records ended in a regular
file (stdout redirected to one, or ``-o``'s) and what the failed batch was writing after it.
Once the command has given up writing, it takes off the end of the file what is a piece of
that batch past its last whole record, and nothing else: where the bytes after the mark are not
all the batch's own (another process appending to the same file, stderr sent there too, a hole
left by a seek), the file is left as it is. Line formats only (tsv, csv, jsonl): a json array
is unfinished after a failed write whatever is cut. It holds its own descriptor of the file, so
the cut still reaches it after stdout was pointed at /dev/null and ``-o``'s file was closed
(their last flush may have put in more of the broken record), and reads the file back through
``/proc/self/fd`` (or ``-o``'s path); where it cannot read it back, it cuts nothing.
"""

from __future__ import annotations

import os
import stat
from typing import Optional

LINE_FORMATS = ("tsv", "csv", "jsonl")
MAX_PENDING = 4096  # records held back after a short write before giving up on the cut


class RecordEnds:
    """Where the records written whole end in the file behind a stream, and the text of the
    batch being written after them. :meth:`tee` is the stream the records' writer writes to."""

    def __init__(self) -> None:
        self.fd: Optional[int] = None  # our own descriptor of the file (a regular file only)
        self.path: Optional[str] = None  # -o's path, to read the file back where /proc is not
        self.end = 0
        self.pending: list[str] = []  # each record's text (csv's header too) since the mark
        self.encoding, self.errors = "utf-8", "strict"

    def start(self, stream, fmt: str, path: Optional[str] = None) -> None:
        """Before the first record is written: the file's end now (a ``>`` or ``-o`` file is
        empty; a ``>>`` file's earlier records stay)."""
        if fmt not in LINE_FORMATS:
            return
        try:
            fd = stream.fileno()
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return
            self.fd = os.dup(fd)
        except (OSError, ValueError, AttributeError):  # no descriptor (a test's capture), closed
            return
        self.path, self.end = path, st.st_size
        self.encoding = getattr(stream, "encoding", None) or "utf-8"
        self.errors = getattr(stream, "errors", None) or "strict"

    def tee(self, stream) -> "_Tee":
        return _Tee(stream, self)

    def mark(self) -> None:
        """After a batch of records was written and flushed: the file's offset is past it (a
        ``>>`` file's too: each append leaves the offset at the file's end). Where it moved by
        less than the batch, a write went in part without an error (an unbuffered stdout,
        ``python -u``, drops the rest of a short write): the mark stays, and the batch stays
        pending, so that a later failure cuts that half record too."""
        if self.fd is None:
            self.pending = []
            return
        try:
            now = os.lseek(self.fd, 0, os.SEEK_CUR)
        except OSError:  # not seekable after all: nothing will be cut
            self.close()
            return
        try:
            written = sum(len(t.encode(self.encoding, self.errors)) for t in self.pending)
        except (UnicodeError, LookupError):  # cannot tell what went out: nothing will be cut
            self.close()
            return
        if now < self.end:  # the file was emptied under the scan (a rotation's copytruncate):
            self.end, self.pending = now, []  # the batch went out whole at its new end
        elif now - self.end >= written:  # all of it went out (or more: stderr on the same file)
            self.end, self.pending = now, []
        elif len(self.pending) > MAX_PENDING:  # batches went on after a short write: the file has
            self.close()  # a hole in its records that no cut can mend; stop keeping their text

    def cut(self) -> bool:
        """After a failed write, once nothing more will be written: takes off the end of the
        file the piece of a record the failed batch left there, keeping its whole records.
        Whether anything was taken off."""
        if self.fd is None or not self.pending:
            return False
        try:
            size = os.fstat(self.fd).st_size
            if size <= self.end:
                return False
            ours = [t.encode(self.encoding, self.errors) for t in self.pending]
            if size - self.end > sum(map(len, ours)):
                return False  # more than the batch: not all of it ours
            tail = self.read_back(self.end, size - self.end)
            if tail is None or not b"".join(ours).startswith(tail):
                return False  # bytes of another writer, or none that can be read back
            keep = 0
            for b in ours:  # the records that went out whole stay
                if keep + len(b) > len(tail):
                    break
                keep += len(b)
            if keep == len(tail):
                return False
            if os.fstat(self.fd).st_size != size:
                return False  # another writer is appending now
            os.ftruncate(self.fd, self.end + keep)
            os.lseek(self.fd, self.end + keep, os.SEEK_SET)  # a `>` file's next write goes there, not past a hole
            return True
        except (OSError, UnicodeError, LookupError):
            return False

    def read_back(self, offset: int, n: int) -> Optional[bytes]:
        """``n`` bytes at ``offset`` of our file, read through a descriptor of its own."""
        for name in (f"/proc/self/fd/{self.fd}", self.path):
            if name is None:
                continue
            try:  # without blocking: a path replaced by a named pipe since
                fd = os.open(name, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
            except OSError:
                continue
            try:
                if not os.path.samestat(os.fstat(fd), os.fstat(self.fd)):
                    continue
                os.lseek(fd, offset, os.SEEK_SET)
                data = b""
                while len(data) < n:
                    chunk = os.read(fd, n - len(data))
                    if not chunk:
                        break
                    data += chunk
                return data
            except OSError:
                continue
            finally:
                os.close(fd)
        return None

    def close(self) -> None:
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None


class _Tee:
    """The records' stream, keeping each text written since the last mark."""

    def __init__(self, stream, ends: RecordEnds) -> None:
        self.stream, self.ends = stream, ends

    def write(self, text: str) -> int:
        if self.ends.fd is not None:
            self.ends.pending.append(text)
        return self.stream.write(text)

    def __getattr__(self, name):
        return getattr(self.stream, name)
