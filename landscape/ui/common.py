"""Shared Streamlit helpers: bounded heavy work, error display, torch threads.

Why threads are set here, per script run: torch's intra-op pool is OpenMP, and OpenMP's
thread count is a per-thread setting. Streamlit runs each session's script in a thread of
its own, so a single `torch.set_num_threads` at start-up does not reach them, and every
session would use all cores at once. On a 2-core server with a classroom attached that
oversubscription turned a 401-point `torch.exp` from 0.002 ms into 16 ms. So every script
run sets one thread for light work (loss curves, figures), and `heavy_slot` gives a heavy
job (training, surfaces, curvature) the cores divided by the jobs running at that moment.
"""

from __future__ import annotations

import contextlib
import os
import threading

import streamlit as st
import torch

CORES = os.cpu_count() or 1
#: Cap on torch threads for one heavy job.
MAX_THREADS = max(1, min(int(os.environ.get("LANDSCAPE_TORCH_THREADS", "2")), CORES))
#: How many heavy jobs (training, surfaces, curvature) may run at once in one server.
#: The machine has few cores; more parallel jobs only slow every one of them down.
MAX_HEAVY_JOBS = max(1, int(os.environ.get("LANDSCAPE_MAX_HEAVY_JOBS", "2")))

_heavy = threading.BoundedSemaphore(MAX_HEAVY_JOBS)
_active_lock = threading.Lock()
_active = 0


def torch_threads(n: int = 1) -> None:
    """Bound torch's threads for the calling (script) thread; light work uses one."""
    n = max(1, min(n, MAX_THREADS))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def active_heavy_jobs() -> int:
    """Heavy jobs running right now in this server process."""
    return _active


@contextlib.contextmanager
def heavy_slot(label: str = "this job"):
    """Run heavy work only when one of MAX_HEAVY_JOBS slots is free.

    While every slot is taken the user sees a note saying the job is queued, so nobody
    wonders whether the button worked. Inside the slot torch gets the cores divided by the
    number of heavy jobs running (at least one thread).
    """
    global _active
    if not _heavy.acquire(blocking=False):
        note = st.empty()
        note.info(
            f"The server is busy with other users' jobs; {label} is queued and will start shortly."
        )
        acquired = _heavy.acquire(timeout=600)
        note.empty()
        if not acquired:
            raise RuntimeError("The server is too busy right now; please try again in a minute.")
    with _active_lock:
        _active += 1
        torch_threads(max(1, CORES // _active))
    try:
        yield
    finally:
        with _active_lock:
            _active -= 1
        torch_threads(1)
        _heavy.release()


def show_error(exc: BaseException, prefix: str = "") -> None:
    """Show a user-facing error: the message, never a traceback."""
    msg = str(exc) or exc.__class__.__name__
    st.error(f"{prefix}{msg}" if prefix else msg)
