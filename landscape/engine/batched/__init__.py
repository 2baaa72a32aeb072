"""Fast, exact evaluation of one network at many points of weight space (the surface fast path).

A loss surface asks for the loss of one network at hundreds of weight vectors
``theta_k = center + sum_j coords[k, j] * directions[j]``. The reference loop in
``landscape.engine.surface`` rebuilds the weights and runs the model once per point. This module
returns the same numbers (up to float32 rounding) faster, and never touches the model.

How (each choice measured with benchmarks/bench_surface.py; the figures are in README):

1. ``torch.fx`` traces the model into a graph of known layers, once per surface
   (``FastPath``); ``supports()`` says whether every node is one this module can evaluate.
   Anything else is left to the reference loop. ``FastPath.session`` binds one surface's
   data, centre and directions, so the caller can time chunks (``surface``'s ``auto`` race).
2. The graph is planned once: an eval-mode BatchNorm right after a Linear/Conv2d is folded into
   its weights (``W * s``, ``b * s + t``), and a ReLU right after is fused into the layer's
   epilogue, so neither costs a pass over memory.
3. Convolutions, and the big matmuls of a point evaluated alone, go to oneDNN's fused kernels
   (``torch.ops.mkldnn``, what ``torch.compile`` uses on CPU), in ``channels_last``: they
   fuse bias and ReLU, but cost more per call than MKL's ``F.linear``, so small matmuls stay
   with MKL. ``test_private_onednn_ops_still_work`` fails when these private ops go away.
4. Points are evaluated in chunks of K, sized from a probe of the activation memory. A big
   point (the digits CNN) runs alone, one oneDNN call per layer. Small points run K together:
   an activation that depends on the point is one tensor ``(K*N, ...)`` (point k owns rows
   ``k*N:(k+1)*N``), so each elementwise layer is one call per chunk and a Linear is one
   ``bmm`` ``(K, N, in) @ (K, in, out)`` written into the same buffer every chunk (a fresh
   multi-MB tensor costs page faults): Python overhead is paid once per chunk.
5. Work shared by all points is done once per call: values computed from the data alone with
   unmoved weights are cached; a first convolution with a small fan-in (3x3 on one channel)
   unfolds the data once (im2col) so that each point is one matmul (0.3 ms vs 1.8 ms for
   oneDNN's direct channels_last kernel on the digits); and a wide first Linear is linear in
   its weights,
   ``X W_k^T = X W0^T + sum_j c_kj X D_j^T``, so its m+1 products are computed once and each
   point only combines them (m+1 multiply-adds per output instead of fan-in).
6. Smaller things: the chunk's weights are ``center + coords @ D`` in one addmm for all
   parameters; a ReLU before a max-pool that could not be fused runs after the pool (exact:
   max commutes with ReLU, and there are 4x fewer values); a 2x2 max-pool is two elementwise
   maxima (2.5x faster than F.max_pool2d on channels_last); Flatten of a channels_last map is a
   free view in (H, W, C) order that the next Linear absorbs by permuting its weight columns.

Results equal the reference loop to float32 rounding (~1e-7 relative; tests check 1e-5).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from landscape.core.pointwise import Pointwise
from landscape.engine.batched.engine import _Engine
from landscape.engine.batched.graph import _traced
from landscape.engine.batched.kernels import _BATCHNORMS, _STATS, MEMORY_CAP
from landscape.engine.batched.points import _Points

POINT_BYTES = 8 * 2**20  # bytes: a point with at least this much activation runs alone (K=1)
CHUNK_BYTES = 32 * 2**20  # bytes: target activation size of a chunk of smaller points
MAX_CHUNK = 16  # most grid points evaluated together
PROBE_ROWS = 64  # samples of the probe run that measures activation bytes per sample


# ----------------------------------------------------------------------------- public API


class FastPath:
    """One model traced and checked once; evaluates any number of surfaces of it.

    ``FastPath(model)`` raises ValueError when the model is not supported (see
    ``supports``). ``session(...)`` binds the data, centre and directions (the shared work:
    probe, cached data-only values, first-layer products) and ``Session.run(coords)``
    evaluates points, so that a caller can time a few chunks before choosing a method.
    """

    def __init__(self, model: nn.Module) -> None:
        gm = _traced(model)
        if isinstance(gm, str):
            raise ValueError(
                f"landscape.engine.batched cannot evaluate this model: {gm}; use the loop"
            )
        self.gm, self.model = gm, model

    def can_move(self, buffer_names) -> bool:
        """Whether ``buffer_names`` are all BatchNorm running statistics the graph reads."""
        modules = self.gm.named_modules()
        stats = {
            f"{name}.{s}" if name else s
            for name, mod in modules
            if isinstance(mod, _BATCHNORMS)
            for s in _STATS
        }
        return all(b in stats for b in buffer_names)

    def session(
        self,
        loss_fn: Callable[[Tensor, Tensor], Tensor],
        X: Tensor,
        y: Tensor,
        center: dict[str, Tensor],
        directions: Sequence[dict[str, Tensor]],
        accuracy_fn: Callable[[Tensor, Tensor], float] | None = None,
    ) -> Session:
        return Session(self, loss_fn, X, y, center, directions, accuracy_fn)

    def evaluate(self, loss_fn, X, y, center, directions, coords, accuracy_fn=None, progress=None):
        """``evaluate`` (the module function) on this traced model."""
        coords = _check_coords(coords, len(directions))
        s = self.session(loss_fn, X, y, center, directions, accuracy_fn)
        return s.run(coords, progress)


class Session:
    """Points of one surface: fixed data, centre and directions; ``run(coords)`` per chunk."""

    def __init__(self, fast: FastPath, loss_fn, X, y, center, directions, accuracy_fn):
        model = fast.model
        extra = [k for k in center if k not in dict(model.named_parameters())]
        if not fast.can_move(extra):
            raise ValueError(
                f"landscape.engine.batched can move BatchNorm running statistics only, not {extra}"
            )
        self.m = len(directions)
        self.dtype = next((p.dtype for p in model.parameters()), torch.float32)
        self.loss = Pointwise(loss_fn, y, "loss_fn")
        self.accuracy = None if accuracy_fn is None else Pointwise(accuracy_fn, y, "accuracy_fn")
        self.X = X.to(self.dtype) if X.is_floating_point() else X
        with torch.inference_mode():
            points = _Points(model, center, directions, self.dtype)
            self.engine = _Engine(model, fast.gm, points)
            zero = torch.zeros(1, self.m, dtype=self.dtype)
            bytes_per_row = self.engine.probe(zero, self.X[:PROBE_ROWS])
        self.K, self.slices = _chunking(bytes_per_row, self.X)

    def run(self, coords, progress=None) -> tuple[np.ndarray, np.ndarray | None]:
        """Loss (and accuracy) at ``coords`` (k, m), chunk by chunk; float64 arrays (k,)."""
        c = torch.as_tensor(np.asarray(coords, dtype=np.float64), dtype=self.dtype)
        with torch.inference_mode():
            return _run(self.engine, self.loss, self.accuracy, c, progress, self.K, self.slices)


def prepare(model: nn.Module) -> FastPath | None:
    """``FastPath(model)``, or None when the model is not supported (trace it once)."""
    try:
        return FastPath(model)
    except ValueError:
        return None


def supports(model: nn.Module) -> bool:
    """True when ``evaluate`` can handle ``model``; otherwise use the reference loop.

    Supported: nn.Sequential, or any module torch.fx can trace (e.g. residual blocks
    ``act(h + f(h))``), made of Linear, Conv2d, BatchNorm1d/2d (running statistics),
    ReLU/LeakyReLU/Tanh/Sigmoid/GELU/SiLU/ELU, MaxPool2d/AvgPool2d/AdaptiveAvgPool2d,
    Flatten, Dropout/Identity (identity, as in eval mode) and ``+`` of two activations.
    """
    return prepare(model) is not None


def evaluate(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    X: Tensor,
    y: Tensor,
    center: dict[str, Tensor],
    directions: Sequence[dict[str, Tensor]],
    coords: np.ndarray,
    accuracy_fn: Callable[[Tensor, Tensor], float] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Loss (and accuracy) at every point ``center + sum_j coords[k, j] * directions[j]``.

    coords: (K, m) with m = len(directions). ``center`` and the directions are keyed like
    ``model.named_parameters()``; a missing direction key or a zero tensor moves nothing.
    The model is evaluated as in eval mode (BatchNorm running statistics, no dropout), without
    autograd, and is never modified. ``loss_fn(pred, y)`` returns a scalar for one point,
    ``accuracy_fn(pred, y)`` a float. Returns float64 arrays of shape (K,), accuracy None
    without ``accuracy_fn``; ``progress(done, total)`` is called after every chunk.
    ``center`` may also hold BatchNorm running statistics (``running_mean``/``running_var``
    keys, the ``states`` direction type): those then move with the directions.
    Raises ValueError when ``supports(model)`` is False or an argument is malformed.
    """
    fast = FastPath(model)
    return fast.evaluate(loss_fn, X, y, center, directions, coords, accuracy_fn, progress)


def _check_coords(coords, m: int) -> np.ndarray:
    arr = np.asarray(coords, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != m:
        raise ValueError(
            f"coords has shape {arr.shape}: must be (K, {m}), one column per direction"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError("coords contains NaN/inf: every coordinate must be finite")
    return arr


# ----------------------------------------------------------------------------- driver


def _run(engine, loss, accuracy, coords, progress, K, slices):
    """Evaluate all points chunk by chunk, K points at a time (K from the session's probe);
    ``loss`` and ``accuracy`` are ``pointwise.Pointwise`` (accuracy may be None)."""
    total = coords.shape[0]
    losses = np.empty(total, dtype=np.float64)
    accs = None if accuracy is None else np.empty(total, dtype=np.float64)
    for start in range(0, total, K):
        preds = engine.predict(coords[start : start + K], slices)  # (k, N, ...)
        losses[start : start + len(preds)] = loss.values(preds)
        if accs is not None:
            accs[start : start + len(preds)] = accuracy.values(preds)
        if progress is not None:
            progress(min(start + K, total), total)
    return losses, accs


def _chunking(bytes_per_row: float, X: Tensor) -> tuple[int, list[Tensor]]:
    """Points per chunk and data slices, from one point's activation bytes per sample."""
    per_point = max(bytes_per_row * X.shape[0], 1.0)
    if per_point > MEMORY_CAP:  # even one point is too big: split the data
        return 1, list(X.chunk(math.ceil(per_point / MEMORY_CAP)))
    if per_point >= POINT_BYTES:
        return 1, [X]
    return max(1, min(MAX_CHUNK, int(CHUNK_BYTES // per_point))), [X]
