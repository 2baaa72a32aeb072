"""Streamlit glue for the Landscape page: the bounded surface cache and its progress bar.

``compute(request, run)`` answers the same ``SurfaceRequest`` twice from a bounded
``st.cache_data`` cache, and from the data folder (landscape.datastore) after a restart or on
another server process (the request is the key; the run objects are not hashed, the
request's fingerprints stand for them). A new request is computed in a worker process
(``landscape.ui.common.run_heavy``); a cached one is answered at once, without queueing.

Progress inside a cached function needs care: Streamlit records every element call made
while a cached function runs, to replay it on a cache hit. A progress bar created outside
the function and updated inside it would be recorded against an element the replay cannot
find (``CacheReplayClosureError`` on the second, cached call). So the callback runs the
update in a copy of the caller's context, taken before entering the cache, where Streamlit
is not recording: the bar moves live and nothing is replayed.
"""

from __future__ import annotations

import contextvars
import dataclasses
from collections.abc import Callable

import streamlit as st

from landscape import datastore, pictures
from landscape.pictures import LandscapeResult, SurfaceRequest
from landscape.ui.common import run_heavy

CACHE_ENTRIES = 32  # computed pictures kept per server (each a few MB at most)


@st.cache_data(max_entries=CACHE_ENTRIES, show_spinner=False)
def _compute(request: SurfaceRequest, _run, _other, _progress, _preview, _wrap) -> LandscapeResult:
    key = datastore.object_key("landscape", dataclasses.asdict(request))
    kept = _store()
    if kept is not None:
        found = kept.get_object("landscape", key)
        if isinstance(found, LandscapeResult) and found.request == request:
            return found
    result = run_heavy(
        pictures.compute,
        request,
        _run,
        _other,
        label="this landscape",
        callbacks={"progress": _progress, "preview": _preview},
        wrap=_wrap,
    )
    if kept is not None:
        rid = datastore.run_id(request.config)
        kept.put_object("landscape", key, result, rid=rid if kept.has_run(rid) else None)
    return result


def _store():
    from landscape.ui import library  # the server's data folder (None when it is off)

    return library.store()


def compute(
    request: SurfaceRequest,
    run,
    other=None,
    progress: Callable[[float, str], None] | None = None,
    preview: Callable[[LandscapeResult], None] | None = None,
) -> LandscapeResult:
    """``pictures.compute`` behind the bounded cache.

    ``progress(fraction, text)`` and ``preview(coarse_result)`` draw live while a new
    request is computed; a cached request calls neither.
    """
    outside = contextvars.copy_context()
    return _compute(
        request,
        run,
        other,
        _outside(outside, progress),
        _outside(outside, preview),
        lambda fn: _outside(outside, fn),
    )


def _outside(ctx: contextvars.Context, fn: Callable | None) -> Callable | None:
    """``fn`` run in ``ctx``: Streamlit calls in it are not recorded for cache replay."""
    if fn is None:
        return None
    return lambda *args: ctx.run(fn, *args)


def clear() -> None:
    """Empty the surface cache (tests and benchmarks use it to time a cold computation)."""
    _compute.clear()
