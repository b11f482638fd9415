"""Inference layer: memory policy, keeping glibc from returning activation buffers to the OS after every batch.

By default glibc serves allocations above a (dynamic) threshold with mmap and unmaps them on free,
so CPU inference maps, zero-fills and unmaps every large activation buffer on every batch; most
of the process's time then goes to the kernel. Raising the mmap and trim thresholds once at
start-up keeps those buffers in the heap and reuses them. Users get this without setting
``MALLOC_MMAP_THRESHOLD_`` themselves; an explicit environment setting is respected.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's maximum on 64-bit systems
TRIM_THRESHOLD = 256 * 1024 * 1024

_done = False


def tune_malloc() -> bool:
    """Raises glibc's mmap/trim thresholds once per process. Returns True if they were set."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux") or os.environ.get("FAKEDET_NO_MALLOC_TUNING"):
        return False
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # not glibc (musl, etc.)
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    ok = (mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1) and ok
    _done = ok
    return ok
