"""Plotly figures of the research measures: sharpness side by side, paths between minima,
the edge of stability, the Hessian's spectral density. Results in, ``go.Figure`` out."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from landscape.plots.surfaces import contour_figure

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf")
HEIGHT = 380


def _layout(fig: go.Figure, title: str, x: str, y: str, height: int = HEIGHT) -> go.Figure:
    fig.update_layout(
        title=title,
        xaxis_title=x,
        yaxis_title=y,
        height=height,
        margin=dict(l=10, r=10, t=50, b=10),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0),
    )
    return fig


# ---------------------------------------------------------------------------------------------
# sharpness


def sharpness_bars(panels: Sequence, measures: Sequence[str], labels: dict) -> go.Figure:
    """Each measure divided by its largest value over the panels: one bar group per measure,
    so measures of different units sit on one axis (the table holds the raw values)."""
    fig = go.Figure()
    for i, p in enumerate(panels):
        ys, text = [], []
        for m in measures:
            vals = [abs(q.values[m]) for q in panels if np.isfinite(q.values[m])]
            top = max(vals) if vals else 0.0
            v = p.values[m]
            ys.append(v / top if top > 0 and np.isfinite(v) else np.nan)
            text.append(f"{v:.3g}")
        fig.add_bar(
            x=[labels[m] for m in measures], y=ys, name=p.label, text=text,
            marker_color=COLORS[i % len(COLORS)], hovertemplate="%{x}: %{text}<extra>%{fullData.name}</extra>",
        )  # fmt: skip
    fig.update_layout(barmode="group")
    return _layout(
        fig, "Sharpness measures, each relative to its largest value", "", "relative value"
    )


def rescaling_figure(panels: Sequence, measures: Sequence[str], labels: dict) -> go.Figure:
    """Each measure of each rescaled net divided by the first panel's (α = 1): 1 = unmoved."""
    base = panels[0]
    fig = go.Figure()
    for i, p in enumerate(panels[1:], 1):
        ratios = [p.values[m] / base.values[m] if base.values[m] else np.nan for m in measures]
        fig.add_bar(
            x=[labels[m] for m in measures], y=ratios, name=p.label,
            text=[f"x{r:.3g}" for r in ratios], marker_color=COLORS[i % len(COLORS)],
        )  # fmt: skip
    fig.add_hline(y=1.0, line_dash="dash", line_color="grey", annotation_text="unchanged")
    fig.update_layout(barmode="group")
    # Ticks of our own: Plotly labels a short log axis with bare digits between powers of ten
    # (a lone "9" beside the bars), which reads as a value.
    finite = [r for p in panels[1:] for m in measures
              if np.isfinite(r := p.values[m] / base.values[m] if base.values[m] else np.nan) and r > 0]  # fmt: skip
    lo, hi = min(finite + [1.0]) / 1.5, max(finite + [1.0]) * 1.5
    ticks = [m * 10.0**e for e in range(-6, 7) for m in (1, 2, 5) if lo <= m * 10.0**e <= hi]
    fig.update_yaxes(type="log", tickvals=ticks, ticktext=[f"x{t:g}" for t in ticks])
    return _layout(
        fig, "Same function, rescaled weights: measure ÷ its value at α = 1", "", "ratio (log)"
    )


# ---------------------------------------------------------------------------------------------
# mode connectivity

LEGEND_GROUND = "rgba(50, 50, 50, 0.85)"


def connectivity_lines(res) -> go.Figure:
    fig = go.Figure()
    fig.add_scatter(x=res.ts, y=res.line_loss, name=f"straight line (barrier {res.barrier:.3g})",
                    line=dict(color=COLORS[1]))  # fmt: skip
    fig.add_scatter(
        x=res.ts, y=res.curve_loss, name=f"learned {res.kind} curve (barrier {res.curve_barrier:.3g})",
        line=dict(color=COLORS[2]),
    )  # fmt: skip
    mean = 0.5 * (res.line_loss[0] + res.line_loss[-1])
    fig.add_hline(y=mean, line_dash="dot", line_color="grey", annotation_text="mean of the ends")
    _layout(fig, "Loss along the paths between the two minima", "t (0 = net A, 1 = net B)", "loss")
    fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.2, x=0), height=460)
    return fig


def connectivity_plane(res, log: bool = True) -> go.Figure:
    if res.plane is None:
        raise ValueError("this result has no plane (plane_res=0 or the three points are collinear)")
    fig = contour_figure(res.plane, log=log, x_title="along B - A (parameter distance)",
                         y_title="towards the curve's middle point", mark=False,
                         title="Plane through net A, net B and the curve's middle point")  # fmt: skip
    fig.add_scatter(x=res.line_xy[0], y=res.line_xy[1], mode="lines", name="straight line",
                    line=dict(color="white", dash="dash", width=3))  # fmt: skip
    fig.add_scatter(x=res.curve_xy[0], y=res.curve_xy[1], mode="lines", name=f"{res.kind} curve",
                    line=dict(color="white", width=3))  # fmt: skip
    fig.add_scatter(
        x=res.points_xy[:, 0], y=res.points_xy[:, 1], mode="markers+text",
        text=["A", "B", "θ"], textposition="top center", name="points",
        marker=dict(size=11, color="black", line=dict(color="white", width=2)),
        textfont=dict(color="white", size=14),
    )  # fmt: skip
    # The paths are white on the contour; the legend gets a dark ground so they show there too.
    fig.update_layout(height=460, legend=dict(orientation="h", y=-0.15, bgcolor=LEGEND_GROUND,
                                              font=dict(color="white")))  # fmt: skip
    return fig


# ---------------------------------------------------------------------------------------------
# edge of stability


def eos_figure(
    track_steps, sharpness, threshold: float, steps=None, loss=None, title=None
) -> go.Figure:
    """λmax against the 2/η line, the training loss on a second (log) axis."""
    fig = go.Figure()
    fig.add_scatter(x=list(track_steps), y=list(sharpness), name="λmax (top Hessian eigenvalue)",
                    mode="lines+markers", marker=dict(size=4), line=dict(color=COLORS[0]))  # fmt: skip
    fig.add_hline(y=threshold, line_dash="dash", line_color=COLORS[1],
                  annotation_text=f"2/η = {threshold:.3g}", annotation_position="top left")  # fmt: skip
    if loss is not None and len(loss):
        fig.add_scatter(x=list(steps), y=list(loss), name="training loss", yaxis="y2",
                        line=dict(color="grey", width=1))  # fmt: skip
        fig.update_layout(yaxis2=dict(title="loss (log)", overlaying="y", side="right", type="log", tickformat=".2g",
                                      showgrid=False))  # fmt: skip
    top = max([threshold * 1.3] + [float(s) for s in sharpness if np.isfinite(s)])
    fig.update_yaxes(range=[0, top], selector=dict(overlaying=None))
    return _layout(fig, title or "Edge of stability: sharpness vs the 2/η line", "GD step", "λmax")


# ---------------------------------------------------------------------------------------------
# spectrum


def spectrum_figure(res, title: str | None = None) -> go.Figure:
    """SLQ density on a log axis (as PyHessian draws it), the top-k eigenvalues marked."""
    fig = go.Figure()
    dens = np.maximum(res.density, 1e-7)
    fig.add_scatter(
        x=res.grid, y=dens, name="SLQ density", fill="tozeroy", line=dict(color=COLORS[0])
    )
    for i, lam in enumerate(res.top):  # every dashed line named; the first three with values
        text = f"λ{i + 1} = {lam:.3g}" if i < 3 else f"λ{i + 1}"
        fig.add_vline(x=float(lam), line_dash="dash", line_color=COLORS[1], annotation_text=text,
                      annotation_position="top right" if i % 2 == 0 else "bottom right")  # fmt: skip
    if len(res.top):  # and the legend says what the dashed lines are
        fig.add_scatter(x=[None], y=[None], mode="lines", name="top eigenvalues (Lanczos)",
                        line=dict(color=COLORS[1], dash="dash"))  # fmt: skip
    fig.update_yaxes(type="log")
    return _layout(fig, title or f"Hessian eigenvalue density ({res.n_params:,} parameters)",
                   "eigenvalue", "density (log)")  # fmt: skip
