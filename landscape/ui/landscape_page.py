"""Streamlit glue for the Landscape page: the bounded surface cache and its progress bar.

``compute(request, run)`` answers the same ``SurfaceRequest`` twice from a bounded
``st.cache_data`` cache, and from the data folder (landscape.storage.datastore) after a restart or on
another server process (the request is the key; the run objects are not hashed, the
request's fingerprints stand for them). A new request is computed in a worker process
(``landscape.ui.common.run_heavy``); a cached one is answered at once, without queueing.
The progress and preview callbacks run outside Streamlit's cache-replay recording
(``landscape.ui.common.cached_job``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import streamlit as st

from landscape.pipelines import pictures
from landscape.pipelines.pictures import LandscapeResult, SurfaceRequest
from landscape.ui import kept
from landscape.ui.common import cached_job, run_heavy

CACHE_ENTRIES = 32  # computed pictures kept per server (each a few MB at most)


@cached_job(CACHE_ENTRIES)
def _compute(
    request: SurfaceRequest, _run, _other, _progress=None, _preview=None, _wrap=None
) -> LandscapeResult:
    return pictures.kept_or_computed(
        kept.store(),
        request,
        lambda: run_heavy(
            pictures.compute,
            request,
            _run,
            _other,
            label="this landscape",
            callbacks={"progress": _progress, "preview": _preview},
            wrap=_wrap,
        ),
    )


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
    return _compute(request, run, other, _progress=progress, _preview=preview)


def clear() -> None:
    """Empty the surface cache (tests and benchmarks use it to time a cold computation)."""
    _compute.clear()


def metrics(result, centre_label: str, path: str = "training path") -> None:
    """A slice's figures in four columns: the centre's loss (``centre_label``), the lowest
    loss of the slice, cos(d1, d2) of a non-PCA plane, and the share of the ``path`` that
    lies in the plane (built-in runs and the operator's models alike)."""
    req, surf = result.request, result.main
    cols = st.columns(4)
    if result.centre_loss is not None:
        cols[0].metric(centre_label, f"{result.centre_loss:.4g}")
    finite = surf.loss[np.isfinite(surf.loss)]
    if finite.size:
        cols[1].metric("Lowest loss in the slice", f"{finite.min():.4g}")
    if req.dim == 2 and result.cosine is not None and req.direction != "pca":
        cols[2].metric("cos(d1, d2)", f"{result.cosine:.2g}")
    if result.path_share is not None:
        cols[3].metric(
            "Path in this plane",
            f"{100 * result.path_share:.3g}%",
            help=f"Share of the {path}'s squared length (its offsets from the net at the "
            "centre) that lies in the plane shown.",
        )
