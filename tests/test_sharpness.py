"""Sharpness measures against closed forms on a quadratic, and the Dinh et al. rescaling."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from research_toys import DATA, Quadratic, loss_of_output, relu_data, relu_mlp

from landscape.measures import curvature, sharpness


def _quadratic(d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    lams = torch.linspace(0.5, 3.0, d, dtype=torch.float64)
    A = Q @ torch.diag(lams) @ Q.T
    c = torch.randn(d, generator=g, dtype=torch.float64)
    w0 = c + 0.3 * torch.randn(d, generator=g, dtype=torch.float64)  # off the minimum: g != 0
    return A, c, w0


def _trust_region_max(A, g, rho):
    """max g.d + 1/2 d^T A d over ||d|| <= rho, exactly: d = (mu I - A)^-1 g, ||d|| = rho,
    mu > lambda_max (the secular equation, solved by bisection in the eigenbasis)."""
    lam, Q = np.linalg.eigh(A)
    gq = Q.T @ g
    norm = lambda mu: np.linalg.norm(gq / (mu - lam))  # noqa: E731
    lo, hi = lam[-1] + 1e-12, lam[-1] + 1.0
    while norm(hi) > rho:
        hi = lam[-1] + 2 * (hi - lam[-1])
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if norm(mid) > rho else (lo, mid)
    d = Q @ (gq / (hi - lam))
    return float(g @ d + 0.5 * d @ A @ d)


def test_rho_sharpness_at_a_minimum_is_rho_squared_lambda_max_over_two():
    A, c, _ = _quadratic()
    m = Quadratic(A, c, c)  # at the minimum: gradient 0
    rho = 0.3
    r = sharpness.rho_sharpness(m, loss_of_output, DATA, rho=rho, steps=200, restarts=2)
    lam_max = float(torch.linalg.eigvalsh(A)[-1])
    assert r.value == pytest.approx(rho**2 * lam_max / 2, rel=1e-6)
    assert float(r.delta["w"].norm()) <= rho * (1 + 1e-9)


@pytest.mark.parametrize("rho", [0.05, 0.5, 2.0])
def test_rho_sharpness_with_gradient_matches_the_trust_region_solution(rho):
    A, c, w0 = _quadratic(seed=1)
    m = Quadratic(A, c, w0)
    g = (A @ (w0 - c)).numpy()
    r = sharpness.rho_sharpness(m, loss_of_output, DATA, rho=rho, steps=300, step_size=0.2)
    assert r.value == pytest.approx(_trust_region_max(A.numpy(), g, rho), rel=1e-6)


def test_rho_sharpness_in_2d_matches_a_dense_search_on_the_circle():
    A, c, w0 = _quadratic(d=2, seed=2)
    m = Quadratic(A, c, w0)
    rho = 0.7
    t = np.linspace(0, 2 * np.pi, 200_001)
    D = rho * np.stack([np.cos(t), np.sin(t)])  # the max of a convex f is on the boundary
    An, g = A.numpy(), (A @ (w0 - c)).numpy()
    brute = float(np.max(g @ D + 0.5 * np.einsum("in,ij,jn->n", D, An, D)))
    r = sharpness.rho_sharpness(m, loss_of_output, DATA, rho=rho, steps=300, step_size=0.2)
    assert r.value == pytest.approx(brute, rel=1e-6)


@pytest.mark.parametrize("eps", [0.05, 0.4])
def test_eps_sharpness_is_the_best_vertex_of_the_box(eps):
    A, c, w0 = _quadratic(d=4, seed=3)
    m = Quadratic(A, c, w0)
    r_half = eps * (w0.abs() + 1)  # Keskar's box: |d_i| <= eps (|w_i| + 1)
    L = lambda w: float(0.5 * (w - c) @ A @ (w - c))  # noqa: E731
    best = max(
        L(w0 + torch.tensor(s, dtype=torch.float64) * r_half)
        for s in itertools.product([-1, 1], repeat=4)
    )
    res = sharpness.eps_sharpness(m, loss_of_output, DATA, eps=eps, steps=30, restarts=16)
    assert res.value == pytest.approx(best - L(w0), rel=1e-9)
    assert torch.all(res.delta["w"].abs() <= r_half * (1 + 1e-12))
    assert res.keskar_percent == pytest.approx(100 * res.value / (1 + L(w0)))


def test_sharpness_leaves_the_model_untouched_and_rejects_bad_radii():
    m = relu_mlp()
    X, y = relu_data()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    sharpness.rho_sharpness(m, F.cross_entropy, (X, y), rho=0.1, steps=3)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    with pytest.raises(ValueError, match="rho"):
        sharpness.rho_sharpness(m, F.cross_entropy, (X, y), rho=-1)
    with pytest.raises(ValueError, match="steps"):
        sharpness.eps_sharpness(m, F.cross_entropy, (X, y), steps=0)


def _flat_hessian(model, data):
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    x0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def f(x):
        parts, i = {}, 0
        for n, s in zip(names, shapes):
            k = int(np.prod(s))
            parts[n] = x[i : i + k].reshape(s)
            i += k
        out = torch.func.functional_call(model, parts, (data[0],))
        return F.cross_entropy(out, data[1])

    return torch.autograd.functional.hessian(f, x0)


def test_rescaling_keeps_the_function_and_asam_but_moves_lambda_max_as_theory_says():
    m, data = relu_mlp(seed=4), relu_data(seed=4)
    alpha = 3.0
    r = sharpness.rescale_relu(m, alpha)
    with torch.no_grad():
        assert torch.allclose(m(data[0]), r(data[0]), atol=1e-12)
    # Hessian: H' = S^-1 H S^-1, S = alpha on layer 0 (weight, bias), 1/alpha on layer 1's weight
    H, H2 = _flat_hessian(m, data), _flat_hessian(r, data)
    sizes = [p.numel() for p in m.parameters()]
    s = torch.cat(
        [
            torch.full((k,), v, dtype=torch.float64)
            for k, v in zip(sizes, [alpha, alpha, 1 / alpha, 1, 1, 1])
        ]
    )
    assert torch.allclose(H2, H / s[:, None] / s[None, :], atol=1e-9)
    # the block of layer 0's weight shrinks by alpha^2, layer 1's weight grows by alpha^2
    b0 = slice(0, sizes[0])
    b1 = slice(sizes[0] + sizes[1], sum(sizes[:3]))
    top = lambda M: float(torch.linalg.eigvalsh(M)[-1])  # noqa: E731
    assert top(H2[b0, b0]) == pytest.approx(top(H[b0, b0]) / alpha**2, rel=1e-9)
    assert top(H2[b1, b1]) == pytest.approx(top(H[b1, b1]) * alpha**2, rel=1e-9)
    # Lanczos on the rescaled net finds the top eigenvalue of S^-1 H S^-1
    lam = curvature.top_eigen(r, F.cross_entropy, data, tol=1e-8, max_iter=200).eigenvalues[0]
    assert lam == pytest.approx(top(H2), rel=1e-6)
    # Rayleigh: lambda_max' >= the top of any diagonal block, so at least alpha^2 times layer
    # 1's block; here it moved by more than 10 %
    assert lam >= alpha**2 * top(H[b1, b1]) * (1 - 1e-9)
    assert abs(lam - top(H)) > 0.1 * top(H)
    # ASAM: unchanged; SAM's rho-sharpness: moved
    kw = dict(steps=15, step_size=0.3)
    a1 = sharpness.adaptive_sharpness(m, F.cross_entropy, data, rho=0.3, **kw).value
    a2 = sharpness.adaptive_sharpness(r, F.cross_entropy, data, rho=0.3, **kw).value
    assert a1 > 1e-3 and a2 == pytest.approx(a1, rel=1e-6)
    s1 = sharpness.rho_sharpness(m, F.cross_entropy, data, rho=0.3, **kw).value
    s2 = sharpness.rho_sharpness(r, F.cross_entropy, data, rho=0.3, **kw).value
    assert abs(s2 - s1) > 0.1 * s1


def test_rescale_rejects_nets_where_it_is_not_the_same_function():
    m = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1))
    with pytest.raises(ValueError, match="ReLU"):
        sharpness.rescale_relu(m, 2.0)
    with pytest.raises(ValueError, match="layer"):
        sharpness.rescale_relu(relu_mlp(), 2.0, layer=5)
    with pytest.raises(ValueError, match="alpha"):
        sharpness.rescale_relu(relu_mlp(), 0.0)


def test_panel_measures_agree_with_the_exact_hessian_and_a_trust_region():
    # independent references: the float64 Hessian by torch.autograd.functional.hessian
    # (eigvalsh, its trace), the gradient by plain autograd, and for the small ρ-ball the
    # exact trust-region maximum of the second-order model (error O(ρ^3); ρ small enough that
    # no ReLU changes sign)
    m, data = relu_mlp(seed=5), relu_data(seed=5)
    names = [n for n, _ in m.named_parameters()]
    shapes = [p.shape for p in m.parameters()]
    x0 = torch.cat([p.detach().reshape(-1) for p in m.parameters()])

    def f(x):
        parts = torch.split(x, [s.numel() for s in shapes])
        ps = {n: t.view(s) for n, t, s in zip(names, parts, shapes)}
        return F.cross_entropy(torch.func.functional_call(m, ps, (data[0],)), data[1])

    H = torch.autograd.functional.hessian(f, x0)
    g = torch.autograd.functional.jacobian(f, x0)
    s = sharpness.PanelSettings(rho=1e-3, steps=30, trace_samples=60, n_dirs=2, line_points=11)
    p = sharpness.panel(m, F.cross_entropy, data, s)
    assert set(p.values) == set(sharpness.MEASURES) == set(p.seconds)
    assert p.values["lambda_max"] == pytest.approx(float(torch.linalg.eigvalsh(H)[-1]), rel=1e-4)
    se = p.errors["trace"]
    assert se > 0 and abs(p.values["trace"] - float(torch.trace(H))) < 4 * se
    want = _trust_region_max(H.numpy(), g.numpy(), 1e-3)
    assert p.values["rho"] == pytest.approx(want, rel=1e-5)
    assert p.loss == pytest.approx(float(F.cross_entropy(m(data[0]), data[1]).detach()))
    assert sharpness.keskar_percent(p.values["eps"], p.loss) == pytest.approx(
        100 * p.values["eps"] / (1 + p.loss)
    )
