"""landscape.ui.charts: a kept figure shows exactly what the figure it was made from shows,
and a chart is built once per key."""

import json

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest
import streamlit as st

from landscape.data.config import Config
from landscape.training import loop as training
from landscape.ui import charts
from landscape.ui import runs as ui_runs


def _figure(seed: int = 0) -> go.Figure:
    rng = np.random.default_rng(seed)
    return go.Figure(
        [
            go.Scatter(x=np.linspace(0, 1, 50), y=rng.random(50), name="a"),
            go.Heatmap(z=rng.random((7, 5)), colorscale="Viridis"),
        ],
        layout=dict(title=dict(text="t"), height=321, xaxis=dict(range=[0, 1])),
    )


@pytest.fixture(autouse=True)
def _fresh_caches():
    st.cache_resource.clear()
    yield
    st.cache_resource.clear()


def test_a_kept_figure_sends_the_same_spec_as_its_figure():
    fig = _figure()
    kept = charts.kept(fig)
    assert isinstance(kept, go.Figure)
    # what st.plotly_chart sends: to_dict() then plotly.io.to_json(..., validate=False)
    expected = pio.to_json(fig.to_dict(), validate=False)
    assert pio.to_json(kept.to_dict(), validate=False) == expected
    # and again: showing it does not change it
    assert pio.to_json(kept.to_dict(), validate=False) == expected
    assert json.loads(expected)["layout"]["height"] == 321
    assert charts.kept(kept) is kept  # keeping twice is a no-op
    with pytest.raises(TypeError, match="read-only"):
        kept.update_layout(height=10)  # would change nothing that is shown
    assert json.loads(pio.to_json(kept.to_dict()))["layout"]["height"] == 321


def test_a_kept_figure_is_shown_by_streamlit_like_the_original():
    from streamlit.testing.v1 import AppTest

    def app():
        import numpy as np
        import plotly.graph_objects as go
        import streamlit as st

        from landscape.ui import charts

        fig = go.Figure(go.Scatter(x=np.arange(5), y=np.arange(5) ** 2), layout=dict(height=300))
        st.plotly_chart(fig, key="plain")
        st.plotly_chart(charts.kept(fig), key="kept")

    at = AppTest.from_function(app).run()
    assert not at.exception
    specs = [json.loads(e.proto.spec) for e in at.get("plotly_chart")]
    assert len(specs) == 2 and specs[0] == specs[1]
    assert specs[0]["layout"]["height"] == 300


def test_chart_builds_once_per_key_and_keys_do_not_mix():
    built = []

    def build(seed):
        def make():
            built.append(seed)
            return _figure(seed)

        return make

    a1 = charts.chart(("t", 1, True), build(1))
    a2 = charts.chart(("t", 1, True), build(1))
    b = charts.chart(("t", 2, True), build(2))
    c = charts.chart(("t", 1, False), build(3))
    assert built == [1, 2, 3]
    assert a1 is a2 and a1 is not b and b is not c
    assert pio.to_json(b.to_dict()) == pio.to_json(_figure(2).to_dict())


def test_a_failing_build_is_not_kept():
    calls = []

    def broken():
        calls.append(1)
        raise ValueError("bad settings")

    for _ in range(2):
        with pytest.raises(ValueError, match="bad settings"):
            charts.chart(("broken",), broken)
    assert len(calls) == 2


def test_run_ident_names_the_net_not_the_object():
    cfg = Config(dataset="moons", n_samples=200, epochs=2, seed=0)
    a, b = training.train(cfg), training.train(cfg)
    other = training.train(Config(dataset="moons", n_samples=200, epochs=2, seed=1))
    assert a is not b
    assert ui_runs.ident(a) == ui_runs.ident(b)  # same config, deterministic training
    assert ui_runs.ident(a) != ui_runs.ident(other)
    longer = training.train(Config(dataset="moons", n_samples=200, epochs=3, seed=0))
    assert ui_runs.ident(longer) != ui_runs.ident(a)
