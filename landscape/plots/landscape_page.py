"""Figure touches the Landscape page needs beyond ``landscape.plots.surfaces``.

``surfaces.contour_figure`` marks the minimum itself; the heatmap and the 3-D surface do not,
so the page adds the marker here. Arrays in, figure out; no numerics beyond locating the
lowest finite grid point.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from landscape.engine.surface import Surface

MIN_STYLE = {"symbol": "x", "size": 12, "color": "white", "line": {"width": 2, "color": "black"}}


def argmin(surface: Surface) -> tuple[int, int] | None:
    """(i, j) of the lowest finite loss of a plane (row i = ys[i]), or None if none is finite."""
    z = np.where(np.isfinite(surface.loss), surface.loss, np.nan)
    if not np.any(np.isfinite(z)):
        return None
    i, j = np.unravel_index(int(np.nanargmin(z)), z.shape)
    return int(i), int(j)


def mark_minimum(fig: go.Figure, surface: Surface, three_d: bool = False) -> go.Figure:
    """Add a marker at the lowest finite loss of ``surface`` (a plane) to ``fig``."""
    ij = argmin(surface)
    if ij is None:
        return fig
    i, j = ij
    x, y, z = float(surface.xs[j]), float(surface.ys[i]), float(surface.loss[i, j])
    name = f"min loss {z:.4g}"
    if three_d:
        fig.add_trace(
            go.Scatter3d(
                x=[x], y=[y], z=[z], mode="markers", marker={"size": 6, "color": "red"}, name=name
            )
        )
    else:
        fig.add_trace(go.Scatter(x=[x], y=[y], mode="markers", marker=MIN_STYLE, name=name))
    return fig


def log_colours_3d(
    fig: go.Figure, surface: Surface, zmin: float | None = None, zmax: float | None = None
) -> go.Figure:
    """Colour a 3-D surface by log10(loss) while its height stays the loss.

    A loss surface is a flat basin next to steep walls: coloured linearly, the whole basin is
    one dark colour. Colouring by the logarithm (as the contour's levels are) shows the
    basin's structure; the colour bar is labelled in loss units. No-op unless every finite
    value is positive.
    """
    z = np.where(np.isfinite(surface.loss), surface.loss, np.nan)
    z = np.clip(z, -np.inf if zmin is None else zmin, np.inf if zmax is None else zmax)
    finite = z[np.isfinite(z)]
    if finite.size == 0 or finite.min() <= 0:
        return fig
    lo, hi = float(finite.min()), float(finite.max())
    ticks = _log_ticks(lo, hi)
    fig.update_traces(
        selector={"type": "surface"},
        surfacecolor=np.log10(z),
        cmin=math.log10(lo),
        cmax=math.log10(hi) if hi > lo else math.log10(lo) + 1e-12,
        colorbar={
            "title": {"text": "loss (log colours)"},
            "tickvals": [math.log10(v) for v in ticks],
            "ticktext": [f"{v:.3g}" for v in ticks],
        },
    )
    return fig


def _log_ticks(lo: float, hi: float) -> list[float]:
    """1, 2, 5 x 10^k between lo and hi; just the ends when the range is narrower."""
    vals = [
        m * 10.0**e
        for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
        for m in (1, 2, 5)
    ]
    vals = [v for v in vals if lo <= v <= hi]
    return vals if len(vals) >= 2 else sorted({lo, hi})


def add_path(fig: go.Figure, px, py, labels) -> go.Figure:
    """Draw a projected training path (epoch by epoch) over a 2-D figure (e.g. a heatmap)."""
    fig.add_trace(
        go.Scatter(
            x=list(px),
            y=list(py),
            mode="lines+markers",
            line={"color": "#ff4136", "width": 2},
            marker={"size": 5},
            text=list(labels),
            hovertemplate="%{text}<br>x=%{x:.4g}<br>y=%{y:.4g}<extra>path</extra>",
            name="training path",
        )
    )
    return fig
