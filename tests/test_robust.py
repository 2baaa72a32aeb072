"""Robust line fits: least squares vs numpy, L1 vs brute force, outliers vs robust losses."""

import itertools
import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import QuantileRegressor

from landscape.core import losses
from landscape.core.robust import fit_line, make_outlier_line, total_loss

TRUE_SLOPE, TRUE_INTERCEPT = 2.0, 1.0


def test_make_outlier_line_is_deterministic_and_puts_outliers_at_large_x_below_the_line():
    x, y, out = make_outlier_line(n=40, n_outliers=5, outlier_offset=8.0, seed=3)
    x2, y2, out2 = make_outlier_line(n=40, n_outliers=5, outlier_offset=8.0, seed=3)
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(out, out2)
    assert not np.array_equal(y, make_outlier_line(seed=4)[1])
    assert x.shape == y.shape == out.shape == (40,) and out.dtype == bool and out.sum() == 5
    assert x[out].min() > x[~out].max()  # the five right-most points
    line = TRUE_SLOPE * x + TRUE_INTERCEPT
    assert np.all(y[out] - line[out] < -8.0 + 4 * 0.5)  # pushed down by ~8
    assert np.all(np.abs(y[~out] - line[~out]) < 4 * 0.5)  # inliers within 4 sigma
    # offset 0 and noise 0: every point exactly on the line
    x0, y0, _ = make_outlier_line(n=10, n_outliers=3, outlier_offset=0.0, noise=0.0)
    np.testing.assert_allclose(y0, TRUE_SLOPE * x0 + TRUE_INTERCEPT)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n": 2}, "n=2 is out of range"),
        (
            {"n": 10, "n_outliers": 6},
            r"n_outliers=6 is out of range: must be an integer in \[0, 5\]",
        ),
        ({"n_outliers": -1}, "n_outliers=-1"),
        ({"noise": -0.1}, "noise=-0.1"),
        ({"outlier_offset": math.nan}, "outlier_offset=nan"),
        ({"seed": -1}, "seed=-1"),
    ],
)
def test_make_outlier_line_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_outlier_line(**kwargs)


def test_mse_fit_equals_numpy_polyfit():
    x, y, _ = make_outlier_line(n=60, n_outliers=10, seed=7)
    np.testing.assert_allclose(fit_line(x, y, "mse"), np.polyfit(x, y, 1), rtol=1e-12)
    np.testing.assert_allclose(fit_line(x, y, "rmse"), np.polyfit(x, y, 1), rtol=1e-12)


def test_strong_outliers_drag_mse_but_not_huber_or_cauchy():
    x, y, _ = make_outlier_line(n=40, n_outliers=5, outlier_offset=20.0, seed=0)
    mse = fit_line(x, y, "mse")[0]
    huber = fit_line(x, y, "huber", delta=1.0)[0]
    cauchy = fit_line(x, y, "barron", alpha=0.0, c=1.0)[0]
    l1 = fit_line(x, y, "mae")[0]
    assert abs(mse - TRUE_SLOPE) > 2.0  # measured -0.81: the line tips over
    assert abs(huber - TRUE_SLOPE) < 0.35  # measured 1.79
    assert abs(cauchy - TRUE_SLOPE) < 0.15  # measured 1.99
    assert abs(l1 - TRUE_SLOPE) < 0.35  # measured 1.89


def test_mse_slope_follows_the_outliers_while_huber_influence_is_bounded():
    """Huber's psi is capped at delta: once the outliers are far enough, further is the same."""
    slopes = {}
    for off in (10.0, 20.0, 40.0):
        x, y, _ = make_outlier_line(outlier_offset=off, seed=1)
        slopes[off] = (fit_line(x, y, "mse")[0], fit_line(x, y, "huber", delta=1.0)[0])
    assert slopes[10.0][0] > slopes[20.0][0] > slopes[40.0][0]  # MSE keeps tipping
    assert slopes[20.0][1] == pytest.approx(slopes[40.0][1], abs=1e-8)  # Huber does not


def _l1_brute_force(x, y):
    """An L1-optimal line passes through two data points: try every pair."""
    best = (math.inf, None)
    for i, j in itertools.combinations(range(len(x)), 2):
        if x[i] == x[j]:
            continue
        a = (y[j] - y[i]) / (x[j] - x[i])
        b = y[i] - a * x[i]
        best = min(best, (np.abs(y - a * x - b).sum(), (a, b)))
    return best


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_l1_fit_equals_brute_force_median_regression(seed):
    x, y, _ = make_outlier_line(n=11, n_outliers=3, outlier_offset=6.0, noise=1.0, seed=seed)
    a, b = fit_line(x, y, "mae")
    best_obj, (ba, bb) = _l1_brute_force(x, y)
    assert np.abs(y - a * x - b).sum() == pytest.approx(best_obj, rel=1e-7)
    assert (a, b) == pytest.approx((ba, bb), abs=1e-5)


@pytest.mark.parametrize("tau", [0.2, 0.5, 0.8])
def test_quantile_fit_equals_linear_programming(tau):
    x, y, _ = make_outlier_line(n=30, n_outliers=4, seed=5)
    a, b = fit_line(x, y, "quantile", tau=tau)
    qr = QuantileRegressor(quantile=tau, alpha=0.0, solver="highs").fit(x[:, None], y)
    ours = total_loss(x, y, a, b, "quantile", tau=tau)
    lp = total_loss(x, y, float(qr.coef_[0]), float(qr.intercept_), "quantile", tau=tau)
    assert ours == pytest.approx(lp, rel=1e-7)


CASES = [
    ("huber", {"delta": 0.5}),
    ("smooth_l1", {"beta": 2.0}),
    ("pseudo_huber", {"delta": 1.0}),
    ("log_cosh", {}),
    ("barron", {"alpha": 1.0, "c": 0.5}),
    ("barron", {"alpha": 0.0, "c": 1.0}),
    ("barron", {"alpha": -2.0, "c": 1.5}),
    ("barron", {"alpha": -math.inf, "c": 2.0}),
    ("barron", {"alpha": 3.0, "c": 1.0}),
    ("barron", {"alpha": math.inf, "c": 4.0}),
]


@pytest.mark.parametrize("name, params", CASES)
def test_smooth_loss_fits_are_stationary_points_and_local_minima(name, params):
    x, y, _ = make_outlier_line(n=40, n_outliers=5, seed=2)
    a, b = fit_line(x, y, name, **params)
    theta = torch.tensor([a, b], dtype=torch.float64, requires_grad=True)
    f = losses.get(name)(
        theta[0] * torch.as_tensor(x) + theta[1], torch.as_tensor(y), reduction="sum", **params
    )
    (g,) = torch.autograd.grad(f, theta)
    scale = 1 + float(f.detach())
    assert float(g.abs().max()) < 1e-6 * scale, g
    for da, db in [(1e-3, 0), (-1e-3, 0), (0, 1e-3), (0, -1e-3)]:
        assert total_loss(x, y, a + da, b + db, name, **params) >= float(f.detach())


def test_msle_fit_on_positive_data_is_a_stationary_point():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 3, 50)
    y = np.exp(0.5 * x) + rng.uniform(0, 0.3, 50)
    a, b = fit_line(x, y, "msle")
    theta = torch.tensor([a, b], dtype=torch.float64, requires_grad=True)
    f = losses.get("msle")(
        theta[0] * torch.as_tensor(x) + theta[1], torch.as_tensor(y), reduction="sum"
    )
    (g,) = torch.autograd.grad(f, theta)
    assert float(g.abs().max()) < 1e-8
    assert a > 0  # y grows with x


def test_fit_line_rejects_bad_input():
    x, y, _ = make_outlier_line()
    with pytest.raises(ValueError, match="regression loss"):
        fit_line(x, y, "hinge")
    with pytest.raises(ValueError, match="unknown"):
        fit_line(x, y, "nope")
    with pytest.raises(ValueError, match="delta=-1"):
        fit_line(x, y, "huber", delta=-1)
    with pytest.raises(ValueError, match="same length"):
        fit_line(x, y[:-1], "mse")
    with pytest.raises(ValueError, match="finite"):
        fit_line(np.r_[x[:-1], np.nan], y, "mse")
    with pytest.raises(ValueError, match="single distinct value"):
        fit_line(np.ones(5), np.arange(5.0), "mae")
