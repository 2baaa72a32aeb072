"""THE figure of a plane (``plane_figure``: contour, heatmap or 3-D, with the path of a PCA
plane), shared by the Landscape page, the operator's models and the command line, and the
touches it needs beyond ``landscape.plots.surfaces``.

``surfaces.contour_figure`` and ``heatmap_figure`` mark the lowest point (star) and the
trained model (cross) themselves; the 3-D surface gets its minimum marked here. Arrays in,
figure out; no numerics beyond locating the lowest finite grid point.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from landscape.engine.surface import Surface
from landscape.plots import surfaces as plots

KINDS = ("contour", "heatmap", "3D")


def plane_figure(
    surface: Surface,
    kind: str = "contour",
    *,
    field: str = "loss",
    log: bool | None = True,
    zmin: float | None = None,
    zmax: float | None = None,
    path: tuple | None = None,
    path_labels=None,
    explained=None,
    title: str | None = None,
    x_title: str = "d1",
    y_title: str = "d2",
) -> go.Figure:
    """The figure of a plane as ``kind`` (contour, heatmap or 3D).

    ``log``: log colours for the loss (None: when possible); ``zmin``/``zmax`` clip the
    colours; ``path`` = (xs, ys) of a projected training path, drawn over the 2-D views with
    ``path_labels`` for the hover and ``explained`` (PCA variance ratios) in the axis titles.
    """
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r} must be one of {KINDS}")
    log = log if field == "loss" else False
    kw = {"field": field, "log": log, "zmin": zmin, "zmax": zmax, "title": title}
    if path is not None:
        x_title, y_title = plots.pca_axis_titles(explained)
    titles = {"x_title": x_title, "y_title": y_title}
    if kind == "3D":
        fig = plots.surface3d_figure(surface, **{**kw, "log": bool(log)}, **titles)
        if log:
            fig = log_colours_3d(fig, surface, zmin, zmax)
        return mark_minimum(fig, surface) if field == "loss" else fig
    if path is not None and kind == "contour":
        return plots.trajectory_figure(surface, *path, explained, path_labels, **kw, **titles)
    figure = plots.contour_figure if kind == "contour" else plots.heatmap_figure
    fig = figure(surface, **kw, **titles)
    if path is not None:
        labels = (
            path_labels if path_labels is not None else [f"epoch {k}" for k in range(len(path[0]))]
        )
        fig = add_path(fig, *path, labels)
    return fig


def argmin(surface: Surface) -> tuple[int, int] | None:
    """(i, j) of the lowest finite loss of a plane (row i = ys[i]), or None if none is finite."""
    z = np.where(np.isfinite(surface.loss), surface.loss, np.nan)
    if not np.any(np.isfinite(z)):
        return None
    i, j = np.unravel_index(int(np.nanargmin(z)), z.shape)
    return int(i), int(j)


def mark_minimum(fig: go.Figure, surface: Surface) -> go.Figure:
    """Add a marker at the lowest finite loss of ``surface`` (a plane) to a 3-D ``fig``."""
    ij = argmin(surface)
    if ij is None:
        return fig
    i, j = ij
    x, y, z = float(surface.xs[j]), float(surface.ys[i]), float(surface.loss[i, j])
    fig.add_trace(
        go.Scatter3d(
            x=[x],
            y=[y],
            z=[z],
            mode="markers",
            marker={"size": 6, "color": "red"},
            name=f"min loss {z:.4g}",
        )
    )
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
