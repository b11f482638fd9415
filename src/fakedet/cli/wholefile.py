"""CLI layer: a records file that ends in whole records when a write fails half-way.

A full disk or a quota fails a write in the middle of a record (records go out in 4 KiB pieces
that know nothing of record ends). A file that a nightly job appends to (``>> scores.jsonl``)
then ends in half a record, and the next night's first record is glued onto it: both are lost
to a reader. :class:`RecordEnds` remembers where the last whole batch of records ended in a
regular file (stdout redirected to one, or ``-o``'s) and, once the command has given up writing,
cuts off what came after it. Pipes, terminals and other streams are left alone. It holds its own
descriptor of the file, so the cut still reaches it after stdout was pointed at /dev/null and
``-o``'s file was closed (their last flush may have put in more of the broken record).
"""

from __future__ import annotations

import os
import stat
from typing import Optional


class RecordEnds:
    """Where the records written whole end in the file behind a stream."""

    def __init__(self) -> None:
        self.fd: Optional[int] = None  # our own descriptor of the file (a regular file only)
        self.end = 0

    def start(self, stream) -> None:
        """Before the first record is written: the file's end now (a ``>`` or ``-o`` file is
        empty; a ``>>`` file's records so far stay)."""
        try:
            fd = stream.fileno()
            st = os.fstat(fd)
        except (OSError, ValueError, AttributeError):  # no descriptor (a test's capture), closed
            return
        if stat.S_ISREG(st.st_mode):
            try:
                self.fd = os.dup(fd)
            except OSError:
                return
            self.end = st.st_size

    def mark(self) -> None:
        """After a batch of records was written and flushed: the file's offset is past it (a
        ``>>`` file's too: each append leaves the offset at the file's end)."""
        if self.fd is not None:
            try:
                self.end = os.lseek(self.fd, 0, os.SEEK_CUR)
            except OSError:
                pass

    def cut(self) -> bool:
        """After a failed write, once nothing more will be written: takes off what follows the
        last whole batch (half a record). Whether anything was taken off."""
        if self.fd is None:
            return False
        try:
            if os.fstat(self.fd).st_size <= self.end:
                return False
            os.ftruncate(self.fd, self.end)
            return True
        except OSError:
            return False

    def close(self) -> None:
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None
