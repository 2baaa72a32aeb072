"""A Plotly chart that a rerun redraws in place: the live training panel's charts.

`st.plotly_chart` keys a chart by its figure, so every new figure is a new chart in the
browser. While Play runs, each frame's charts were new charts, and the old ones were removed
when the frame's run ended, often before the new ones were drawn: each chart went blank for
one Plotly draw, frame after frame (3-10% of the time in headless Chromium on a busy 2-core
VM). This component keeps one chart per key and hands each new figure to `Plotly.react`,
which updates that chart in place.

The frontend (`livechart/index.html`) is one page with no build step. It loads the
plotly.js that ships inside the installed plotly package, served by a second component
declared on that package's folder, so the browser draws with the same plotly version that
wrote the figure, and nothing is fetched from the network.
"""

from __future__ import annotations

from pathlib import Path

import plotly
import plotly.graph_objects as go
import plotly.io as pio
import streamlit.components.v1 as components

FRONTEND = Path(__file__).parent / "livechart"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data"  # plotly.min.js


def _declare():
    # Declared at each call: Streamlit registers a component only when it is declared inside
    # a script run (the server then serves its folder), and re-registering the same component
    # is a dictionary update. The names ("<this module>.plotly_js") are in index.html.
    components.declare_component("plotly_js", path=PLOTLY_JS)
    return components.declare_component("chart", path=FRONTEND)


def args(fig: go.Figure, key: str, frame: int = 0) -> dict:
    """What the browser is sent for one frame (Streamlit sends it as JSON)."""
    spec = pio.to_json(fig, validate=False)  # a built figure is valid already
    return {"figure": spec, "uirevision": key, "frame": int(frame)}


def live_chart(fig: go.Figure, key: str, frame: int = 0) -> None:
    """Draw `fig` under `key`; the next call with the same key redraws the same chart.

    `frame` (e.g. the optimiser step) is shown on the chart element as data-frame, so a
    browser test can see which frame is drawn."""
    _declare()(**args(fig, key, frame), key=key, default=None)
