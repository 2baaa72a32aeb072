"""The live panel's chart component (landscape/ui/livechart.py): what the browser is served
and what it is sent. Its drawing in place is checked in a browser (tests/e2e/test_steady.py,
tests/e2e/test_demos.py, and from an installed package in tests/e2e/test_installed.py)."""

from __future__ import annotations

import json
import re

import plotly.graph_objects as go
from streamlit.testing.v1 import AppTest

from landscape.ui import livechart


def test_the_frontend_loads_the_plotly_js_that_the_helper_component_serves():
    html = (livechart.FRONTEND / "index.html").read_text()
    src = re.search(r'<script src="\.\./([^/"]+)/([^"]+)"', html)
    # component names are "<declaring module>.<name>": the page asks for the helper's file
    assert src and src.group(1) == f"{livechart.__name__}.plotly_js", src
    assert (livechart.PLOTLY_JS / src.group(2)).is_file()
    # the protocol messages the page speaks, as Streamlit's component frontend names them
    for kind in ("streamlit:componentReady", "streamlit:render", "streamlit:setFrameHeight"):
        assert kind in html


def test_the_component_is_sent_the_figure_and_keeps_its_key():
    fig = go.Figure(go.Scatter(x=[0, 1, 2], y=[3.0, 1.5, 0.25], name="train"))
    fig.update_layout(title="Loss (live)", height=333)
    script = f"""
import plotly.io as pio
from landscape.ui.livechart import live_chart
live_chart(pio.from_json({fig.to_json()!r}), key="tr_live_curve", frame=41)
"""
    at = AppTest.from_string(script, default_timeout=60).run()
    assert not at.exception, at.exception
    (el,) = at.get("component_instance")
    assert el.proto.component_name == f"{livechart.__name__}.chart"
    assert el.proto.id.endswith("tr_live_curve")  # keyed: the same chart frame after frame
    args = json.loads(el.proto.json_args)
    assert args["frame"] == 41 and args["uirevision"] == "tr_live_curve"
    sent = json.loads(args["figure"])
    assert sent == json.loads(fig.to_json())
    assert sent["layout"]["height"] == 333 and sent["data"][0]["y"] == [3.0, 1.5, 0.25]


def test_the_same_key_with_a_new_figure_is_the_same_element():
    """st.plotly_chart's id changes with the figure (a new chart in the browser); this one's
    does not, so the browser updates the chart it has."""
    script = """
import streamlit as st
import plotly.graph_objects as go
from landscape.ui.livechart import live_chart
n = st.session_state.get("n", 0)
st.session_state["n"] = n + 1
live_chart(go.Figure(go.Scatter(y=[n, n + 1])), key="k", frame=n)
st.plotly_chart(go.Figure(go.Scatter(y=[n, n + 1])), key="p")
"""
    at = AppTest.from_string(script, default_timeout=60).run()
    first = (at.get("component_instance")[0].proto.id, at.get("plotly_chart")[0].proto.id)
    at.run()
    second = (at.get("component_instance")[0].proto.id, at.get("plotly_chart")[0].proto.id)
    assert first[0] == second[0]
    assert first[1] != second[1]  # the contrast that makes this component necessary
    assert json.loads(at.get("component_instance")[0].proto.json_args)["frame"] == 1
