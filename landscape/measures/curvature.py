"""Curvature of the loss around a trained net: Hessian-vector products, extreme eigenpairs,
trace, and the convexity map of Li et al. (NeurIPS 2018, Fig. 7).

Sharp and flat minima are what loss-landscape pictures are used to argue about; this module
makes the argument measurable. Everything is built on one primitive, the exact
Hessian-vector product (HVP) of the mean loss over a data set, so the full Hessian (P x P for
P parameters) is never formed; the operator and the Lanczos solver are the library's one
pair in ``landscape.core.hessian`` (shared with the spectrum and the edge-of-stability
tracker):

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
          exact=False, progress=None, method="hutchinson"|"hutchpp") -> (estimate, stderr)
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

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from landscape.core import checks
from landscape.core.hessian import Data, FlatLoss, LossFn, Progress, extreme_eigenpairs

METHODS = ("lanczos", "power")
TRACE_METHODS = ("hutchinson", "hutchpp")
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
    H = FlatLoss(model, loss_fn, data, "all", batch_size=batch_size)
    return H.to_dict(H.matvec(H.from_dict(vector)))


# ---------------------------------------------------------------------------------------------
# power iteration with deflation (kept as the textbook cross-check)


def _power(H: FlatLoss, k: int, tol: float, max_iter: int, seed: int, progress):
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
    checks.int_in("max_iter", max_iter, 1, 100_000)
    checks.int_in("seed", seed, 0, 2**63 - 1)
    tol = checks.number_in("tol", tol, 0.0, 1.0, open_lo=True)
    H = FlatLoss(model, loss_fn, data, params, batch_size=batch_size)
    k = checks.int_in("k", k, 1, min(H.numel, max_iter))
    if method == "power":
        vals, V, iters, ok = _power(H, k, tol, max_iter, seed, progress)
    else:
        gen = torch.Generator().manual_seed(seed)
        v0 = H.random_unit(gen)
        vals, V, iters, ok = extreme_eigenpairs(
            H.matvec, v0, k, which, tol, max_iter, gen, progress
        )
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


def _residual(H: FlatLoss, lam: float, v: Tensor) -> float:
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
    checks.choice("method", method, METHODS)
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
    method: str = "hutchinson",
) -> tuple[float, float]:
    """Trace of the Hessian: the sum of all curvatures, a whole-spectrum sharpness figure.

    ``method="hutchinson"``: ``tr H = E[v^T H v]`` for Rademacher ``v`` (entries +-1), the
    smallest-variance choice of the usual ones, over ``n_samples`` HVPs; stderr is the standard
    error of the mean of the draws. ``method="hutchpp"`` (Meyer et al. 2021): the same
    ``n_samples`` HVPs split in thirds: a sketch ``Q`` of the range of ``H S`` (S Rademacher),
    the exact trace of ``Q^T H Q`` and Hutchinson on the rest ``(I - QQ^T) H (I - QQ^T)``;
    far lower variance when a few large eigenvalues dominate, as at a trained net's minimum.
    Its stderr is that of the Hutchinson part (the sketched part is exact given Q); it keeps
    ``n_samples / 3`` vectors of P entries. Returns ``(estimate, stderr)``. With
    ``exact=True`` the trace is summed over basis vectors instead (one HVP per parameter;
    only for at most MAX_EXACT_TRACE_PARAMS selected parameters), and stderr is 0.
    """
    checks.choice("method", method, TRACE_METHODS)
    H = FlatLoss(model, loss_fn, data, params, batch_size=batch_size)
    if exact:
        return _exact_trace(H, progress), 0.0
    n_samples = checks.int_in("n_samples", n_samples, 2 if method == "hutchinson" else 4, 100_000)
    checks.int_in("seed", seed, 0, 2**63 - 1)
    gen = torch.Generator().manual_seed(seed)
    done = 0

    def tick():
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, n_samples)

    low, Q = 0.0, None
    n_rest = n_samples
    if method == "hutchpp":
        k = min(n_samples // 3, H.numel)
        HS = []
        for _ in range(k):
            HS.append(H.matvec(H.rademacher(gen)))
            tick()
        Q, _ = torch.linalg.qr(torch.stack(HS, 1))  # (P, k) orthonormal basis of range(H S)
        for i in range(k):
            low += float(Q[:, i] @ H.matvec(Q[:, i]))
            tick()
        n_rest = n_samples - 2 * k
    draws = []
    for _ in range(n_rest):
        v = H.rademacher(gen)
        if Q is not None:
            v = v - Q @ (Q.T @ v)
        draws.append(float(v @ H.matvec(v)))
        tick()
    d = np.asarray(draws)
    return low + float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d)))


def _exact_trace(H: FlatLoss, progress) -> float:
    if H.numel > MAX_EXACT_TRACE_PARAMS:
        raise ValueError(
            f"exact trace needs one HVP per parameter: {H.numel} parameters is out of range "
            f"(at most {MAX_EXACT_TRACE_PARAMS}); use the Hutchinson estimate"
        )
    total, e = 0.0, torch.zeros(H.numel, dtype=H.dtype, device=H.device)
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
    tol = checks.number_in("tol", tol, 0.0, 1.0, open_lo=True)
    max_iter = checks.int_in("max_iter", max_iter, 2, 10_000)
    H = FlatLoss(model, loss_fn, data, params, batch_size=batch_size)
    centre = {n: p.detach().clone() for n, p in H.model.named_parameters()}
    D1, D2 = _as_full(H, d1, "d1"), _as_full(H, d2, "d2")
    lmax = np.full((len(ys), len(xs)), np.nan)
    lmin = np.full((len(ys), len(xs)), np.nan)
    total = len(xs) * len(ys)
    for i, b in enumerate(ys):
        for j, a in enumerate(xs):
            x = H.place({n: centre[n] + a * D1[n] + b * D2[n] for n in centre})
            lmax[i, j], lmin[i, j] = _extremes(H, x, tol, max_iter, seed)
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


def _as_full(H: FlatLoss, d: dict[str, Tensor], name: str) -> dict[str, Tensor]:
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


def _extremes(H: FlatLoss, x: Tensor, tol: float, max_iter: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    try:
        theta, _, _, _ = extreme_eigenpairs(
            lambda v: H.hvp(x, v), H.random_unit(gen), 1, "both", tol, max_iter, gen
        )
    except (RuntimeError, np.linalg.LinAlgError):  # non-finite Hessian far from the minimum
        return math.nan, math.nan
    if not np.all(np.isfinite(theta)):
        return math.nan, math.nan
    return float(theta[0]), float(theta[1])
