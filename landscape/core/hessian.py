"""A network's loss as a function of one flat parameter vector: value, gradient, HVP.

Sharpness by gradient ascent, paths between minima, edge-of-stability tracking and the
spectral density all move a net's weights many times and need the loss, its gradient and
Hessian-vector products at arbitrary points. ``FlatLoss`` gives them through
``torch.func.functional_call`` on a private eval-mode copy, so the caller's model (weights,
buffers, flags, ``.grad``) is never touched and no weights are copied in and out per point.

Conventions (shared with ``landscape.measures.curvature``): ``data = (X, y)``, ``loss_fn(model(X), y)``
is the *mean* loss; BatchNorm uses its running statistics; ``params="all"`` differentiates
with respect to every parameter, ``"weights"`` only tensors with more than one dimension.
Flat vectors follow ``named_parameters()`` order over the selected tensors.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call

from landscape.core import checks

Data = tuple[Tensor, Tensor]
LossFn = Callable[[Tensor, Tensor], Tensor]
PARAMS = ("all", "weights")


def check_data(data, name: str = "data") -> Data:
    """``data`` as a pair of equal-length non-empty tensors, else ValueError."""
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise ValueError(f"{name} must be a pair (X, y) of tensors")
    X, y = data
    if not (isinstance(X, Tensor) and isinstance(y, Tensor)) or len(X) == 0 or len(X) != len(y):
        raise ValueError(
            f"{name}=(X, y) must be non-empty tensors of equal length, got "
            f"{getattr(X, 'shape', type(X))} and {getattr(y, 'shape', type(y))}"
        )
    return X, y


def check_number(name: str, value, lo: float, hi: float, open_lo: bool = True) -> float:
    """A finite real in (lo, hi] (or [lo, hi]): ``landscape.core.checks.number_in``, open at lo by
    default (radii, step sizes and tolerances must be positive)."""
    return checks.number_in(name, value, lo, hi, open_lo)


check_int = checks.int_in  # an integer in [lo, hi]


class FlatLoss:
    """The mean loss of ``model`` over ``data`` as a function of a flat parameter vector.

    ``x0`` is the model's own point. ``loss(x)``, ``value_and_grad(x)`` and ``hvp(x, v)`` work
    at any point ``x`` (P,) of the selected parameters; the others stay at the model's values.
    ``to_dict``/``from_dict`` convert to and from the ``named_parameters`` dict format of
    ``landscape.core.directions`` (zeros on the tensors ``params`` holds fixed).
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, data, params: str = "all", buffers=None):
        if params not in PARAMS:
            raise ValueError(f"params={params!r} is not valid: must be one of {', '.join(PARAMS)}")
        self.X, self.y = check_data(data)
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.loss_fn = loss_fn
        named = {n: p.detach() for n, p in self.model.named_parameters()}
        keep = (lambda t: True) if params == "all" else (lambda t: t.dim() > 1)
        self.names = [n for n, t in named.items() if keep(t)]
        if not self.names:
            raise ValueError(f"params={params!r} selects no parameters of this model")
        self.fixed = {n: t for n, t in named.items() if n not in self.names}
        self.shapes = {n: t.shape for n, t in named.items()}
        self.sizes = [named[n].numel() for n in self.names]
        self.all_names = list(named)
        self.buffers = dict(self.model.named_buffers()) if buffers is None else buffers
        self.x0 = torch.cat([named[n].reshape(-1) for n in self.names]).clone()
        self.numel = self.x0.numel()
        self.dtype = self.x0.dtype

    # -- conversions
    def split(self, x: Tensor) -> dict[str, Tensor]:
        parts = torch.split(x, self.sizes)
        return {n: t.view(self.shapes[n]) for n, t in zip(self.names, parts)}

    def to_dict(self, x: Tensor) -> dict[str, Tensor]:
        d = {n: t.detach().clone() for n, t in self.split(x).items()}
        return {n: d.get(n, torch.zeros(self.shapes[n], dtype=self.dtype)) for n in self.all_names}

    def from_dict(self, vector: dict[str, Tensor]) -> Tensor:
        parts = []
        for n in self.names:
            if n not in vector:
                raise ValueError(f"vector is missing parameter {n!r}")
            t = torch.as_tensor(vector[n]).detach()
            if t.shape != self.shapes[n]:
                raise ValueError(
                    f"vector[{n!r}] has shape {tuple(t.shape)}, expected {tuple(self.shapes[n])}"
                )
            parts.append(t.reshape(-1).to(self.dtype))
        return torch.cat(parts)

    # -- evaluation
    def _loss(self, x: Tensor, X: Tensor | None = None, y: Tensor | None = None) -> Tensor:
        params = {**self.fixed, **self.split(x), **self.buffers}
        out = functional_call(self.model, params, (self.X if X is None else X,))
        return self.loss_fn(out, self.y if y is None else y)

    def loss(self, x: Tensor) -> float:
        with torch.no_grad():
            return float(self._loss(x))

    def value_and_grad(self, x: Tensor) -> tuple[float, Tensor]:
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            value = self._loss(x)
            (g,) = torch.autograd.grad(value, x)
        return float(value.detach()), g.detach()

    def hvp(self, x: Tensor, v: Tensor) -> Tensor:
        """Exact Hessian-vector product at ``x`` (double backward)."""
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(self._loss(x), x, create_graph=True)
            if not g.requires_grad:  # the loss is linear in the parameters
                return torch.zeros_like(v)
            (hv,) = torch.autograd.grad(g @ v.to(g.dtype), x)
        return hv.detach()
