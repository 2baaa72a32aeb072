"""Streamlit glue for the Loss shapes page: bounded caches around landscape.core.losses/robust and
the per-loss parameter sliders. The numbers themselves come from the library."""

from __future__ import annotations

import math

import numpy as np
import streamlit as st

from landscape.core import losses, robust
from landscape.plots import losses as plots
from landscape.ui.charts import kept
from landscape.ui.links import url

N_POINTS = 401  # points per curve: smooth at any zoom, small enough to redraw at once


@st.cache_data(max_entries=256, show_spinner=False)
def regression_curves(name: str, lo: float, hi: float, params: tuple) -> dict[str, np.ndarray]:
    """rho, psi, psi/r of one regression loss over [lo, hi] (params as sorted items)."""
    r = np.linspace(lo, hi, N_POINTS)
    return losses.regression_curves(name, r, **dict(params))


@st.cache_data(max_entries=128, show_spinner=False)
def margin_curve(name: str, lo: float, hi: float, params: tuple) -> np.ndarray:
    return losses.margin_curve(name, np.linspace(lo, hi, N_POINTS), **dict(params))


@st.cache_data(max_entries=64, show_spinner=False)
def cross_entropy_curve(n_classes: int, label_smoothing: float) -> tuple[np.ndarray, np.ndarray]:
    p = np.linspace(0.002, 0.998, N_POINTS)
    return p, losses.cross_entropy_curve(p, n_classes, label_smoothing)


@st.cache_data(max_entries=512, show_spinner=False)
def outlier_fit(loss: str, params: tuple, n_outliers: int, offset: float, seed: int):
    """(slope, intercept) of one loss on the demo's data: a slider refits only its own loss."""
    x, y, _ = outlier_data(n_outliers, offset, seed)
    return robust.fit_line(x, y, loss, **dict(params))


def outlier_data(n_outliers: int, offset: float, seed: int):
    return robust.make_outlier_line(n=40, n_outliers=n_outliers, outlier_offset=offset, seed=seed)


def outlier_demo(n_outliers: int, offset: float, delta: float, c: float, seed: int) -> dict:
    """The demo's data and its four line fits (MSE, L1, Huber(delta), Cauchy(c))."""
    x, y, is_out = outlier_data(n_outliers, offset, seed)
    fits = {}
    for key, label, params in (
        ("mse", "MSE", ()),
        ("mae", "L1", ()),
        ("huber", f"Huber δ={delta:g}", (("delta", delta),)),
        ("barron", f"Cauchy c={c:g}", (("alpha", 0.0), ("c", c))),
    ):
        fits[key] = (label, *outlier_fit(key, params, n_outliers, offset, seed))
    return {"x": x, "y": y, "is_outlier": is_out, "fits": fits}


# ----------------------------------------------------------------------------- charts
# Each chart is kept (landscape.ui.charts), keyed by the page's settings, and shared by all
# sessions: every session opens the page at the same defaults, and sliders have few
# positions. A returned figure is read-only.


@st.cache_resource(max_entries=64, show_spinner=False)
def regression_charts(chosen: tuple, lo: float, hi: float, params: tuple) -> dict:
    """The rho, psi and weight charts of the chosen losses; params: ((name, frozen), ...)."""
    given = dict(params)
    curves = {n: regression_curves(n, lo, hi, given[n]) for n in chosen}
    r = curves[chosen[0]]["r"]
    labels = {n: label(n, dict(given[n])) for n in chosen}
    charts = {}
    for key, build in (
        ("rho", plots.loss_figure),
        ("psi", plots.influence_figure),
        ("weight", plots.weight_figure),
    ):
        charts[key] = kept(build(r, {n: (labels[n], curves[n][key]) for n in chosen}))
    return charts


@st.cache_resource(max_entries=64, show_spinner=False)
def margin_chart(chosen: tuple, lo: float, hi: float, params: tuple):
    """The binary losses against the margin over [lo, hi]; params: ((name, frozen), ...)."""
    given = dict(params)
    m = np.linspace(lo, hi, N_POINTS)
    series = {n: (label(n, dict(given[n])), margin_curve(n, lo, hi, given[n])) for n in chosen}
    y_max = max(2.0, 2.0 - lo)  # keep the interesting part; exp(-m) runs off the top
    return kept(plots.margin_figure(m, series, y_max))


@st.cache_resource(max_entries=128, show_spinner=False)
def cross_entropy_chart(n_classes: int, eps: float):
    """Cross-entropy with and without label smoothing eps, each curve's minimum marked."""
    p, plain = cross_entropy_curve(n_classes, 0.0)
    series = {"ce_plain": ("ε = 0", plain)}
    minima = {"ce_plain": float(p[-1])}
    if eps > 0:
        _, smooth = cross_entropy_curve(n_classes, eps)
        series["ce_smooth"] = (f"ε = {eps:g}", smooth)
        minima["ce_smooth"] = float(p[np.argmin(smooth)])
    return kept(plots.cross_entropy_figure(p, series, minima))


@st.cache_resource(max_entries=128, show_spinner=False)
def outlier_chart(n_outliers: int, offset: float, delta: float, c: float, seed: int, true_line):
    """(the demo's chart, {loss: slope}) for these slider settings."""
    demo = outlier_demo(n_outliers, offset, delta, c, seed)
    fig = plots.outlier_figure(demo["x"], demo["y"], demo["is_outlier"], demo["fits"], true_line)
    return kept(fig), {k: v[1] for k, v in demo["fits"].items()}


SYMBOL = {"alpha": "α", "delta": "δ", "beta": "β", "tau": "τ", "gamma": "γ", "margin": "Δ"}


def label(name: str, params: dict) -> str:
    """Legend text: the loss and its parameter values, e.g. "Huber (δ=1.5)"."""
    display = losses.get(name).display
    if not params:
        return display
    shown = ", ".join(
        f"{SYMBOL.get(k, k)}={'−∞' if v == -np.inf else f'{v:g}'}" for k, v in params.items()
    )
    return f"{display} ({shown})"


def param_sliders(name: str, prefix: str) -> dict[str, float]:
    """One slider per parameter of loss `name` (Barron's alpha also gets a -inf checkbox)."""
    spec = losses.get(name)
    values = {}
    for p in spec.params:
        key = f"{prefix}_{name}_{p.name}"
        label = f"{spec.display}: {losses.plain_label(p.label)}"  # plain text: accessible name
        if name == "barron" and p.name == "alpha":
            neg_inf = st.checkbox(
                "α = −∞ (Welsch)",
                **url(f"{key}_neginf"),
                help="the limit of α → −∞: 1 − exp(−(r/c)²/2)",
            )
            v = st.slider(
                label, p.min, p.max, p.default, 0.1, **url(key), help=p.help, disabled=neg_inf
            )
            values[p.name] = -math.inf if neg_inf else v
            continue
        step = 0.05 if p.max - p.min <= 2 else 0.1
        values[p.name] = st.slider(label, p.min, p.max, p.default, step, **url(key), help=p.help)
    return values


def frozen(params: dict) -> tuple:
    """dict -> hashable sorted items, the form the caches take."""
    return tuple(sorted(params.items()))
