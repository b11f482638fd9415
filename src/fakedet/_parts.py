"""Temporary files written beside their target and renamed onto it when whole (explain's PNGs,
parquet output): a command stopped mid-write leaves no cut-off file under the name, and one
killed outright (SIGKILL, a power cut) leaves its temporary file, which the next run in the
folder removes (:func:`remove_stale_parts`)."""

from __future__ import annotations

import os
import secrets


def _part_prefix() -> str:
    """The start of this process's temporary names: ``.fakedet-<host>-<pid>-``, ``<host>`` a
    short hash of the machine's name (a folder may be shared between machines)."""
    import hashlib
    import socket

    host = hashlib.sha1(socket.gethostname().encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f".fakedet-{host}-{os.getpid()}-"


#: a temporary file touched more recently than this is never taken for a killed run's (a PNG
#: takes seconds; a parquet file being written gets a row group every 8,192 records)
STALE_PART_S = 3600


def remove_stale_parts(folder: str) -> int:
    """Removes the temporary files that a command killed outright (SIGKILL, a power cut) left in
    ``folder``: only names fakedet makes (:func:`_part_prefix`), made on this machine by a
    process that no longer runs, and untouched for :data:`STALE_PART_S` (machines of one name
    sharing a folder, or containers with the host's name, cannot see each other's processes).
    Not on Windows, where no call tells whether a process runs without side effects.
    Returns how many."""
    import re
    import stat
    import time

    if os.name == "nt":
        return 0
    mine = _part_prefix()
    here = re.compile(re.escape(mine[: len(".fakedet-") + 8]) + r"-([1-9][0-9]*)-[0-9a-f]{12}\.part")
    removed = 0
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    for name in names:
        m = here.fullmatch(name)
        if m is None or name.startswith(mine) or _running(int(m.group(1))):
            continue
        path = os.path.join(folder, name)
        try:
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode) or time.time() - st.st_mtime < STALE_PART_S:
                continue  # (a link or folder of that name is not one this command made)
            os.unlink(path)
            removed += 1
        except OSError:
            pass
    return removed


def _running(pid: int) -> bool:
    if pid <= 0:  # 0 and negative ids name process groups, not a process
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, OverflowError):
        return True  # another user's, or cannot tell: left alone
    return True


def new_part(folder, mode: int = 0o666) -> "tuple[int, str]":
    """A new temporary file in ``folder`` (:func:`_part_prefix`), created with ``mode`` less the
    umask (0666: as ``open`` would create the file itself): ``(an fd open for writing, its path)``."""
    prefix = _part_prefix()
    for _ in range(100):
        tmp = os.path.join(os.fspath(folder), f"{prefix}{secrets.token_hex(6)}.part")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {folder}")
