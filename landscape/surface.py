"""Loss (and accuracy) along a line or over a plane of weight space around a model.

A point is ``theta* + a*d1 + b*d2``, always rebuilt from the centre weights ``theta*`` (never
by adding steps to weights that were already moved, which would accumulate rounding). Each
point is evaluated on the whole data set, in eval mode (BatchNorm uses its running
statistics, dropout is off), without autograd. The caller's model is never touched: the
reference loop runs ``torch.func.functional_call`` on a private eval-mode copy, so even an
exception midway leaves the model bit-for-bit as it was.

Two paths compute the same numbers. ``method="loop"`` is the reference: one forward pass per
point. ``method="batched"`` is the fast path in ``landscape.batched``; ``"auto"`` uses it
when it is available and supports the model, and falls back to the loop otherwise.

Orientation: ``Surface.loss[i, j]`` is the value at ``xs[j]*d1 + ys[i]*d2`` (row = y), as
Plotly's contour and heatmap expect. NaN/inf losses (a diverging point) are kept as they are.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call

from landscape.directions import _check_keys, cosine, weights_of

MAX_AXIS = 1001  # most coordinates along one axis (line points, or xs / ys of a plane)
MAX_POINTS = 201 * 201  # most grid points of one plane
CHUNK_ROWS = 16384  # forward at most this many samples at once (bounds activation memory)
METHODS = ("auto", "loop", "batched")


@dataclass(eq=False)
class Surface:
    """A computed slice of the loss surface; ``store.save_surface`` writes it to .npz.

    ``eq=False``: surfaces compare by identity (array fields have no single truth value).
    """

    kind: str  # "line" | "plane"
    xs: np.ndarray  # (nx,) float64 coordinates along d1 (t for a line)
    ys: np.ndarray | None  # (ny,) float64 coordinates along d2; None for a line
    loss: np.ndarray  # (nx,) or (ny, nx) float64; loss[i, j] at xs[j]*d1 + ys[i]*d2
    accuracy: np.ndarray | None  # same shape as loss, in [0, 1]; None without accuracy_fn
    meta: dict = field(default_factory=dict)  # JSON-able: how it was made (method, norm, ...)

    @property
    def finite(self) -> np.ndarray:
        """Boolean mask of the points whose loss is finite (the rest diverged)."""
        return np.isfinite(self.loss)


# ----------------------------------------------------------------------------- validation


def _coords(name: str, values: Sequence[float] | np.ndarray | Tensor) -> np.ndarray:
    """A 1-D, finite, strictly increasing float64 array of at most MAX_AXIS entries."""
    arr = np.asarray(values.detach().cpu() if isinstance(values, Tensor) else values)
    try:
        arr = arr.astype(np.float64).reshape(-1) if arr.ndim <= 1 else arr.astype(np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be a sequence of numbers: {e}") from None
    if arr.ndim != 1 or not 1 <= arr.size <= MAX_AXIS:
        raise ValueError(
            f"{name} has shape {arr.shape}: must be 1-D with 1 to {MAX_AXIS} coordinates"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}={arr.tolist()[:8]} contains NaN/inf: must be finite")
    if arr.size > 1 and not np.all(np.diff(arr) > 0):
        raise ValueError(f"{name}={arr.tolist()[:8]}... must be strictly increasing")
    return arr


def _data(data: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """``(X, y)`` as tensors with the same number of rows (at least one)."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ValueError(f"data={type(data).__name__} must be a pair (X, y) of tensors")
    X, y = (torch.as_tensor(v) for v in data)
    if X.ndim == 0 or y.ndim == 0 or X.shape[0] != y.shape[0] or X.shape[0] == 0:
        raise ValueError(
            f"data shapes X={tuple(X.shape)} y={tuple(y.shape)}: must share a first "
            "dimension of at least 1"
        )
    return X, y


def _json_meta(meta: dict | None) -> dict:
    """A deep copy of the caller's metadata, checked to be JSON-able (it is saved as JSON)."""
    meta = {} if meta is None else meta
    if not isinstance(meta, dict):
        raise ValueError(f"meta={type(meta).__name__} must be a dict")
    try:
        return json.loads(json.dumps(meta))
    except (TypeError, ValueError) as e:
        raise ValueError(f"meta is not JSON-able: {e}") from None


def _method(method: str, model: nn.Module):
    """The evaluation function to use: the batched module, or None for the loop."""
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not allowed: must be one of {list(METHODS)}")
    if method == "loop":
        return None
    try:
        from landscape import batched
    except ImportError:
        batched = None
    usable = batched is not None and batched.supports(model)
    if method == "batched" and not usable:
        why = "is not installed" if batched is None else "does not support this model"
        raise ValueError(f"method='batched' is not available: landscape.batched {why}")
    return batched if usable else None


# ----------------------------------------------------------------------------- reference loop


def _scalar(value, name: str) -> float:
    t = torch.as_tensor(value)
    if t.numel() != 1:
        raise ValueError(f"{name} returned shape {tuple(t.shape)}: must return a scalar")
    return float(t.item())


def _forward(frozen: nn.Module, params: dict[str, Tensor], X: Tensor) -> Tensor:
    """The model's output on all of X with ``params``, in chunks of CHUNK_ROWS samples."""
    if X.shape[0] <= CHUNK_ROWS:
        return functional_call(frozen, params, (X,))
    return torch.cat([functional_call(frozen, params, (xc,)) for xc in X.split(CHUNK_ROWS)])


def loop_evaluate(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    X: Tensor,
    y: Tensor,
    center: dict[str, Tensor],
    directions: Sequence[dict[str, Tensor]],
    coords: np.ndarray,
    accuracy_fn: Callable | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Reference: loss (and accuracy) at ``center + sum_k coords[p, k] * directions[k]``.

    coords: (K, len(directions)). One full-batch forward per point on a private eval-mode
    copy of ``model``; parameters are swapped in functionally, buffers come from the copy.
    Same signature as ``landscape.batched.evaluate``.
    """
    frozen = copy.deepcopy(model).eval()
    losses = np.empty(len(coords), dtype=np.float64)
    accs = np.empty(len(coords), dtype=np.float64) if accuracy_fn is not None else None
    with torch.no_grad():
        for p, point in enumerate(coords):
            params = {k: c.clone() for k, c in center.items()}
            for a, d in zip(point, directions):
                for k in params:
                    params[k] += float(a) * d[k]
            out = _forward(frozen, params, X)
            losses[p] = _scalar(loss_fn(out, y), "loss_fn")
            if accs is not None:
                accs[p] = _scalar(accuracy_fn(out, y), "accuracy_fn")
            if progress is not None:
                progress(p + 1, len(coords))
    return losses, accs


# ----------------------------------------------------------------------------- public API


def _evaluate(model, loss_fn, data, dirs, coords, accuracy_fn, progress, method):
    """Check inputs, pick the path, evaluate every point; returns (losses, accs, info)."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model={type(model).__name__} must be a torch nn.Module")
    X, y = _data(data)
    center = {k: w.clone() for k, w in weights_of(model).items()}
    dtype = next(iter(center.values())).dtype if center else X.dtype
    X = X.to(dtype) if X.is_floating_point() else X  # float64 data into a float32 model
    for i, d in enumerate(dirs):
        _check_keys(center, d, f"d{i + 1}" if len(dirs) > 1 else "direction")
    dirs = [{k: d[k].detach().to(center[k].dtype) for k in center} for d in dirs]
    fast = _method(method, model)
    start = time.perf_counter()
    run = fast.evaluate if fast is not None else loop_evaluate
    losses, accs = run(model, loss_fn, X, y, center, dirs, coords, accuracy_fn, progress)
    info = {
        "method": "batched" if fast is not None else "loop",
        "seconds": time.perf_counter() - start,
        "n_data": int(X.shape[0]),
        "n_params": int(sum(c.numel() for c in center.values())),
    }
    return np.asarray(losses, dtype=np.float64), accs, info


def line(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    data: tuple[Tensor, Tensor],
    direction: dict[str, Tensor],
    ts: Sequence[float] | np.ndarray,
    accuracy_fn: Callable | None = None,
    progress: Callable[[int, int], None] | None = None,
    method: str = "auto",
    meta: dict | None = None,
) -> Surface:
    """Loss at ``theta* + t*direction`` for each t in ``ts`` (1-D slice; t=0 is the model).

    data: ``(X, y)`` tensors (train or test split: the caller picks). loss_fn: any
    ``(output, target) -> scalar``. meta: extra JSON-able facts to keep with the result
    (norm, seed, split, config...). Returns a Surface with ``loss`` of shape ``(len(ts),)``.
    """
    ts = _coords("ts", ts)
    extra = _json_meta(meta)
    coords = ts[:, None]  # (K, 1)
    losses, accs, info = _evaluate(
        model, loss_fn, data, [direction], coords, accuracy_fn, progress, method
    )
    acc = None if accs is None else np.asarray(accs, dtype=np.float64)
    return Surface("line", ts, None, losses, acc, {**extra, "kind": "line", **info})


def plane(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    data: tuple[Tensor, Tensor],
    d1: dict[str, Tensor],
    d2: dict[str, Tensor],
    xs: Sequence[float] | np.ndarray,
    ys: Sequence[float] | np.ndarray,
    accuracy_fn: Callable | None = None,
    progress: Callable[[int, int], None] | None = None,
    method: str = "auto",
    meta: dict | None = None,
) -> Surface:
    """Loss at ``theta* + x*d1 + y*d2`` over the grid ``xs`` x ``ys`` (2-D slice).

    Returns a Surface whose ``loss[i, j]`` is the value at ``xs[j]*d1 + ys[i]*d2``, shape
    ``(len(ys), len(xs))``; grids need not be square. ``meta["cosine"]`` is the cosine of
    the two directions (near 0 for independent random directions in high dimension).
    """
    xs, ys = _coords("xs", xs), _coords("ys", ys)
    if xs.size * ys.size > MAX_POINTS:
        raise ValueError(
            f"grid {ys.size}x{xs.size}={xs.size * ys.size} points is too large: "
            f"must be at most {MAX_POINTS} (201x201)"
        )
    extra = _json_meta(meta)
    gx, gy = np.meshgrid(xs, ys)  # (ny, nx) each; row i is ys[i]
    coords = np.stack([gx.ravel(), gy.ravel()], axis=1)  # (ny*nx, 2), point k = i*nx + j
    losses, accs, info = _evaluate(
        model, loss_fn, data, [d1, d2], coords, accuracy_fn, progress, method
    )
    shape = (ys.size, xs.size)
    acc = None if accs is None else np.asarray(accs, dtype=np.float64).reshape(shape)
    cos = cosine(d1, d2)
    info["cosine"] = None if math.isnan(cos) else cos
    return Surface("plane", xs, ys, losses.reshape(shape), acc, {**extra, "kind": "plane", **info})


def evaluate(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    data: tuple[Tensor, Tensor],
    directions: Sequence[dict[str, Tensor]],
    coords: np.ndarray,
    accuracy_fn: Callable | None = None,
    progress: Callable[[int, int], None] | None = None,
    method: str = "auto",
) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """Loss (and accuracy) at ``model's weights + sum_k coords[p, k] * directions[k]``.

    coords: (K, len(directions)), any points in any order. Returns float64 ``losses (K,)``,
    ``accs (K,)`` or None, and facts (method, seconds, n_data, n_params). ``line`` and
    ``plane`` are this over a line or a grid; ``landscape.slices`` calls it for every point.
    """
    coords = np.asarray(coords, dtype=np.float64).reshape(len(coords), len(directions))
    losses, accs, info = _evaluate(
        model, loss_fn, data, list(directions), coords, accuracy_fn, progress, method
    )
    return losses, None if accs is None else np.asarray(accs, dtype=np.float64), info
