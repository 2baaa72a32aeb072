"""Streamlit glue for the gallery: the shipped slices loaded once per server, and the hand-over
of one slice to the Landscape page."""

from __future__ import annotations

import streamlit as st

from landscape.pipelines import gallery

LANDSCAPE_RESULT = "lp_result"  # the Landscape page's session keys (app_pages/loss_landscape.py)
LANDSCAPE_RUNS = "lp_result_runs"
LANDSCAPE_PAGE = "app_pages/loss_landscape.py"


@st.cache_resource(show_spinner=False)
def entries() -> list[gallery.Entry]:
    """The shipped gallery slices (read-only, shared by every session)."""
    return gallery.entries()


def open_in_landscape(entry: gallery.Entry) -> None:
    """Show `entry` on the Landscape page (its contour, heatmap and 3D views) and go there."""
    st.session_state[LANDSCAPE_RESULT] = gallery.as_landscape_result(entry)
    st.session_state[LANDSCAPE_RUNS] = (None, None)
    st.switch_page(LANDSCAPE_PAGE)
