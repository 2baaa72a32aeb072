"""Loss Landscape Lab: the frame every page shares.

Served by app.py (`streamlit run app.py`), which runs this once per page visit. Pages live
in app_pages/ and stay thin: they read widgets, call the `landscape` library and draw its
Plotly figures. (Not pages/: Streamlit lists such
a folder as an old-style multi-page app on a fresh server's first request.)
"""

import gc
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see landscape/__init__

# Import these fully before any page runs: plotly loads pandas lazily and takes whatever is
# in sys.modules, so two sessions' first charts at once could see a half-imported pandas
# (found by benchmarks/load_test.py: "partially initialized module 'pandas'").
import pandas  # noqa: E402, F401
import plotly.graph_objects as go  # noqa: E402
import plotly.io as pio  # noqa: E402
import streamlit as st  # noqa: E402

from landscape.ui import kept, links, live, workers  # noqa: E402
from landscape.ui.common import torch_threads  # noqa: E402
from landscape.ui.runs import restart_notice  # noqa: E402


@st.cache_resource
def _freeze_startup_heap() -> bool:
    """Move everything loaded at start-up (torch, plotly, pandas, the library: millions of
    objects that live as long as the server) out of the garbage collector's way, once, so
    its full collections only walk what the sessions allocate."""
    import sklearn.datasets  # noqa: F401 - the data sets import it on first use
    import sklearn.model_selection  # noqa: F401

    import landscape.pipelines.pictures  # noqa: F401
    import landscape.plots  # noqa: F401
    import landscape.training.loop  # noqa: F401

    gc.collect()
    gc.freeze()
    return True


# Figures whose builder leaves the legend alone get it below the plot, in rows: a legend on
# the right squeezed plots to ~120 px on a phone. Below the axis title, so they never overlap.
# Merged once per process into one named template: a "plotly+lab" default is merged again on
# every go.Figure(), and registering a template validates it (tens of ms each); lab.py itself
# runs on every full rerun, hence the guard.
if pio.templates.default != "lab":
    pio.templates["lab"] = pio.templates.merge_templates(
        "plotly",
        go.layout.Template(
            layout={"legend": {"orientation": "h", "yanchor": "top", "y": -0.3, "x": 0}}
        ),
    )
    pio.templates.default = "lab"

# Layout rules Streamlit has no setting for:
# - display formulas too wide for their column scroll sideways instead of being cut off, and
#   shrink on narrow screens;
# - on a phone, Plotly's toolbar (zoom, pan, download) is hidden: it covered chart titles,
#   and touch gestures zoom anyway; so is Streamlit's full-screen button over other elements.
#   A table keeps its toolbar (search, download, full screen: a wide table needs them on a
#   phone most), in a strip of its own above the table: drawn 44 px above the table's top, it
#   covered the heading above it ("This session's runs").
# - the live training panel (landscape.ui.live.PANEL) reruns every frame while playing, and
#   Streamlit dims an element (data-stale, to a third of its opacity after 0.5 s) from the
#   moment a rerun starts until it is written again: the charts pulsed and faded. There the
#   rerun is the animation, so nothing in the panel is dimmed.
STYLE = """<style>
.katex-display { overflow-x: auto; overflow-y: hidden; padding: 2px 0 6px; }
@media (max-width: 900px) { .katex-display { font-size: 0.82em; } }
@media (max-width: 640px) {
  .katex-display { font-size: 0.58em; }
  .js-plotly-plot .modebar-container { display: none !important; }
  [data-testid="stElementToolbar"]:not([data-testid="stDataFrame"] > *) { display: none !important; }
  .stElementContainer:has(> * > [data-testid="stDataFrame"]) { margin-top: 2.75rem; }
}
.st-key-LIVE_PANEL [data-stale="true"] { opacity: 1 !important; transition: none !important; }
OFFLINE
</style>"""
# While the server is down Streamlit's frontend opens its stock "Connection error" dialog
# ("... restart it in your terminal: streamlit run yourscript.py"), which has no setting.
# The page's style stays in the browser meanwhile, so it hides that dialog and says, in plain
# words, that the page reconnects by itself (the restart notice then says what was lost).
# It keys on the app's connection-state attribute, which is Streamlit's test hook rather
# than a documented API: if a Streamlit release renames it, the stock dialog shows again.
_DOWN = [f'.stApp[data-test-connection-state="{state}"]'
         for state in ("PINGING_SERVER", "DISCONNECTED_FOREVER")]  # fmt: skip
OFFLINE_STYLE = (
    ", ".join(
        f'body:has({d}) [data-testid="stDialog"], body:has({d}) div[role="dialog"]' for d in _DOWN
    )  # fmt: skip
    + " { display: none !important; }\n"
    + ", ".join(f"{d}::before" for d in _DOWN)
    + """ {
  content: "The server is not answering (restarting?). This page reconnects by itself.";
  position: fixed; top: 3.5rem; left: 50%; transform: translateX(-50%); z-index: 1000100;
  background: #fff4e5; color: #663c00; border: 1px solid #ffb74d; border-radius: 0.5rem;
  padding: 0.6rem 1rem; font-size: 0.95rem; max-width: 90vw;
}"""
)
STYLE = STYLE.replace("OFFLINE", OFFLINE_STYLE).replace("LIVE_PANEL", live.PANEL)

# The favicon stays an emoji: a Material icon there is fetched from fonts.gstatic.com.
st.set_page_config(page_title="Loss Landscape Lab", page_icon="⛰️", layout="wide")
_freeze_startup_heap()
st.html(STYLE)
torch_threads(1)  # per script thread: see landscape.ui.common
# Heavy jobs run in worker processes (landscape.ui.workers); start them with the first visit so
# they have warmed up (imported torch) by the time someone presses Train. Idempotent.
workers.shared_pool().start()

# Material icons ship with Streamlit's frontend; emoji need a system emoji font (Debian's
# Chromium without one drew empty boxes).
PAGES = [
    st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page(
        "app_pages/loss_shapes.py",
        title="Loss shapes",
        icon=":material/show_chart:",
        url_path="loss-shapes",
    ),  # fmt: skip
    st.Page(
        "app_pages/train.py", title="Train", icon=":material/model_training:", url_path="train"
    ),
    st.Page(
        "app_pages/loss_landscape.py",
        title="Landscape",
        icon=":material/landscape:",
        url_path="landscape",
    ),  # fmt: skip
    st.Page("app_pages/compare.py", title="Compare", icon=":material/compare:", url_path="compare"),
    st.Page(
        "app_pages/gallery.py", title="Gallery", icon=":material/photo_library:", url_path="gallery"
    ),  # fmt: skip
    st.Page(
        "app_pages/geometry.py", title="Geometry", icon=":material/explore:", url_path="geometry"
    ),
]

page = st.navigation(PAGES)
restart_notice()  # a tab that outlived a server restart is told its runs are gone
st.sidebar.caption(
    "Loss Landscape Lab · loss shapes, live training and loss surfaces (Li et al. 2018)"
)
with st.sidebar:
    links.copy_link_button()  # every page: the address holds its settings (ui/links.py)
links.begin(page.url_path)  # the query string the page was opened with
kept.show_notes()  # damaged stored entries dropped since the last run
page.run()
links.end()  # a quiet note on what the link asked but could not get
