"""The layer that reads the data, computed once per surface instead of once per point.

A ``Linear`` or ``Conv1d/2d/3d`` applied to the data tensor itself is linear in its
parameters: with ``theta = theta* + sum_j c_j d_j``,
``layer(X; theta) = layer(X; theta*) + sum_j c_j layer(X; d_j)``. The reference loop
computes the right-hand terms once for the surface (one forward of that layer per
direction) and then builds each point's output with one multiply-add per moving
direction, where a point would otherwise redo the layer's whole product (for an MLP on
20 features with 128 hidden units, an eighth of its forward; for a first convolution,
often more). The sum is the same function of the weights; it rounds differently, to
float32's precision (relative ~1e-7).

It applies only where it is certain to be exact and pays: a module of exactly one of those
types (a subclass may override ``forward``), with no hooks or parametrisations, whose input
is the data tensor object itself (found by watching the first point's forward), whose terms
fit ``BASIS_BYTES``, and whose products take more than twice the work of the sum per output
(fan-in > 2 x terms; an ``Embedding`` is a lookup, as cheap as the sum, so it is left as it
is). Everywhere else the module runs as written.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn
from torch.func import functional_call
from torch.nn.utils import parametrize

LINEAR_IN_WEIGHTS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
BASIS_BYTES = 64 * 2**20  # most bytes of precomputed terms (all input layers together)


def candidates(model: nn.Module) -> dict[str, nn.Module]:
    """The modules that are linear in their parameters and run as their class defines."""
    out = {}
    for name, m in model.named_modules():
        if type(m) not in LINEAR_IN_WEIGHTS or parametrize.is_parametrized(m):
            continue
        if m._forward_hooks or m._forward_pre_hooks or "forward" in vars(m):
            continue
        out[name] = m
    return out


def fan_in(m: nn.Module) -> int:
    """Multiply-adds per output element."""
    if isinstance(m, nn.Linear):
        return m.in_features
    return m.in_channels // m.groups * math.prod(m.kernel_size)


class Watch:
    """Forward pre-hooks that note which candidates are called on ``X`` itself."""

    def __init__(self, model: nn.Module, X: Tensor) -> None:
        self.seen: dict[str, nn.Module] = {}
        self.handles = [
            m.register_forward_pre_hook(lambda mod, args, name=name: self._note(name, mod, args, X))
            for name, m in candidates(model).items()
        ]

    def _note(self, name, module, args, X) -> None:
        if args and args[0] is X:
            self.seen[name] = module

    def close(self) -> dict[str, nn.Module]:
        for h in self.handles:
            h.remove()
        return self.seen


class InputLayers:
    """The seen layers' terms on ``X``; ``install()`` makes each layer return
    ``base + sum_j c_j term_j`` for the current ``coefficients`` when called on ``X``."""

    def __init__(
        self,
        layers: dict[str, nn.Module],
        X: Tensor,
        center: dict[str, Tensor],
        directions: Sequence[dict[str, Tensor]],
    ) -> None:
        self.X, self.coefficients = X, None
        self.terms: dict[str, tuple[Tensor, list[tuple[int, Tensor]]]] = {}
        used = 0
        for name, m in layers.items():
            keys = {n: f"{name}.{n}" if name else n for n, _ in m.named_parameters()}
            if not all(k in center for k in keys.values()):
                continue
            base = functional_call(m, {n: center[k] for n, k in keys.items()}, (X,))
            terms = []
            for j, d in enumerate(directions):
                if not any(bool((d[k] != 0).any()) for k in keys.values() if k in d):
                    continue  # this direction leaves the layer where it is
                zero = {n: center[k].new_zeros(center[k].shape) for n, k in keys.items()}
                moved = {n: d[k] if k in d else zero[n] for n, k in keys.items()}
                terms.append((j, functional_call(m, moved, (X,))))
            if fan_in(m) <= 2 * (1 + len(terms)):
                continue  # the sum would cost about what the layer does
            used += base.nelement() * base.element_size() * (1 + len(terms))
            if used > BASIS_BYTES:
                break
            self.terms[name] = (base, terms)
        self.modules = {name: layers[name] for name in self.terms}

    def install(self) -> None:
        for name, m in self.modules.items():
            m.forward = self._forward(m.forward, *self.terms[name])

    def _forward(self, original, base, terms):
        def forward(x, *args, **kwargs):
            if x is not self.X or args or kwargs:
                return original(x, *args, **kwargs)
            out = base.clone()  # a fresh tensor: the model may change its input in place
            for j, term in terms:
                out.add_(term, alpha=float(self.coefficients[j]))
            return out

        return forward

    def remove(self) -> None:
        for m in self.modules.values():
            del m.forward
