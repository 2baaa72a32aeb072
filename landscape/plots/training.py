"""Plotly figures of the Train page: arrays in, go.Figure out.

Loss and accuracy curves (one run, or many overlaid), a preview of a dataset, and the
TF-Playground-style picture of what a trained net does: class regions over 2D data, or the
fitted function over 1D data. Curves take the history dict of a Run (epoch 0 = at
initialisation); NaN entries (accuracy of regression runs) are simply not drawn.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

HEIGHT = 340  # px, every chart of the page
#: Class colours: TF Playground's orange and blue first, then Plotly's D3 palette.
CLASS_COLORS = ["#f59322", "#0877bd", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                "#7f7f7f", "#bcbd22", "#17becf"]  # fmt: skip
TRAIN_COLOR, TEST_COLOR, STEP_COLOR = "#1f77b4", "#d62728", "rgba(31,119,180,0.18)"
RUN_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
              "#7f7f7f", "#bcbd22", "#17becf"]  # fmt: skip


def _layout(title: str, x_title: str, y_title: str, log_y: bool = False, **extra) -> dict:
    return dict(
        title=dict(text=title, x=0.01, font=dict(size=15)),
        xaxis=dict(title=dict(text=x_title)),
        yaxis=dict(title=dict(text=y_title), type="log" if log_y else "linear"),
        height=HEIGHT,
        margin=dict(l=10, r=10, t=40, b=10),
        legend=dict(orientation="h", x=0, y=-0.2),
        hovermode="x unified",
        **extra,
    )


def _positive(y, log_y: bool) -> np.ndarray:
    """Losses as float arrays; on a log axis non-positive values cannot be drawn (NaN gap)."""
    a = np.asarray(y, dtype=float)
    return np.where(a > 0, a, np.nan) if log_y else a


STOP_COLOR = "#d62728"
FEW_STEPS = 30  # at most this many steps: each is drawn as a point too


def step_positions(n_steps: int, steps_per_epoch: int) -> np.ndarray:
    """x of each training step in epochs: step k (1-based) ends at k / steps_per_epoch."""
    return np.arange(1, n_steps + 1) / max(1, steps_per_epoch)


def _stop_marker(x: float, y: float, name: str = "diverged here") -> go.Scatter:
    return go.Scatter(x=[x], y=[y], mode="markers+text", name=name, text=["diverged"],
                      textposition="top center", textfont=dict(color=STOP_COLOR),
                      marker=dict(symbol="x", size=13, color=STOP_COLOR, line=dict(width=2)))  # fmt: skip


def loss_curves(history: dict, step_loss=None, log_y: bool = False, epochs: int | None = None,
                title: str = "Loss", steps_per_epoch: int | None = None,
                stop: tuple[float, float] | None = None) -> go.Figure:  # fmt: skip
    """Train and test loss per epoch; optional per-step loss as a faint line underneath.

    epochs fixes the x range (so a live chart does not rescale as it grows). steps_per_epoch
    places each step at its own epoch fraction (so the steps of a run that diverged in its
    first epoch are drawn, not an empty axis); stop = (epoch, loss) marks where a diverged
    run stopped, with an x, and the curves are then drawn on a log axis: a blow-up spans
    orders of magnitude.
    """
    x = np.asarray(history["epoch"], dtype=float)
    log_y = log_y or stop is not None
    traces = []
    if step_loss is not None and len(step_loss) and (steps_per_epoch or len(x) > 1):
        steps = (
            step_positions(len(step_loss), steps_per_epoch)
            if steps_per_epoch
            else np.arange(1, len(step_loss) + 1) * (x[-1] / len(step_loss))
        )
        faint = STEP_COLOR if len(x) > 1 else TRAIN_COLOR  # the only line left: draw it clearly
        # a handful of steps (a run that blew up at once): each one a visible point
        step_mode = "lines+markers" if len(step_loss) <= FEW_STEPS else "lines"
        traces.append(go.Scatter(x=steps, y=_positive(step_loss, log_y), mode=step_mode,
                                 name="train (each step)", line=dict(color=faint, width=1),
                                 hoverinfo="skip"))  # fmt: skip
    mode = "lines" if len(x) > 1 else "markers"
    for key, label, color in (
        ("train_loss", "train", TRAIN_COLOR),
        ("test_loss", "test", TEST_COLOR),
    ):
        traces.append(go.Scatter(x=x, y=_positive(history[key], log_y), mode=mode, name=label,
                                 line=dict(color=color, width=2.2), marker=dict(color=color)))  # fmt: skip
    if stop is not None:
        traces.append(_stop_marker(*stop))
    layout = _layout(title, "epoch", "loss" + (" (log)" if log_y else ""), log_y)
    if epochs:
        layout["xaxis"]["range"] = [0, epochs]
    return go.Figure(data=traces, layout=layout)


def accuracy_curves(history: dict, title: str = "Accuracy") -> go.Figure:
    """Train and test accuracy per epoch (points when there is one epoch: a run that diverged
    in its first epoch has only its start, which a line would not show)."""
    x = np.asarray(history["epoch"], dtype=float)
    traces = [
        go.Scatter(
            x=x,
            y=np.asarray(history[k], dtype=float),
            mode="lines" if len(x) > 1 else "markers",
            marker=dict(color=color, size=9),
            name=label,
            line=dict(color=color, width=2.2),
        )  # fmt: skip
        for k, label, color in (
            ("train_acc", "train", TRAIN_COLOR),
            ("test_acc", "test", TEST_COLOR),
        )
    ]
    layout = _layout(title, "epoch", "accuracy")
    layout["yaxis"]["range"] = [0, 1.02]
    return go.Figure(data=traces, layout=layout)


def overlay_curves(
    histories: dict[str, dict],
    metric: str = "test_loss",
    log_y: bool = False,
    stops: dict[str, tuple[float, float]] | None = None,
) -> go.Figure:
    """One line per run (name -> history) of one metric, to compare runs.

    stops: name -> (epoch, loss) of runs that diverged: their line is carried on (dotted) to
    that point and marked with an x, so a run that blew up in its first epoch still shows.
    """
    stops = stops or {}
    traces = []
    for i, (name, h) in enumerate(histories.items()):
        color = RUN_COLORS[i % len(RUN_COLORS)]
        x, y = np.asarray(h["epoch"], dtype=float), _positive(h[metric], log_y)
        traces.append(go.Scatter(x=x, y=y, mode="lines" if len(x) > 1 else "markers",
                                 name=name + (" (diverged)" if name in stops else ""),
                                 legendgroup=name, line=dict(color=color, width=2),
                                 marker=dict(color=color)))  # fmt: skip
        if name in stops and metric.endswith("loss"):
            sx, sy = stops[name]
            traces.append(go.Scatter(x=[x[-1], sx], y=[y[-1], sy], mode="lines+markers",
                                     legendgroup=name, showlegend=False, hoverinfo="skip",
                                     line=dict(color=color, width=2, dash="dot"),
                                     marker=dict(symbol=["circle", "x"], size=[1, 13], color=STOP_COLOR)))  # fmt: skip
    label = metric.replace("_", " ")
    layout = _layout(f"Runs compared: {label}", "epoch", label + (" (log)" if log_y else ""), log_y)
    layout["legend"] = dict(orientation="h", x=0, y=-0.25, font=dict(size=11))
    layout["margin"]["b"] = 40
    layout["height"] = HEIGHT + 22 * len(histories)
    return go.Figure(data=traces, layout=layout)


def stability_figure(lr_limit: float, runs: list[tuple[float, float, bool]]) -> go.Figure:
    """Learning rates against the stable limit 2 / lambda_max of a quadratic loss.

    runs: (lr, final or last finite loss, diverged) per run, drawn at their lr; the vertical
    line is the limit: gradient descent on a quadratic converges below it and blows up above.
    """
    traces = []
    for label, pick, symbol, color in (("converged", False, "circle", TRAIN_COLOR),
                                       ("diverged", True, "x", STOP_COLOR)):  # fmt: skip
        pts = [(lr, loss) for lr, loss, div in runs if div == pick]
        traces.append(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="markers",
                                 name=label, marker=dict(symbol=symbol, size=12, color=color)))  # fmt: skip
    layout = _layout("Step size vs the stable limit", "learning rate", "final loss (log)", True)
    layout["xaxis"]["type"] = "log"
    layout["hovermode"] = "closest"
    # The x range frames the points and the limit (a margin of a factor each side): Plotly's
    # own range crammed the points at the left.
    xs = [lr for lr, _, _ in runs if lr > 0] + [lr_limit]
    span = max(math.log10(max(xs) / min(xs)), 0.1)
    layout["xaxis"]["range"] = [math.log10(min(xs)) - 0.3 * span, math.log10(max(xs)) + 0.3 * span]
    fig = go.Figure(data=traces, layout=layout)
    fig.add_vline(x=lr_limit, line=dict(color="black", dash="dash"),
                  annotation_text=f"2 / λmax = {lr_limit:.3g}", annotation_position="top left")  # fmt: skip
    return fig


# ----------------------------------------------------------------------------- data pictures


def _class_scatter(
    X: np.ndarray, y: np.ndarray, name: str, symbol: str = "circle", size: int = 6
) -> list:
    out = []
    for c in np.unique(y):
        m = y == c
        out.append(go.Scatter(x=X[m, 0], y=X[m, 1], mode="markers", name=f"{name} class {int(c)}",
                              marker=dict(color=CLASS_COLORS[int(c) % 10], size=size, symbol=symbol,
                                          line=dict(color="white", width=0.6))))  # fmt: skip
    return out


def _square(layout: dict) -> dict:
    layout["yaxis"]["scaleanchor"] = "x"
    layout["hovermode"] = "closest"
    return layout


def data_preview(X: np.ndarray, y: np.ndarray, kind: str, title: str = "Data",
                 feature_names=("x1", "x2")) -> go.Figure:  # fmt: skip
    """A small look at a dataset: scatter (2D / first two features), points (1D), or images."""
    X, y = np.asarray(X), np.asarray(y)
    if kind == "image":
        return _image_grid(X, y, title)
    if kind == "1d":
        trace = go.Scatter(x=X[:, 0], y=y, mode="markers", marker=dict(size=5, color=TRAIN_COLOR),
                           name="data")  # fmt: skip
        return go.Figure(data=[trace], layout=_layout(title, "x", "y"))
    names = tuple(feature_names) + ("x1", "x2")[len(feature_names) :]
    if X.ndim == 2 and X.shape[1] == 1:  # one feature: the feature against the target
        if np.issubdtype(y.dtype, np.integer):  # classes: a strip per class
            fig = go.Figure(data=_class_scatter(np.stack([X[:, 0], y], 1), y, "", size=5),
                            layout=_layout(title, names[0], "class"))  # fmt: skip
            fig.update_layout(showlegend=False, hovermode="closest")
            fig.update_yaxes(tickmode="array", tickvals=sorted({int(v) for v in y}))
            return fig
        trace = go.Scatter(x=X[:, 0], y=y, mode="markers", marker=dict(size=5, color=TRAIN_COLOR),
                           name="data")  # fmt: skip
        return go.Figure(data=[trace], layout=_layout(title, names[0], "target"))
    layout = _layout(title, names[0], names[1])
    fig = go.Figure(
        data=_class_scatter(X[:, :2], y, "", size=5),
        layout=_square(layout) if kind == "2d" else layout,
    )
    fig.update_layout(showlegend=False)
    return fig


def _image_grid(X: np.ndarray, y: np.ndarray, title: str, n: int = 24, cols: int = 8) -> go.Figure:
    """The first n images tiled in a grid (one heatmap; colour images as RGB, each stretched to
    its own range since they are standardised), label written above each."""
    n = min(n, len(X))
    rows = int(np.ceil(n / cols))
    h, w = X.shape[-2:]
    colour = X.ndim == 4 and X.shape[1] == 3
    grid = np.full((rows * (h + 1), cols * (w + 1)) + ((3,) if colour else ()), np.nan)
    ann = []
    for i in range(n):
        r, c = divmod(i, cols)
        img = X[i].reshape(3, h, w).transpose(1, 2, 0) if colour else X[i].reshape(h, w)
        if colour:
            img = 255 * (img - img.min()) / max(float(img.max() - img.min()), 1e-9)
        grid[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = img
        ann.append(dict(x=c * (w + 1) + w / 2 - 0.5, y=r * (h + 1) - 0.7, text=str(int(y[i])),
                        showarrow=False, font=dict(size=10)))  # fmt: skip
    if colour:
        trace = go.Image(z=np.nan_to_num(grid, nan=255).astype(np.uint8), hoverinfo="skip")
    else:
        trace = go.Heatmap(z=grid, colorscale="Greys", showscale=False, hoverinfo="skip")
    layout = _layout(title, "", "")
    layout.update(annotations=ann, hovermode=False)
    layout["xaxis"].update(visible=False)
    layout["yaxis"].update(visible=False, autorange="reversed", scaleanchor="x")
    return go.Figure(data=[trace], layout=layout)


def _blend(probs: np.ndarray) -> np.ndarray:
    """(R, R, C) class probabilities -> (R, R, 3) RGB: each class colour weighted by its
    probability, then mixed 45% with white so the data points stay visible on top."""
    C = probs.shape[-1]
    rgb = np.array(
        [[int(h[i : i + 2], 16) for i in (1, 3, 5)] for h in CLASS_COLORS[:C]], dtype=float
    )
    mix = probs @ rgb  # (R, R, 3)
    return (0.55 * mix + 0.45 * 255).clip(0, 255).astype(np.uint8)


def decision_boundary(xs, ys, probs, X_train, y_train, X_test=None, y_test=None,
                      title: str = "Decision regions") -> go.Figure:  # fmt: skip
    """Class regions of a 2D classifier (colour = class, paleness = uncertainty) with the data.

    probs[i, j] is at (xs[j], ys[i]) (from landscape.training.loop.decision_grid). Training points are
    circles, test points diamonds.
    """
    xs, ys = np.asarray(xs), np.asarray(ys)
    image = go.Image(z=_blend(np.asarray(probs)), x0=xs[0], dx=xs[1] - xs[0], y0=ys[0], dy=ys[1] - ys[0],
                     hoverinfo="skip", name="model")  # fmt: skip
    traces = [image, *_class_scatter(np.asarray(X_train), np.asarray(y_train), "train")]
    if X_test is not None:
        traces += _class_scatter(
            np.asarray(X_test), np.asarray(y_test), "test", symbol="diamond", size=7
        )
    layout = _square(_layout(title, "x1", "x2"))
    layout["xaxis"].update(range=[xs[0], xs[-1]], constrain="domain")
    layout["yaxis"].update(range=[ys[0], ys[-1]], autorange=False, constrain="domain")
    layout["height"] = HEIGHT + 120
    layout["legend"] = dict(orientation="h", x=0, y=-0.15)
    return go.Figure(data=traces, layout=layout)


def regression_fit(xs, yhat, X_train, y_train, X_test=None, y_test=None,
                   title: str = "Fitted function") -> go.Figure:  # fmt: skip
    """The net's 1D function over the data (train dots, test crosses)."""
    traces = [go.Scatter(x=np.asarray(X_train)[:, 0], y=y_train, mode="markers", name="train",
                         marker=dict(size=5, color=TRAIN_COLOR, opacity=0.7))]  # fmt: skip
    if X_test is not None:
        traces.append(go.Scatter(x=np.asarray(X_test)[:, 0], y=y_test, mode="markers", name="test",
                                 marker=dict(size=6, color=TEST_COLOR, symbol="x")))  # fmt: skip
    traces.append(
        go.Scatter(x=xs, y=yhat, mode="lines", name="model", line=dict(color="black", width=2.5))
    )
    layout = _layout(title, "x", "y")
    layout["hovermode"] = "closest"
    return go.Figure(data=traces, layout=layout)


def class_probabilities_1d(xs, probs, X_train, y_train, X_test=None, y_test=None,
                           title: str = "Class probabilities") -> go.Figure:  # fmt: skip
    """One input feature: the net's probability of each class along it (lines), with the
    data drawn at its class's probability 1 (train dots, test crosses)."""
    probs = np.asarray(probs)
    traces = [
        go.Scatter(x=xs, y=probs[:, c], mode="lines", name=f"P(class {c})",
                   line=dict(color=CLASS_COLORS[c % 10], width=2.5))
        for c in range(probs.shape[1])
    ]  # fmt: skip
    for X, y, symbol, split in (
        (X_train, y_train, "circle", "train"),
        (X_test, y_test, "x", "test"),
    ):
        if X is None:
            continue
        X, y = np.asarray(X)[:, 0], np.asarray(y)
        traces.append(go.Scatter(x=X, y=np.ones_like(X) * 1.04 + 0.02 * (split == "test"),
                                 mode="markers", name=split, showlegend=True,
                                 marker=dict(color=[CLASS_COLORS[int(c) % 10] for c in y], size=6,
                                             symbol=symbol, opacity=0.7)))  # fmt: skip
    layout = _layout(title, "x", "probability")
    layout["hovermode"] = "closest"
    layout["yaxis"]["range"] = [-0.02, 1.1]
    return go.Figure(data=traces, layout=layout)
