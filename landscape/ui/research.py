"""Streamlit glue for the research measures: the sharpness section of the Compare page, the
edge-of-stability option of the Train page, and the Geometry page's two tools (paths between
minima, the Hessian's spectrum).

Every computation runs in the worker pool (``run_heavy``) behind a bounded ``st.cache_data``
keyed on the runs' weight fingerprints and the settings (``landscape.ui.common.cached_job``:
progress callbacks run outside the cache's replay recording).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import streamlit as st

from landscape.data.config import MAX_BATCH, Config
from landscape.engine.subject import fingerprint
from landscape.measures import connectivity, sharpness, spectrum, stability
from landscape.pipelines import presets
from landscape.plots import research as plots
from landscape.ui.common import cached_job, run_heavy, show_error
from landscape.ui.runs import add_run, select_run, train_cached

CACHE_ENTRIES = 12
EOS_KEY = "eos_result"  # session key: the last edge-of-stability result
CHART_EVERY_S = 0.3


def _bar():
    bar = st.progress(0.0, text="starting")

    def progress(frac: float, text: str) -> None:
        bar.progress(min(max(float(frac), 0.0), 1.0), text=str(text))

    return bar, progress


def _fmt(x) -> str:
    return "—" if x is None or not np.isfinite(x) else f"{x:.4g}"


# ============================================================================ sharpness


@cached_job(CACHE_ENTRIES)
def _panels(keys: tuple, labels: tuple, rescales: tuple, split: str, _runs, _progress=None,
            _wrap=None):  # fmt: skip
    items = list(zip(labels, _runs, rescales))
    return run_heavy(sharpness.run_panels, items, sharpness.PanelSettings(), split,
                     label="the sharpness measures", callbacks={"progress": _progress}, wrap=_wrap)  # fmt: skip


@cached_job(CACHE_ENTRIES)
def _rescaled(key: str, alpha: float, split: str, _run, _progress=None, _wrap=None):
    return run_heavy(sharpness.rescaling_for_run, _run, (1.0, alpha), sharpness.PanelSettings(),
                     split, label="the rescaling demo", callbacks={"progress": _progress},
                     wrap=_wrap)  # fmt: skip


def sharpness_table(panels) -> pd.DataFrame:
    rows = {}
    for p in panels:
        col = {"loss": _fmt(p.loss)}
        for m in sharpness.MEASURES:
            v = _fmt(p.values[m])
            col[sharpness.LABELS[m]] = ("≥ " if m == "basin_width" and p.censored else "") + v
        col["time (all measures)"] = f"{sum(p.seconds.values()):.2f} s"
        rows[p.label] = col
    return pd.DataFrame(rows)


SHARPNESS_NOTICE = (
    "- **Six numbers, one claim.** λmax and the trace are curvature at the point; ε-sharpness "
    "(Keskar et al. 2017: the worst loss in a box of relative size ε = 1e-3), ρ-sharpness (SAM: "
    "the worst loss in an L2 ball of radius 0.05) and adaptive sharpness (ASAM: the same in a "
    "ball scaled by each weight's size, ρ = 0.5) ask how much the loss can rise nearby; the basin "
    "width is how far a random filter-normalised direction stays within 0.1 of the minimum.\n"
    "- **Do they agree?** If one net is sharper by every measure, the claim is robust; when they "
    "disagree, the flatter-looking plot is not enough to back a claim.\n"
    "- **Rescaling.** A ReLU net with one layer times α and the next divided by α is the same "
    "function (Dinh et al. 2017): λmax, the trace and the ε- and ρ-sharpness change, so they "
    "cannot alone say which *function* generalises better; ASAM and the filter-normalised "
    "basin width do not move. The *Normalisation matters* preset shows the same on the plots."
)


def sharpness_section(comparison, split: str = "train", measure=None) -> None:
    """The Compare page's sharpness panel: every measure of every panel, side by side, and the
    rescaling demo (Dinh et al. 2017). ``measure(labels, progress) -> [sharpness.Panel]``
    measures panels without a run (the operator's models) instead of the runs."""
    st.markdown("#### Sharpness measures side by side")
    panels = comparison.panels
    keys = tuple(fingerprint(p.run) if p.run is not None else p.label for p in panels)
    labels = tuple(p.label for p in panels)
    rescales = tuple(float(getattr(p, "rescale", 1.0)) for p in panels)
    state_key = ("sharp", keys, labels, rescales, split)
    if st.button("Measure λmax, trace, ε-, ρ- and adaptive sharpness and basin width",
                 key="rs_sharp_go"):  # fmt: skip
        bar, progress = _bar()
        try:
            st.session_state["rs_sharp"] = (state_key, _panels(
                keys, labels, rescales, split, [p.run for p in panels], _progress=progress)
                if measure is None else measure(list(labels), progress))  # fmt: skip
        except (ValueError, RuntimeError) as e:
            show_error(e)
        finally:
            bar.empty()
    got = st.session_state.get("rs_sharp")
    if got is not None and got[0] == state_key:
        res = got[1]
        st.dataframe(sharpness_table(res), key="rs_sharp_table", width="stretch")
        st.plotly_chart(plots.sharpness_bars(res, sharpness.MEASURES, sharpness.LABELS),
                        key="rs_sharp_bars")  # fmt: skip
    _rescaling_demo(comparison, split)
    with st.expander("What to notice: sharpness measures"):
        st.markdown(SHARPNESS_NOTICE)


def _relu_mlp(run) -> bool:
    c = run.config
    return c.model in ("mlp", "cnn") and c.activation == "relu" and not c.batchnorm


def _rescaling_demo(comparison, split: str) -> None:
    st.markdown("**Rescaling demo** (Dinh et al. 2017): the same function, made 'sharp'")
    runs = [p.run for p in comparison.panels if p.run is not None and _relu_mlp(p.run)]
    c1, c2 = st.columns([2, 1])
    alpha = c1.select_slider("α (layer 1 × α, layer 2 ÷ α)", [0.2, 0.5, 2.0, 5.0, 10.0], 5.0,
                             key="rs_alpha")  # fmt: skip
    source = runs[0].name if runs else "the default run (MLP on moons)"
    c2.text(f"Net: {source}")  # a run name may hold an uploaded file name: plain text
    if not c2.button("Rescale and measure", key="rs_rescale_go"):
        got = st.session_state.get("rs_rescale")
        if got is None:
            return
    else:
        bar, progress = _bar()
        try:
            run = runs[0] if runs else train_cached(presets.DEFAULT)
            got = _rescaled(fingerprint(run), float(alpha), split, run, _progress=progress)
            st.session_state["rs_rescale"] = got
        except (ValueError, RuntimeError) as e:
            show_error(e)
            return
        finally:
            bar.empty()
    st.dataframe(sharpness_table(got), key="rs_rescale_table", width="stretch")
    st.plotly_chart(plots.rescaling_figure(got, sharpness.MEASURES, sharpness.LABELS),
                    key="rs_rescale_fig")  # fmt: skip
    moved = [sharpness.LABELS[m] for m in sharpness.MEASURES
             if not np.isclose(got[1].values[m], got[0].values[m], rtol=1e-3)]  # fmt: skip
    st.caption("Moved: " + (", ".join(moved) or "none") + ". Same loss: "
               f"{_fmt(got[0].loss)} vs {_fmt(got[1].loss)}.")  # fmt: skip


# ============================================================================ edge of stability

EOS_NOTICE = (
    "- **Full-batch gradient descent** at step size η is stable on a quadratic only where the "
    "curvature is below 2/η (dashed line).\n"
    "- **Progressive sharpening**: λmax climbs during training until it reaches 2/η.\n"
    "- **The edge of stability** (Cohen et al., ICLR 2021): instead of diverging, GD keeps "
    "λmax hovering at 2/η while the loss still falls, with short spikes where λmax overshoots. "
    "Halve η and the plateau doubles. Momentum β moves the line to (2 + 2β)/η."
)


def eos_checkbox(container=st, optimizer: str = "sgd") -> bool:
    """The Train form's option; offered only with an optimiser it works with (the 2/η line is
    a gradient-descent result), and said why otherwise."""
    allowed = optimizer in stability.OPTIMIZERS
    ticked = container.checkbox(
        "Track sharpness (edge of stability)", key="tr_eos", disabled=not allowed,
        help="Full-batch gradient descent with λmax measured every few steps against 2/η "
        "(Cohen et al. 2021). Needs optimiser SGD or SGD + momentum; the batch size is ignored.",
    )  # fmt: skip
    if not allowed:
        container.caption("Sharpness tracking needs optimiser SGD or SGD + momentum.")
    return ticked and allowed


def eos_run(config_kw: dict, every: int = 5, show_key: str | None = None) -> None:
    """Train ``config_kw`` with full-batch GD and λmax tracking, live, in a worker.

    The same full-batch run then joins the session's runs (shown by the picker ``show_key``),
    so it can be sliced and compared like any other."""
    try:
        config = Config(**config_kw)
    except ValueError as e:
        show_error(e)
        return
    bar = st.progress(0.0, text="starting")
    chart = st.empty()
    last = {"t": 0.0}

    def progress(info: dict) -> None:
        bar.progress(min(info["step"] / info["steps"], 1.0),
                     text=f"step {info['step']}/{info['steps']} · loss {info['loss']:.4g}")  # fmt: skip
        now = time.perf_counter()
        if now - last["t"] >= CHART_EVERY_S or info["step"] == info["steps"]:
            last["t"] = now
            chart.plotly_chart(plots.eos_figure(info["track_steps"], info["sharpness"],
                                                info["threshold"], title="Edge of stability (live)"),
                               key=None)  # fmt: skip

    try:
        res = run_heavy(stability.track, config, every=every, label="the edge-of-stability run",
                        callbacks={"progress": progress})  # fmt: skip
        # Full-batch GD, one step per epoch: the run stability.track stepped through.
        run = train_cached(config.replace(batch_size=MAX_BATCH))
    except (ValueError, RuntimeError) as e:
        show_error(e)
        return
    finally:
        bar.empty()
        chart.empty()
    st.session_state[EOS_KEY] = res
    name = add_run(run)
    if show_key is not None:
        select_run(name, key=show_key)
    st.rerun()  # the result is drawn by eos_section, outside the Train form's fragment


def eos_section() -> None:
    """The Train page's edge-of-stability area: the demo preset button and the last result."""
    st.subheader("4 · Edge of stability (Cohen et al. 2021)")
    with st.container(border=True):
        cfg = presets.get(presets.EOS_PRESET)
        st.caption(presets.PRESETS[presets.EOS_PRESET][1])
        if st.button(f"Run the demo: {cfg.epochs} GD steps at η = {cfg.lr:g}", key="eos_demo"):
            eos_run({f: getattr(cfg, f) for f in cfg.__dataclass_fields__})
        res = st.session_state.get(EOS_KEY)
        if res is not None:
            cross = res.first_crossing()
            c = st.columns(4)
            c[0].metric("2/η", _fmt(res.threshold))
            c[1].metric(
                "λmax: start → max", f"{_fmt(res.sharpness[0])} → {_fmt(res.sharpness.max())}"
            )
            c[2].metric("reaches 2/η at step", "never" if cross is None else str(cross))
            c[3].metric("tracking overhead", f"{100 * res.overhead:.0f} %",
                        help=f"training {res.seconds_train:.2f} s, λmax measurements "
                        f"{res.seconds_track:.2f} s, {res.hvps.mean():.1f} Hessian-vector products "
                        "each (Lanczos warm-started from the previous eigenvector)")  # fmt: skip
            st.plotly_chart(plots.eos_figure(res.track_steps, res.sharpness, res.threshold,
                                             res.steps, res.loss), key="eos_fig")  # fmt: skip
            for note in res.notes:
                st.warning(note)
        st.markdown("**What to notice**\n" + EOS_NOTICE)


# ============================================================================ geometry page


@cached_job(CACHE_ENTRIES)
def _connect(
    keys: tuple,
    split: str,
    kind: str,
    steps: int,
    plane_res: int,
    _runs,
    _progress=None,
    _wrap=None,
):
    return run_heavy(connectivity.for_runs, _runs[0], _runs[1], split, kind=kind, steps=steps,
                     plane_res=plane_res, label="the paths between minima",
                     callbacks={"progress": _progress}, wrap=_wrap)  # fmt: skip


def connect(run_a, run_b, split="train", kind="bezier", steps=300, plane_res=21):
    bar, progress = _bar()
    try:
        return _connect((fingerprint(run_a), fingerprint(run_b)), split, kind, steps, plane_res,
                        [run_a, run_b], _progress=progress)  # fmt: skip
    finally:
        bar.empty()


@cached_job(CACHE_ENTRIES)
def _spectrum(key: str, split: str, vectors: int, steps: int, top_k: int, _run, _progress=None,
              _wrap=None):  # fmt: skip
    return run_heavy(spectrum.for_run, _run, split, n_vectors=vectors, steps=steps, top_k=top_k,
                     label="the Hessian spectrum", callbacks={"progress": _progress}, wrap=_wrap)  # fmt: skip


def hessian_spectrum(run, split="train", vectors=5, steps=60, top_k=5):
    bar, progress = _bar()
    try:
        return _spectrum(fingerprint(run), split, vectors, steps, top_k, run,
                         _progress=lambda d, n: progress(d / n, f"{d}/{n} Lanczos runs"))  # fmt: skip
    finally:
        bar.empty()


CONNECT_NOTICE = (
    "- **Barrier height** (Frankle et al. 2020): the highest loss on the straight line minus the "
    "mean of the two ends. Two seeds of the same net usually have a clear barrier: the straight "
    "line leaves the low region.\n"
    "- **The learned curve** (Garipov et al. 2018) has one trained point θ and stays low almost "
    "all the way: the two minima are *connected*, parts of one valley. The polygonal chain "
    "passes through θ; the quadratic Bézier only bends towards it (θ is its control point: "
    "halfway along, the curve is midway between θ and the middle of A and B).\n"
    "- **The plane** through A, B and θ holds both paths exactly (white: dashed straight line, "
    "solid curve); the contours show the ridge the line crosses and the valley the curve follows."
)

SPECTRUM_NOTICE = (
    "- **A bulk and a few outliers** (Sagun et al. 2017): most eigenvalues sit near zero (flat "
    "directions), a handful are large; the number of outliers is often near the number of "
    "classes.\n"
    "- **Negative mass** means the point is not an exact minimum (or training stopped early).\n"
    "- **The top-k** (dashed lines, by Lanczos) is the right edge of the density; λmax alone "
    "describes one direction out of thousands."
)
