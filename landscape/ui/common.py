"""Shared Streamlit helpers: heavy jobs in worker processes, error display, torch threads.

Heavy work (training, surfaces, curvature, comparisons) runs through `run_heavy`, in the
server's pool of worker processes (landscape.ui.workers): at most MAX_HEAVY_JOBS at once, each in
a process of its own at a lower scheduling priority, so that the threads drawing pages (every
session's script runs in a thread of this one process) keep a core and the GIL to themselves.
While every worker is busy the page says the job is queued.

Why threads are set here, per script run: torch's intra-op pool is OpenMP, and OpenMP's
thread count is a per-thread setting. Streamlit runs each session's script in a thread of
its own, so a single `torch.set_num_threads` at start-up does not reach them, and every
session would use all cores at once. On a 2-core server with a classroom attached that
oversubscription turned a 401-point `torch.exp` from 0.002 ms into 16 ms. So every script
run sets one thread for its light work (loss curves, figures).
"""

from __future__ import annotations

import contextvars
import functools
import re
from collections.abc import Callable

import streamlit as st
import torch

from landscape.ui import workers
from landscape.ui.workers import CORES, MAX_HEAVY_JOBS, MAX_THREADS  # noqa: F401 - re-exported


def torch_threads(n: int = 1) -> None:
    """Bound torch's threads for the calling (script) thread; light work uses one."""
    n = max(1, min(n, MAX_THREADS))
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def active_heavy_jobs() -> int:
    """Heavy jobs running right now in this server's workers."""
    return workers.shared_pool().busy()


def run_heavy(
    fn: Callable,
    *args,
    label: str = "this job",
    callbacks: dict[str, Callable | None] | None = None,
    wrap: Callable[[Callable], Callable] | None = None,
    **kwargs,
):
    """``fn(*args, **kwargs)`` in a worker process, with live ``callbacks`` (see
    landscape.ui.workers.Pool.call) and, while no worker is free, a note on the page with
    the job's place in the queue, taken down when the job starts.

    ``wrap`` is applied to the note's drawing and removal: inside a ``cached_job``
    function pass its ``_wrap``, which runs them outside Streamlit's replay recording, or a
    cache hit would try to replay the note.
    """
    wrap = wrap or (lambda f: f)
    shown: list = []

    def on_wait(ahead: int) -> None:
        if not shown:
            shown.append(st.empty())
        shown[0].info(queued_note(label, ahead))

    def clear() -> None:
        for note in shown:
            note.empty()

    try:
        return workers.shared_pool().call(
            fn, *args, callbacks=callbacks, on_wait=wrap(on_wait), on_start=wrap(clear), **kwargs
        )
    finally:
        if shown:
            wrap(clear)()


def queued_note(label: str, ahead: int) -> str:
    """What a queued job's note says: its place in the queue."""
    place = f"{ahead} job{'s' if ahead != 1 else ''} ahead of yours" if ahead else "yours is next"
    return (
        f"The server is busy with other users' jobs: {label} is queued ({place}) and starts "
        "as soon as a worker is free."
    )


def outside() -> Callable[[Callable | None], Callable | None]:
    """A wrapper running callbacks in a copy of the calling context, taken now.

    Streamlit records every element call made while an ``st.cache_data`` function runs, to
    replay it on a cache hit; a progress bar created outside the function and updated inside
    it would be recorded against an element the replay cannot find
    (``CacheReplayClosureError`` on the second, cached call). Calls made in a copy of the
    context taken before entering the cache are not recorded: the bar moves live and nothing
    is replayed.
    """
    ctx = contextvars.copy_context()

    def wrap(fn: Callable | None) -> Callable | None:
        return None if fn is None else (lambda *args: ctx.run(fn, *args))

    return wrap


def cached_job(max_entries: int):
    """THE cache of the app's heavy jobs: ``st.cache_data`` (bounded, no spinner) around a
    function that runs a job through ``run_heavy`` with live callbacks.

    The decorated function takes its callbacks as keyword arguments whose names start with
    ``_`` (so the cache does not hash them) and a ``_wrap`` to pass on to ``run_heavy``; the
    caller passes the callbacks only (``f(key, _progress=bar_update)``), and this runs them,
    and the queue note, outside the replay recording (see ``outside``). A cached answer calls
    no callback and never queues. ``f.clear()`` empties the cache.
    """

    def decorate(fn: Callable) -> Callable:
        cached = st.cache_data(max_entries=max_entries, show_spinner=False)(fn)

        @functools.wraps(fn)
        def call(*args, **callbacks):
            wrap = outside()
            return cached(*args, **{k: wrap(v) for k, v in callbacks.items()}, _wrap=wrap)

        call.clear = cached.clear
        return call

    return decorate


_MARKDOWN_SPECIAL = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation character


#: GFM turns bare addresses in text into links after parsing, escapes or not: "http://x",
#: "www.x", "a@b.c". A word joiner (U+2060, invisible) inside each such marker breaks the match.
_AUTOLINK = re.compile(r"(?i)(?<=[a-z]:/)(?=/)|(?<=www)(?=\.)|(?<=@)")
WORD_JOINER = "\u2060"


def md_escape(text) -> str:
    """`text` made inert for Streamlit's Markdown (st.markdown, st.error, captions, labels):
    every ASCII punctuation character is backslash-escaped, which CommonMark shows as itself,
    and bare addresses get an invisible word joiner, so user text (a file, column or run
    name, an error quoting one) can never become a link, an image, HTML, a colour directive
    or LaTeX. It reads the same."""
    text = _AUTOLINK.sub(WORD_JOINER, str(text))
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def plot_text(text) -> str:
    """`text` made inert for Plotly titles, legends and hover labels, whose pseudo-HTML
    renders <a href> links: the angle brackets are written as entities."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def show_error(exc: BaseException, prefix: str = "") -> None:
    """Show a user-facing error as text (never Markdown: it may quote user input), never a
    traceback."""
    msg = str(exc) or exc.__class__.__name__
    st.error(md_escape(f"{prefix}{msg}" if prefix else msg))
