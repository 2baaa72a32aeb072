"""The Hessian's eigenvalue density by stochastic Lanczos quadrature (SLQ), as PyHessian
draws it (Yao et al. 2020; Ghorbani et al. 2019), beside the top-k eigenvalues.

The top eigenvalue says how sharp the steepest direction is; the density says how the
curvature is spread over all P directions: typically a bulk near zero and a few outliers
(Sagun et al. 2017), and negative eigenvalues where the point is not a minimum.

Method. For a random unit vector v, m steps of Lanczos on H from v give a tridiagonal T_m
whose eigenvalues θ_k (nodes) and squared first components τ_k of its eigenvectors (weights,
summing to 1) form the Gauss quadrature rule of the measure μ_v = Σ_i (v·q_i)^2 δ(λ_i):
``v^T f(H) v ≈ Σ_k τ_k f(θ_k)``, exact for polynomials of degree < 2m. With v Rademacher
(entries ±1/√P), ``E[v^T f(H) v] = tr f(H) / P``, so averaging the rules of ``n_vectors``
vectors estimates the spectral density; each node is drawn as a Gaussian of variance
``sigma^2 * (λ_max - λ_min)`` on a grid (PyHessian's ``density_generate``).

``density(model, loss_fn, data)`` takes any model, loss and data (a built-in run or a
user's own model); ``for_run(run)`` does it for a Run. ``lanczos`` is shared with the
edge-of-stability tracker (warm starts from a previous eigenvector).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from landscape.core.hessian import FlatLoss, LossFn, check_int, check_number
from landscape.measures import curvature

MAX_LANCZOS_STEPS = 500
MAX_VECTORS = 100
MAX_GRID = 10_000


def lanczos(
    matvec: Callable[[Tensor], Tensor], v0: Tensor, steps: int
) -> tuple[np.ndarray, np.ndarray, Tensor]:
    """``steps`` Lanczos iterations from ``v0`` with full reorthogonalisation.

    Returns (alphas (m,), betas (m-1,), Q (m, P)) with Q orthonormal rows and
    ``T = tridiag(betas, alphas, betas) = Q H Q^T``; stops early (m < steps) when the Krylov
    space is invariant (beta ~ 0), where T's eigenvalues are exact eigenvalues of H.
    """
    n = v0.numel()
    steps = min(steps, n)
    Q = torch.zeros(steps, n, dtype=v0.dtype)
    Q[0] = v0 / v0.norm()
    alphas, betas = [], []
    for j in range(steps):
        w = matvec(Q[j])
        alphas.append(float(w @ Q[j]))
        for _ in range(2):  # classical Gram-Schmidt twice: orthogonal to working precision
            w = w - Q[: j + 1].T @ (Q[: j + 1] @ w)
        beta = float(w.norm())
        scale = max(abs(a) for a in alphas) + (max(betas) if betas else 0.0)
        if j + 1 == steps or beta <= 1e-10 * max(scale, 1e-30):
            break
        betas.append(beta)
        Q[j + 1] = w / beta
    m = len(alphas)
    return np.array(alphas), np.array(betas[: m - 1]), Q[:m]


def tridiagonal(alphas: np.ndarray, betas: np.ndarray) -> np.ndarray:
    return np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)


def quadrature(alphas: np.ndarray, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gauss quadrature nodes (eigenvalues of T) and weights (squared first components)."""
    theta, S = np.linalg.eigh(tridiagonal(alphas, betas))
    return theta, S[0] ** 2


@dataclass
class SpectrumResult:
    nodes: np.ndarray  # (n_vectors, m) quadrature nodes (NaN-padded when Lanczos stopped early)
    weights: np.ndarray  # (n_vectors, m) their weights, each row sums to 1
    grid: np.ndarray  # (n_grid,) eigenvalue axis
    density: np.ndarray  # (n_grid,) smoothed density, integrates to 1 over the grid
    top: np.ndarray  # top-k eigenvalues by Lanczos (curvature.top_eigen), descending
    n_params: int
    seconds: float
    seconds_top: float

    def moment(self, j: int) -> float:
        """Estimated tr(H^j) / P from the quadrature rules."""
        ok = np.isfinite(self.nodes)
        return float(np.mean(np.sum(np.where(ok, self.weights * self.nodes**j, 0.0), axis=1)))

    def mass_below(self, x: float) -> float:
        """Estimated share of eigenvalues below x (from the rules, no smoothing)."""
        ok = np.isfinite(self.nodes) & (self.nodes < x)
        return float(np.mean(np.sum(np.where(ok, self.weights, 0.0), axis=1)))


def smooth(nodes, weights, n_grid=1000, sigma=1e-3, margin=0.01) -> tuple[np.ndarray, np.ndarray]:
    """PyHessian's density: each node a Gaussian of variance sigma^2 * spread on a grid from
    min(node) - margin to max(node) + margin, averaged over vectors, normalised to 1."""
    ok = np.isfinite(nodes)
    lo, hi = float(nodes[ok].min()) - margin, float(nodes[ok].max()) + margin
    grid = np.linspace(lo, hi, n_grid)
    var = sigma**2 * max(1.0, hi - lo)
    dens = np.zeros(n_grid)
    for th, w in zip(nodes[ok], weights[ok]):
        dens += w * np.exp(-((grid - th) ** 2) / (2 * var)) / math.sqrt(2 * math.pi * var)
    dens /= nodes.shape[0]
    total = float(np.sum(dens) * (grid[1] - grid[0]))
    return grid, dens / total if total > 0 else dens


def density(
    model: nn.Module,
    loss_fn: LossFn,
    data,
    n_vectors: int = 5,
    steps: int = 60,
    seed: int = 0,
    top_k: int = 3,
    sigma: float = 1e-3,
    n_grid: int = 1000,
    params: str = "all",
    progress=None,
) -> SpectrumResult:
    """SLQ density of the Hessian of the mean loss at the model's weights, plus the top-k.

    ``steps`` Lanczos steps per vector (PyHessian's default is 100), ``n_vectors`` Rademacher
    vectors (seeded). ``progress(done, total)`` after every vector and the top-k.
    """
    check_int("n_vectors", n_vectors, 1, MAX_VECTORS)
    check_int("steps", steps, 2, MAX_LANCZOS_STEPS)
    check_int("seed", seed, 0, 2**63 - 1)
    check_int("top_k", top_k, 0, 20)
    check_number("sigma", sigma, 0.0, 1.0)
    check_int("n_grid", n_grid, 10, MAX_GRID)
    t0 = time.perf_counter()
    F = FlatLoss(model, loss_fn, data, params)
    gen = torch.Generator().manual_seed(seed)
    m = min(steps, F.numel)
    nodes = np.full((n_vectors, m), np.nan)
    weights = np.zeros((n_vectors, m))
    total = n_vectors + (1 if top_k else 0)
    for i in range(n_vectors):
        v = (torch.randint(0, 2, (F.numel,), generator=gen) * 2 - 1).to(F.dtype)
        a, b, _ = lanczos(lambda u: F.hvp(F.x0, u), v, m)
        th, w = quadrature(a, b)
        nodes[i, : len(th)], weights[i, : len(th)] = th, w
        if progress is not None:
            progress(i + 1, total)
    grid, dens = smooth(nodes, weights, n_grid, sigma)
    seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    top = np.array([])
    if top_k:
        k = min(top_k, F.numel)
        top = curvature.top_eigen(model, loss_fn, data, k=k, tol=1e-3, seed=seed, params=params)
        top = top.eigenvalues
        if progress is not None:
            progress(total, total)
    return SpectrumResult(
        nodes, weights, grid, dens, top, F.numel, seconds, time.perf_counter() - t1
    )


def for_run(run, split: str = "train", **kw) -> SpectrumResult:
    """``density`` for a trained Run on its train or test split."""
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r} is not valid: must be train or test")
    ds = run.dataset()
    data = (ds.X_train, ds.y_train) if split == "train" else (ds.X_test, ds.y_test)
    return density(run.model(), run.loss_fn(), data, **kw)
