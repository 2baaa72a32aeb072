"""The loss zoo against torch's own losses and plain formulas: values AND autograd gradients.

Every comparison is in float64. Inputs always include the awkward points: r = 0, |r| = delta
(the kink of Huber / smooth L1) and the extremes 1e-12 and 1e6.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from landscape.core import losses as L

D = torch.float64
EXTREMES = [0.0, 1e-12, -1e-12, 1e6, -1e6]


def _grads(out, *inputs):
    return torch.autograd.grad(out, inputs)


def _assert_close(a, b, rtol=1e-10, atol=1e-12):
    torch.testing.assert_close(a, b, rtol=rtol, atol=atol)


def _check_vs(ours_fn, ref_fn, *inputs, rtol=1e-10, atol=1e-12):
    """Same value and same gradient w.r.t. every input that requires grad."""
    ours, ref = ours_fn(*inputs), ref_fn(*inputs)
    _assert_close(ours, ref, rtol, atol)
    wrt = [x for x in inputs if x.requires_grad]
    for g_ours, g_ref in zip(_grads(ours, *wrt), _grads(ref, *wrt)):
        assert torch.isfinite(g_ours).all()
        _assert_close(g_ours, g_ref, rtol, atol)


def _regression_inputs(kinks=()):
    """pred/target pairs whose residuals hit 0, the kinks, the extremes and random values."""
    g = torch.Generator().manual_seed(0)
    r = torch.cat(
        [
            torch.tensor(EXTREMES + [s * k for k in kinks for s in (1, -1)], dtype=D),
            torch.randn(40, generator=g, dtype=D) * 3,
        ]
    )
    target = torch.randn(len(r), generator=g, dtype=D)
    pred = (target - r).detach().requires_grad_()
    return pred, target.requires_grad_()


def _binary_inputs(soft=False):
    g = torch.Generator().manual_seed(1)
    f = torch.cat([torch.tensor(EXTREMES + [1.0, -1.0, 20.0, -20.0, 40.0], dtype=D)])
    f = torch.cat([f, f, torch.randn(30, generator=g, dtype=D) * 4]).requires_grad_()
    t = torch.cat([torch.ones(10, dtype=D), torch.zeros(10, dtype=D)])
    tail = torch.rand(30, generator=g, dtype=D) if soft else (torch.rand(30, generator=g) > 0.5)
    return f, torch.cat([t, tail.to(D)])


# ----------------------------------------------------------------------------- registry


REQUIRED = {
    "regression": "mse mae rmse msle huber smooth_l1 pseudo_huber log_cosh quantile barron",
    "binary": "zero_one hinge squared_hinge logistic bce_logits bce exponential focal",
    "multiclass": "cross_entropy kl_div multi_margin",
}


@pytest.mark.parametrize("task", sorted(REQUIRED))
def test_registry_has_every_named_loss_of_each_task(task):
    assert set(REQUIRED[task].split()) == set(L.names(task))
    for name in L.names(task):
        spec = L.get(name)
        assert spec.name == name and spec.task == task and spec.display and spec.latex
        for p in spec.params:
            assert p.min <= p.default <= p.max
            assert p.check(name, p.default) == p.default  # slider defaults are valid inputs


def test_get_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="loss='nope' is unknown.*huber"):
        L.get("nope")
    with pytest.raises(ValueError, match="task"):
        L.names("ranking")


@pytest.mark.parametrize(
    "name, params, match",
    [
        ("huber", {"delta": -1.0}, r"huber: delta=-1.0 is out of range: must be in \(0, inf\)"),
        ("huber", {"delta": 0.0}, r"delta=0.0 is out of range"),
        ("huber", {"delta": float("nan")}, "delta=nan"),
        ("quantile", {"tau": 1.5}, r"tau=1.5 is out of range: must be in \[0, 1\]"),
        ("barron", {"c": 0.0}, "c=0.0"),
        ("barron", {"alpha": float("nan")}, "alpha=nan"),
        ("huber", {"beta": 1.0}, r"unknown parameter\(s\) \['beta'\]: allowed \['delta'\]"),
        ("focal", {"gamma": "x"}, "gamma='x' must be a real number"),
        ("smooth_l1", {"beta": -0.1}, "beta=-0.1"),
    ],
)
def test_bad_params_raise_value_error_naming_field_value_and_range(name, params, match):
    spec = L.get(name)
    with pytest.raises(ValueError, match=match):
        spec(torch.zeros(3, dtype=D), torch.ones(3, dtype=D), **params)


def test_bad_inputs_raise_value_error():
    z = torch.zeros(3, dtype=D)
    with pytest.raises(ValueError, match="pred shape"):
        L.get("mse")(torch.zeros(3, 1, dtype=D), z)  # the (N, 1) vs (N,) broadcasting trap
    with pytest.raises(ValueError, match="reduction"):
        L.get("mse")(z, z, reduction="avg")
    with pytest.raises(ValueError, match="target must be 0 or 1"):
        L.get("hinge")(z, torch.tensor([0.0, 1.0, 2.0], dtype=D))
    with pytest.raises(ValueError, match="msle: target must be >= 0"):
        L.get("msle")(z, torch.tensor([1.0, -1.0, 0.0], dtype=D))
    with pytest.raises(ValueError, match="bce: pred must be a probability"):
        L.get("bce")(torch.tensor([0.5, 1.5, 0.0], dtype=D), z)
    with pytest.raises(ValueError, match="class indices"):
        L.get("cross_entropy")(torch.zeros(2, 3, dtype=D), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="summing to 1"):
        L.get("kl_div")(torch.zeros(2, 3, dtype=D), torch.ones(2, 3, dtype=D))


def test_reductions_mean_sum_none():
    pred, target = _regression_inputs()
    spec = L.get("huber")
    per = spec(pred, target, reduction="none", delta=0.7)
    assert per.shape == pred.shape
    _assert_close(spec(pred, target, delta=0.7), per.mean())
    _assert_close(spec(pred, target, reduction="sum", delta=0.7), per.sum())


# ----------------------------------------------------------------------------- vs torch


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_and_mae_match_torch(reduction):
    pred, target = _regression_inputs()
    # values and grads sum over "none" outputs so that autograd gets a scalar
    red = (lambda v: v.sum()) if reduction == "none" else (lambda v: v)
    _check_vs(
        lambda p, t: red(L.get("mse")(p, t, reduction=reduction)),
        lambda p, t: red(torch.nn.MSELoss(reduction=reduction)(p, t)),
        pred,
        target,
    )
    _check_vs(
        lambda p, t: red(L.get("mae")(p, t, reduction=reduction)),
        lambda p, t: red(torch.nn.L1Loss(reduction=reduction)(p, t)),
        pred,
        target,
    )


def test_rmse_is_sqrt_of_torch_mse_and_finite_at_zero():
    pred, target = _regression_inputs()
    _check_vs(
        lambda p, t: L.get("rmse")(p, t),
        lambda p, t: torch.sqrt(torch.nn.MSELoss()(p, t)),
        pred,
        target,
    )
    z = torch.zeros(4, dtype=D, requires_grad=True)
    val = L.get("rmse")(z, torch.zeros(4, dtype=D))
    (g,) = _grads(val, z)
    assert val.item() == 0.0 and torch.all(g == 0)  # subgradient 0, not NaN
    per = L.get("rmse")(pred, target, reduction="none")
    _assert_close(per, (target - pred).abs())  # one point's RMSE is |r|


@pytest.mark.parametrize("delta", [0.1, 1.0, 2.5])
def test_huber_matches_torch(delta):
    pred, target = _regression_inputs(kinks=[delta])
    _check_vs(
        lambda p, t: L.get("huber")(p, t, delta=delta),
        lambda p, t: torch.nn.HuberLoss(delta=delta)(p, t),
        pred,
        target,
    )


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0, 3.0])
def test_smooth_l1_matches_torch(beta):
    pred, target = _regression_inputs(kinks=[beta] if beta else [])
    _check_vs(
        lambda p, t: L.get("smooth_l1")(p, t, beta=beta),
        lambda p, t: torch.nn.SmoothL1Loss(beta=beta)(p, t),
        pred,
        target,
    )


@pytest.mark.parametrize(
    "name, soft", [("logistic", False), ("bce_logits", False), ("bce_logits", True)]
)
def test_logistic_and_bce_logits_match_torch(name, soft):
    f, t = _binary_inputs(soft=soft)
    _check_vs(lambda f: L.get(name)(f, t), lambda f: torch.nn.BCEWithLogitsLoss()(f, t), f)


def test_bce_matches_torch_on_probabilities():
    g = torch.Generator().manual_seed(2)
    p = torch.cat(
        [
            torch.tensor([1e-12, 1 - 1e-12, 0.5, 1e-6, 1 - 1e-6], dtype=D),
            torch.rand(30, generator=g, dtype=D),
        ]
    ).requires_grad_()
    t = torch.cat([torch.tensor([1.0, 0, 1, 0, 1], dtype=D), torch.rand(30, generator=g, dtype=D)])
    ours = L.get("bce")(p, t, reduction="none")
    _assert_close(ours, torch.nn.BCELoss(reduction="none")(p, t))
    # gradient: torch divides by max(p (1 - p), 1e-12), i.e. it clips the derivative within
    # ~1e-12 of 0 and 1; ours is the exact derivative everywhere. Compare with torch away from
    # the clip, and with the exact derivative -t/p + (1-t)/(1-p) everywhere.
    inner = slice(2, None)
    _check_vs(
        lambda p: L.get("bce")(p[inner], t[inner]),
        lambda p: torch.nn.BCELoss()(p[inner], t[inner]),
        p,
    )
    (g,) = _grads(ours.sum(), p)
    pd = p.detach()
    _assert_close(g, -t / pd + (1 - t) / (1 - pd), rtol=1e-9, atol=0)


def test_bce_at_exact_zero_and_one_is_clamped_like_torch():
    """log is clamped at -100 as torch does; the infinite derivative becomes 0, never NaN."""
    p = torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=D, requires_grad=True)
    t = torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=D)
    ours = L.get("bce")(p, t, reduction="none")
    _assert_close(ours, F.binary_cross_entropy(p, t, reduction="none"))
    (g,) = _grads(ours.sum(), p)
    assert torch.isfinite(g).all()


@pytest.mark.parametrize("name, power", [("hinge", 1), ("squared_hinge", 2)])
def test_binary_hinges_match_plain_formula_and_torch_multimargin(name, power):
    f, t = _binary_inputs()
    m = [(2 * ti - 1) * fi for fi, ti in zip(f.tolist(), t.tolist())]
    plain = torch.tensor([max(0.0, 1.0 - mi) ** power for mi in m], dtype=D)
    _assert_close(L.get(name)(f, t, reduction="none"), plain)
    # two-class MultiMarginLoss on logits [0, f] is hinge / 2 (it divides by C = 2)
    _check_vs(
        lambda f: L.get(name)(f, t),
        lambda f: (
            2
            * torch.nn.MultiMarginLoss(p=power)(torch.stack([torch.zeros_like(f), f], 1), t.long())
        ),
        f,
    )


@pytest.mark.parametrize("margin", [0.5, 1.0, 2.0])
def test_multi_margin_matches_torch(margin):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(25, 4, generator=g, dtype=D).requires_grad_()
    y = torch.randint(0, 4, (25,), generator=g)
    _check_vs(
        lambda x: L.get("multi_margin")(x, y, margin=margin),
        lambda x: torch.nn.MultiMarginLoss(margin=margin)(x, y),
        x,
    )


def _logits_with_extremes(n=20, c=5, seed=4):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, generator=g, dtype=D) * 3
    x[0] = torch.tensor([1e6, -1e6, 0.0, 1e-12, 5.0], dtype=D)[:c]
    x[1] = torch.tensor([-1e6, 1e6, 0.0, 0.0, 0.0], dtype=D)[:c]
    return x.requires_grad_(), torch.randint(0, c, (n,), generator=g)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_cross_entropy_with_label_smoothing_matches_torch(eps):
    x, y = _logits_with_extremes()
    _check_vs(
        lambda x: L.get("cross_entropy")(x, y, label_smoothing=eps),
        lambda x: torch.nn.CrossEntropyLoss(label_smoothing=eps)(x, y),
        x,
    )


def test_kl_div_matches_torch_batchmean_with_log_probabilities():
    x, _ = _logits_with_extremes()
    g = torch.Generator().manual_seed(5)
    q = torch.softmax(torch.randn(20, 5, generator=g, dtype=D) * 2, dim=1)
    ref = torch.nn.KLDivLoss(reduction="batchmean")
    # gradients w.r.t. both logits and target probabilities (all > 0 here)
    _check_vs(
        lambda x, q: L.get("kl_div")(x, q),
        lambda x, q: ref(F.log_softmax(x, 1), q),
        x,
        q.clone().requires_grad_(),
    )
    q[3] = torch.tensor([0.0, 1.0, 0.0, 0.0, 0.0], dtype=D)  # zeros: 0 log 0 = 0
    _check_vs(lambda x: L.get("kl_div")(x, q), lambda x: ref(F.log_softmax(x, 1), q), x)


@pytest.mark.parametrize("gamma, alpha", [(0.0, 0.5), (2.0, 0.25), (0.5, 0.8), (5.0, 0.0)])
def test_focal_matches_an_independent_plain_formula(gamma, alpha):
    """Written the torchvision way: p = sigmoid(f), ce = BCE-with-logits, p_t, alpha_t."""
    f, t = _binary_inputs()
    keep = f.detach().abs() < 15  # the naive 1 - p_t cancels (then NaN) past this

    def plain(f):
        f, y = f[keep], t[keep]  # select first: the naive pow has NaN gradients elsewhere
        p = torch.sigmoid(f)
        ce = F.binary_cross_entropy_with_logits(f, y, reduction="none")
        p_t = p * y + (1 - p) * (1 - y)
        a_t = alpha * y + (1 - alpha) * (1 - y)
        return (a_t * ce * (1 - p_t) ** gamma).mean()

    _check_vs(
        lambda f: L.get("focal")(f, t, reduction="none", gamma=gamma, alpha=alpha)[keep].mean(),
        plain,
        f,
        rtol=1e-8,
        atol=1e-12,
    )


def test_focal_with_gamma_zero_and_alpha_half_is_half_the_logistic_loss():
    f, t = _binary_inputs()
    _check_vs(
        lambda f: L.get("focal")(f, t, gamma=0.0, alpha=0.5),
        lambda f: 0.5 * L.get("logistic")(f, t),
        f,
    )


@pytest.mark.parametrize(
    "name, params, plain",
    [
        ("quantile", {"tau": 0.2}, lambda r: max(0.2 * r, (0.2 - 1) * r)),
        ("quantile", {"tau": 0.9}, lambda r: max(0.9 * r, (0.9 - 1) * r)),
        ("log_cosh", {}, lambda r: math.log(math.cosh(r))),
        ("pseudo_huber", {"delta": 0.5}, lambda r: 0.25 * (math.sqrt(1 + (r / 0.5) ** 2) - 1)),
        ("pseudo_huber", {"delta": 2.0}, lambda r: 4.0 * (math.sqrt(1 + (r / 2.0) ** 2) - 1)),
    ],
)
def test_regression_losses_without_a_torch_twin_match_a_plain_loop(name, params, plain):
    g = torch.Generator().manual_seed(6)
    r = torch.randn(50, generator=g, dtype=D) * 4
    target = torch.zeros(50, dtype=D)
    ours = L.get(name)(target - r, target, reduction="none", **params)
    _assert_close(ours, torch.tensor([plain(ri) for ri in r.tolist()], dtype=D))


@pytest.mark.parametrize(
    "name, params, dpsi",
    [
        ("log_cosh", {}, lambda r: torch.tanh(r)),
        ("pseudo_huber", {"delta": 0.5}, lambda r: r / torch.sqrt(1 + (r / 0.5) ** 2)),
        ("quantile", {"tau": 0.3}, lambda r: 0.3 - (r < 0).to(D)),
    ],
)
def test_analytic_derivatives_including_extremes(name, params, dpsi):
    r = torch.tensor(EXTREMES[1:] + [0.3, -2.0, 7.5], dtype=D, requires_grad=True)
    target = torch.zeros_like(r)
    (g,) = _grads(L.get(name)(target - r, target, reduction="sum", **params), r)
    _assert_close(g, dpsi(r.detach()))


def test_pseudo_huber_and_log_cosh_are_accurate_where_naive_formulas_fail():
    t = torch.zeros(3, dtype=D)
    r = torch.tensor([1e-12, 1e6, 1e200], dtype=D)
    ph = L.get("pseudo_huber")(t - r, t, reduction="none", delta=1.0)
    _assert_close(ph, torch.tensor([0.5e-24, 1e6 - 1 + 0.5e-6, 1e200], dtype=D), rtol=1e-12, atol=0)
    lc = L.get("log_cosh")(t - r, t, reduction="none")
    _assert_close(
        lc, torch.tensor([0.5e-24, 1e6 - math.log(2), 1e200], dtype=D), rtol=1e-12, atol=0
    )


def test_msle_matches_plain_formula_and_clamps_negative_predictions():
    pred = torch.tensor([0.0, 1.0, 3.0, 1e6, -2.0], dtype=D, requires_grad=True)
    target = torch.tensor([1.0, 0.0, 3.0, 2.0, 4.0], dtype=D)
    ours = L.get("msle")(pred, target, reduction="none")
    plain = [
        (math.log1p(max(p, 0)) - math.log1p(t)) ** 2 for p, t in zip(pred.tolist(), target.tolist())
    ]
    _assert_close(ours, torch.tensor(plain, dtype=D))
    (g,) = _grads(ours.sum(), pred)
    assert g[4] == 0 and torch.isfinite(g).all()  # negative prediction: flat, gradient 0


def test_exponential_and_zero_one_against_plain_formulas():
    f, t = _binary_inputs()
    mask = f.detach().abs() < 100
    m = (2 * t - 1) * f.detach()
    _assert_close(L.get("exponential")(f, t, reduction="none")[mask], torch.exp(-m)[mask])
    _assert_close(L.get("zero_one")(f, t, reduction="none"), (m <= 0).to(D))
    (g,) = _grads(L.get("zero_one")(f, t), f)
    assert torch.all(g == 0)  # flat almost everywhere: nothing to learn from


# ----------------------------------------------------------------------------- extremes


def _inputs_for(name, dtype):
    """Extreme inputs for any loss: residuals / logits 0, 1e-12, 1e6, both signs."""
    spec = L.get(name)
    ext = torch.tensor(EXTREMES, dtype=dtype)
    if spec.task == "regression":
        target = torch.full_like(ext, 5.0 if name == "msle" else 0.0)
        return (target - ext), target
    if spec.task == "binary":
        f = torch.cat([ext, ext])
        t = torch.cat([torch.ones_like(ext), torch.zeros_like(ext)])
        return (torch.sigmoid(f) if name == "bce" else f), t
    logits = torch.stack([ext, ext.flip(0), torch.zeros_like(ext)], 1)  # (5, 3)
    if name == "kl_div":
        return logits, torch.softmax(torch.arange(15, dtype=dtype).reshape(5, 3), 1)
    return logits, torch.tensor([0, 1, 2, 0, 1])


def _param_grid(spec):
    """Defaults plus each parameter at its slider ends (and Barron's alpha at +-inf)."""
    grid = [{}]
    for p in spec.params:
        ends = [p.min, p.max] + ([-math.inf, math.inf] if p.allow_inf else [])
        grid += [{p.name: v} for v in ends if p.lo < v or (v == p.lo and not p.lo_open)]
    return grid


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", L.names())
def test_every_loss_is_finite_with_finite_gradients_at_extremes(name, dtype):
    spec = L.get(name)
    for params in _param_grid(spec):
        pred, target = _inputs_for(name, dtype)
        pred.requires_grad_()
        per = spec(pred, target, reduction="none", **params)
        (g,) = _grads(per.sum(), pred)
        assert torch.isfinite(per).all(), (name, params, per)
        assert torch.isfinite(g).all(), (name, params, g)
        assert (per >= 0).all(), (name, params, per)


# ----------------------------------------------------------------------------- Barron


def rho(x, alpha, c=1.0):
    x = torch.as_tensor(x, dtype=D)
    return L.get("barron")(torch.zeros_like(x), x, reduction="none", alpha=alpha, c=c)


def naive_barron(x, alpha, c):
    """The paper's general formula, evaluated plainly (fine away from alpha = 0 and 2)."""
    b = abs(alpha - 2)
    return b / alpha * (((x / c) ** 2 / b + 1) ** (alpha / 2) - 1)


xs = st.floats(-1e3, 1e3, allow_nan=False)
cs = st.floats(0.05, 20.0)
alphas = st.one_of(
    st.floats(-10.0, 4.0), st.sampled_from([-math.inf, math.inf, 0.0, 2.0, 1.0, -2.0])
)


@settings(max_examples=150, deadline=None)
@given(
    alpha=st.floats(-10.0, 4.0).filter(lambda a: abs(a) > 0.05 and abs(a - 2) > 0.05), x=xs, c=cs
)
def test_barron_general_case_equals_the_plain_formula(alpha, x, c):
    _assert_close(
        rho([x], alpha, c),
        torch.tensor([naive_barron(x, alpha, c)], dtype=D),
        rtol=1e-9,
        atol=1e-12,
    )


@settings(max_examples=150, deadline=None)
@given(alpha=alphas, c=cs)
def test_barron_is_zero_at_zero_and_positive_elsewhere(alpha, c):
    v = rho([0.0, 1e-3 * c, -c, 10 * c], alpha, c)
    assert v[0] == 0 and (v[1:] > 0).all()


@settings(max_examples=150, deadline=None)
@given(alpha=alphas, c=cs, a=st.floats(0, 50), b=st.floats(0, 50))
def test_barron_is_monotone_in_abs_x(alpha, c, a, b):
    lo, hi = sorted([a, b])
    v = rho([lo, -hi, hi], alpha, c)
    # symmetric, and non-decreasing in |x| (up to rounding where it saturates at its bound)
    assert v[0] <= v[1] * (1 + 1e-14) and v[1] == v[2]


@settings(max_examples=150, deadline=None)
@given(alpha=st.one_of(st.floats(-10.0, -1e-3), st.just(-math.inf)), c=cs)
def test_barron_is_bounded_for_negative_alpha(alpha, c):
    v = rho([1e-3, 1.0, 1e3, 1e6], alpha, c)
    bound = L.barron_bound(alpha)
    assert (v <= bound * (1 + 1e-12)).all()
    if alpha <= -0.5:  # ...and approached (it is the supremum; slowly, like |x|^alpha)
        assert v[-1] > 0.9 * bound


@settings(max_examples=150, deadline=None)
@given(alpha=alphas, c=st.floats(0.1, 5.0), k=st.floats(0.01, 100.0), x=st.floats(-50, 50))
def test_barron_is_scale_invariant(alpha, c, k, x):
    _assert_close(rho([k * x], alpha, k * c), rho([x], alpha, c), rtol=1e-8, atol=1e-14)


@pytest.mark.parametrize("c", [0.3, 1.0, 4.0])
def test_barron_named_special_cases(c):
    x = torch.linspace(-30, 30, 121, dtype=D)
    u2 = (x / c) ** 2
    _assert_close(rho(x, 2.0, c), 0.5 * u2)  # L2
    _assert_close(rho(x, 1.0, c), torch.sqrt(u2 + 1) - 1)  # pseudo-Huber / Charbonnier
    _assert_close(rho(x, 0.0, c), torch.log(0.5 * u2 + 1))  # Cauchy / Lorentzian
    _assert_close(rho(x, -2.0, c), 2 * u2 / (u2 + 4))  # Geman-McClure
    _assert_close(rho(x, -math.inf, c), 1 - torch.exp(-0.5 * u2))  # Welsch / Leclerc
    small = x.abs() < 10 * c
    _assert_close(rho(x, math.inf, c)[small], (torch.exp(0.5 * u2) - 1)[small])
    # alpha = 1 with scale delta is pseudo-Huber divided by delta^2
    ph = L.get("pseudo_huber")(torch.zeros_like(x), x, reduction="none", delta=c)
    _assert_close(rho(x, 1.0, c), ph / c**2)


@pytest.mark.parametrize("alpha0", [0.0, 2.0])
@pytest.mark.parametrize("eps", [1e-4, 1e-7, 1e-10])
def test_barron_is_continuous_where_the_general_formula_is_singular(alpha0, eps):
    x = torch.tensor([1e-12, 1e-3, 0.5, 1.0, 3.0, 30.0], dtype=D)
    exact = rho(x, alpha0)
    for a in (alpha0 - eps, alpha0 + eps):
        # |d rho / d alpha| <= (u^2/2 + 1) * log(1 + u^2)^2, so the gap is O(eps)
        _assert_close(rho(x, a), exact, rtol=50 * eps, atol=1e-300)


def test_barron_tends_to_welsch_and_exp_at_large_abs_alpha():
    x = torch.tensor([0.1, 1.0, 2.0], dtype=D)
    _assert_close(rho(x, -1e7), rho(x, -math.inf), rtol=1e-6, atol=0)
    _assert_close(rho(x, 1e7), rho(x, math.inf), rtol=1e-5, atol=0)


@settings(max_examples=100, deadline=None)
@given(alpha=st.one_of(st.floats(-10.0, 4.0), st.just(0.0), st.just(2.0)), c=cs, x=xs)
def test_barron_gradient_equals_the_papers_derivative(alpha, c, x):
    """d rho / dx = x / c^2 * ((x/c)^2 / |a-2| + 1)^(a/2 - 1) (Barron eq. 12), limits at 0, 2."""
    xt = torch.tensor([x], dtype=D, requires_grad=True)
    (g,) = _grads(rho(xt, alpha, c).sum(), xt)
    u2 = (x / c) ** 2
    if alpha == 2:
        want = x / c**2
    elif alpha == 0:
        want = 2 * x / (x**2 + 2 * c**2)
    else:
        want = x / c**2 * (u2 / abs(alpha - 2) + 1) ** (alpha / 2 - 1)
    _assert_close(g, torch.tensor([want], dtype=D), rtol=1e-8, atol=1e-15)


# ----------------------------------------------------------------------------- curves


def test_regression_curves_psi_and_weight_from_autograd():
    r = np.linspace(-4, 4, 81)  # contains 0 exactly
    h = L.regression_curves("huber", r, delta=1.5)
    np.testing.assert_allclose(h["psi"], np.clip(r, -1.5, 1.5), atol=1e-12)
    np.testing.assert_allclose(
        h["weight"], np.minimum(1, 1.5 / np.maximum(np.abs(r), 1e-300)), atol=1e-9
    )
    m = L.regression_curves("mse", r)
    np.testing.assert_allclose(m["psi"], 2 * r, atol=1e-12)
    np.testing.assert_allclose(m["weight"], 2.0, atol=1e-9)  # limit 2 at r = 0 too
    b = L.regression_curves("barron", r, alpha=0.0, c=0.5)
    assert b["weight"][40] == pytest.approx(1 / 0.5**2, rel=1e-6)  # limit 1/c^2 at r = 0
    nz = r != 0
    np.testing.assert_allclose(b["weight"][nz], b["psi"][nz] / r[nz])
    a = L.regression_curves("mae", r)
    np.testing.assert_allclose(a["psi"], np.sign(r), atol=0)
    assert a["weight"][40] > 1e4  # 1/|r| -> inf at 0: L1's weight really diverges there


def test_regression_curves_derivative_matches_finite_differences():
    r = np.linspace(-3, 3, 31)
    for name in L.names("regression"):
        if name in ("mae", "rmse", "quantile"):
            continue  # kinks at 0
        c = L.regression_curves(name, r)
        hi, lo = L.regression_curves(name, r + 1e-6), L.regression_curves(name, r - 1e-6)
        np.testing.assert_allclose(c["psi"], (hi["rho"] - lo["rho"]) / 2e-6, rtol=1e-5, atol=1e-6)


def test_margin_and_cross_entropy_curves():
    m = np.linspace(-3, 3, 13)
    np.testing.assert_allclose(L.margin_curve("hinge", m), np.maximum(0, 1 - m))
    np.testing.assert_allclose(L.margin_curve("bce", m), L.margin_curve("logistic", m), rtol=1e-12)
    p = np.linspace(0.01, 0.99, 99)
    np.testing.assert_allclose(L.cross_entropy_curve(p, 10, 0.0), -np.log(p), rtol=1e-12)
    eps, C = 0.2, 5
    ce = L.cross_entropy_curve(p, C, eps)
    # with smoothing the loss no longer wants p -> 1: its minimum is at p = 1 - eps + eps / C
    assert p[np.argmin(ce)] == pytest.approx(1 - eps + eps / C, abs=0.011)
    with pytest.raises(ValueError, match="n_classes"):
        L.cross_entropy_curve(p, 1)
    with pytest.raises(ValueError, match="regression"):
        L.regression_curves("hinge", m)


def test_every_parameter_label_has_a_plain_text_accessible_name():
    for name in L.names():
        for p in L.get(name).params:
            plain = L.plain_label(p.label)
            assert not set("$\\{}") & set(plain), (name, p.label, plain)
            assert plain.isascii() or any(ch in plain for ch in "αβγδετλσμΔε"), plain
    assert L.plain_label(r"$\delta$") == "δ"
    assert L.plain_label(r"$\varepsilon$") == "ε"
