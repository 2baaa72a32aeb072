"""Freed memory kept for reuse by this process (glibc's malloc only).

Evaluating a surface or training a net allocates and frees the same activation blocks (a few
MB each) at every point or step. glibc's default malloc gives such blocks back to the system
once enough is free (its trim and mmap thresholds adapt as it goes), and every later point
then faults its pages in again from zero: measured on a 49-point plane of a small
transformer, 0.4 M page faults and 0.5-1.1 s of system time on top of 1.3 s of computing, in
some runs and not others. ``keep_freed_memory()`` fixes the thresholds (blocks up to
MMAP_THRESHOLD come from the heap, and up to TRIM_THRESHOLD of free heap is kept), so the
blocks are reused: no faults after the first point, and the same time in every run. The
price is that the process keeps its peak heap until it exits; the worker processes and the
command line are short-lived or bounded, so they keep it gladly (so does the app's server
when it runs jobs in its own threads, ``LANDSCAPE_WORKERS=0``: it calls a surface too).

A user's own ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` (glibc's tunables) win:
then nothing is changed. Elsewhere (macOS, Windows, musl) this does nothing.
"""

from __future__ import annotations

import ctypes
import os
import platform
import threading

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameters (<malloc.h>)
MMAP_THRESHOLD = 32 * 2**20  # glibc's largest allowed on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX)
TRIM_THRESHOLD = 2**30  # free heap kept before any is given back
USER_TUNABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")

_lock = threading.Lock()
_state: bool | None = None  # None: not tried yet


def keep_freed_memory() -> bool:
    """Set the thresholds once per process; True when they are set (now or before)."""
    global _state
    with _lock:
        if _state is None:
            _state = _set()
        return _state


def _set() -> bool:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    if any(k in os.environ for k in USER_TUNABLES):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
