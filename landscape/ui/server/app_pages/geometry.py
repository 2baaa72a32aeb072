"""Geometry: paths between two minima (mode connectivity) and the Hessian's spectrum.

Thin page: widgets -> landscape.ui.research (cached worker jobs) -> landscape.plots.research.
"""

from __future__ import annotations

import streamlit as st

from landscape.pipelines import presets
from landscape.plots import research as plots
from landscape.ui import library
from landscape.ui import research as ui
from landscape.ui import runs as ui_runs
from landscape.ui.common import plot_text, show_error, torch_threads
from landscape.ui.links import url

torch_threads()

CONNECT_KEY = "geo_connect"
SPECTRUM_KEY = "geo_spectrum"
STARTS = [p for p in presets.PRESETS if p != presets.EOS_PRESET]


def _connect_tab() -> None:
    st.markdown(
        "Train one architecture from two seeds and look at the loss **between** the two minima: "
        "along the straight line, and along a curve with one trained middle point."
    )
    c1, c2, c3 = st.columns(3)
    name = c1.selectbox("Network and data", STARTS, **url("geo_preset"))
    st.caption(presets.PRESETS[name][1])
    seed_a = c2.number_input("Seed of net A", 0, 2**31 - 1, 0, **url("geo_seed_a"))
    seed_b = c2.number_input("Seed of net B", 0, 2**31 - 1, 1, **url("geo_seed_b"))
    kind = c3.radio("Curve", ["bezier", "chain"], **url("geo_kind"), horizontal=True,
                    format_func={"bezier": "quadratic Bezier", "chain": "polygonal chain"}.get)  # fmt: skip
    steps = c3.select_slider("Curve training steps", [50, 100, 200, 300, 500, 1000], 300,
                             **url("geo_steps"))  # fmt: skip
    res = c3.select_slider("Plane resolution", [11, 15, 21, 31], 21, **url("geo_res"))
    if st.button("Train both nets and connect them", key="geo_go", type="primary"):
        if seed_a == seed_b:
            st.error("The two seeds are equal: the nets are the same (barrier 0). Pick two seeds.")
        else:
            try:
                base = presets.get(name)
                run_a = ui_runs.train_cached(base.replace(seed=int(seed_a)))
                run_b = ui_runs.train_cached(base.replace(seed=int(seed_b)))
                for r in (run_a, run_b):
                    ui_runs.add_run(r)
                st.session_state[CONNECT_KEY] = (ui.connect(run_a, run_b, "train", kind, steps, res),
                                                 run_a.name, run_b.name)  # fmt: skip
            except (ValueError, RuntimeError) as e:
                show_error(e)
    got = st.session_state.get(CONNECT_KEY)
    if got is None:
        st.info("Pick a network and two seeds, then press the button.")
        return
    r, name_a, name_b = got
    st.text(f"A: {name_a} · B: {name_b} · loss on A's training data")  # run names: plain text
    m = st.columns(4)
    m[0].metric("Straight-line barrier", f"{r.barrier:.4g}",
                help="Frankle et al. 2020: max loss on the line − mean of the two ends")  # fmt: skip
    m[1].metric(f"{r.kind.capitalize()} curve barrier", f"{r.curve_barrier:.4g}")
    m[2].metric("Distance |B − A|", f"{r.distance:.4g}")
    m[3].metric("Ends: loss A / B", f"{r.line_loss[0]:.3g} / {r.line_loss[-1]:.3g}")
    left, right = st.columns(2)
    left.plotly_chart(plots.connectivity_lines(r), key="geo_lines")
    if r.plane is not None:
        right.plotly_chart(plots.connectivity_plane(r), key="geo_plane")
    with st.expander("What to notice", expanded=True):
        st.markdown(ui.CONNECT_NOTICE)


def _spectrum_tab() -> None:
    st.markdown(
        "The density of **all** the Hessian's eigenvalues by stochastic Lanczos quadrature (as "
        "PyHessian draws it), beside the top eigenvalues. From a notebook, "
        "`landscape.measures.spectrum.density(model, loss_fn, (X, y))` does the same for your own model."
    )
    c1, c2 = st.columns([2, 1])
    with c1:
        source = st.radio(
            "Net", ["a preset", "a run of this session"], **url("geo_src"), horizontal=True
        )
        if source == "a preset":
            pname = st.selectbox("Preset", STARTS, **url("geo_spec_preset"))
            run = None
        else:
            run = library.run_picker("Run", "geo_spec_run")
            if run is None:
                st.info("No trained runs in this session yet: train one on the Train page.")
    vectors = c2.slider("Random vectors", 1, 20, 5, **url("geo_vectors"))
    steps = c2.select_slider(
        "Lanczos steps per vector", [20, 40, 60, 80, 100], 60, **url("geo_lsteps")
    )
    if st.button("Compute the spectrum", key="geo_spec_go", type="primary"):
        try:
            if source == "a preset":
                run = ui_runs.train_cached(presets.get(pname))
                ui_runs.add_run(run)
            if run is not None:
                st.session_state[SPECTRUM_KEY] = (ui.hessian_spectrum(run, "train", vectors, steps),
                                                  run.name)  # fmt: skip
        except (ValueError, RuntimeError) as e:
            show_error(e)
    got = st.session_state.get(SPECTRUM_KEY)
    if got is None:
        return
    res, name = got
    m = st.columns(4)
    m[0].metric("Parameters", f"{res.n_params:,}")
    m[1].metric("λmax", f"{res.top[0]:.4g}" if len(res.top) else "—",
                help="Over every parameter, biases included. The Landscape page's Hessian plane "
                "leaves biases and BatchNorm out by default, so its λ1 can be smaller.")  # fmt: skip
    m[2].metric("Share of eigenvalues < 0", f"{100 * res.mass_below(0.0):.1f} %")
    m[3].metric("Time (SLQ + top-k)", f"{res.seconds + res.seconds_top:.1f} s")
    st.plotly_chart(
        plots.spectrum_figure(res, plot_text(f"{name}: Hessian spectrum")), key="geo_spec_fig"
    )
    with st.expander("What to notice", expanded=True):
        st.markdown(ui.SPECTRUM_NOTICE)


st.title("Geometry")
st.markdown(
    "Beyond one slice: how two minima connect, and how the curvature spreads over every direction."
)
tab_paths, tab_spec = st.tabs(["Paths between minima", "Hessian spectrum"])
with tab_paths:
    _connect_tab()
with tab_spec:
    _spectrum_tab()
