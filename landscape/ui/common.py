"""Shared Streamlit helpers: bounded heavy work, error display, thread setup."""

from __future__ import annotations

import contextlib
import os
import threading

import streamlit as st
import torch

#: How many heavy jobs (training, surfaces, curvature) may run at once in one server.
#: The machine has few cores; more parallel jobs only slow every one of them down.
MAX_HEAVY_JOBS = int(os.environ.get("LANDSCAPE_MAX_HEAVY_JOBS", "2"))

_heavy = threading.BoundedSemaphore(MAX_HEAVY_JOBS)
_threads_lock = threading.Lock()
_threads_set = False


def torch_threads() -> None:
    """Set torch's intra-op thread count once per process (bounded by the core count)."""
    global _threads_set
    with _threads_lock:
        if _threads_set:
            return
        n = max(1, min(int(os.environ.get("LANDSCAPE_TORCH_THREADS", "2")), os.cpu_count() or 1))
        torch.set_num_threads(n)
        _threads_set = True


@contextlib.contextmanager
def heavy_slot(label: str = "this job"):
    """Run heavy work only when one of MAX_HEAVY_JOBS slots is free.

    While every slot is taken the user sees a note saying the job is queued, so nobody
    wonders whether the button worked.
    """
    if _heavy.acquire(blocking=False):
        acquired = True
    else:
        note = st.empty()
        note.info(f"The server is busy with other users' jobs; {label} is queued and will start shortly.")
        acquired = _heavy.acquire(timeout=600)
        note.empty()
        if not acquired:
            raise RuntimeError("The server is too busy right now; please try again in a minute.")
    try:
        yield
    finally:
        if acquired:
            _heavy.release()


def show_error(exc: BaseException, prefix: str = "") -> None:
    """Show a user-facing error: the message, never a traceback."""
    msg = str(exc) or exc.__class__.__name__
    st.error(f"{prefix}{msg}" if prefix else msg)
