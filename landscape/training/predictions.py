"""What a trained model predicts over its input space, for the Train page's plots."""

from __future__ import annotations

import torch
from torch import nn

from landscape.data import datasets as data


def decision_grid(
    model: nn.Module, dataset: data.Dataset, resolution: int = 100, margin: float = 0.3
):
    """Class probabilities over a grid covering 2D data, for decision-boundary plots.

    Returns xs (R,), ys (R,), probs (R, R, C) where probs[i, j] is at (xs[j], ys[i]) and C is
    2 for a 1-logit binary head (p, 1-p reordered as [P(0), P(1)]).
    """
    if dataset.input_shape != (2,):
        raise ValueError(
            f"decision_grid needs 2D inputs: dataset has input shape {dataset.input_shape}"
        )
    X = torch.cat([dataset.X_train, dataset.X_test])
    lo, hi = X.min(0).values - margin, X.max(0).values + margin
    xs = torch.linspace(float(lo[0]), float(hi[0]), resolution)
    ys = torch.linspace(float(lo[1]), float(hi[1]), resolution)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)  # (R*R, 2)
    model.eval()
    with torch.no_grad():
        out = model(pts)
    if out.shape[1] == 1:
        p1 = torch.sigmoid(out[:, 0])
        probs = torch.stack([1 - p1, p1], 1)
    else:
        probs = torch.softmax(out, 1)
    return xs.numpy(), ys.numpy(), probs.reshape(resolution, resolution, -1).numpy()


def regression_curve(model: nn.Module, dataset: data.Dataset, n: int = 200, margin: float = 0.1):
    """The fitted function over the range of 1D regression data: xs (n,), yhat (n,)."""
    if dataset.input_shape != (1,):
        raise ValueError(
            f"regression_curve needs 1D inputs: dataset has input shape {dataset.input_shape}"
        )
    X = torch.cat([dataset.X_train, dataset.X_test])[:, 0]
    span = float(X.max() - X.min())
    xs = torch.linspace(float(X.min()) - margin * span, float(X.max()) + margin * span, n)
    model.eval()
    with torch.no_grad():
        yhat = model(xs[:, None])[:, 0]
    return xs.numpy(), yhat.numpy()


def class_probability_curve(
    model: nn.Module, dataset: data.Dataset, n: int = 200, margin: float = 0.1
):
    """Class probabilities along one input feature: xs (n,), probs (n, C) (C = 2 for a
    1-logit binary head, as in `decision_grid`)."""
    if dataset.input_shape != (1,):
        raise ValueError(
            f"class_probability_curve needs 1D inputs: dataset has input shape "
            f"{dataset.input_shape}"
        )
    X = torch.cat([dataset.X_train, dataset.X_test])[:, 0]
    span = float(X.max() - X.min())
    xs = torch.linspace(float(X.min()) - margin * span, float(X.max()) + margin * span, n)
    model.eval()
    with torch.no_grad():
        out = model(xs[:, None])
    if out.shape[1] == 1:
        p1 = torch.sigmoid(out[:, 0])
        return xs.numpy(), torch.stack([1 - p1, p1], 1).numpy()
    return xs.numpy(), torch.softmax(out, 1).numpy()
