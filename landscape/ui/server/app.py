"""Loss Landscape Lab's server: ``landscape app`` (an installed copy, from any folder) or
``streamlit run app.py`` in a clone (the root app.py builds the same ``st.App`` from `LAB` and
`lifespan`; Streamlit finds an app by reading the script's own text, so each script names it).

Streamlit runs ``lab.py`` (the frame every page shares) once per page visit; this file
wraps it in ``st.App`` so that the server process is ready before it answers anyone: it
imports torch, Plotly and the library and starts the worker pool while it starts up.
Without this, the first visitor after a (re)start waited for all of that (about 4 s here).
"""

import os
from contextlib import asynccontextmanager
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: see landscape/__init__

import streamlit as st  # noqa: E402

LAB = str(Path(__file__).with_name("lab.py"))  # absolute: served from any working folder


@asynccontextmanager
async def lifespan(_app):
    """Import what every page needs and start the worker processes, before serving; then
    train the presets' runs in the background (landscape.ui.warm)."""
    import pandas  # noqa: F401 - imported whole before any page: see lab.py
    import plotly.graph_objects  # noqa: F401

    import landscape.pipelines.pictures  # noqa: F401
    import landscape.plots  # noqa: F401
    import landscape.training.loop  # noqa: F401
    import landscape.ui.library  # noqa: F401
    import landscape.ui.links  # noqa: F401
    import landscape.ui.runs  # noqa: F401
    from landscape.ui import warm, workers

    workers.shared_pool().start()
    presets = warm.start()  # every preset's run into the data folder, at the lowest priority
    try:
        yield
    finally:
        warm.stop(presets)


app = st.App(LAB, lifespan=lifespan)
