"""Streamlit glue for the gallery: the shipped slices loaded once per server, and the hand-over
of one slice to the Landscape page (kept in its address as ``?gallery=<layers>-<0|1 skips>``,
so a reload or a copied link shows the same picture)."""

from __future__ import annotations

import streamlit as st

from landscape.pipelines import gallery
from landscape.plots import surfaces as plots

LANDSCAPE_RESULT = "lp_result"  # the Landscape page's session keys (app_pages/loss_landscape.py)
LANDSCAPE_RUNS = "lp_result_runs"
LANDSCAPE_PAGE = "app_pages/loss_landscape.py"
PARAM = "gallery"  # the Landscape page's query parameter naming a gallery slice
ZMAX = 10.0  # colours clipped at loss 10, as in Li et al.'s own contour plots (vmax = 10)


def figure(entry: gallery.Entry, kind: str = "contour", height: int = 420):
    """The picture of ``entry`` as the Gallery draws it (the Compare page shows the same):
    Li et al.'s contour lines, so islands below the top level show as closed lines; in 3D a
    log z-axis and log colours, clipped at ZMAX."""
    title = f"{entry.label}: {gallery.verdict(entry.row)}"
    if kind == "3D":
        fig = plots.surface3d_figure(entry.surface, log=True, zmax=ZMAX, title=title)
    else:
        fig = plots.contour_figure(entry.surface, lines=gallery.LEVELS, title=title)
    return fig.update_layout(height=height, margin=dict(l=0, r=0, t=50, b=0))


@st.cache_resource(show_spinner=False)
def entries() -> list[gallery.Entry]:
    """The shipped gallery slices (read-only, shared by every session)."""
    return gallery.entries()


def ident(entry: gallery.Entry) -> str:
    """The entry's name in an address: ``56-0`` is ResNet-56 without skips."""
    return f"{entry.n_layers}-{int(entry.skip)}"


def find(name: str | None) -> gallery.Entry | None:
    """The shipped entry an address names (``ident``), or None."""
    return next((e for e in entries() if ident(e) == name), None)


def of_result(result) -> gallery.Entry | None:
    """The gallery entry a Landscape result was made from (None for a computed one)."""
    key = getattr(getattr(result, "request", None), "run_key", "")
    return find(key.removeprefix("gallery-")) if key.startswith("gallery-") else None


def show_in_landscape(entry: gallery.Entry) -> None:
    """Make `entry` the Landscape page's picture (its contour, heatmap and 3D views)."""
    st.session_state[LANDSCAPE_RESULT] = gallery.as_landscape_result(entry)
    st.session_state[LANDSCAPE_RUNS] = (None, None)


def open_in_landscape(entry: gallery.Entry) -> None:
    """Show `entry` on the Landscape page and go there."""
    show_in_landscape(entry)
    st.switch_page(LANDSCAPE_PAGE, query_params={PARAM: ident(entry)})
