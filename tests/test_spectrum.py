"""SLQ spectral density on matrices with a known spectrum; the one operator and Lanczos against\nthe exact float64 Hessian (torch.autograd.functional.hessian, eigvalsh)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from research_toys import DATA, Quadratic, loss_of_output, relu_data, relu_mlp

from landscape.core.hessian import FlatLoss, lanczos
from landscape.measures import spectrum


def _known_spectrum(P=60):
    # a bulk near zero, a few negative values and three outliers (a typical trained net)
    rng = np.random.default_rng(0)
    lam = np.concatenate([rng.uniform(-0.05, 0.2, P - 6), [-0.5, -0.3, 0.1], [3.0, 5.0, 9.0]])
    return torch.tensor(lam, dtype=torch.float64)


def test_slq_moments_of_a_diagonal_hessian_are_exact():
    lam = _known_spectrum()
    m = Quadratic(torch.diag(lam), torch.zeros(len(lam)), torch.ones(len(lam)))
    res = spectrum.density(m, loss_of_output, DATA, n_vectors=3, steps=10, top_k=3)
    # Rademacher v on a diagonal H: v^T H^j v = mean(lambda^j) exactly; Gauss quadrature with
    # 10 nodes is exact up to degree 19
    for j in range(0, 8):
        assert res.moment(j) == pytest.approx(float((lam**j).mean()), rel=1e-8, abs=1e-12)
    assert np.allclose(res.weights.sum(axis=1), 1.0)
    assert float(np.sum(res.density) * (res.grid[1] - res.grid[0])) == pytest.approx(1.0)
    assert np.allclose(res.top, [9.0, 5.0, 3.0], rtol=1e-3)
    # the outliers are nodes of their own; the smoothed density has a peak at each
    for x in (3.0, 5.0, 9.0):
        i = np.argmin(np.abs(res.grid - x))
        assert res.density[i] > 10 * res.density[np.argmin(np.abs(res.grid - (x - 0.5)))]


def test_slq_with_full_lanczos_recovers_the_support():
    lam = torch.tensor([-1.0, 0.5, 2.0, 2.0, 7.0], dtype=torch.float64)
    m = Quadratic(torch.diag(lam), torch.zeros(5), torch.zeros(5))
    res = spectrum.density(m, loss_of_output, DATA, n_vectors=2, steps=5, top_k=0)
    nodes = res.nodes[np.isfinite(res.nodes)]
    assert np.allclose(np.unique(np.round(nodes, 8)), [-1.0, 0.5, 2.0, 7.0])
    assert res.mass_below(1.0) == pytest.approx(0.4)  # 2 of 5 eigenvalues, weights exact


def test_slq_quadrature_matches_v_h_power_v_on_a_rotated_matrix():
    P = 30
    lam = _known_spectrum(P)
    g = torch.Generator().manual_seed(1)
    Q, _ = torch.linalg.qr(torch.randn(P, P, generator=g, dtype=torch.float64))
    H = Q @ torch.diag(lam) @ Q.T
    m = Quadratic(H, torch.zeros(P), torch.zeros(P))
    seed, nv = 3, 4
    res = spectrum.density(m, loss_of_output, DATA, n_vectors=nv, steps=8, seed=seed, top_k=0)
    gen = torch.Generator().manual_seed(seed)  # the same Rademacher draws, independently
    vs = [(torch.randint(0, 2, (P,), generator=gen) * 2 - 1).double() / P**0.5 for _ in range(nv)]
    for j in range(1, 6):
        exact = np.mean([float(v @ torch.linalg.matrix_power(H, j) @ v) for v in vs])
        assert res.moment(j) == pytest.approx(exact, rel=1e-8)


def test_lanczos_tridiagonal_has_the_extreme_eigenvalues():
    A = torch.randn(40, 40, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    A = A + A.T
    kr = lanczos(lambda v: A @ v, torch.ones(40, dtype=torch.float64), 40)
    assert torch.allclose(kr.Q @ kr.Q.T, torch.eye(len(kr.alphas), dtype=torch.float64), atol=1e-10)
    theta, _ = kr.eigh()
    assert np.allclose(theta, np.linalg.eigvalsh(A.numpy()), atol=1e-8)


def _exact_hessian(m, data):
    """The float64 Hessian of the mean cross-entropy over every parameter, by
    torch.autograd.functional.hessian (independent of the library's operator)."""
    names = [n for n, _ in m.named_parameters()]
    shapes = [p.shape for _, p in m.named_parameters()]
    x0 = torch.cat([p.detach().reshape(-1) for p in m.parameters()])

    def f(x):
        parts = torch.split(x, [s.numel() for s in shapes])
        ps = {n: t.view(s) for n, t, s in zip(names, parts, shapes)}
        return F.cross_entropy(torch.func.functional_call(m, ps, (data[0],)), data[1])

    return torch.autograd.functional.hessian(f, x0)


def test_flat_hvp_and_lanczos_match_the_exact_hessian_and_the_model_is_left_alone():
    m, data = relu_mlp(seed=1), relu_data(seed=1)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    H = _exact_hessian(m, data)
    Fl = FlatLoss(m, F.cross_entropy, data)
    v = torch.randn(Fl.numel, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.allclose(Fl.hvp(Fl.x0, v), H @ v, atol=1e-12)
    exact = torch.linalg.eigvalsh(H).numpy()
    theta, _ = lanczos(Fl.matvec, v, Fl.numel).eigh()
    assert np.allclose(theta[[0, -1]], exact[[0, -1]], atol=1e-9)
    assert all(torch.equal(before[k], t) for k, t in m.state_dict().items())


@pytest.mark.slow
def test_printed_extremes_and_negative_share_agree_with_eigvalsh():
    # full Lanczos (steps >= P) makes each probe's rule exact: the Ritz extremes are the
    # spectrum's, and each probe's weight below 0 is an unbiased estimate of the exact share
    torch.manual_seed(4)
    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3)).double()
    X = torch.randn(30, 3, dtype=torch.float64)
    data = (X, torch.randint(0, 3, (30,)))
    exact = torch.linalg.eigvalsh(_exact_hessian(m, data)).numpy()
    P = len(exact)
    res = spectrum.density(m, F.cross_entropy, data, n_vectors=40, steps=P, top_k=0)
    assert res.ritz_min == pytest.approx(exact[0], abs=1e-8)
    assert res.ritz_max == pytest.approx(exact[-1], rel=1e-8)
    # the plotted grid is wider than what was computed
    assert res.grid[0] < res.ritz_min and res.grid[-1] > res.ritz_max
    tiny = 1e-9 * abs(exact).max()  # eigenvalues within rounding of 0 count for neither side
    share = float(np.mean(exact < -tiny))
    assert 0.05 < share < 0.95  # the test is not trivial
    se = res.mass_below_stderr(-tiny)
    assert 0 < se < 0.08
    assert abs(res.mass_below(-tiny) - share) < 4 * se
    lo, hi = res.mass_below_bounds(-tiny)
    assert lo <= res.mass_below(-tiny) <= hi
    # with few steps the rules cannot resolve the spectrum: the bounds still hold (up to the
    # probes' sampling error)
    few = spectrum.density(m, F.cross_entropy, data, n_vectors=40, steps=6, top_k=0)
    lo, hi = few.mass_below_bounds(-tiny)
    assert hi - lo > 0.05
    assert lo - 4 * few.mass_below_stderr(-tiny) <= share <= hi + 4 * few.mass_below_stderr(-tiny)


def test_density_on_a_net_and_bad_arguments():
    m, data = relu_mlp(seed=2), relu_data(seed=2)
    res = spectrum.density(m, F.cross_entropy, data, n_vectors=2, steps=12, top_k=1)
    assert res.n_params == sum(p.numel() for p in m.parameters())
    # the largest node of any rule is at most the true lambda_max (Ritz values interlace)
    assert np.nanmax(res.nodes) <= res.top[0] * (1 + 1e-3)
    with pytest.raises(ValueError, match="n_vectors"):
        spectrum.density(m, F.cross_entropy, data, n_vectors=0)
    with pytest.raises(ValueError, match="steps"):
        spectrum.density(m, F.cross_entropy, data, steps=10**6)
