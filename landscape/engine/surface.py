"""Loss (and accuracy) along a line or over a plane of weight space around a model.

A point is ``theta* + a*d1 + b*d2``, always rebuilt from the centre weights ``theta*`` (never
by adding steps to weights that were already moved, which would accumulate rounding). Each
point is evaluated on the whole data set, in eval mode (BatchNorm uses its running
statistics, dropout is off), without autograd. The caller's model is never touched: the
reference loop writes each point's weights into a private eval-mode copy, so even an
exception midway leaves the model bit-for-bit as it was.

Two paths compute the same numbers. ``method="loop"`` is the reference: one forward pass per
point. ``method="batched"`` is the fast path in ``landscape.engine.batched``. ``"auto"`` (default)
uses the loop for a model the fast path does not support and for a surface the loop finishes
in a fraction of a second; otherwise it calibrates on the
first points of the surface (a warm-up of each, then up to two timed rounds, see ``race.race``),
lets ``race.choose`` pick the method with fewer seconds per point on this model, these data and
this machine, and evaluates the rest with it. The points the other method calibrated on are
recomputed by the winner, so the whole surface comes from one method (``meta["method"]``);
``meta["race"]`` holds the timings; the winner is remembered per kind of model
(``landscape.engine.race``).

Data is a pair ``(X, y)`` held whole, or a stream read in batches (a user's own data file:
``len`` and ``batch(start, stop)``): then every batch is evaluated at every point with the
method the first batch chose, and the per-batch means are combined weighted by their sizes.
The batch size is the caller's, or ``batch_size_for``: the whole set in one pass when its
inputs and activations fit STREAM_BYTES (one forward per point, as a plain full-batch loop).
An own model is a ``Subject`` with such a stream; there is no second engine.

A direction may also carry floating-point buffers (``directions.states_of`` keys, the
``states`` direction type): then the BatchNorm running statistics move with the weights,
``buffer* + a*d1[buffer] + ...``; buffers a direction leaves out stay the model's.

Orientation: ``Surface.loss[i, j]`` is the value at ``xs[j]*d1 + ys[i]*d2`` (row = y), as
Plotly's contour and heatmap expect. NaN/inf losses (a diverging point) are kept as they are.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from landscape.core import allocator
from landscape.core.directions import _check_keys, buffers_of, cosine, weights_of
from landscape.core.pointwise import Pointwise
from landscape.engine import batched, inputlayer, race
from landscape.engine.subject import Loss

MAX_AXIS = 1001  # most coordinates along one axis (line points, or xs / ys of a plane)
MAX_POINTS = 201 * 201  # most grid points of one plane
CHUNK_ROWS = 16384  # forward at most this many samples at once (bounds activation memory)
METHODS = ("auto", "loop", "batched")
STREAM_BYTES = 512 * 2**20  # bytes: inputs + activations of one pass over streamed data
SCORE_BYTES = 4 * 2**20  # the loop scores the outputs of its points in groups of about this size
PROBE_SAMPLES = 64  # samples of the probe that measures a streamed sample's bytes


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


def _jsonable(meta: dict) -> dict:
    """A JSON copy of a result's metadata (numpy values as lists)."""
    return json.loads(json.dumps(meta, default=lambda o: o.tolist()))


def _method(method: str, model: nn.Module, moved_buffers=()):
    """The fast path (``batched.FastPath``, the model traced once), or None for the loop."""
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not allowed: must be one of {list(METHODS)}")
    if method == "loop":
        return None
    fast = batched.prepare(model)
    if fast is not None and not fast.can_move(moved_buffers):
        fast = None
    if method == "batched" and fast is None:
        raise ValueError(
            "method='batched' is not available: landscape.engine.batched does not support this model"
        )
    return fast


# ----------------------------------------------------------------------------- reference loop


def _forward(frozen: nn.Module, X: Tensor) -> Tensor:
    """The model's output on all of X, in chunks of CHUNK_ROWS samples."""
    if X.shape[0] <= CHUNK_ROWS:
        return frozen(X)
    return torch.cat([frozen(xc) for xc in X.split(CHUNK_ROWS)])


class LoopSession:
    """The reference loop bound to one surface's data, centre and directions.

    ``run(coords)`` evaluates points one full-batch forward each on a private eval-mode
    copy of the model (made once), the same interface as ``batched.Session``. Each point's
    tensors are rebuilt from the centre in place in the copy (``center + a*d1 + b*d2``,
    never by stepping from the previous point, which would accumulate rounding).
    """

    K = 1  # points per step

    def __init__(self, model, loss_fn, X, y, center, directions, accuracy_fn=None) -> None:
        self.frozen = copy.deepcopy(model).eval()
        self.X, self.y, self.accuracy_fn = X, y, accuracy_fn
        self.loss = Pointwise(loss_fn, y, "loss_fn")
        self.accuracy = None if accuracy_fn is None else Pointwise(accuracy_fn, y, "accuracy_fn")
        params = dict(self.frozen.named_parameters())
        # the copy's own tensors that the points overwrite: parameters and moved buffers
        self.targets = {k: params[k] if k in params else self.frozen.get_buffer(k) for k in center}
        self.center = center
        # per tensor, only the directions that move it (a zero entry costs nothing)
        self.moving = {
            k: [(j, d[k]) for j, d in enumerate(directions) if bool(torch.any(d[k] != 0))]
            for k in center
        }
        self.flat = self._flatten(directions)
        self.directions = directions
        # the layers that read X, computed once (landscape.engine.inputlayer): None until the
        # first point's forward has shown which they are
        self.inputs: inputlayer.InputLayers | None = None

    def bind(self, X: Tensor, y: Tensor) -> None:
        """Evaluate later points on other data (the next batch of a stream)."""
        if self.inputs is not None:
            self.inputs.remove()
            self.inputs = None
        self.X, self.y = X, y
        self.loss = Pointwise(self.loss.fn, y, "loss_fn")
        if self.accuracy is not None:
            self.accuracy = Pointwise(self.accuracy_fn, y, "accuracy_fn")

    def _flatten(self, directions):
        """(flat centre, flat directions (P, m)) with the moved tensors made views of one
        vector, so that a point's weights are one ``addmv``; None (per-tensor adds) when the
        moved tensors differ in dtype."""
        moved = [k for k, v in self.moving.items() if v]
        if not moved or len({self.targets[k].dtype for k in moved}) != 1:
            return None
        dtype = self.targets[moved[0]].dtype
        center = torch.cat([self.center[k].reshape(-1).to(dtype) for k in moved])
        dirs = torch.stack(
            [torch.cat([d[k].reshape(-1).to(dtype) for k in moved]) for d in directions], 1
        )
        vector = torch.empty_like(center)
        offset = 0
        with torch.no_grad():
            for k in moved:
                t = self.targets[k]
                t.requires_grad_(False)
                t.set_(vector.untyped_storage(), offset, t.shape, _contiguous_strides(t.shape))
                offset += t.numel()
        return vector, center, dirs

    def _set(self, point) -> None:
        """One point's tensors, one add per moving direction of each tensor."""
        for k, t in self.targets.items():
            moving = self.moving[k]
            if not moving:
                continue
            (j, d), rest = moving[0], moving[1:]
            torch.add(self.center[k], d, alpha=float(point[j]), out=t)
            for j, d in rest:
                t.add_(d, alpha=float(point[j]))

    def run(self, coords, progress=None) -> tuple[np.ndarray, np.ndarray | None]:
        losses = np.empty(len(coords), dtype=np.float64)
        accs = np.empty(len(coords), dtype=np.float64) if self.accuracy_fn is not None else None
        # inference mode: no autograd bookkeeping at all (faster than no_grad for recurrent
        # nets, benchmarks/bench_models.py); the private copy's tensors are written in place
        with torch.inference_mode():
            for k, t in self.targets.items():
                t.copy_(self.center[k])
            points = torch.as_tensor(np.asarray(coords, dtype=np.float64), dtype=torch.float64)
            if self.flat is not None:
                vector, center, dirs = self.flat
                points = points.to(vector.dtype)
            # Outputs whose loss is not computed yet, copied into one buffer made at the first
            # point (G points of about SCORE_BYTES): holding the outputs themselves would pin
            # small blocks between the forwards' large ones, and the allocator would then take
            # fresh pages from the system for every point.
            group: Tensor | None = None
            n_group = count = 0  # n_group: 0 until the first output's size is known

            def score(first: int, outs: Tensor) -> None:  # outs: (G, N, ...)
                losses[first : first + len(outs)] = self.loss.values(outs)
                if accs is not None:
                    accs[first : first + len(outs)] = self.accuracy.values(outs)

            rows = np.asarray(coords, dtype=np.float64)
            watch = None
            if self.inputs is None and self.X.shape[0] <= CHUNK_ROWS:
                watch = inputlayer.Watch(self.frozen, self.X)
            for p, point in enumerate(coords):
                if self.flat is not None:  # every moved tensor at once: center + D @ c
                    torch.addmv(center, dirs, points[p], out=vector)
                else:
                    self._set(point)
                if self.inputs is not None:
                    self.inputs.coefficients = rows[p]
                out = _forward(self.frozen, self.X)
                if watch is not None:  # the first point showed which layers read X
                    self.inputs = inputlayer.InputLayers(
                        watch.close(), self.X, self.center, self.directions
                    )
                    self.inputs.install()
                    watch = None
                # the loss of several points in one call: a small net's loss costs about a
                # fifth of its forward when computed point by point (kernel launches)
                if not n_group:
                    size = max(1, out.nelement() * out.element_size())
                    n_group = max(1, min(len(coords) - p, SCORE_BYTES // size))
                    group = out.new_empty((n_group, *out.shape)) if n_group > 1 else None
                if group is None:  # one point's output is a group already
                    score(p, out[None])
                else:
                    group[count].copy_(out)
                    count += 1
                    if count == len(group) or p + 1 == len(coords):
                        score(p + 1 - count, group[:count])
                        count = 0
                del out
                if progress is not None:
                    progress(p + 1, len(coords))
        return losses, accs


def _contiguous_strides(shape) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))


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
    copy of ``model``; parameters (and any buffers ``center`` names) are swapped in
    functionally, other buffers come from the copy. Same signature as
    ``landscape.engine.batched.evaluate``.
    """
    session = LoopSession(model, loss_fn, X, y, center, directions, accuracy_fn)
    return session.run(coords, progress)


# ----------------------------------------------------------------------------- public API


def _split_states(model: nn.Module, dirs) -> tuple[dict[str, Tensor], list[dict[str, Tensor]]]:
    """Centre (parameters + the buffers some direction moves) and full directions.

    Every direction holds every parameter (``_check_keys``); buffer keys are optional and
    must name floating-point buffers of the model's state dict with their shapes. A buffer
    one direction moves and another does not gets a zero entry in the other.
    """
    params, bufs = weights_of(model), buffers_of(model)
    moved: list[str] = []
    for i, d in enumerate(dirs):
        name = f"d{i + 1}" if len(dirs) > 1 else "direction"
        extra = [k for k in d if k not in params]
        _check_keys(params, {k: d[k] for k in d if k in params}, name)
        for k in extra:
            if k not in bufs:
                raise ValueError(
                    f"{name} key {k!r} is neither a parameter nor a floating-point buffer "
                    "of the model"
                )
            if tuple(torch.as_tensor(d[k]).shape) != tuple(bufs[k].shape):
                raise ValueError(
                    f"{name}[{k!r}] shape={tuple(torch.as_tensor(d[k]).shape)} must be "
                    f"{tuple(bufs[k].shape)}"
                )
            if k not in moved:
                moved.append(k)
    center = {k: w.clone() for k, w in params.items()}
    center.update({k: bufs[k].clone() for k in bufs if k in moved})  # state-dict order
    full = [
        {
            k: torch.as_tensor(d[k]).detach().to(c.dtype) if k in d else torch.zeros_like(c)
            for k, c in center.items()
        }
        for d in dirs
    ]
    return center, full


def _device_of(model: nn.Module) -> torch.device:
    return next((t.device for t in model.parameters()), torch.device("cpu"))


def _is_stream(data) -> bool:
    return not isinstance(data, (tuple, list)) and hasattr(data, "batch")


def _activation_bytes(model: nn.Module, X: Tensor) -> int:
    """Bytes of every module's output on ``X`` (an upper bound of the forward's live memory)."""
    total = 0

    def count(_module, _inputs, out):
        nonlocal total
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, Tensor):
                total += t.numel() * t.element_size()

    hooks = [m.register_forward_hook(count) for m in model.modules()]
    try:
        with torch.no_grad():
            model(X)
    finally:
        for h in hooks:
            h.remove()
    return total


def batch_size_for(model: nn.Module, stream, device, budget: int | None = None) -> int:
    """Samples per pass over a streamed data set: all of them when inputs, targets and
    activations fit ``budget`` bytes (one pass per point, as a plain full-batch loop), else
    the fewest equal batches that do. Bytes per sample come from one probe batch."""
    budget = STREAM_BYTES if budget is None else budget
    n = len(stream)
    X, y = stream.batch(0, min(PROBE_SAMPLES, n))
    work = copy.deepcopy(model).to(device).eval()
    X = X.to(device)
    X = X.to(next((p.dtype for p in work.parameters()), X.dtype)) if X.is_floating_point() else X
    used = _activation_bytes(work, X) + X.numel() * X.element_size()
    per_sample = max(1.0, (used + y.numel() * y.element_size()) / X.shape[0])
    fit = max(1, int(budget // per_sample))
    return n if fit >= n else math.ceil(n / math.ceil(n / fit))


def _batches(data, batch_size: int | None, model: nn.Module, device: torch.device):
    """(batches of (X, y), samples, samples per batch or None for a pair held whole)."""
    if not _is_stream(data):
        X, y = _data(data)
        return [(X, y)], int(X.shape[0]), None
    n = len(data)
    if n < 1:
        raise ValueError("data has no samples: must hold at least one")
    if batch_size is None:
        batch_size = batch_size_for(model, data, device)
    elif isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be an integer >= 1 (or None: auto)")
    batch_size = min(batch_size, n)
    return (data.batch(a, min(a + batch_size, n)) for a in range(0, n, batch_size)), n, batch_size


class _Paths:
    """The method chosen once per surface, and its session for each batch of data.

    ``fast`` is the prepared fast path, None for none, or ``prepare`` (a callable) under
    ``auto``: tracing the model waits until the race needs it (a small surface the loop
    finishes at once never traces). ``batches``: how many batches of data the chosen method
    will run on (the race's estimate of the whole surface)."""

    def __init__(self, model, loss_fn, accuracy_fn, center, dirs, method, fast, batches) -> None:
        self.model, self.loss_fn, self.accuracy_fn = model, loss_fn, accuracy_fn
        self.center, self.dirs, self.method, self._fast = center, dirs, method, fast
        self.batches = batches
        self.loop: LoopSession | None = None
        self.used = self.race = self.key = None

    @property
    def fast(self):
        if callable(self._fast):
            self._fast = self._fast()
        return self._fast

    def _loop(self, X, y) -> LoopSession:
        if self.loop is None:  # one private copy of the model for every batch
            self.loop = LoopSession(
                self.model, self.loss_fn, X, y, self.center, self.dirs, self.accuracy_fn
            )
        else:
            self.loop.bind(X, y)
        return self.loop

    def _session(self, X, y):
        return self.fast.session(self.loss_fn, X, y, self.center, self.dirs, self.accuracy_fn)

    def first(self, X, y, coords, progress, moved):
        """Choose the method on the first batch (remembered, forced or raced) and run it."""
        if self.method == "auto":  # a kind of model raced before runs its winner
            self.key = race.race_key(
                self.model, self.loss_fn, X, len(self.dirs), moved, self.accuracy_fn
            )
            self.used = race.remembered(self.key)
            self.race = None if self.used is None else {"remembered": self.used}
        forced = self.method == "batched" or self.used == "batched"  # no race to run
        if self.used == "loop" or self._fast is None or (forced and self.fast is None):
            self.race = self.race if self.used == "loop" else None  # no fast path for it
            self.used = "loop"
            return self._loop(X, y).run(coords, progress)
        if forced:
            self.used = "batched"
            return self._session(X, y).run(coords, progress)

        def fast_session():
            return None if self.fast is None else self._session(X, y)

        losses, accs, self.used, self.race = race.race(
            fast_session, self._loop(X, y), coords, progress, batches=self.batches
        )
        if self.race is not None and not self.race.get("skipped"):
            race.remember(self.key, self.used)  # a small surface's skip says nothing of a large
        return losses, accs

    def next(self, X, y, coords, progress):
        """A later batch, with the method the first one chose."""
        if self.used == "loop":
            return self._loop(X, y).run(coords, progress)
        return self._session(X, y).run(coords, progress)


def _evaluate(model, loss_fn, data, dirs, coords, accuracy_fn, progress, method,
              batch_size=None, device=None):  # fmt: skip
    """Check inputs, pick the path, evaluate every point; returns (losses, accs, info).

    ``data``: a pair (X, y) held whole, or a stream (``len`` and ``batch(start, stop)`` ->
    (X, y)) read ``batch_size`` samples at a time (None: ``batch_size_for``). Over batches,
    the loss is the mean of the batch means weighted by their sizes (exact for a mean loss),
    then a ``Loss``'s ``post`` (rmse's square root) on that exact mean; accuracy likewise.
    ``device``: where to evaluate (None: where the model is); the model and each batch go
    there.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model={type(model).__name__} must be a torch nn.Module")
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not allowed: must be one of {list(METHODS)}")
    allocator.keep_freed_memory()  # every point reuses the last one's blocks, no page faults
    device = _device_of(model) if device is None else torch.device(device)
    if device != _device_of(model):
        model = copy.deepcopy(model).to(device)
    batch_loss, post = (
        (loss_fn.batch, loss_fn.post) if isinstance(loss_fn, Loss) else (loss_fn, None)
    )
    center, dirs = _split_states(model, dirs)
    dirs = [{k: t.to(device) for k, t in d.items()} for d in dirs]
    moved = [k for k in center if k not in dict(model.named_parameters())]
    start = time.perf_counter()
    batches, n, size = _batches(data, batch_size, model, device)
    fast = None
    if method == "auto" and device.type == "cpu":  # traced when the race needs it
        fast = functools.partial(_method, method, model, moved)
    elif method != "loop" and device.type == "cpu":  # the fast path's kernels are CPU ones
        fast = _method(method, model, moved)
    elif method == "batched":
        raise ValueError(f"method='batched' runs on the CPU only, not on {device}")
    n_batches = 1 if size is None else math.ceil(n / size)
    paths = _Paths(model, batch_loss, accuracy_fn, center, dirs, method, fast, n_batches)
    parts = []
    for b, (X, y) in enumerate(batches):
        X, y = X.to(device), y.to(device)
        dtype = next(iter(center.values())).dtype if center else X.dtype
        X = X.to(dtype) if X.is_floating_point() else X  # float64 data into a float32 model
        cb = race.offset(progress, b * len(coords), n_batches * len(coords))
        lo, ac = (paths.first(X, y, coords, cb, moved) if b == 0
                  else paths.next(X, y, coords, cb))  # fmt: skip
        parts.append((int(X.shape[0]), np.asarray(lo, dtype=np.float64), ac))
    losses, accs = _combine(parts, accuracy_fn is not None)
    if post is not None:
        losses = np.array([post(float(v)) for v in losses], dtype=np.float64)
    info = {
        "method": paths.used,
        "seconds": time.perf_counter() - start,
        "n_data": n,
        "n_params": int(sum(p.numel() for p in model.parameters())),
    }
    if size is not None:
        info |= {"batch_size": size, "device": str(device)}
    if paths.race is not None:
        info["race"] = paths.race
    return losses, accs, info


def _combine(parts, with_accuracy: bool):
    """Per-point values over the whole data: one batch as it is, else the size-weighted mean."""
    if len(parts) == 1:
        _, lo, ac = parts[0]
        return lo, None if ac is None else np.asarray(ac, dtype=np.float64)
    n = sum(nb for nb, _, _ in parts)
    losses = sum(lo * nb for nb, lo, _ in parts) / n
    accs = (
        sum(np.asarray(ac, np.float64) * nb for nb, _, ac in parts) / n if with_accuracy else None
    )
    return losses, accs


def grid(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """(ny*nx, 2) coordinates of the plane ``xs`` x ``ys``; point k = i*nx + j is at
    ``(xs[j], ys[i])``, so the losses reshape to (ny, nx) with row = y."""
    gx, gy = np.meshgrid(xs, ys)  # (ny, nx) each; row i is ys[i]
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def line_surface(ts, losses, accs, info: dict, meta: dict) -> Surface:
    """The Surface of a line from its per-point values (``meta`` first, facts after)."""
    acc = None if accs is None else np.asarray(accs, dtype=np.float64)
    meta = _jsonable({**meta, "kind": "line", **info})
    return Surface("line", ts, None, np.asarray(losses, dtype=np.float64), acc, meta)


def plane_surface(xs, ys, losses, accs, info: dict, meta: dict, d1, d2) -> Surface:
    """The Surface of a plane from the values at ``grid(xs, ys)``; ``meta["cosine"]`` is the
    cosine of the two directions (near 0 for independent random directions in high
    dimension)."""
    shape = (ys.size, xs.size)
    acc = None if accs is None else np.asarray(accs, dtype=np.float64).reshape(shape)
    cos = cosine(d1, d2)
    meta = _jsonable({**meta, "kind": "plane", **info, "cosine": None if math.isnan(cos) else cos})
    loss = np.asarray(losses, dtype=np.float64).reshape(shape)
    return Surface("plane", xs, ys, loss, acc, meta)


def line(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    data,
    direction: dict[str, Tensor],
    ts: Sequence[float] | np.ndarray,
    accuracy_fn: Callable | None = None,
    progress: Callable[[int, int], None] | None = None,
    method: str = "auto",
    meta: dict | None = None,
    batch_size: int | None = None,
    device: torch.device | str | None = None,
) -> Surface:
    """Loss at ``theta* + t*direction`` for each t in ``ts`` (1-D slice; t=0 is the model).

    data: ``(X, y)`` tensors (train or test split: the caller picks), or a stream read in
    batches (see ``evaluate``). loss_fn: any ``(output, target) -> scalar``. meta: extra
    JSON-able facts to keep with the result (norm, seed, split, config...). Returns a Surface
    with ``loss`` of shape ``(len(ts),)``.
    """
    ts = _coords("ts", ts)
    extra = _json_meta(meta)
    losses, accs, info = _evaluate(
        model, loss_fn, data, [direction], ts[:, None], accuracy_fn, progress, method,
        batch_size, device,
    )  # fmt: skip
    return line_surface(ts, losses, accs, info, extra)


def plane(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    data,
    d1: dict[str, Tensor],
    d2: dict[str, Tensor],
    xs: Sequence[float] | np.ndarray,
    ys: Sequence[float] | np.ndarray,
    accuracy_fn: Callable | None = None,
    progress: Callable[[int, int], None] | None = None,
    method: str = "auto",
    meta: dict | None = None,
    batch_size: int | None = None,
    device: torch.device | str | None = None,
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
    losses, accs, info = _evaluate(
        model, loss_fn, data, [d1, d2], grid(xs, ys), accuracy_fn, progress, method,
        batch_size, device,
    )  # fmt: skip
    return plane_surface(xs, ys, losses, accs, info, extra, d1, d2)


def evaluate(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    data,
    directions: Sequence[dict[str, Tensor]],
    coords: np.ndarray,
    accuracy_fn: Callable | None = None,
    progress: Callable[[int, int], None] | None = None,
    method: str = "auto",
    batch_size: int | None = None,
    device: torch.device | str | None = None,
) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """Loss (and accuracy) at ``model's weights + sum_k coords[p, k] * directions[k]``.

    coords: (K, len(directions)), any points in any order. data: ``(X, y)`` held whole, or
    a stream (``len(data)`` and ``data.batch(start, stop)`` -> (X, y), e.g. a user's data
    file) read ``batch_size`` samples at a time; ``batch_size=None`` reads all of it in one
    pass when it fits ``STREAM_BYTES`` (``batch_size_for``). A ``subject.Loss`` is combined
    exactly over batches (mean of batch means, then its ``post``). ``device``: where the
    points are evaluated (None: the model's device). Returns float64 ``losses (K,)``,
    ``accs (K,)`` or None, and facts (method, seconds, n_data, n_params; batch_size and
    device for a stream). ``line`` and ``plane`` are this over a line or a grid;
    ``landscape.pipelines.slices`` calls it for every point.
    """
    coords = np.asarray(coords, dtype=np.float64).reshape(len(coords), len(directions))
    return _evaluate(
        model, loss_fn, data, list(directions), coords, accuracy_fn, progress, method,
        batch_size, device,
    )  # fmt: skip
