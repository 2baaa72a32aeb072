"""Curvature of the loss around a trained net: Hessian-vector products, extreme eigenpairs,
trace, and the convexity map of Li et al. (NeurIPS 2018, Fig. 7).

Sharp and flat minima are what loss-landscape pictures are used to argue about; this module
makes the argument measurable. Everything is built on one primitive, the exact
Hessian-vector product (HVP) of the mean loss over a data set, so the full Hessian (P x P for
P parameters) is never formed:

    Hv = d/de grad L(theta + e v) |_{e=0}        (double backward, one extra pass per batch)

Conventions shared by every function here:

- ``data = (X, y)`` tensors; ``loss_fn(model(X), y)`` returns the *mean* loss of a batch.
  With ``batch_size`` the data set is split into batches and the per-batch HVPs are averaged
  with weights ``n_b / N``, which is exactly the HVP of the mean loss over the whole set.
- The model is deep-copied and put in eval mode (BatchNorm uses its running statistics, as
  the surfaces do), so the caller's model, its buffers, ``requires_grad`` flags, ``.grad``
  and train/eval mode are left exactly as they were.
- Vectors (``vector``, eigenvectors) are ``dict[str, Tensor]`` keyed like
  ``model.named_parameters()``: the same format as ``landscape.core.directions``, so an
  eigenvector can be used directly as a 1D/2D direction on the Landscape page.
- ``params="all"`` differentiates with respect to every parameter; ``params="weights"`` only
  with respect to tensors with more than one dimension (the ones filter normalisation
  perturbs; biases and BatchNorm scale/shift are held fixed). Eigenvectors always carry
  every parameter key, with zeros on the held-fixed tensors.
- Eigenvalues are ordered algebraically: ``top_eigen`` returns the largest first,
  ``min_eigen`` the smallest first.

Public API::

    hvp(model, loss_fn, data, vector, batch_size=None) -> dict[str, Tensor]
    top_eigen(model, loss_fn, data, k=1, tol=1e-4, max_iter=100, seed=0, params="all",
              batch_size=None, method="lanczos", progress=None) -> EigenResult
    min_eigen(model, loss_fn, data, k=1, tol=1e-4, max_iter=100, seed=0, params="all",
              batch_size=None, progress=None) -> EigenResult
    trace(model, loss_fn, data, n_samples=50, seed=0, params="all", batch_size=None,
          exact=False, progress=None) -> (estimate, stderr)
    convexity_map(model, loss_fn, data, d1, d2, xs, ys, progress=None, tol=1e-3,
                  max_iter=60, seed=0, params="all", batch_size=None)
        -> (ratio, lambda_max, lambda_min)        # each (len(ys), len(xs))
        # ratio = max(-lambda_min, 0) / lambda_max: 0 where the Hessian is PSD

Method (measured in benchmarks/bench_compare.py): Lanczos with full reorthogonalisation
finds the top eigenpairs in far fewer HVPs than power iteration with deflation, and gives the
smallest eigenvalue from the same Krylov space; power iteration is kept as
``method="power"`` because it is the textbook method (PyHessian) and a cross-check.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

Data = tuple[Tensor, Tensor]
LossFn = Callable[[Tensor, Tensor], Tensor]
Progress = Callable[[int, int], None] | None

PARAMS = ("all", "weights")
METHODS = ("lanczos", "power")
MAX_EXACT_TRACE_PARAMS = 4096  # exact trace costs one HVP per parameter
MAX_CONVEXITY_POINTS = 441  # 21 x 21: each point is a full eigen-solve
MAX_CONVEXITY_AXIS = 41  # points along one axis of the convexity map


@dataclass
class EigenResult:
    """Extreme eigenpairs of the Hessian of the mean loss."""

    eigenvalues: np.ndarray  # (k,) float64; top_eigen: descending, min_eigen: ascending
    eigenvectors: list[dict[str, Tensor]]  # k unit vectors keyed like named_parameters
    iterations: int  # Hessian-vector products used by the solver (excluding residual checks)
    residuals: np.ndarray  # (k,) ||Hv - lambda v|| / |lambda|, measured with one extra HVP each
    converged: bool  # the solver's stopping test held for every pair before max_iter
    method: str  # "lanczos" | "power"
    params: str  # "all" | "weights"


# ---------------------------------------------------------------------------------------------
# validation


def _check_int(name: str, value, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise ValueError(f"{name}={value!r} is out of range: must be an integer in [{lo}, {hi}]")
    return int(value)


def _check_pos(name: str, value, hi: float = 1.0) -> float:
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
    if not ok or not (0 < float(value) <= hi):
        raise ValueError(f"{name}={value!r} is out of range: must be in (0, {hi}]")
    return float(value)


def _check_choice(name: str, value, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not valid: must be one of {', '.join(choices)}")
    return value


def _check_data(data) -> Data:
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise ValueError("data must be a pair (X, y) of tensors")
    X, y = data
    if not (isinstance(X, Tensor) and isinstance(y, Tensor)) or len(X) == 0 or len(X) != len(y):
        raise ValueError(
            f"data=(X, y) must be non-empty tensors of equal length, got "
            f"{getattr(X, 'shape', type(X))} and {getattr(y, 'shape', type(y))}"
        )
    return X, y


# ---------------------------------------------------------------------------------------------
# the Hessian as a linear operator on flat vectors


class _Hessian:
    """The Hessian of the mean loss of a private eval-mode copy of ``model``.

    Works on flat vectors over the selected parameters (``params``); ``to_dict`` and
    ``to_flat`` convert to and from the dict format. ``move_to`` sets the copy's weights,
    which is how the convexity map visits grid points without touching the caller's model.
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, data, batch_size=None, params="all"):
        _check_choice("params", params, PARAMS)
        X, y = _check_data(data)
        self.model = copy.deepcopy(model).eval()
        self.loss_fn = loss_fn
        named = dict(self.model.named_parameters())
        self.all_names = list(named)
        keep = (lambda p: True) if params == "all" else (lambda p: p.dim() > 1)
        self.names = [n for n, p in named.items() if keep(p)]
        if not self.names:
            raise ValueError(f"params={params!r} selects no parameters of this model")
        for n, p in named.items():
            p.requires_grad_(n in self.names)
        self.params = [named[n] for n in self.names]
        self.shapes = {n: p.shape for n, p in named.items()}
        self.numel = sum(p.numel() for p in self.params)
        self.dtype = self.params[0].dtype
        self.batches = self._split(X, y, batch_size)

    @staticmethod
    def _split(X: Tensor, y: Tensor, batch_size) -> list[tuple[Tensor, Tensor, float]]:
        n = len(X)
        bs = n if batch_size is None else _check_int("batch_size", batch_size, 1, 10**9)
        return [(X[i : i + bs], y[i : i + bs], min(bs, n - i) / n) for i in range(0, n, bs)]

    def to_flat(self, vector: dict[str, Tensor]) -> Tensor:
        parts = []
        for n in self.names:
            if n not in vector:
                raise ValueError(f"vector is missing parameter {n!r}")
            v = torch.as_tensor(vector[n])
            if v.shape != self.shapes[n]:
                raise ValueError(
                    f"vector[{n!r}] has shape {tuple(v.shape)}, expected {tuple(self.shapes[n])}"
                )
            parts.append(v.detach().reshape(-1).to(self.dtype))
        return torch.cat(parts)

    def to_dict(self, flat: Tensor) -> dict[str, Tensor]:
        out, i = {}, 0
        for n in self.all_names:
            shape = self.shapes[n]
            if n in self.names:
                size = math.prod(shape)
                out[n] = flat[i : i + size].reshape(shape).clone()
                i += size
            else:
                out[n] = torch.zeros(shape, dtype=self.dtype)
        return out

    @torch.no_grad()
    def move_to(self, weights: dict[str, Tensor]) -> None:
        for n, p in self.model.named_parameters():
            p.copy_(weights[n])

    def matvec(self, v: Tensor) -> Tensor:
        """H v for a flat v: per-batch double backward, averaged with weights n_b / N."""
        vs = torch.split(v, [p.numel() for p in self.params])
        vs = [vi.view_as(p) for vi, p in zip(vs, self.params)]
        out = torch.zeros_like(v)
        for Xb, yb, w in self.batches:
            out += w * self._batch_hvp(Xb, yb, vs)
        return out

    def _batch_hvp(self, X: Tensor, y: Tensor, vs: list[Tensor]) -> Tensor:
        with torch.enable_grad():
            loss = self.loss_fn(self.model(X), y)
            grads = torch.autograd.grad(loss, self.params, create_graph=True, allow_unused=True)
            gv = sum((g * vi).sum() for g, vi in zip(grads, vs) if g is not None)
            if not (isinstance(gv, Tensor) and gv.requires_grad):  # loss linear in params
                return torch.zeros(self.numel, dtype=self.dtype)
            hv = torch.autograd.grad(gv, self.params, allow_unused=True)
        return torch.cat(
            [
                (h if h is not None else torch.zeros_like(p)).reshape(-1)
                for h, p in zip(hv, self.params)
            ]
        ).detach()

    def random_unit(self, gen: torch.Generator) -> Tensor:
        v = torch.randn(self.numel, generator=gen, dtype=torch.float64).to(self.dtype)
        return v / v.norm()


# ---------------------------------------------------------------------------------------------
# public: Hessian-vector product


def hvp(
    model: nn.Module,
    loss_fn: LossFn,
    data: Data,
    vector: dict[str, Tensor],
    batch_size: int | None = None,
) -> dict[str, Tensor]:
    """Exact Hessian-vector product of the mean loss over ``data``, over every parameter.

    ``vector`` must hold a tensor for every ``named_parameters()`` key, shaped like it.
    Batches (``batch_size``) are averaged with weights ``n_b / N``, so the result does not
    depend on the batch size (up to rounding). BatchNorm is in eval mode; the model is
    left unchanged.
    """
    H = _Hessian(model, loss_fn, data, batch_size, "all")
    return H.to_dict(H.matvec(H.to_flat(vector)))


# ---------------------------------------------------------------------------------------------
# Lanczos with full reorthogonalisation


def _tridiag_eigh(alphas: list[float], betas: list[float]) -> tuple[np.ndarray, np.ndarray]:
    m = len(alphas)
    T = np.diag(np.asarray(alphas, dtype=np.float64))
    if m > 1:
        off = np.asarray(betas[: m - 1], dtype=np.float64)
        T += np.diag(off, 1) + np.diag(off, -1)
    return np.linalg.eigh(T)  # ascending Ritz values, columns are eigenvectors of T


def _pick(theta: np.ndarray, k: int, which: str) -> np.ndarray:
    """Indices of the wanted Ritz values: top k descending, bottom k ascending, or both ends."""
    if which == "top":
        return np.arange(len(theta) - 1, len(theta) - 1 - k, -1)
    if which == "bottom":
        return np.arange(k)
    return np.array([len(theta) - 1, 0])


def _lanczos(H: _Hessian, k: int, which: str, tol: float, max_iter: int, seed: int, progress):
    """Run Lanczos until the wanted Ritz pairs have residual <= tol * scale.

    The residual of a Ritz pair is ``beta_m * |s_m|`` (the last entry of its eigenvector of T),
    exact under full reorthogonalisation. ``scale`` is ``|theta|`` for the top pairs; for the
    bottom pairs it is ``max(|theta|, |theta_max|)``, since an eigenvalue near zero cannot be
    found to a relative accuracy. On breakdown (an invariant subspace, e.g. degenerate
    eigenvalues or a tiny model) Lanczos restarts with a fresh random vector orthogonal to
    everything so far, which keeps T tridiagonal (with a zero coupling); the next segment
    finds further copies of repeated eigenvalues, which plain Lanczos would miss.

    Returns (Ritz values, Ritz vectors (n, len(idx)), iterations, converged).
    """
    n = H.numel
    m_cap = min(max_iter, n)
    gen = torch.Generator().manual_seed(seed)
    Q = torch.zeros(m_cap + 1, n, dtype=H.dtype)  # (m+1, n) orthonormal Krylov basis
    Q[0] = H.random_unit(gen)
    alphas: list[float] = []
    betas: list[float] = []
    converged = False
    seg_start = 0  # index of the first vector of the current Krylov segment
    for j in range(m_cap):
        w = H.matvec(Q[j])
        alphas.append(float(w @ Q[j]))
        w = _orthogonalise(w, Q[: j + 1])
        beta = float(w.norm())
        theta, S = _tridiag_eigh(alphas, betas)
        if progress is not None:
            progress(j + 1, m_cap)
        scale = max(float(np.abs(theta).max()), 1e-30)
        breakdown = beta <= math.sqrt(torch.finfo(H.dtype).eps) * scale
        # at a breakdown every residual is ~0, yet more copies of a repeated eigenvalue may
        # hide in the complement: after a segment longer than one step, explore further
        judge = not breakdown or j == seg_start
        if judge and len(theta) >= k and _ritz_converged(theta, S, beta, k, which, tol):
            converged = True
            break
        if j + 1 == m_cap:
            break
        Q[j + 1] = _restart(H, gen, Q[: j + 1]) if breakdown else w / beta
        betas.append(0.0 if breakdown else beta)
        seg_start = j + 1 if breakdown else seg_start
    converged = converged or len(alphas) == n  # the full space: Ritz pairs are exact
    theta, S = _tridiag_eigh(alphas, betas)
    idx = _pick(theta, k, which)
    vectors = Q[: len(alphas)].T @ torch.as_tensor(S[:, idx], dtype=H.dtype)  # (n, len(idx))
    return theta[idx], vectors, len(alphas), converged


def _orthogonalise(w: Tensor, Q: Tensor) -> Tensor:
    for _ in range(2):  # classical Gram-Schmidt twice is enough (Giraud et al.)
        w = w - Q.T @ (Q @ w)
    return w


def _restart(H: _Hessian, gen: torch.Generator, Q: Tensor) -> Tensor:
    w = _orthogonalise(H.random_unit(gen), Q)
    return w / w.norm()


def _ritz_converged(theta, S, beta, k, which, tol) -> bool:
    idx = _pick(theta, k, which)
    res = beta * np.abs(S[-1, idx])
    top = np.abs(theta).max()
    scale = np.abs(theta[idx]) if which == "top" else np.maximum(np.abs(theta[idx]), top)
    return bool(np.all(res <= tol * scale))


# ---------------------------------------------------------------------------------------------
# power iteration with deflation (kept as the textbook cross-check)


def _power(H: _Hessian, k: int, tol: float, max_iter: int, seed: int, progress):
    """Top-k eigenpairs (algebraic) by power iteration with projection deflation.

    Each pair is found on ``P (H - s I) P`` where ``P`` projects out the pairs found so far.
    Power iteration finds the eigenvalue of largest *magnitude*; if that is negative, the
    search is repeated with the shift ``s`` equal to it, which makes every remaining
    eigenvalue non-negative so that the top (algebraic) one dominates. ``max_iter`` caps the
    iterations of each run.
    """
    gen = torch.Generator().manual_seed(seed)
    vals: list[float] = []
    vecs: list[Tensor] = []
    total, ok = 0, True
    for i in range(k):

        def op(v, shift=0.0):
            v = _deflate(v, vecs)
            return _deflate(H.matvec(v) - shift * v, vecs)

        lam, v, it, conv = _power_one(op, _deflate(H.random_unit(gen), vecs), tol, max_iter)
        total += it
        if lam < 0:  # dominant by magnitude is negative: shift it away to get the top one
            start = _deflate(H.random_unit(gen), vecs)
            lam_s, v, it, conv = _power_one(lambda x, s=lam: op(x, s), start, tol, max_iter)
            lam, total = lam_s + lam, total + it
        ok = ok and conv
        vals.append(lam)
        vecs.append(v / v.norm())
        if progress is not None:
            progress(i + 1, k)
    order = np.argsort(vals)[::-1]
    return np.array(vals)[order], torch.stack([vecs[i] for i in order], 1), total, ok


def _deflate(v: Tensor, vecs: list[Tensor]) -> Tensor:
    for u in vecs:
        v = v - (u @ v) * u
    return v


def _power_one(op, v: Tensor, tol: float, max_iter: int):
    v = v / v.norm()
    lam = 0.0
    for it in range(1, max_iter + 1):
        w = op(v)
        lam = float(w @ v)
        res = float((w - lam * v).norm())
        if res <= tol * abs(lam) or float(w.norm()) == 0.0:
            return lam, v, it, True
        v = w / w.norm()
    return lam, v, max_iter, False


# ---------------------------------------------------------------------------------------------
# public: eigenpairs


def _eigen(
    model, loss_fn, data, k, tol, max_iter, seed, params, batch_size, method, which, progress
):
    _check_int("max_iter", max_iter, 1, 100_000)
    _check_int("seed", seed, 0, 2**63 - 1)
    tol = _check_pos("tol", tol)
    H = _Hessian(model, loss_fn, data, batch_size, params)
    k = _check_int("k", k, 1, min(H.numel, max_iter))
    if method == "power":
        vals, V, iters, ok = _power(H, k, tol, max_iter, seed, progress)
    else:
        vals, V, iters, ok = _lanczos(H, k, which, tol, max_iter, seed, progress)
    V = V / V.norm(dim=0, keepdim=True)
    vectors = [_fix_sign(V[:, i]) for i in range(V.shape[1])]
    residuals = np.array([_residual(H, lam, v) for lam, v in zip(vals, vectors)])
    return EigenResult(
        eigenvalues=np.asarray(vals, dtype=np.float64),
        eigenvectors=[H.to_dict(v) for v in vectors],
        iterations=int(iters),
        residuals=residuals,
        converged=bool(ok),
        method=method,
        params=params,
    )


def _fix_sign(v: Tensor) -> Tensor:
    """Eigenvectors are defined up to sign; make the largest-magnitude entry positive."""
    return v if v[v.abs().argmax()] >= 0 else -v


def _residual(H: _Hessian, lam: float, v: Tensor) -> float:
    r = float((H.matvec(v) - lam * v).norm())
    return r / abs(lam) if lam != 0 else math.inf


def top_eigen(
    model: nn.Module,
    loss_fn: LossFn,
    data: Data,
    k: int = 1,
    tol: float = 1e-4,
    max_iter: int = 100,
    seed: int = 0,
    params: str = "all",
    batch_size: int | None = None,
    method: str = "lanczos",
    progress: Progress = None,
) -> EigenResult:
    """The k largest Hessian eigenvalues (descending) and their unit eigenvectors.

    The top eigenvalue is the sharpness of a minimum: the curvature along the steepest
    direction of the bowl. Lanczos stops when every wanted Ritz pair has
    ``||Hv - lambda v|| <= tol * |lambda|`` (or after ``max_iter`` HVPs, then
    ``converged=False``); the residual actually achieved is measured and reported. With
    ``method="power"``, ``max_iter`` caps the iterations of each pair. The eigenvectors can
    be passed as directions to ``landscape.engine.surface.line``/``plane`` (they are unit vectors in
    parameter space, not filter-normalised).
    """
    _check_choice("method", method, METHODS)
    return _eigen(
        model, loss_fn, data, k, tol, max_iter, seed, params, batch_size, method, "top", progress
    )


def min_eigen(
    model: nn.Module,
    loss_fn: LossFn,
    data: Data,
    k: int = 1,
    tol: float = 1e-4,
    max_iter: int = 100,
    seed: int = 0,
    params: str = "all",
    batch_size: int | None = None,
    progress: Progress = None,
) -> EigenResult:
    """The k smallest Hessian eigenvalues (ascending) and their unit eigenvectors.

    A clearly negative smallest eigenvalue means the point is not a minimum of the loss
    but a saddle: some direction curves down. Found by Lanczos from the bottom of the
    spectrum, with the tolerance relative to ``max(|lambda|, |lambda_max|)`` because the
    smallest eigenvalue of a network's Hessian is usually close to zero, where a relative
    accuracy is meaningless. ``residuals`` still report ``||Hv - lambda v|| / |lambda|``.
    """
    return _eigen(
        model,
        loss_fn,
        data,
        k,
        tol,
        max_iter,
        seed,
        params,
        batch_size,
        "lanczos",
        "bottom",
        progress,
    )


# ---------------------------------------------------------------------------------------------
# public: trace


def trace(
    model: nn.Module,
    loss_fn: LossFn,
    data: Data,
    n_samples: int = 50,
    seed: int = 0,
    params: str = "all",
    batch_size: int | None = None,
    exact: bool = False,
    progress: Progress = None,
) -> tuple[float, float]:
    """Trace of the Hessian: the sum of all curvatures, a whole-spectrum sharpness figure.

    Hutchinson's estimator: ``tr H = E[v^T H v]`` for Rademacher ``v`` (entries +-1), which
    has the smallest variance of the usual choices. Returns ``(estimate, stderr)`` with
    stderr the standard error of the mean over ``n_samples`` draws. With ``exact=True`` the
    trace is summed over basis vectors instead (one HVP per parameter; only for models with
    at most MAX_EXACT_TRACE_PARAMS selected parameters), and stderr is 0.
    """
    H = _Hessian(model, loss_fn, data, batch_size, params)
    if exact:
        return _exact_trace(H, progress), 0.0
    n_samples = _check_int("n_samples", n_samples, 2, 100_000)
    _check_int("seed", seed, 0, 2**63 - 1)
    gen = torch.Generator().manual_seed(seed)
    draws = []
    for i in range(n_samples):
        v = (torch.randint(0, 2, (H.numel,), generator=gen) * 2 - 1).to(H.dtype)
        draws.append(float(v @ H.matvec(v)))
        if progress is not None:
            progress(i + 1, n_samples)
    d = np.asarray(draws)
    return float(d.mean()), float(d.std(ddof=1) / math.sqrt(n_samples))


def _exact_trace(H: _Hessian, progress) -> float:
    if H.numel > MAX_EXACT_TRACE_PARAMS:
        raise ValueError(
            f"exact trace needs one HVP per parameter: {H.numel} parameters is out of range "
            f"(at most {MAX_EXACT_TRACE_PARAMS}); use the Hutchinson estimate"
        )
    total, e = 0.0, torch.zeros(H.numel, dtype=H.dtype)
    for i in range(H.numel):
        e.zero_()
        e[i] = 1.0
        total += float(H.matvec(e)[i])
        if progress is not None:
            progress(i + 1, H.numel)
    return total


# ---------------------------------------------------------------------------------------------
# public: convexity map (Li et al. Fig. 7)


def convexity_map(
    model: nn.Module,
    loss_fn: LossFn,
    data: Data,
    d1: dict[str, Tensor],
    d2: dict[str, Tensor],
    xs,
    ys,
    progress: Progress = None,
    tol: float = 1e-3,
    max_iter: int = 60,
    seed: int = 0,
    params: str = "all",
    batch_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``max(-lambda_min, 0) / lambda_max`` of the Hessian at each point theta* + x d1 + y d2.

    Li et al. (Fig. 7) map the size of the negative curvature relative to the positive one
    over the same plane as the loss contours: 0 where the Hessian is positive semi-definite
    (locally convex in every direction), large where strong negative curvature shows the
    chaotic, non-convex regions. A positive lambda_min counts as no negative curvature, not
    as ``lambda_min / lambda_max`` (that would be one over the condition number, which is
    not about convexity). The 2D contour plot can only suggest convexity; this checks it in
    every direction of the full parameter space.

    Each point is one Lanczos run that converges both ends of the spectrum (tolerance
    relative to the largest |Ritz value|), so the grid must stay coarse: at most
    MAX_CONVEXITY_AXIS points per axis and MAX_CONVEXITY_POINTS in all, else ValueError.
    Returns three arrays of shape (len(ys), len(xs)) (row = y, as ``Surface.loss``): the
    ratio in [0, inf) (NaN where lambda_max <= 0, where it is undefined, or where the
    Hessian is not finite), lambda_max and lambda_min. ``progress(done, total)`` is called
    after each point. The caller's model is left unchanged.
    """
    xs, ys = _grid_axis("xs", xs), _grid_axis("ys", ys)
    if len(xs) * len(ys) > MAX_CONVEXITY_POINTS:
        raise ValueError(
            f"grid={len(ys)}x{len(xs)} ({len(xs) * len(ys)} points) is out of range: the "
            f"convexity map allows at most {MAX_CONVEXITY_POINTS} points"
        )
    tol = _check_pos("tol", tol)
    max_iter = _check_int("max_iter", max_iter, 2, 10_000)
    H = _Hessian(model, loss_fn, data, batch_size, params)
    centre = {n: p.detach().clone() for n, p in H.model.named_parameters()}
    D1, D2 = _as_full(H, d1, "d1"), _as_full(H, d2, "d2")
    lmax = np.full((len(ys), len(xs)), np.nan)
    lmin = np.full((len(ys), len(xs)), np.nan)
    total = len(xs) * len(ys)
    for i, b in enumerate(ys):
        for j, a in enumerate(xs):
            H.move_to({n: centre[n] + a * D1[n] + b * D2[n] for n in centre})
            lmax[i, j], lmin[i, j] = _extremes(H, tol, max_iter, seed)
            if progress is not None:
                progress(i * len(xs) + j + 1, total)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(lmax > 0, np.maximum(-lmin, 0.0) / lmax, np.nan)
    return ratio, lmax, lmin


def _grid_axis(name: str, values) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if not 1 <= len(arr) <= MAX_CONVEXITY_AXIS or not np.all(np.isfinite(arr)):
        raise ValueError(
            f"{name} has {len(arr)} points: must be 1 to {MAX_CONVEXITY_AXIS} finite coordinates"
        )
    return arr


def _as_full(H: _Hessian, d: dict[str, Tensor], name: str) -> dict[str, Tensor]:
    out = {}
    for n in H.all_names:
        if n not in d:
            raise ValueError(f"{name} is missing parameter {n!r}")
        t = torch.as_tensor(d[n]).detach().to(H.dtype)
        if t.shape != H.shapes[n]:
            raise ValueError(
                f"{name}[{n!r}] has shape {tuple(t.shape)}, expected {tuple(H.shapes[n])}"
            )
        out[n] = t
    return out


def _extremes(H: _Hessian, tol: float, max_iter: int, seed: int) -> tuple[float, float]:
    try:
        theta, _, _, _ = _lanczos(H, 1, "both", tol, max_iter, seed, None)
    except (RuntimeError, np.linalg.LinAlgError):  # non-finite Hessian far from the minimum
        return math.nan, math.nan
    if not np.all(np.isfinite(theta)):
        return math.nan, math.nan
    return float(theta[0]), float(theta[1])
