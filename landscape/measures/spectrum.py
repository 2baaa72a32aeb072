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
user's own model); ``for_run(run)`` does it for a Run. The Hessian-vector products and the
Lanczos runs are the library's one operator and one Lanczos (``landscape.core.hessian``).

What is printed is what was computed: the extreme Ritz values of the rules (``ritz_min``,
``ritz_max``: every one lies inside the true spectrum) and the share of eigenvalues below 0 from
the quadrature weights (``mass_below``), each probe's rule an unbiased estimate of it, with
the standard error over probes (``mass_below_stderr``) and the bounds the quadrature itself
guarantees (``mass_below_bounds``: few Lanczos steps cannot resolve a bulk of eigenvalues near
0, and the bounds show it); the plotted density is widened by a margin and smoothed, and is
only a picture.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from landscape.core import checks
from landscape.core.hessian import FlatLoss, LossFn, lanczos
from landscape.measures import curvature

MAX_LANCZOS_STEPS = 500
MAX_VECTORS = 100
MAX_GRID = 10_000


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

    def _below(self, x: float) -> np.ndarray:
        ok = np.isfinite(self.nodes) & (self.nodes < x)
        return np.sum(np.where(ok, self.weights, 0.0), axis=1)  # one estimate per probe

    def mass_below(self, x: float) -> float:
        """Estimated share of eigenvalues below x (from the rules' weights, no smoothing)."""
        return float(np.mean(self._below(x)))

    def mass_below_stderr(self, x: float) -> float:
        """Standard error of ``mass_below`` over the probes (NaN with one probe)."""
        b = self._below(x)
        return float(np.std(b, ddof=1) / math.sqrt(len(b))) if len(b) > 1 else math.nan

    def mass_below_bounds(self, x: float) -> tuple[float, float]:
        """Bounds on the probes' mean share below x that hold whatever the number of Lanczos
        steps (Chebyshev-Markov-Stieltjes: with ``a`` nodes of a rule below x, the measure
        below x lies between the weights of its first a-1 and its first a+1 nodes). Wide when
        many eigenvalues sit near x, as the bulk near 0 does: the point estimate can then be
        biased far beyond its standard error, and these bounds say by how much at most."""
        lo, hi = [], []
        for th, w in zip(self.nodes, self.weights):
            ok = np.isfinite(th)
            th, w = th[ok], w[ok]
            a = int(np.sum(th < x))
            lo.append(float(w[: max(a - 1, 0)].sum()))
            hi.append(float(w[: a + 1].sum()))
        return float(np.mean(lo)), float(min(np.mean(hi), 1.0))

    @property
    def ritz_min(self) -> float:
        """The smallest Ritz value of any rule (>= the true smallest eigenvalue)."""
        return float(np.nanmin(self.nodes))

    @property
    def ritz_max(self) -> float:
        """The largest Ritz value of any rule (<= the true largest eigenvalue)."""
        return float(np.nanmax(self.nodes))


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
    batch_size: int | None = None,
) -> SpectrumResult:
    """SLQ density of the Hessian of the mean loss at the model's weights, plus the top-k.

    ``steps`` Lanczos steps per vector (PyHessian's default is 100), ``n_vectors`` Rademacher
    vectors (seeded). ``progress(done, total)`` after every vector and the top-k.
    ``batch_size``: data per forward pass, batches weighted ``n_b / N`` (the exact mean).
    """
    checks.int_in("n_vectors", n_vectors, 1, MAX_VECTORS)
    checks.int_in("steps", steps, 2, MAX_LANCZOS_STEPS)
    checks.int_in("seed", seed, 0, 2**63 - 1)
    checks.int_in("top_k", top_k, 0, 20)
    checks.number_in("sigma", sigma, 0.0, 1.0, open_lo=True)
    checks.int_in("n_grid", n_grid, 10, MAX_GRID)
    t0 = time.perf_counter()
    F = FlatLoss(model, loss_fn, data, params, batch_size=batch_size)
    gen = torch.Generator().manual_seed(seed)
    m = min(steps, F.numel)
    nodes = np.full((n_vectors, m), np.nan)
    weights = np.zeros((n_vectors, m))
    total = n_vectors + (1 if top_k else 0)
    for i in range(n_vectors):
        th, w = lanczos(F.matvec, F.rademacher(gen), m).quadrature()
        nodes[i, : len(th)], weights[i, : len(th)] = th, w
        if progress is not None:
            progress(i + 1, total)
    grid, dens = smooth(nodes, weights, n_grid, sigma)
    seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    top = np.array([])
    if top_k:
        k = min(top_k, F.numel)
        top = curvature.top_eigen(
            model, loss_fn, data, k=k, tol=1e-3, seed=seed, params=params, batch_size=batch_size
        )
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
