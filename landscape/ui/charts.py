"""Charts kept in shared caches: a Plotly figure built once and shown many times.

Every script run that shows a chart pays twice in the server's one Python lock: building
the figure (Plotly validates every trace) and `st.plotly_chart`'s `figure.to_dict()` (a deep
copy that walks the whole figure, template included, and re-encodes every array). Under a
classroom's load those two were most of a slider move's server time. A chart whose
inputs repeat (every session opens a page at its defaults; sliders have few positions) is
built once, under `st.cache_resource` (`chart(key, build)`, or a page's own cached function
that returns `kept(figure)`), and kept as a `KeptFigure`, which hands `st.plotly_chart` the
dict it computed when it was kept.

A kept figure is shared by every session: it is read-only. Change a figure before keeping
it, never after.
"""

from __future__ import annotations

from collections.abc import Callable

import plotly.graph_objects as go
import streamlit as st


class KeptFigure(go.Figure):
    """A finished figure whose `to_dict()` is computed once, when it is kept."""

    def __init__(self, figure: go.Figure):
        super().__init__()
        self._kept_dict = figure.to_dict()

    def to_dict(self) -> dict:
        # The same dict every time: st.plotly_chart only reads it (it encodes it to JSON).
        return self._kept_dict

    def _read_only(self, *args, **kwargs):
        raise TypeError("a kept figure is shared and read-only: change the figure before kept()")

    # A change after keeping would never reach the dict shown: refuse it loudly.
    update = update_layout = update_traces = add_trace = add_traces = _read_only


def kept(figure: go.Figure) -> KeptFigure:
    """`figure`, ready to be kept in a shared cache and shown again cheaply."""
    return figure if isinstance(figure, KeptFigure) else KeptFigure(figure)


MAX_KEPT = 256  # charts kept at once, all pages together (a 51x51 plane is ~0.3 MB)


@st.cache_resource(max_entries=MAX_KEPT, show_spinner=False)
def _kept_chart(key: str, _build: Callable[[], go.Figure]) -> KeptFigure:
    return KeptFigure(_build())


def chart(key: tuple, build: Callable[[], go.Figure]) -> KeptFigure:
    """The figure ``build()`` makes, built once per ``key`` and kept (shared, read-only).

    ``key`` must name everything the figure shows (a run's id, the page's display settings):
    two calls with equal keys get the same figure. Use a tuple of strings, numbers and bools.
    """
    return _kept_chart(repr(key), build)
