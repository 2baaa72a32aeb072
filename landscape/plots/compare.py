"""Plotly figures of the Compare page: panels side by side on one scale.

Arrays in, ``go.Figure`` out. Two pictures can only be compared by eye when they share the
scale: ``contour_panels`` gives every panel the same colour range (``zmin``/``zmax``), the
same contour levels (``contours.start/end/size``) and the same colour scale, computed from
all panels together, so one colour means one loss value in every panel.

Loss values span orders of magnitude (a basin at 0.01 beside walls at 100), so colours are
log-spaced when every finite value is positive: ``z`` is then ``log10(loss)`` and the colour
bar is labelled in loss units. NaN/inf points (divergence) are masked and counted in a note.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from landscape.engine.surface import Surface
from landscape.plots.surfaces import add_notes

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf")
HEIGHT = 380  # px of every chart on the page


def _check_names(items: Sequence, names: Sequence[str]) -> list[str]:
    names = list(names)
    if len(names) != len(items) or not items:
        raise ValueError(f"names has {len(names)} entries: must have one per panel ({len(items)})")
    return names


# ---------------------------------------------------------------------------------------------
# a shared colour scale


def shared_range(planes: Sequence[Surface], zmax: float | None = None) -> tuple[float, float]:
    """(lo, hi) over the finite losses of every plane; ``zmax`` caps hi (walls clipped).

    Raises ValueError when no plane has a finite value (nothing to scale)."""
    finite = np.concatenate([p.loss[np.isfinite(p.loss)].ravel() for p in planes])
    if finite.size == 0:
        raise ValueError("no finite loss values in any panel: nothing to draw")
    lo, hi = float(finite.min()), float(finite.max())
    if zmax is not None:
        if not math.isfinite(zmax) or zmax <= lo:
            raise ValueError(f"zmax={zmax!r} is out of range: must be finite and above {lo:.4g}")
        hi = min(hi, float(zmax))
    if hi <= lo:  # a perfectly flat picture: give the colour scale some room
        hi = lo + max(abs(lo), 1.0) * 1e-6
    return lo, hi


def _ticks(lo: float, hi: float, log: bool) -> dict:
    if not log:
        return {}
    vals = [
        m * 10.0**e
        for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
        for m in (1, 2, 5)
    ]
    vals = [v for v in vals if lo * (1 - 1e-9) <= v <= hi * (1 + 1e-9)] or [lo, hi]
    return {"tickvals": [math.log10(v) for v in vals], "ticktext": [f"{v:.3g}" for v in vals]}


def colour_scale(
    planes: Sequence[Surface], log: bool = True, n_levels: int = 30, zmax: float | None = None
) -> dict:
    """The one scale every panel uses: {"log", "lo", "hi", "zmin", "zmax", "levels", ticks}.

    ``zmin``/``zmax`` and ``levels`` are in the drawn units (log10 of the loss when ``log``).
    ``log`` is dropped (linear) when some finite loss is <= 0.
    """
    lo, hi = shared_range(planes, zmax)
    log = bool(log) and lo > 0
    zmin, zmax_ = (math.log10(lo), math.log10(hi)) if log else (lo, hi)
    size = (zmax_ - zmin) / max(int(n_levels), 1)
    return {
        "log": log,
        "lo": lo,
        "hi": hi,
        "zmin": zmin,
        "zmax": zmax_,
        "levels": {"start": zmin, "end": zmax_, "size": size},
        "ticks": _ticks(lo, hi, log),
    }


# ---------------------------------------------------------------------------------------------
# 2D panels


def contour_panels(
    planes: Sequence[Surface],
    names: Sequence[str],
    log: bool = True,
    n_levels: int = 30,
    zmax: float | None = None,
    x_title: str = "d1",
    y_title: str = "d2",
) -> list[go.Figure]:
    """One contour figure per plane, all on one colour scale with the same levels.

    Each figure's trace has the same ``zmin``, ``zmax``, ``contours``, ``colorscale`` and
    colour bar (every panel shows it, so that the plot areas have the same size side by
    side). Values above ``zmax`` are clipped to it (noted).
    """
    names = _check_names(planes, names)
    scale = colour_scale(planes, log, n_levels, zmax)
    return [
        _contour(p, name, scale, x_title=x_title, y_title=y_title) for p, name in zip(planes, names)
    ]


def _contour(p: Surface, name: str, scale: dict, x_title: str, y_title: str) -> go.Figure:
    if p.kind != "plane" or p.ys is None:
        raise ValueError(f"surface.kind={p.kind!r}: contour panels need planes")
    raw = np.where(np.isfinite(p.loss), p.loss, np.nan)
    clipped = np.clip(raw, scale["lo"], scale["hi"])
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.log10(clipped) if scale["log"] else clipped
    title = "loss (log)" if scale["log"] else "loss"
    fig = go.Figure(
        go.Contour(
            x=p.xs,
            y=p.ys,
            z=z,
            customdata=raw,
            hovertemplate="x=%{x:.3g}<br>y=%{y:.3g}<br>loss=%{customdata:.4g}<extra></extra>",
            zmin=scale["zmin"],
            zmax=scale["zmax"],
            zauto=False,
            autocontour=False,
            contours={**scale["levels"], "coloring": "heatmap"},
            colorscale="Viridis",
            showscale=True,
            colorbar={"title": {"text": title}, **scale["ticks"]},
            connectgaps=False,
            line={"width": 0.5, "color": "rgba(255,255,255,0.5)"},
            name=name,
        )
    )
    _centre_marker(fig, p)
    fig.update_layout(
        title={"text": name},
        xaxis_title=x_title,
        yaxis_title=y_title,
        height=HEIGHT,
        margin={"l": 50, "r": 10, "t": 50, "b": 45},
        showlegend=False,
    )
    return add_notes(fig, _plane_notes(raw, scale["hi"]))


def _centre_marker(fig: go.Figure, p: Surface) -> None:
    if p.xs[0] <= 0 <= p.xs[-1] and p.ys[0] <= 0 <= p.ys[-1]:
        fig.add_trace(
            go.Scatter(
                x=[0.0],
                y=[0.0],
                mode="markers",
                marker={"symbol": "x", "size": 9, "color": "white"},
                name="trained net",
                hoverinfo="name",
            )
        )


def _plane_notes(raw: np.ndarray, hi: float) -> list[str]:
    notes = []
    bad = int(np.sum(~np.isfinite(raw)))
    if bad:
        notes.append(f"{bad} NaN/inf points masked")
    above = int(np.sum(raw[np.isfinite(raw)] > hi))
    if above:
        notes.append(f"{above} points above {hi:.3g} clipped")
    return notes


def convexity_panels(
    maps: Sequence[np.ndarray], xs: np.ndarray, names: Sequence[str]
) -> list[go.Figure]:
    """Heatmaps of max(-lambda_min, 0) / lambda_max (Li et al. Fig. 7), one range [0, max]."""
    names = _check_names(maps, names)
    finite = [m[np.isfinite(m)] for m in maps]
    top = max([float(f.max()) for f in finite if f.size] + [1e-12])
    figs = []
    for m, name in zip(maps, names):
        fig = go.Figure(
            go.Heatmap(
                x=xs,
                y=xs,
                z=m,
                zmin=0.0,
                zmax=top,
                zauto=False,
                colorscale="Cividis",
                showscale=True,
                # title along the bar, a thin bar: on a phone the plot keeps its width
                colorbar={
                    "title": {"text": "max(−λmin,0)/λmax", "side": "right"},
                    "thickness": 12,
                    "xpad": 4,
                },
                hovertemplate="x=%{x:.3g}<br>y=%{y:.3g}<br>ratio=%{z:.3g}<extra></extra>",
            )
        )
        fig.update_layout(
            title={"text": f"{name}: mean {np.nanmean(m):.3g}" if np.any(np.isfinite(m)) else name},
            xaxis_title="d1",
            yaxis_title="d2",
            height=HEIGHT - 40,
            margin={"l": 40, "r": 10, "t": 50, "b": 45},
        )
        figs.append(fig)
    return figs


# ---------------------------------------------------------------------------------------------
# curves


def loss_curves(
    histories: Sequence[dict],
    names: Sequence[str],
    log_y: bool = False,
    steps_per_epoch: Sequence[int] | None = None,
) -> go.Figure:
    """Train (dashed) and test (solid) loss, one colour per run, overlaid.

    x is the epoch, or with ``steps_per_epoch`` (one per run) the optimiser step: runs of 20
    and of 500 epochs then share a readable axis when their step counts are alike."""
    names = _check_names(histories, names)
    scale = list(steps_per_epoch) if steps_per_epoch is not None else [1] * len(histories)
    fig = go.Figure()
    for k, (h, name) in enumerate(zip(histories, names)):
        color = COLORS[k % len(COLORS)]
        for split, dash in (("test", "solid"), ("train", "dash")):
            y = np.asarray(h[f"{split}_loss"], dtype=float)
            y = np.where(np.isfinite(y) & ((y > 0) | (not log_y)), y, np.nan)
            fig.add_trace(
                go.Scatter(
                    x=np.asarray(h["epoch"], dtype=float) * scale[k],
                    y=y,
                    mode="lines",
                    name=f"{name} · {split}",
                    line={"color": color, "dash": dash},
                )
            )
    fig.update_layout(
        title={"text": "Loss during training (solid: test, dashed: train)"},
        xaxis_title="optimiser step" if steps_per_epoch is not None else "epoch",
        yaxis_title="loss",
        yaxis_type="log" if log_y else "linear",
        height=HEIGHT + 24 * len(histories),
        margin={"l": 50, "r": 10, "t": 50, "b": 45},
        legend={"orientation": "h", "yanchor": "top", "y": -0.28},  # below the axis title
    )
    return fig


def line_overlay(
    lines: Sequence[Surface],
    names: Sequence[str],
    levels: Sequence[float] | None = None,
    log_y: bool = False,
    x_title: str = "t (step along the direction; t = 0 is the trained net)",
) -> go.Figure:
    """1D slices of every panel on one chart; ``levels`` draws each panel's basin level dotted."""
    names = _check_names(lines, names)
    fig = go.Figure()
    for k, (ln, name) in enumerate(zip(lines, names)):
        if ln.kind != "line":
            raise ValueError(f"surface.kind={ln.kind!r}: line_overlay needs lines")
        color = COLORS[k % len(COLORS)]
        y = np.where(np.isfinite(ln.loss), ln.loss, np.nan)
        fig.add_trace(go.Scatter(x=ln.xs, y=y, mode="lines", name=name, line={"color": color}))
        if levels is not None:
            fig.add_trace(
                go.Scatter(
                    x=[ln.xs[0], ln.xs[-1]],
                    y=[levels[k], levels[k]],
                    mode="lines",
                    line={"color": color, "dash": "dot", "width": 1},
                    name=f"{name}: basin level",
                    showlegend=False,
                    hovertemplate=f"{name} basin level %{{y:.4g}}<extra></extra>",
                )
            )
    fig.update_layout(
        title={"text": "Loss along the first random direction"},
        xaxis_title=x_title,
        yaxis_title="loss",
        yaxis_type="log" if log_y else "linear",
        height=HEIGHT + 12 * len(lines),
        margin={"l": 50, "r": 10, "t": 50, "b": 45},
        legend={"orientation": "h", "yanchor": "top", "y": -0.28},  # below the axis title
    )
    return fig
