"""Plotly figures of the Loss shapes page: arrays in, go.Figure out.

Every figure is built in one `go.Figure(data=..., layout=...)` call (adding traces one by one
is several times slower, and the page redraws on every slider move). A loss keeps the same
colour in every chart so the eye can follow it from shape to derivative to weight.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

#: One colour per loss name (Plotly's qualitative "D3" and "Set1" palettes, no near-repeats).
COLORS = {
    "mse": "#1f77b4",
    "mae": "#ff7f0e",
    "rmse": "#8c564b",
    "msle": "#7f7f7f",
    "huber": "#2ca02c",
    "smooth_l1": "#bcbd22",
    "pseudo_huber": "#17becf",
    "log_cosh": "#e377c2",
    "quantile": "#9467bd",
    "barron": "#d62728",
    "zero_one": "#000000",
    "hinge": "#ff7f0e",
    "squared_hinge": "#bcbd22",
    "logistic": "#1f77b4",
    "bce_logits": "#17becf",
    "bce": "#7f7f7f",
    "exponential": "#d62728",
    "focal": "#2ca02c",
    "ce_plain": "#1f77b4",  # cross-entropy chart: no smoothing
    "ce_smooth": "#d62728",  # ... with label smoothing
}

HEIGHT = 400  # px, every line chart of the page (the legend rows below included)


def _layout(title: str, x_title: str, y_title: str, **extra) -> dict:
    return dict(
        title=dict(text=title, x=0.01, font=dict(size=15)),
        xaxis=dict(title=dict(text=x_title), zeroline=True),
        yaxis=dict(title=dict(text=y_title), zeroline=True),
        height=HEIGHT,
        margin=dict(l=10, r=10, t=40, b=10),
        # below the plot, in rows: a legend beside it left a phone ~80 px of plot
        legend=dict(orientation="h", x=0, y=-0.22, yanchor="top", font=dict(size=11)),
        hovermode="x unified",
        **extra,
    )


def _line(x: np.ndarray, y: np.ndarray, key: str, label: str, **kw) -> go.Scatter:
    return go.Scatter(
        x=x,
        y=y,
        mode="lines",
        name=label,
        line=dict(color=COLORS.get(key), width=2.2, **kw.pop("line", {})),
        **kw,
    )


def curves_figure(
    x: np.ndarray,
    series: dict[str, tuple[str, np.ndarray]],
    title: str,
    x_title: str,
    y_title: str,
    y_range: tuple[float, float] | None = None,
) -> go.Figure:
    """One line per entry of `series`: key (for the colour) -> (legend label, y values)."""
    data = [_line(x, np.asarray(y), key, label) for key, (label, y) in series.items()]
    layout = _layout(title, x_title, y_title)
    if y_range is not None:
        layout["yaxis"]["range"] = list(y_range)
    return go.Figure(data=data, layout=layout)


def weight_range(
    r: np.ndarray, weights: list[np.ndarray], skip: float = 0.05
) -> tuple[float, float]:
    """A y range for the weight chart that is not swallowed by L1's 1/|r| spike at 0.

    Uses the largest finite weight over |r| >= skip * max|r| (the spike at 0 of L1 and
    quantile then runs off the top of the chart, which is honest: it goes to infinity).
    """
    far = np.abs(r) >= skip * max(float(np.abs(r).max()), 1e-12)
    tops = [
        float(np.nanmax(np.where(np.isfinite(w) & far, w, np.nan))) for w in weights if far.any()
    ]
    tops = [t for t in tops if np.isfinite(t)]
    top = max(tops) if tops else 1.0
    return (0.0, 1.15 * top if top > 0 else 1.0)


def loss_figure(r: np.ndarray, series: dict) -> go.Figure:
    return curves_figure(r, series, "Loss ρ(r)", "residual r = y − ŷ", "ρ(r)")


def influence_figure(r: np.ndarray, series: dict) -> go.Figure:
    return curves_figure(r, series, "Influence ψ(r) = dρ/dr", "residual r", "ψ(r)")


def weight_figure(r: np.ndarray, series: dict) -> go.Figure:
    y_range = weight_range(r, [y for _, y in series.values()])
    return curves_figure(
        r, series, "Weight ψ(r)/r of a point in robust regression", "residual r", "ψ(r)/r", y_range
    )


def margin_figure(m: np.ndarray, series: dict, y_max: float | None = None) -> go.Figure:
    y_range = None if y_max is None else (0.0, y_max)
    return curves_figure(m, series, "Binary losses vs margin", "margin m = y·f(x)", "loss", y_range)


def cross_entropy_figure(p: np.ndarray, series: dict, minima: dict[str, float]) -> go.Figure:
    """Cross-entropy vs p(true class); a marker at the minimum of each curve."""
    marker = go.Scatter(
        x=list(minima.values()),
        y=[float(np.interp(v, p, series[k][1])) for k, v in minima.items()],
        mode="markers",
        marker=dict(size=10, color="#d62728", symbol="diamond"),
        name="minimum",
    )
    data = [_line(p, np.asarray(y), key, label) for key, (label, y) in series.items()]
    layout = _layout(
        "Cross-entropy vs predicted probability of the true class", "p(true class)", "loss"
    )
    return go.Figure(data=[*data, marker], layout=layout)


def outlier_figure(
    x: np.ndarray,
    y: np.ndarray,
    is_outlier: np.ndarray,
    fits: dict[str, tuple[str, float, float]],
    true_line: tuple[float, float],
) -> go.Figure:
    """The points (outliers in red) and one fitted line per loss: key -> (label, slope, b)."""
    xs = np.array([x.min() - 0.1, x.max() + 0.1])
    data = [
        go.Scatter(
            x=x[~is_outlier],
            y=y[~is_outlier],
            mode="markers",
            name="inliers",
            marker=dict(color="#444444", size=7),
        ),
        go.Scatter(
            x=x[is_outlier],
            y=y[is_outlier],
            mode="markers",
            name="outliers",
            marker=dict(color="#d62728", size=9, symbol="x"),
        ),
        go.Scatter(
            x=xs,
            y=true_line[0] * xs + true_line[1],
            mode="lines",
            name=f"true line (slope {true_line[0]:.2f})",
            line=dict(color="#999999", dash="dot", width=2),
        ),
    ]
    for key, (label, a, b) in fits.items():
        data.append(_line(xs, a * xs + b, key, f"{label}: slope {a:.2f}"))
    layout = _layout("Line fits under four losses", "x", "y")
    layout["height"] = 420
    layout["hovermode"] = "closest"
    return go.Figure(data=data, layout=layout)
