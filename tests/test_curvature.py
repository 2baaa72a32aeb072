"""Curvature: every figure checked against the exact Hessian of a tiny float64 net.

The independent implementation is torch.autograd.functional.hessian of the loss as a function
of the flat parameter vector (written here with torch.func.functional_call), followed by
torch.linalg.eigvalsh; and a quadratic 0.5 x^T A x whose Hessian A is known in closed form.
"""

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from landscape.measures import curvature as C

# ---------------------------------------------------------------------------------------------
# fixtures: a tiny net, its data, and its exact Hessian


def tiny_net(bn: bool = False, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    layers = [nn.Linear(3, 5)]
    if bn:
        layers.append(nn.BatchNorm1d(5))
    layers += [nn.Tanh(), nn.Linear(5, 3)]
    return nn.Sequential(*layers).double()


def tiny_data(n: int = 40, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (n,), generator=g)
    return X, y


def ce(pred, y):
    return nn.functional.cross_entropy(pred, y)


def exact_hessian(model: nn.Module, loss_fn, data, names=None) -> torch.Tensor:
    """The Hessian of the mean loss w.r.t. the flat vector of ``names`` (eval mode)."""
    model = model.eval()
    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    names = list(params) if names is None else names
    shapes = [params[n].shape for n in names]
    sizes = [params[n].numel() for n in names]
    X, y = data

    def f(flat):
        chunks = torch.split(flat, sizes)
        p = dict(params)
        p.update({n: c.reshape(s) for n, c, s in zip(names, chunks, shapes)})
        return loss_fn(functional_call(model, (p, buffers), (X,)), y)

    flat0 = torch.cat([params[n].detach().reshape(-1) for n in names])
    return torch.autograd.functional.hessian(f, flat0)


def flat(d: dict, names) -> torch.Tensor:
    return torch.cat([d[n].reshape(-1) for n in names])


def snapshot(model):
    return (
        {k: v.detach().clone() for k, v in model.state_dict().items()},
        model.training,
        {n: p.requires_grad for n, p in model.named_parameters()},
    )


def assert_unchanged(model, snap):
    state, training, rg = snap
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert model.training == training
    assert {n: p.requires_grad for n, p in model.named_parameters()} == rg
    assert all(p.grad is None for p in model.parameters())


@pytest.fixture(scope="module")
def net_setup():
    model, data = tiny_net(), tiny_data()
    names = [n for n, _ in model.named_parameters()]
    H = exact_hessian(model, ce, data)
    return model, data, names, H, torch.linalg.eigvalsh(H)  # ascending


# ---------------------------------------------------------------------------------------------
# quadratic loss with a known Hessian


class Quadratic(nn.Module):
    """Loss 0.5 x^T A x where x is the concatenation of a (2, 3) weight and a (4,) bias."""

    def __init__(self, A: torch.Tensor):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.w = nn.Parameter(torch.randn(2, 3, generator=g, dtype=torch.float64))
        self.b = nn.Parameter(torch.randn(4, generator=g, dtype=torch.float64))
        self.register_buffer("A", A)

    def forward(self, X):
        x = torch.cat([self.w.reshape(-1), self.b])
        return (0.5 * x @ self.A @ x).expand(len(X))


def mean_loss(pred, y):
    return pred.mean()


def known_A(eigs) -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    Q, _ = torch.linalg.qr(torch.randn(len(eigs), len(eigs), generator=g, dtype=torch.float64))
    return Q @ torch.diag(torch.tensor(eigs, dtype=torch.float64)) @ Q.T


EIGS = [7.0, 4.0, 2.5, 1.0, 0.5, 0.0, -0.3, -1.5, -2.0, -3.0]  # 10 = 2*3 + 4 parameters
QDATA = (torch.zeros(5, 1, dtype=torch.float64), torch.zeros(5))


def test_quadratic_exact():
    A = known_A(EIGS)
    model = Quadratic(A)
    top = C.top_eigen(model, mean_loss, QDATA, k=3, tol=1e-10)
    assert np.allclose(top.eigenvalues, [7.0, 4.0, 2.5], rtol=0, atol=1e-10)
    low = C.min_eigen(model, mean_loss, QDATA, k=2, tol=1e-10)
    assert np.allclose(low.eigenvalues, [-3.0, -2.0], rtol=0, atol=1e-10)
    est, err = C.trace(model, mean_loss, QDATA, exact=True)
    assert est == pytest.approx(sum(EIGS), abs=1e-10) and err == 0.0
    # the eigenvector of 7 is the first column of Q, up to sign
    evals, evecs = torch.linalg.eigh(A)
    u = flat(top.eigenvectors[0], ["w", "b"])
    assert abs(float(u @ evecs[:, -1])) == pytest.approx(1.0, abs=1e-9)
    assert np.all(top.residuals < 1e-8) and top.converged


def test_quadratic_hvp_is_A_times_v():
    A = known_A(EIGS)
    model = Quadratic(A)
    g = torch.Generator().manual_seed(9)
    v = {
        "w": torch.randn(2, 3, generator=g, dtype=torch.float64),
        "b": torch.randn(4, generator=g, dtype=torch.float64),
    }
    hv = C.hvp(model, mean_loss, QDATA, v)
    assert torch.allclose(flat(hv, ["w", "b"]), A @ flat(v, ["w", "b"]), atol=1e-12)


def test_quadratic_hutchinson_unbiased():
    """Rademacher Hutchinson: for a diagonal A every draw equals the trace exactly."""
    model = Quadratic(torch.diag(torch.tensor(EIGS, dtype=torch.float64)))
    est, err = C.trace(model, mean_loss, QDATA, n_samples=5, seed=2)
    assert est == pytest.approx(sum(EIGS), abs=1e-12) and err == pytest.approx(0.0, abs=1e-12)


def test_degenerate_spectrum_found_by_restart():
    """A repeated top eigenvalue: Lanczos breaks down and must restart to find both copies."""
    eigs = [5.0, 5.0, 5.0, 1.0, 1.0, 0.5, 0.5, 0.2, 0.1, 0.0]
    model = Quadratic(known_A(eigs))
    top = C.top_eigen(model, mean_loss, QDATA, k=4, tol=1e-10)
    assert np.allclose(top.eigenvalues, [5.0, 5.0, 5.0, 1.0], atol=1e-9)
    V = torch.stack([flat(v, ["w", "b"]) for v in top.eigenvectors])
    assert torch.allclose(V @ V.T, torch.eye(4, dtype=torch.float64), atol=1e-8)


# ---------------------------------------------------------------------------------------------
# the tiny net against its exact Hessian


def test_hvp_matches_explicit_hessian(net_setup):
    model, data, names, H, _ = net_setup
    g = torch.Generator().manual_seed(4)
    v = {
        n: torch.randn(p.shape, generator=g, dtype=torch.float64)
        for n, p in model.named_parameters()
    }
    snap = snapshot(model)
    hv = C.hvp(model, ce, data, v)
    assert_unchanged(model, snap)
    assert list(hv) == names
    assert torch.allclose(flat(hv, names), H @ flat(v, names), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("batch_size", [1, 7, 16, 40, 1000])
def test_batched_hvp_equals_full_batch(net_setup, batch_size):
    model, data, names, _, _ = net_setup
    g = torch.Generator().manual_seed(6)
    v = {
        n: torch.randn(p.shape, generator=g, dtype=torch.float64)
        for n, p in model.named_parameters()
    }
    full = flat(C.hvp(model, ce, data, v), names)
    batched = flat(C.hvp(model, ce, data, v, batch_size=batch_size), names)
    assert torch.allclose(batched, full, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_top_eigen_matches_eigvalsh(net_setup, method):
    model, data, names, H, exact = net_setup
    snap = snapshot(model)
    res = C.top_eigen(model, ce, data, k=3, tol=1e-6, max_iter=500, method=method)
    assert_unchanged(model, snap)
    want = exact.flip(0)[:3].numpy()
    assert np.allclose(res.eigenvalues, want, rtol=1e-4, atol=0)
    assert res.converged and np.all(res.residuals <= 1e-5)
    # eigenvectors: unit, and H u = lambda u with the exact Hessian
    for lam, vec in zip(res.eigenvalues, res.eigenvectors):
        assert list(vec) == names
        u = flat(vec, names)
        assert float(u.norm()) == pytest.approx(1.0, abs=1e-12)
        assert float((H @ u - lam * u).norm()) <= 1e-4 * abs(lam)


def test_min_eigen_matches_eigvalsh(net_setup):
    model, data, names, H, exact = net_setup
    res = C.min_eigen(model, ce, data, k=2, tol=1e-6)
    assert np.allclose(res.eigenvalues, exact[:2].numpy(), rtol=1e-4, atol=1e-8 * float(exact[-1]))
    assert res.eigenvalues[0] <= res.eigenvalues[1]


def test_trace_exact_and_hutchinson(net_setup):
    model, data, _, H, _ = net_setup
    true = float(torch.trace(H))
    est, err = C.trace(model, ce, data, exact=True)
    assert est == pytest.approx(true, rel=1e-10)
    est, err = C.trace(model, ce, data, n_samples=400, seed=0)
    # Rademacher variance is 2 * sum_{i != j} H_ij^2: the reported stderr must match it
    off = H - torch.diag(torch.diag(H))
    sd_true = math.sqrt(2 * float((off**2).sum()) / 400)
    assert err == pytest.approx(sd_true, rel=0.25)
    assert abs(est - true) <= 4 * sd_true


def test_weights_only_is_the_restricted_hessian():
    model, data = tiny_net(), tiny_data()
    wnames = [n for n, p in model.named_parameters() if p.dim() > 1]
    Hw = exact_hessian(model, ce, data, names=wnames)
    res = C.top_eigen(model, ce, data, k=2, tol=1e-6, params="weights")
    assert np.allclose(res.eigenvalues, torch.linalg.eigvalsh(Hw).flip(0)[:2].numpy(), rtol=1e-4)
    vec = res.eigenvectors[0]
    assert set(vec) == {n for n, _ in model.named_parameters()}
    assert all(torch.count_nonzero(vec[n]) == 0 for n in vec if n not in wnames)
    est, _ = C.trace(model, ce, data, exact=True, params="weights")
    assert est == pytest.approx(float(torch.trace(Hw)), rel=1e-10)


def test_batchnorm_uses_running_statistics_and_model_unchanged():
    model, data = tiny_net(bn=True), tiny_data()
    model.train()
    with torch.no_grad():  # give BN non-trivial running statistics
        for _ in range(3):
            model(data[0] * 2 + 1)
    snap = snapshot(model)
    res = C.top_eigen(model, ce, data, k=1, tol=1e-6)
    est, _ = C.trace(model, ce, data, exact=True)
    assert_unchanged(model, snap)
    assert model.training  # left in train mode as the caller had it
    H = exact_hessian(_eval_copy(model), ce, data)
    assert res.eigenvalues[0] == pytest.approx(float(torch.linalg.eigvalsh(H)[-1]), rel=1e-4)
    assert est == pytest.approx(float(torch.trace(H)), rel=1e-10)


def _eval_copy(model):
    import copy

    return copy.deepcopy(model).eval()


def test_same_seed_same_numbers(net_setup):
    model, data, *_ = net_setup
    a = C.top_eigen(model, ce, data, k=2, seed=3, tol=1e-3, max_iter=5)
    b = C.top_eigen(model, ce, data, k=2, seed=3, tol=1e-3, max_iter=5)
    assert np.array_equal(a.eigenvalues, b.eigenvalues)
    assert C.trace(model, ce, data, n_samples=10, seed=4) == C.trace(
        model, ce, data, n_samples=10, seed=4
    )


def test_iteration_cap_reports_unconverged(net_setup):
    model, data, *_ = net_setup
    res = C.top_eigen(model, ce, data, k=3, tol=1e-12, max_iter=4)
    assert not res.converged and res.iterations == 4
    assert np.all(res.residuals > 1e-12)  # what was achieved is reported, not claimed


def test_progress_called(net_setup):
    model, data, *_ = net_setup
    calls = []
    C.trace(model, ce, data, n_samples=6, progress=lambda d, t: calls.append((d, t)))
    assert calls == [(i, 6) for i in range(1, 7)]


# ---------------------------------------------------------------------------------------------
# convexity map


def test_convexity_map_matches_exact_eigen(net_setup):
    model, data, names, _, _ = net_setup
    g = torch.Generator().manual_seed(8)
    d1 = {
        n: torch.randn(p.shape, generator=g, dtype=torch.float64)
        for n, p in model.named_parameters()
    }
    d2 = {
        n: torch.randn(p.shape, generator=g, dtype=torch.float64)
        for n, p in model.named_parameters()
    }
    xs, ys = [-0.5, 0.0, 0.5], [-0.4, 0.4]
    calls = []
    snap = snapshot(model)
    ratio, lmax, lmin = C.convexity_map(
        model,
        ce,
        data,
        d1,
        d2,
        xs,
        ys,
        progress=lambda d, t: calls.append((d, t)),
        tol=1e-8,
        max_iter=200,
    )
    assert_unchanged(model, snap)
    assert ratio.shape == lmax.shape == lmin.shape == (2, 3)
    assert calls[-1] == (6, 6) and len(calls) == 6
    for i, b in enumerate(ys):
        for j, a in enumerate(xs):
            moved = _eval_copy(model)
            with torch.no_grad():
                for n, p in moved.named_parameters():
                    p.add_(a * d1[n] + b * d2[n])
            ev = torch.linalg.eigvalsh(exact_hessian(moved, ce, data))
            assert lmax[i, j] == pytest.approx(float(ev[-1]), rel=1e-4)
            assert lmin[i, j] == pytest.approx(float(ev[0]), rel=1e-4, abs=1e-6 * float(ev[-1]))
            # Li et al.'s meaning: negative curvature relative to positive, 0 when PSD
            expected = max(-float(ev[0]), 0.0) / float(ev[-1])
            assert ratio[i, j] == pytest.approx(expected, rel=1e-3, abs=1e-6)


def test_convexity_map_of_quadratic_is_constant():
    model = Quadratic(known_A(EIGS))
    d = {"w": torch.ones(2, 3, dtype=torch.float64), "b": torch.ones(4, dtype=torch.float64)}
    ratio, lmax, lmin = C.convexity_map(
        model, mean_loss, QDATA, d, d, [-1, 0, 2], [0, 1], tol=1e-10
    )
    assert np.allclose(lmax, 7.0) and np.allclose(lmin, -3.0) and np.allclose(ratio, 3 / 7)


def test_convexity_map_is_zero_on_an_exactly_convex_problem():
    """Least squares on a Linear layer: constant positive-definite Hessian, so the map is 0.

    The old ratio |lambda_min / lambda_max| read one over the condition number here.
    """
    torch.manual_seed(3)
    model = nn.Linear(3, 1).double()
    g = torch.Generator().manual_seed(4)
    X = torch.randn(50, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 0.7, 1.3])
    y = torch.randn(50, 1, generator=g, dtype=torch.float64)
    mse = nn.MSELoss()
    ev = torch.linalg.eigvalsh(exact_hessian(model, mse, (X, y)))
    assert float(ev[0]) > 0.1 * float(ev[-1])  # strictly convex and well away from zero
    d = {
        n: torch.randn(p.shape, generator=g, dtype=torch.float64)
        for n, p in model.named_parameters()
    }
    ratio, lmax, lmin = C.convexity_map(model, mse, (X, y), d, d, [-1, 0, 1], [0, 2], tol=1e-10)
    assert np.all(ratio == 0.0)
    assert np.allclose(lmin, float(ev[0])) and np.allclose(lmax, float(ev[-1]))


def test_convexity_map_of_a_saddle_against_eigendecomposition():
    """A quadratic saddle with a known spectrum (and a PD one, which must read 0)."""
    saddle = Quadratic(known_A([5.0, 2.0, 1.0, 0.7, 0.5, 0.4, 0.3, 0.2, 0.1, -1.5]))
    d = {"w": torch.ones(2, 3, dtype=torch.float64), "b": torch.ones(4, dtype=torch.float64)}
    ev = torch.linalg.eigvalsh(saddle.A)
    ratio, _, _ = C.convexity_map(saddle, mean_loss, QDATA, d, d, [0.0, 1.0], [0.0], tol=1e-10)
    assert np.allclose(ratio, -float(ev[0]) / float(ev[-1]), rtol=1e-8)  # 1.5 / 5
    bowl = Quadratic(known_A([5.0, 2.0, 1.0, 0.7, 0.5, 0.4, 0.3, 0.3, 0.3, 0.25]))
    ratio, _, lmin = C.convexity_map(bowl, mean_loss, QDATA, d, d, [0.0], [0.0], tol=1e-10)
    assert lmin[0, 0] == pytest.approx(0.25) and ratio[0, 0] == 0.0


# ---------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"k": 0}, "k="),
        ({"k": 1000}, "k="),
        ({"tol": 0}, "tol="),
        ({"tol": -1.0}, "tol="),
        ({"max_iter": 0}, "max_iter="),
        ({"params": "biases"}, "params="),
        ({"method": "arnoldi"}, "method="),
        ({"seed": -1}, "seed="),
        ({"batch_size": 0}, "batch_size="),
    ],
)
def test_bad_arguments_raise_valueerror(net_setup, kwargs, field):
    model, data, *_ = net_setup
    with pytest.raises(ValueError, match=field):
        C.top_eigen(model, ce, data, **kwargs)


def test_bad_vectors_and_grids(net_setup):
    model, data, names, _, _ = net_setup
    v = {n: torch.zeros(p.shape, dtype=torch.float64) for n, p in model.named_parameters()}
    with pytest.raises(ValueError, match="missing parameter"):
        C.hvp(model, ce, data, {k: t for k, t in v.items() if k != names[0]})
    with pytest.raises(ValueError, match="shape"):
        C.hvp(model, ce, data, {**v, names[0]: torch.zeros(2)})
    with pytest.raises(ValueError, match="out of range"):
        C.convexity_map(model, ce, data, v, v, np.zeros(30), np.zeros(30))
    with pytest.raises(ValueError, match="xs"):
        C.convexity_map(model, ce, data, v, v, [], [0.0])
    with pytest.raises(ValueError, match="data"):
        C.trace(model, ce, (data[0], data[1][:3]))
    with pytest.raises(ValueError, match="n_samples"):
        C.trace(model, ce, data, n_samples=1)
    big = nn.Linear(100, 50).double()
    with pytest.raises(ValueError, match="exact trace"):
        C.trace(
            big, mean_loss, (torch.zeros(2, 100, dtype=torch.float64), torch.zeros(2)), exact=True
        )


def test_float32_model_works_and_agrees():
    """Models are float32 in the app: the solver must still reach a modest tolerance."""
    model64, data64 = tiny_net(), tiny_data()
    model32 = tiny_net().float()
    data32 = (data64[0].float(), data64[1])
    r64 = C.top_eigen(model64, ce, data64, k=1, tol=1e-6)
    r32 = C.top_eigen(model32, ce, data32, k=1, tol=1e-4)
    assert r32.eigenvalues[0] == pytest.approx(r64.eigenvalues[0], rel=1e-4)
    assert r32.eigenvectors[0][next(iter(r32.eigenvectors[0]))].dtype == torch.float32


def test_low_rank_hessian_null_space():
    """Rank 2 in 10 dimensions: Lanczos breaks down at once and must still finish cleanly."""
    eigs = [6.0, 2.0] + [0.0] * 8
    model = Quadratic(known_A(eigs))
    top = C.top_eigen(model, mean_loss, QDATA, k=3, tol=1e-10)
    assert np.allclose(top.eigenvalues, [6.0, 2.0, 0.0], atol=1e-9) and top.converged
    low = C.min_eigen(model, mean_loss, QDATA, k=1, tol=1e-10)
    assert abs(low.eigenvalues[0]) < 1e-9 and low.converged


@pytest.mark.parametrize("seed", range(5))
def test_double_top_eigenvalue_various_seeds(seed):
    eigs = [3.0, 3.0, 2.0, 1.5, 1.0, 0.7, 0.4, 0.2, -0.1, -0.5]
    model = Quadratic(known_A(eigs))
    top = C.top_eigen(model, mean_loss, QDATA, k=3, tol=1e-10, seed=seed)
    assert np.allclose(top.eigenvalues, [3.0, 3.0, 2.0], atol=1e-8)
