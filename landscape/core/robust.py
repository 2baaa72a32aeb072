"""Robust line fitting: why Huber and Cauchy shrug off outliers that drag least squares away.

`make_outlier_line` makes the demo's data: points on a line plus a few far-off points at the
right end, where they have the most leverage on the slope. `fit_line` fits y = a x + b under
any regression loss of the zoo:

- mse / rmse: closed-form least squares (both have the same minimiser).
- losses whose weight psi(r)/r is non-increasing in |r| (L1, quantile, Huber, smooth L1,
  pseudo-Huber, log-cosh, Barron alpha <= 2): iteratively reweighted least squares (IRLS). Each
  step solves a weighted least-squares problem with weights w_i = psi(r_i)/r_i, where
  psi = d rho / d r comes from torch autograd on the loss itself. For these losses each step
  does not increase the total loss (a majorise-minimise step), so IRLS converges reliably;
  for the non-convex ones (Cauchy, Welsch) it finds the local minimum nearest the
  least-squares start, which is what a robust fit is expected to do.
- the rest (msle, Barron alpha > 2 and +inf): damped Newton in float64 from the
  least-squares start, with autograd gradient and Hessian (2 x 2) and a backtracking line
  search.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from landscape.core import checks, losses

IRLS_TOL = 1e-12  # stop when the (slope, intercept) step is this small, relative
MAX_ITER = 500  # IRLS / Newton iterations at most
L1_EPS = 1e-9  # IRLS weight floor |r| >= eps * scale for kinked losses (L1, quantile)

_NEWTON = {"msle"}  # losses without a non-increasing weight function


def make_outlier_line(
    n: int = 40,
    n_outliers: int = 5,
    outlier_offset: float = 8.0,
    slope: float = 2.0,
    intercept: float = 1.0,
    noise: float = 0.5,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n points (x, y) on y = slope x + intercept + noise N(0, 1), x uniform in [-2, 2].

    The n_outliers points with the largest x are moved down by outlier_offset: far from the
    centre of the x range they have the most leverage, so they tilt a least-squares line.
    Returns x (n,), y (n,) float64 and is_outlier (n,) bool; deterministic by seed.
    At most half the points may be outliers (beyond that they are the data, not outliers).
    """
    if int(n) != n or not 3 <= n <= 100_000:
        raise ValueError(f"n={n!r} is out of range: must be an integer in [3, 100000]")
    if int(n_outliers) != n_outliers or not 0 <= n_outliers <= n // 2:
        raise ValueError(
            f"n_outliers={n_outliers!r} is out of range: must be an integer in [0, {n // 2}]"
        )
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed={seed!r} is out of range: must be an integer >= 0")
    outlier_offset = checks.number_in("outlier_offset", outlier_offset, -math.inf, math.inf)
    slope, intercept = (
        checks.number_in("slope", slope, -math.inf, math.inf),
        checks.number_in("intercept", intercept, -math.inf, math.inf),
    )
    noise = checks.number_in("noise", noise, 0.0, math.inf)
    rng = np.random.default_rng(int(seed))
    x = rng.uniform(-2.0, 2.0, int(n))
    y = slope * x + intercept + noise * rng.standard_normal(int(n))
    is_outlier = np.zeros(int(n), dtype=bool)
    if n_outliers:
        is_outlier[np.argsort(x)[-int(n_outliers) :]] = True
    y[is_outlier] -= outlier_offset
    return x, y, is_outlier


def fit_line(x, y, loss_name: str, **params) -> tuple[float, float]:
    """(slope, intercept) minimising sum_i rho(y_i - (slope x_i + intercept)) for a zoo loss."""
    x, y = _check_xy(x, y)
    spec = losses.get(loss_name)
    if spec.task != "regression":
        raise ValueError(
            f"loss={loss_name!r} is a {spec.task} loss: fit_line wants a regression loss"
        )
    params = spec.resolve(**params)
    coef = _least_squares(x, y, np.ones_like(y))
    if loss_name in ("mse", "rmse"):
        return float(coef[0]), float(coef[1])
    if loss_name in _NEWTON or (loss_name == "barron" and params["alpha"] > 2):
        coef = _newton(spec, x, y, coef, params)
    else:
        coef = _irls(spec, x, y, coef, params)
    return float(coef[0]), float(coef[1])


def total_loss(x, y, slope: float, intercept: float, loss_name: str, **params) -> float:
    """sum_i rho(y_i - (slope x_i + intercept)): the objective fit_line minimises."""
    x, y = _check_xy(x, y)
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    return float(losses.get(loss_name)(slope * xt + intercept, yt, reduction="sum", **params))


def _check_xy(x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape or len(x) < 2:
        raise ValueError(f"x and y must be 1D of the same length >= 2, got {x.shape} and {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("x and y must be finite (no NaN or inf)")
    if np.ptp(x) == 0:
        raise ValueError("x has a single distinct value: the slope is not defined")
    return x, y


def _least_squares(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """argmin sum_i w_i (y_i - a x_i - b)^2, as [a, b]."""
    sw = np.sqrt(w)
    A = np.stack([x * sw, sw], axis=1)  # (N, 2)
    return np.linalg.lstsq(A, y * sw, rcond=None)[0]


def _psi(spec, r: np.ndarray, params: dict) -> np.ndarray:
    """d rho / d r at r, by autograd on the loss (target r, prediction 0)."""
    rt = torch.tensor(r, requires_grad=True)
    rho = spec(torch.zeros_like(rt), rt, reduction="sum", **params)
    (g,) = torch.autograd.grad(rho, rt)
    return g.numpy()


def _irls(spec, x, y, coef, params) -> np.ndarray:
    """Iteratively reweighted least squares with w = psi(r)/r (|r| floored at eps)."""
    eps = L1_EPS * max(float(np.std(y)), float(np.abs(y).max()), 1e-12)
    for _ in range(MAX_ITER):
        r = y - (coef[0] * x + coef[1])
        r_safe = np.where(np.abs(r) < eps, np.where(r < 0, -eps, eps), r)
        w = _psi(spec, r_safe, params) / r_safe
        top = w.max()
        if not top > 0:  # every point sits where the loss is flat: nothing moves the line
            break
        w = np.maximum(w / top, 1e-12)  # relative weights; a tiny floor keeps A full rank
        new = _least_squares(x, y, w)
        step = np.abs(new - coef).max()
        coef = new
        if step <= IRLS_TOL * (1 + np.abs(coef).max()):
            break
    return coef


def _newton(spec, x, y, coef, params) -> np.ndarray:
    """Damped Newton on (slope, intercept) with a backtracking (Armijo) line search."""
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)

    def f(theta):
        return spec(theta[0] * xt + theta[1], yt, reduction="sum", **params)

    theta = torch.tensor(coef, dtype=torch.float64)
    for _ in range(MAX_ITER):
        t = theta.clone().requires_grad_()
        val = f(t)
        (g,) = torch.autograd.grad(val, t)
        H = torch.autograd.functional.hessian(f, theta)
        try:
            step = -torch.linalg.solve(H + 1e-12 * torch.eye(2, dtype=H.dtype), g)
        except RuntimeError:
            step = -g
        if not float(step @ g) < 0:  # not a descent direction (H not positive): use -g
            step = -g
        lr, v0 = 1.0, float(val.detach())
        while lr > 1e-12 and float(f(theta + lr * step)) > v0 + 1e-4 * lr * float(step @ g):
            lr *= 0.5
        if lr <= 1e-12:
            break
        theta = theta + lr * step
        if float((lr * step).abs().max()) <= IRLS_TOL * (1 + float(theta.abs().max())):
            break
    return theta.numpy()
