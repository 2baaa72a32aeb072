"""Streamlit glue for the Loss shapes page: bounded caches around landscape.core.losses/robust and
the per-loss parameter sliders. The numbers themselves come from the library."""

from __future__ import annotations

import math

import numpy as np
import streamlit as st

from landscape.core import losses, robust
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


@st.cache_data(max_entries=128, show_spinner=False)
def outlier_demo(n_outliers: int, offset: float, delta: float, c: float, seed: int) -> dict:
    """The demo's data and its four line fits (MSE, L1, Huber(delta), Cauchy(c))."""
    x, y, is_out = robust.make_outlier_line(
        n=40, n_outliers=n_outliers, outlier_offset=offset, seed=seed
    )
    fits = {
        "mse": ("MSE", *robust.fit_line(x, y, "mse")),
        "mae": ("L1", *robust.fit_line(x, y, "mae")),
        "huber": (f"Huber δ={delta:g}", *robust.fit_line(x, y, "huber", delta=delta)),
        "barron": (f"Cauchy c={c:g}", *robust.fit_line(x, y, "barron", alpha=0.0, c=c)),
    }
    return {"x": x, "y": y, "is_outlier": is_out, "fits": fits}


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
