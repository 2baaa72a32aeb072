"""The one Hessian operator and the one Lanczos of the library.

Every curvature measure (λmax, λmin, trace, the convexity map, the spectral density, the
edge-of-stability tracker) multiplies by the Hessian through ``FlatLoss.hvp`` and finds
eigenvalues through ``lanczos``; sharpness by gradient ascent and the paths between minima
use the same object for the loss and its gradient at arbitrary points.

``FlatLoss`` is the mean loss of a network as a function of one flat parameter vector, through
``torch.func.functional_call`` on a private eval-mode copy, so the caller's model (weights,
buffers, flags, ``.grad``) is never touched and no weights are copied in and out per point.

Conventions: ``data = (X, y)``, ``loss_fn(model(X), y)`` is the *mean* loss of a batch; with
``batch_size`` the batches are weighted ``n_b / N``, which is exactly the mean over the whole
set. BatchNorm uses its running statistics; ``params="all"`` differentiates with respect to
every parameter, ``"weights"`` only tensors with more than one dimension. Flat vectors follow
``named_parameters()`` order over the selected tensors.

Second derivatives: PyTorch's fused attention kernels (flash, memory-efficient) and cuDNN's
RNNs have no double backward, so every Hessian-vector product runs with the math attention
kernel and cuDNN off (``double_backward_kernels``), as PyTorch documents for both. A model
that still cannot be differentiated twice gets one ValueError naming the module.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel

from landscape.core import checks

Data = tuple[Tensor, Tensor]
LossFn = Callable[[Tensor, Tensor], Tensor]
Progress = Callable[[int, int], None] | None
PARAMS = ("all", "weights")
WHICH = ("top", "bottom", "both")
# messages of autograd errors that mean "no second derivative here"
_NO_DOUBLE_BACKWARD = ("not implemented", "differentiate twice", "double backward")


@contextmanager
def double_backward_kernels() -> Iterator[None]:
    """Kernels that have a second derivative: the math scaled-dot-product attention and no
    cuDNN (its RNNs have no double backward); every other cuDNN flag is left as it is."""
    with (
        sdpa_kernel(SDPBackend.MATH),
        torch.backends.cudnn.flags(
            enabled=False, benchmark=None, benchmark_limit=None, deterministic=None,
            allow_tf32=None, fp32_precision=None, depthwise_kernel=None,
        ),
    ):  # fmt: skip
        yield


class FlatLoss:
    """The mean loss of ``model`` over ``data`` as a function of a flat parameter vector.

    ``x0`` is the model's own point. ``loss(x)``, ``loss_tensor(x)``, ``value_and_grad(x)`` and
    ``hvp(x, v)`` work at any point ``x`` (P,) of the selected parameters; the held-fixed ones
    stay at ``fixed`` (the model's values, or those set by ``place``). ``to_dict``/``from_dict``
    convert to and from the ``named_parameters`` dict format of ``landscape.core.directions``
    (zeros on the tensors ``params`` holds fixed).
    """

    def __init__(
        self, model: nn.Module, loss_fn: LossFn, data, params: str = "all", buffers=None,
        batch_size: int | None = None,
    ):  # fmt: skip
        checks.choice("params", params, PARAMS)
        X, y = checks.data_pair(data)
        n = len(X)
        bs = n if batch_size is None else checks.int_in("batch_size", batch_size, 1, 10**9)
        self.batches = [(X[i : i + bs], y[i : i + bs], min(bs, n - i) / n) for i in range(0, n, bs)]
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.loss_fn = loss_fn
        named = {n: p.detach() for n, p in self.model.named_parameters()}
        keep = (lambda t: True) if params == "all" else (lambda t: t.dim() > 1)
        self.names = [n for n, t in named.items() if keep(t)]
        if not self.names:
            raise ValueError(f"params={params!r} selects no parameters of this model")
        self.params = params
        self.fixed = {n: t for n, t in named.items() if n not in self.names}
        self.shapes = {n: t.shape for n, t in named.items()}
        self.sizes = [named[n].numel() for n in self.names]
        self.all_names = list(named)
        self.buffers = dict(self.model.named_buffers()) if buffers is None else buffers
        self.x0 = torch.cat([named[n].reshape(-1) for n in self.names]).clone()
        self.numel = self.x0.numel()
        self.dtype = self.x0.dtype
        self.device = self.x0.device

    # -- conversions
    def split(self, x: Tensor) -> dict[str, Tensor]:
        parts = torch.split(x, self.sizes)
        return {n: t.view(self.shapes[n]) for n, t in zip(self.names, parts)}

    def to_dict(self, x: Tensor) -> dict[str, Tensor]:
        d = {n: t.detach().clone() for n, t in self.split(x).items()}
        zeros = lambda n: torch.zeros(self.shapes[n], dtype=self.dtype, device=self.device)  # noqa: E731
        return {n: d[n] if n in d else zeros(n) for n in self.all_names}

    def from_dict(self, vector: dict[str, Tensor], name: str = "vector") -> Tensor:
        parts = []
        for n in self.names:
            if n not in vector:
                raise ValueError(f"{name} is missing parameter {n!r}")
            t = torch.as_tensor(vector[n]).detach()
            if t.shape != self.shapes[n]:
                raise ValueError(
                    f"{name}[{n!r}] has shape {tuple(t.shape)}, expected {tuple(self.shapes[n])}"
                )
            parts.append(t.reshape(-1).to(device=self.device, dtype=self.dtype))
        return torch.cat(parts)

    def place(self, weights: dict[str, Tensor]) -> Tensor:
        """Set the held-fixed tensors to ``weights`` and return the flat vector of the
        selected ones: the point ``weights`` (every ``named_parameters`` key) in this space."""
        self.fixed = {n: weights[n].detach().to(self.dtype) for n in self.fixed}
        return self.from_dict(weights, "weights")

    def random_unit(self, gen: torch.Generator) -> Tensor:
        """A seeded random unit vector (drawn in float64 on the CPU: the same on any device)."""
        v = torch.randn(self.numel, generator=gen, dtype=torch.float64)
        return (v / v.norm()).to(self.dtype).to(self.device)

    def rademacher(self, gen: torch.Generator) -> Tensor:
        """A seeded vector of independent +-1 entries."""
        v = torch.randint(0, 2, (self.numel,), generator=gen) * 2 - 1
        return v.to(self.dtype).to(self.device)

    # -- evaluation
    def _batch_loss(self, x: Tensor, X: Tensor, y: Tensor) -> Tensor:
        params = {**self.fixed, **self.split(x), **self.buffers}
        return self.loss_fn(functional_call(self.model, params, (X,)), y)

    def loss_tensor(self, x: Tensor) -> Tensor:
        """The mean loss at ``x`` as a tensor (differentiable in ``x``)."""
        return sum(w * self._batch_loss(x, X, y) for X, y, w in self.batches)

    def loss(self, x: Tensor) -> float:
        with torch.no_grad():
            return float(self.loss_tensor(x))

    def value_and_grad(self, x: Tensor) -> tuple[float, Tensor]:
        value, grad = 0.0, torch.zeros_like(x)
        for X, y, w in self.batches:
            xb = x.detach().requires_grad_(True)
            with torch.enable_grad():
                loss = self._batch_loss(xb, X, y)
                (g,) = torch.autograd.grad(loss, xb)
            value += w * float(loss.detach())
            grad += w * g.detach()
        return value, grad

    def hvp(self, x: Tensor, v: Tensor) -> Tensor:
        """Exact Hessian-vector product at ``x`` (double backward, one per batch)."""
        out = torch.zeros_like(v)
        try:
            with double_backward_kernels():
                for X, y, w in self.batches:
                    out += w * self._batch_hvp(x, v, X, y)
        except RuntimeError as e:
            if not any(s in str(e) for s in _NO_DOUBLE_BACKWARD):
                raise
            raise no_second_derivative(self.model, self.batches[0][0], e) from None
        return out

    def _batch_hvp(self, x: Tensor, v: Tensor, X: Tensor, y: Tensor) -> Tensor:
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(self._batch_loss(x, X, y), x, create_graph=True)
            if not g.requires_grad:  # the loss is linear in the parameters
                return torch.zeros_like(v)
            (hv,) = torch.autograd.grad(g @ v.to(g.dtype), x, allow_unused=True)
        return torch.zeros_like(v) if hv is None else hv.detach()

    def matvec(self, v: Tensor) -> Tensor:
        """H v at the model's own point."""
        return self.hvp(self.x0, v)


# ---------------------------------------------------------------------------------------------
# a model without a second derivative: name the module


def no_second_derivative(model: nn.Module, X: Tensor, error: RuntimeError) -> ValueError:
    """One line naming the innermost module whose output cannot be differentiated twice
    (each module is tried alone on the inputs it saw in one forward pass)."""
    seen: dict[str, tuple] = {}
    hooks = [
        m.register_forward_hook(
            lambda mod, args, kwargs, out, name=name: seen.setdefault(name, (args, kwargs)),
            with_kwargs=True,
        )
        for name, m in model.named_modules()
    ]
    try:
        with torch.no_grad():
            model(X[:2])
    except Exception:  # noqa: BLE001 - only a diagnosis; the original error is reported
        pass
    finally:
        for h in hooks:
            h.remove()
    culprit = None
    # deepest first: a failing leaf is named rather than the container around it
    for name, m in sorted(model.named_modules(), key=lambda nm: -nm[0].count(".") - bool(nm[0])):
        if name in seen and not _twice_differentiable(m, *seen[name]):
            culprit = f"{name or 'the model'} ({type(m).__name__})"
            break
    first = str(error).strip().splitlines()[0]
    where = f"module {culprit}" if culprit else "an operation of this model"
    return ValueError(
        f"the Hessian cannot be computed: {where} has no second derivative in PyTorch ({first})"
    )


def _twice_differentiable(module: nn.Module, args: tuple, kwargs: dict) -> bool:
    def leaf(a):
        return (
            a.detach().requires_grad_(True) if torch.is_tensor(a) and a.is_floating_point() else a
        )

    args = tuple(leaf(a) for a in args)
    kwargs = {k: leaf(a) for k, a in kwargs.items()}
    inputs = [a for a in (*args, *kwargs.values()) if torch.is_tensor(a) and a.requires_grad]
    inputs += [p.requires_grad_(True) for p in module.parameters()]
    try:
        with torch.enable_grad(), double_backward_kernels():
            out = module(*args, **kwargs)
            out = out[0] if isinstance(out, tuple | list) else out
            if not (torch.is_tensor(out) and out.requires_grad):
                return True
            gs = torch.autograd.grad((out**2).sum(), inputs, create_graph=True, allow_unused=True)
            s = sum(g.sum() for g in gs if g is not None and g.requires_grad)
            if torch.is_tensor(s):
                torch.autograd.grad(s, inputs, allow_unused=True)
    except RuntimeError:
        return False
    finally:
        for p in module.parameters():
            p.requires_grad_(False)
    return True


# ---------------------------------------------------------------------------------------------
# Lanczos with full reorthogonalisation


def tridiag_eigh(alphas, betas) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (ascending) and eigenvectors (columns) of tridiag(betas, alphas, betas)."""
    alphas = np.asarray(alphas, dtype=np.float64)
    m = len(alphas)
    T = np.diag(alphas)
    if m > 1:
        off = np.asarray(betas[: m - 1], dtype=np.float64)
        T += np.diag(off, 1) + np.diag(off, -1)
    return np.linalg.eigh(T)


@dataclass
class Krylov:
    """What ``lanczos`` built: ``T = tridiag(betas, alphas, betas) = Q H Q^T`` with Q's rows
    orthonormal (a zero in ``betas`` marks a restart after an invariant subspace)."""

    alphas: np.ndarray  # (m,)
    betas: np.ndarray  # (m-1,)
    Q: Tensor  # (m, n)
    converged: bool  # the stopping test held (or the whole space was spanned)

    def eigh(self) -> tuple[np.ndarray, np.ndarray]:
        return tridiag_eigh(self.alphas, self.betas)

    def quadrature(self) -> tuple[np.ndarray, np.ndarray]:
        """Gauss quadrature of the start vector's spectral measure: nodes (Ritz values) and
        weights (squared first components of T's eigenvectors), summing to 1."""
        theta, S = self.eigh()
        return theta, S[0] ** 2


def pick(theta: np.ndarray, k: int, which: str) -> np.ndarray:
    """Indices of the wanted Ritz values: top k descending, bottom k ascending, or both ends."""
    if which == "top":
        return np.arange(len(theta) - 1, len(theta) - 1 - k, -1)
    if which == "bottom":
        return np.arange(k)
    return np.array([len(theta) - 1, 0])


def _ritz_converged(theta, S, beta, k, which, tol) -> bool:
    """Residual of a Ritz pair: ``beta_m * |s_m|`` (exact under full reorthogonalisation),
    relative to ``|theta|`` for the top pairs and to ``max(|theta|, |theta_max|)`` otherwise
    (an eigenvalue near zero cannot be found to a relative accuracy)."""
    idx = pick(theta, k, which)
    res = beta * np.abs(S[-1, idx])
    top = max(float(np.abs(theta).max()), 1e-30)
    scale = np.abs(theta[idx]) if which == "top" else np.maximum(np.abs(theta[idx]), top)
    return bool(np.all(res <= tol * np.maximum(scale, 1e-30)))


def _orthogonalise(w: Tensor, Q: Tensor) -> Tensor:
    for _ in range(2):  # classical Gram-Schmidt twice is enough (Giraud et al.)
        w = w - Q.T @ (Q @ w)
    return w


def lanczos(
    matvec: Callable[[Tensor], Tensor],
    v0: Tensor,
    steps: int,
    want: tuple[int, str, float] | None = None,
    gen: torch.Generator | None = None,
    progress: Progress = None,
) -> Krylov:
    """Up to ``steps`` Lanczos steps on ``matvec`` from ``v0``, fully reorthogonalised.

    ``want=(k, which, tol)`` stops as soon as the k wanted Ritz pairs (``which`` in WHICH) have
    residual <= tol * scale (see ``_ritz_converged``). Breakdown (an invariant subspace,
    ``beta <= sqrt(eps) * max|theta|``): without ``gen`` Lanczos stops there, the Ritz values
    then being exact eigenvalues (what a quadrature rule needs); with ``gen`` it restarts from
    a fresh random vector orthogonal to everything so far (a zero coupling keeps T
    tridiagonal), which finds further copies of repeated eigenvalues that plain Lanczos
    misses. ``progress(step, steps)`` after each step.
    """
    n = v0.numel()
    m_cap = min(steps, n)
    Q = torch.zeros(m_cap, n, dtype=v0.dtype, device=v0.device)
    Q[0] = v0 / v0.norm()
    alphas: list[float] = []
    betas: list[float] = []
    converged = False
    seg_start = 0  # index of the first vector of the current Krylov segment
    eps = torch.finfo(v0.dtype).eps
    for j in range(m_cap):
        w = matvec(Q[j])
        alphas.append(float(w @ Q[j]))
        w = _orthogonalise(w, Q[: j + 1])
        beta = float(w.norm())
        theta, S = tridiag_eigh(alphas, betas)
        if progress is not None:
            progress(j + 1, m_cap)
        breakdown = beta <= math.sqrt(eps) * max(float(np.abs(theta).max()), 1e-30)
        # at a breakdown every residual is ~0, yet more copies of a repeated eigenvalue may
        # hide in the complement: after a segment longer than one step, explore further
        judge = want is not None and (not breakdown or j == seg_start or gen is None)
        if judge and len(theta) >= want[0] and _ritz_converged(theta, S, beta, *want):
            converged = True
            break
        if j + 1 == m_cap or (breakdown and gen is None):
            converged = converged or (breakdown and gen is None)
            break
        if breakdown:
            r = torch.randn(n, generator=gen, dtype=torch.float64).to(v0.dtype).to(v0.device)
            r = _orthogonalise(r, Q[: j + 1])
            Q[j + 1] = r / r.norm()
        else:
            Q[j + 1] = w / beta
        betas.append(0.0 if breakdown else beta)
        seg_start = j + 1 if breakdown else seg_start
    m = len(alphas)
    converged = converged or m == n  # the full space: Ritz pairs are exact
    return Krylov(np.array(alphas), np.array(betas[: m - 1]), Q[:m], converged)


def extreme_eigenpairs(
    matvec: Callable[[Tensor], Tensor],
    v0: Tensor,
    k: int,
    which: str,
    tol: float,
    max_iter: int,
    gen: torch.Generator,
    progress: Progress = None,
) -> tuple[np.ndarray, Tensor, int, bool]:
    """The ``k`` wanted extreme eigenpairs by ``lanczos`` (with restarts): Ritz values (top:
    descending, bottom: ascending, both: [max, min]), unit Ritz vectors (n, len), the number
    of matrix-vector products, and whether the stopping test held."""
    kr = lanczos(matvec, v0, max_iter, (k, which, tol), gen, progress)
    theta, S = kr.eigh()
    idx = pick(theta, k, which)
    vectors = kr.Q.T @ torch.as_tensor(S[:, idx], dtype=kr.Q.dtype, device=kr.Q.device)
    vectors = vectors / vectors.norm(dim=0, keepdim=True)
    return theta[idx], vectors, len(kr.alphas), kr.converged
