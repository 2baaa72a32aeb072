"""Plotly figures of loss surfaces: lines, contours, heatmaps, 3-D surfaces, PCA paths.

Arrays in, ``go.Figure`` out; no numerics beyond what drawing needs. Orientation follows
``Surface``: ``z = loss`` with ``x = xs`` and ``y = ys``, so ``loss[i, j]`` is drawn at
``(xs[j], ys[i])``.

Loss surfaces span orders of magnitude (a flat basin at 0.01 next to walls at 100), so
contour levels and colours are log-spaced by default: a linear scale would paint the whole
basin one colour. NaN/inf points (a diverging step) are masked, never drawn as a value, and
the figure says how many there were. A user colour range ``zmin``/``zmax`` clips the values
and the figure says how many points were clipped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from landscape.engine.surface import Surface

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b")
FIELDS = ("loss", "accuracy")


# ----------------------------------------------------------------------------- helpers


def _field(surface: Surface, field: str) -> np.ndarray:
    if field not in FIELDS:
        raise ValueError(f"field={field!r} is not allowed: must be one of {list(FIELDS)}")
    z = surface.loss if field == "loss" else surface.accuracy
    if z is None:
        raise ValueError(f"field={field!r}: this surface has no {field} (regression task?)")
    return np.where(np.isfinite(z), z, np.nan).astype(np.float64)  # inf -> NaN: masked


def _plane(surface: Surface) -> None:
    if surface.kind != "plane" or surface.ys is None:
        raise ValueError(f"surface.kind={surface.kind!r}: this figure needs a 'plane'")


def _clip(z: np.ndarray, zmin: float | None, zmax: float | None) -> tuple[np.ndarray, list[str]]:
    """Clip z to the user's colour range; returns notes on how many points were clipped."""
    notes = []
    if zmin is not None and zmax is not None and not zmin < zmax:
        raise ValueError(f"zmin={zmin} zmax={zmax}: zmin must be below zmax")
    for bound, name, cmp in ((zmax, "zmax", np.greater), (zmin, "zmin", np.less)):
        if bound is None:
            continue
        if not math.isfinite(bound):
            raise ValueError(f"{name}={bound} must be finite")
        n = int(np.sum(cmp(z, bound, where=np.isfinite(z), out=np.zeros(z.shape, bool))))
        if n:
            side = "above" if name == "zmax" else "below"
            notes.append(f"{n} points {side} {name}={bound:.3g} clipped")
    lo = -np.inf if zmin is None else zmin
    hi = np.inf if zmax is None else zmax
    return np.clip(z, lo, hi), notes


def _masked_note(z: np.ndarray) -> list[str]:
    n = int(np.sum(~np.isfinite(z)))
    return [f"{n} of {z.size} points NaN/inf (diverged): masked"] if n else []


def _use_log(z: np.ndarray, log: bool | None) -> bool:
    """Log scale when asked (or by default) and possible: every finite value positive."""
    finite = z[np.isfinite(z)]
    possible = finite.size > 0 and bool(np.all(finite > 0))
    return possible if log is None else (bool(log) and possible)


def _log_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Colour-bar ticks at 1, 2, 5 x 10^k (every integer mantissa if that gives fewer than
    four) between lo and hi (> 0), in log10 units, labelled in the data's units."""
    exps = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    for mantissas in ((1, 2, 5), range(1, 10)):
        vals = [m * 10.0**e for e in exps for m in mantissas]
        vals = [v for v in vals if lo * (1 - 1e-9) <= v <= hi * (1 + 1e-9)]
        if len(vals) >= 4:
            break
    if len(vals) < 2:
        vals = sorted({lo, hi})
    return [math.log10(v) for v in vals], [f"{v:.3g}" for v in vals]


def _color(z: np.ndarray, log: bool, title: str, n_levels: int) -> dict:
    """z to draw, contour levels and colour bar: log10 of z with ticks in z's units if log."""
    finite = z[np.isfinite(z)]
    if finite.size == 0:
        return {"z": z, "colorbar": {"title": {"text": title}}}
    if log:
        with np.errstate(divide="ignore", invalid="ignore"):
            zz = np.log10(z)
        lo, hi = float(finite.min()), float(finite.max())
        tickvals, ticktext = _log_ticks(lo, hi)
        colorbar = {"title": {"text": f"{title} (log)"}, "tickvals": tickvals, "ticktext": ticktext}
        start, end = math.log10(lo), math.log10(hi)
    else:
        zz, colorbar = z, {"title": {"text": title}}
        start, end = float(finite.min()), float(finite.max())
    size = (end - start) / max(n_levels, 1) if end > start else 1.0
    levels = {"start": start, "end": end, "size": size}
    return {"z": zz, "colorbar": colorbar, "levels": levels}


def add_notes(fig: go.Figure, notes: list[str]) -> go.Figure:
    """Write notes (masked points, clipping) in amber above the plot."""
    if notes:
        fig.add_annotation(
            text="; ".join(notes),
            xref="paper",
            yref="paper",
            x=0,
            y=1.0,
            yanchor="bottom",
            showarrow=False,
            font={"size": 11, "color": "#b45309"},
        )
    return fig


def _hover(name: str) -> str:
    return "x=%{x:.4g}<br>y=%{y:.4g}<br>" + name + "=%{customdata:.5g}<extra></extra>"


def _markers(fig: go.Figure, surface: Surface, z: np.ndarray, field: str) -> None:
    """Mark the best grid point (min loss / max accuracy) and the centre model (0, 0)."""
    if np.any(np.isfinite(z)):
        best = np.nanargmin(z) if field == "loss" else np.nanargmax(z)
        i, j = np.unravel_index(best, z.shape)
        label = "min" if field == "loss" else "max"
        fig.add_trace(
            go.Scatter(
                x=[surface.xs[j]],
                y=[surface.ys[i]],
                mode="markers+text",
                marker={"symbol": "star", "size": 14, "color": "white", "line": {"width": 1}},
                text=[f"{label} {z[i, j]:.3g}"],
                textposition=_label_position(i, j, z.shape),
                textfont={"color": "white"},
                cliponaxis=False,
                name=f"{label} {field} {z[i, j]:.4g}",
            )
        )
    if surface.xs[0] <= 0 <= surface.xs[-1] and surface.ys[0] <= 0 <= surface.ys[-1]:
        fig.add_trace(
            go.Scatter(
                x=[0.0],
                y=[0.0],
                mode="markers",
                marker={"symbol": "x", "size": 10, "color": "black"},
                cliponaxis=False,
                name="trained model (0, 0)",
            )
        )


def _label_position(i: int, j: int, shape: tuple[int, int]) -> str:
    """Where a marker's label goes so that it stays inside the plot: away from the nearest
    edges (row i of ``shape[0]`` counts up from the bottom, column j from the left)."""
    rows, cols = shape
    vertical = "bottom" if i >= rows - max(2, rows // 6) else "top"
    horizontal = (
        "right" if j < max(2, cols // 5) else "left" if j >= cols - max(2, cols // 5) else "center"
    )
    return f"{vertical} {horizontal}"


def _layout(fig: go.Figure, title: str | None, x_title: str, y_title: str) -> go.Figure:
    fig.update_layout(
        title={"text": title} if title else None,
        xaxis_title=x_title,
        yaxis_title=y_title,
        legend={"orientation": "h", "yanchor": "top", "y": -0.15},
        margin={"l": 60, "r": 20, "t": 60, "b": 60},
    )
    return fig


def _grid_ranges(fig: go.Figure, surface: Surface) -> None:
    """Axes span exactly the grid (markers on its edge must not widen them)."""
    if surface.xs.size > 1:
        fig.update_xaxes(range=[float(surface.xs[0]), float(surface.xs[-1])])
    if surface.ys is not None and surface.ys.size > 1:
        fig.update_yaxes(range=[float(surface.ys[0]), float(surface.ys[-1])])


# ----------------------------------------------------------------------------- line


def line_figure(
    surfaces: Surface | Sequence[Surface],
    names: Sequence[str] | None = None,
    log_y: bool = False,
    show_accuracy: bool = True,
    title: str | None = None,
    x_title: str = "t (step along the direction)",
    marks: dict[str, float] | None = None,
) -> go.Figure:
    """Loss along one or more lines (solid, left axis), accuracy dashed on a right axis.

    Several lines overlay in one figure (e.g. several random directions, or train vs test).
    ``log_y`` puts the loss on a log axis (non-positive values then drop out). ``marks``
    draws labelled vertical lines, e.g. ``{"trained": 0}`` or ``{"init": 0, "trained": 1}``.
    """
    lines = [surfaces] if isinstance(surfaces, Surface) else list(surfaces)
    if not lines or any(s.kind != "line" for s in lines):
        raise ValueError("surfaces must be one or more Surfaces of kind 'line'")
    names = list(names) if names is not None else [f"line {k + 1}" for k in range(len(lines))]
    if len(names) != len(lines):
        raise ValueError(f"names has {len(names)} entries: must have {len(lines)}")
    with_acc = show_accuracy and any(s.accuracy is not None for s in lines)
    fig = make_subplots(specs=[[{"secondary_y": True}]]) if with_acc else go.Figure()
    notes = []
    for k, (s, name) in enumerate(zip(lines, names)):
        color, loss = COLORS[k % len(COLORS)], _field(s, "loss")
        kw = {"secondary_y": False} if with_acc else {}
        fig.add_trace(go.Scatter(x=s.xs, y=loss, name=f"{name} loss", line={"color": color}), **kw)
        if with_acc and s.accuracy is not None:
            acc = _field(s, "accuracy")
            trace = go.Scatter(
                x=s.xs, y=acc, name=f"{name} accuracy", line={"color": color, "dash": "dash"}
            )
            fig.add_trace(trace, secondary_y=True)
        notes += [f"{name}: {n}" for n in _masked_note(s.loss)]
    _layout(fig, title, x_title, "loss")
    left = {"secondary_y": False} if with_acc else {}
    fig.update_yaxes(type="log" if log_y else "linear", title_text="loss", **left)
    if with_acc:
        fig.update_yaxes(
            title_text="accuracy",
            range=[0, 1.02],
            tickvals=[0, 0.2, 0.4, 0.6, 0.8, 1.0],
            showgrid=False,
            secondary_y=True,
        )
    for label, x in (marks or {}).items():
        fig.add_vline(x=x, line={"dash": "dot", "color": "gray"}, annotation_text=label)
    return add_notes(fig, notes)


# ----------------------------------------------------------------------------- plane


def contour_figure(
    surface: Surface,
    field: str = "loss",
    log: bool | None = None,
    n_levels: int = 30,
    zmin: float | None = None,
    zmax: float | None = None,
    title: str | None = None,
    x_title: str = "d1",
    y_title: str = "d2",
    mark: bool = True,
    lines: tuple[float, float, float] | None = None,
) -> go.Figure:
    """Contour plot of a plane; levels log-spaced by default (``log=None``: when possible).

    ``zmin``/``zmax``: colour range in the field's units; values outside are clipped and the
    figure notes how many. ``mark`` stars the best point and crosses the centre model.
    ``lines=(first, last, step)``: contour lines only, at those values of the field (Li et
    al.'s plots draw loss 0.1 to 10 every 0.5), named on the colour bar; points above ``last``
    stay blank rather than clipped, so closed lines (islands) show wherever they are.
    Hover shows the real value, not its log.
    """
    _plane(surface)
    raw = _field(surface, field)
    if lines is not None:
        return _line_contours(surface, raw, field, lines, title, x_title, y_title, mark)
    z, notes = _clip(raw, zmin, zmax)
    c = _color(z, _use_log(z, log if field == "loss" else False), field, n_levels)
    contour = go.Contour(
        x=surface.xs,
        y=surface.ys,
        z=c["z"],
        customdata=raw,
        hovertemplate=_hover(field),
        colorscale="Viridis" if field == "loss" else "Viridis_r",
        colorbar=c["colorbar"],
        connectgaps=False,
        contours={**c.get("levels", {}), "coloring": "heatmap"},
        autocontour="levels" not in c,
        line={"width": 0.5, "color": "rgba(255,255,255,0.5)"},
        name=field,
    )
    return _contour_done(contour, surface, raw, field, mark, title, x_title, y_title, notes)


def _contour_done(contour, surface, raw, field, mark, title, x_title, y_title, notes) -> go.Figure:
    """The contour trace as a figure: markers, layout, the grid's ranges and the notes."""
    fig = go.Figure(contour)
    if mark:
        _markers(fig, surface, raw, field)
    _layout(fig, title, x_title, y_title)
    _grid_ranges(fig, surface)
    return add_notes(fig, _masked_note(surface.loss) + notes)


def _line_contours(surface, raw, field, lines, title, x_title, y_title, mark) -> go.Figure:
    first, last, step = (float(v) for v in lines)
    if not (math.isfinite(first) and math.isfinite(last) and step > 0 and first <= last):
        raise ValueError(f"lines={lines}: must be (first, last, step) with first <= last, step > 0")
    named = f"{field}: lines at {first:g}, {first + step:g}, ..., {last:g}"
    contour = go.Contour(
        x=surface.xs,
        y=surface.ys,
        z=raw,
        customdata=raw,
        hovertemplate=_hover(field),
        colorscale="Viridis" if field == "loss" else "Viridis_r",
        colorbar={"title": {"text": named, "side": "right"}, "thickness": 12},
        connectgaps=False,
        autocontour=False,
        contours={"start": first, "end": last, "size": step, "coloring": "lines"},
        zmin=first,
        zmax=last,
        line={"width": 1.5},
        name=field,
    )
    return _contour_done(contour, surface, raw, field, mark, title, x_title, y_title, [])


def heatmap_figure(
    surface: Surface,
    field: str = "loss",
    log: bool | None = None,
    zmin: float | None = None,
    zmax: float | None = None,
    title: str | None = None,
    x_title: str = "d1",
    y_title: str = "d2",
    mark: bool = True,
) -> go.Figure:
    """Heatmap of a plane: every grid point one cell, no interpolation between points;
    ``mark`` as in ``contour_figure`` (the same symbols in both views)."""
    _plane(surface)
    raw = _field(surface, field)
    z, notes = _clip(raw, zmin, zmax)
    c = _color(z, _use_log(z, log if field == "loss" else False), field, 1)
    heat = go.Heatmap(
        x=surface.xs,
        y=surface.ys,
        z=c["z"],
        customdata=raw,
        hovertemplate=_hover(field),
        colorscale="Viridis" if field == "loss" else "Viridis_r",
        colorbar=c["colorbar"],
        name=field,
    )
    fig = go.Figure(heat)
    if mark:
        _markers(fig, surface, raw, field)
    _layout(fig, title, x_title, y_title)
    return add_notes(fig, _masked_note(surface.loss) + notes)


def surface3d_figure(
    surface: Surface,
    field: str = "loss",
    log: bool = False,
    zmin: float | None = None,
    zmax: float | None = None,
    title: str | None = None,
    x_title: str = "d1",
    y_title: str = "d2",
) -> go.Figure:
    """3-D surface of a plane; ``zmax`` clips tall walls so the basin stays visible."""
    _plane(surface)
    raw = _field(surface, field)
    z, notes = _clip(raw, zmin, zmax)
    use_log = _use_log(z, log)
    colour, colorbar = z, {"title": {"text": field}}
    if use_log:  # the colours follow the log axis: a linear colour bar made one colour of it
        c = _color(z, True, field, 1)
        colour, colorbar = c["z"], c["colorbar"]
    fig = go.Figure(
        go.Surface(
            x=surface.xs,
            y=surface.ys,
            z=z,
            surfacecolor=colour,
            customdata=raw,
            hovertemplate=_hover(field),
            colorscale="Viridis" if field == "loss" else "Viridis_r",
            colorbar=colorbar,
            name=field,
        )
    )
    zaxis = {"title": {"text": field}, "type": "log" if use_log else "linear"}
    if use_log:  # Plotly's own log ticks in 3D label 2, 5, ... of every decade: a pile-up
        finite = z[np.isfinite(z) & (z > 0)]
        ticks = _few_log_ticks(float(finite.min()), float(finite.max()))
        zaxis.update(tickvals=ticks, ticktext=[f"{v:.3g}" for v in ticks])
    fig.update_layout(
        title={"text": title} if title else None,
        scene={
            # long titles break onto a second line: one line was cut off at the scene's edge
            "xaxis_title": x_title.replace(" (", "<br>("),
            "yaxis_title": y_title.replace(" (", "<br>("),
            "zaxis": zaxis,
            "camera": {"eye": {"x": 1.7, "y": 1.7, "z": 1.1}},  # a little further out
        },
        margin={"l": 0, "r": 0, "t": 60, "b": 0},
    )
    return add_notes(fig, _masked_note(surface.loss) + notes)


def _few_log_ticks(lo: float, hi: float, most: int = 6) -> list[float]:
    """Tick values for a log axis from lo to hi: whole decades (every k-th when there are
    many), or 4 evenly spaced values in log when the range is under two decades."""
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    decades = [10.0**e for e in range(a, b + 1) if lo <= 10.0**e <= hi]
    if len(decades) >= 2:
        step = -(-len(decades) // most)
        return decades[::step]
    return [float(v) for v in np.geomspace(lo, hi, 4)]


def pca_axis_titles(explained: Sequence[float] | None) -> tuple[str, str]:
    """Axis titles with the share of the path's variance each PCA axis explains."""
    if explained is None:
        return "PC1", "PC2"
    r1, r2 = (float(r) for r in explained[:2])
    return f"PC1 ({100 * r1:.1f}% of variance)", f"PC2 ({100 * r2:.1f}% of variance)"


def trajectory_figure(
    surface: Surface,
    path_x: Sequence[float] | np.ndarray,
    path_y: Sequence[float] | np.ndarray,
    explained: Sequence[float] | None = None,
    labels: Sequence[str] | None = None,
    **contour_kw,
) -> go.Figure:
    """The training path (projected checkpoints) drawn over the contour of the PCA plane.

    ``path_x, path_y`` from ``directions.project``; ``explained`` the explained variance
    ratios from ``directions.pca_directions`` (shown in the axis titles); ``labels`` one per
    checkpoint for the hover (default "epoch k").
    """
    px, py = np.asarray(path_x, dtype=float), np.asarray(path_y, dtype=float)
    if px.shape != py.shape or px.ndim != 1:
        raise ValueError(f"path_x shape={px.shape} path_y shape={py.shape}: must be equal 1-D")
    labels = list(labels) if labels is not None else [f"epoch {k}" for k in range(px.size)]
    x_title, y_title = pca_axis_titles(explained)
    contour_kw = {"x_title": x_title, "y_title": y_title, **contour_kw}
    fig = contour_figure(surface, **contour_kw)
    fig.add_trace(
        go.Scatter(
            x=px,
            y=py,
            mode="lines+markers",
            line={"color": "#ff4136", "width": 2},
            marker={"size": 5},
            text=labels,
            hovertemplate="%{text}<br>x=%{x:.4g}<br>y=%{y:.4g}<extra>path</extra>",
            name="training path",
        )
    )
    if px.size:
        fig.add_trace(
            go.Scatter(
                x=px[:1],
                y=py[:1],
                mode="markers",
                marker={"symbol": "circle-open", "size": 12, "color": "#ff4136"},
                name="initialisation",
            )
        )
    return fig
