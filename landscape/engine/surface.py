"""Loss (and accuracy) along a line or over a plane of weight space around a model.

A point is ``theta* + a*d1 + b*d2``, always rebuilt from the centre weights ``theta*`` (never
by adding steps to weights that were already moved, which would accumulate rounding). Each
point is evaluated on the whole data set, in eval mode (BatchNorm uses its running
statistics, dropout is off), without autograd. The caller's model is never touched: the
reference loop writes each point's weights into a private eval-mode copy, so even an
exception midway leaves the model bit-for-bit as it was.

Two paths compute the same numbers. ``method="loop"`` is the reference: one forward pass per
point. ``method="batched"`` is the fast path in ``landscape.engine.batched``. ``"auto"`` (default)
uses the loop for a model the fast path does not support; otherwise it calibrates on the
first points of the surface (a warm-up of each, then up to two timed rounds, see ``_race``),
lets ``choose`` pick the method with fewer seconds per point on this model, these data and
this machine, and evaluates the rest with it. The points the other method calibrated on are
recomputed by the winner, so the whole surface comes from one method (``meta["method"]``);
``meta["race"]`` holds the timings. Auto costs at most the loser's calibration points more
than the faster method alone (a timed chunk is at most 1/RACE_SHARE of the surface), and
only once per kind of model in a process: the winner is remembered (``_WINNERS``, keyed by
architecture, data shape, loss, threads and directions), so later surfaces skip the race
(``meta["race"] == {"remembered": method}``).

A direction may also carry floating-point buffers (``directions.states_of`` keys, the
``states`` direction type): then the BatchNorm running statistics move with the weights,
``buffer* + a*d1[buffer] + ...``; buffers a direction leaves out stay the model's.

Orientation: ``Surface.loss[i, j]`` is the value at ``xs[j]*d1 + ys[i]*d2`` (row = y), as
Plotly's contour and heatmap expect. NaN/inf losses (a diverging point) are kept as they are.
"""

from __future__ import annotations

import copy
import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from landscape.core.directions import _check_keys, buffers_of, cosine, weights_of
from landscape.core.pointwise import Pointwise
from landscape.engine import batched

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
        with torch.no_grad():
            for k, t in self.targets.items():
                t.copy_(self.center[k])
            points = torch.as_tensor(np.asarray(coords, dtype=np.float64), dtype=torch.float64)
            if self.flat is not None:
                vector, center, dirs = self.flat
                points = points.to(vector.dtype)
            for p, point in enumerate(coords):
                if self.flat is not None:  # every moved tensor at once: center + D @ c
                    torch.addmv(center, dirs, points[p], out=vector)
                else:
                    self._set(point)
                out = _forward(self.frozen, self.X)[None]  # one point: (1, N, ...)
                losses[p] = self.loss.values(out)[0]
                if accs is not None:
                    accs[p] = self.accuracy.values(out)[0]
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


RACE_ROUNDS = 2  # timed rounds of each method at most; the fewer seconds per point wins
RACE_SHARE = 8  # a timed chunk of the fast path is at most 1/RACE_SHARE of the surface
RACE_CLEAR = 1.25  # after one round, a method this many times faster wins without a second


def choose(seconds_per_point: dict[str, float]) -> str:
    """The method with the fewest measured seconds per point; a tie goes to the loop.

    The loop is the reference, so it wins ties and any method never measured (inf).
    """
    return min(seconds_per_point, key=lambda k: (seconds_per_point[k], k != "loop"))


def _race(fast, loop: LoopSession, coords: np.ndarray, progress, clock=time.perf_counter):
    """Evaluate ``coords`` with the faster of ``fast`` and ``loop``, timed on the first points.

    Calibration: a warm-up of both (first calls build kernels and the fast path's shared
    caches; 2 fast points, 1 loop point), then up to RACE_ROUNDS timed rounds of one fast
    chunk (``fast.K`` points, at most 1/RACE_SHARE of the surface) and a quarter as many loop
    points (at least 2); the minimum seconds per point of each go to ``choose``. A first
    round where one method is RACE_CLEAR times faster decides alone. The winner is the
    method that finishes sooner (its seconds per point times the points left and the other's
    calibration points): it evaluates the rest and then recomputes the points the loser
    calibrated on, so every value of the surface comes from one method and the loser's only
    cost is its calibration points.
    Returns (losses, accs, winner name, timings); ``clock`` is injectable for tests.
    """
    total = len(coords)
    losses = np.empty(total, dtype=np.float64)
    accs = None if loop.accuracy_fn is None else np.empty(total, dtype=np.float64)
    runners = {"batched": fast, "loop": loop}
    spans: dict[str, list[tuple[int, int]]] = {"batched": [], "loop": []}
    done = 0

    def take(name: str, n: int) -> float:
        """Evaluate the next n points with one method; seconds per point (inf if none left)."""
        nonlocal done
        n = min(n, total - done)
        if n <= 0:
            return math.inf
        start = clock()
        lo, ac = runners[name].run(coords[done : done + n])
        seconds = (clock() - start) / n
        _put(losses, accs, done, lo, ac)
        spans[name].append((done, done + n))
        done += n
        if progress is not None:
            progress(done, total)
        return seconds

    chunk = max(1, min(fast.K, total // RACE_SHARE))
    take("batched", min(2, chunk))
    take("loop", 1)
    best = {"batched": math.inf, "loop": math.inf}
    for _ in range(RACE_ROUNDS):
        best["batched"] = min(best["batched"], take("batched", chunk))
        best["loop"] = min(best["loop"], take("loop", max(2, chunk // 4)))
        low, high = sorted(best.values())
        if high >= RACE_CLEAR * low:
            break
    # Finish with the method that ends the surface soonest: its rate times the points left
    # plus the other's calibration points it must redo. That is the faster per point unless
    # the two are close, where redoing the other's chunk would cost more than it saves.
    left = total - done
    redo = {name: sum(b - a for a, b in spans["loop" if name == "batched" else "batched"])
            for name in runners}  # fmt: skip
    winner = choose({k: best[k] * (left + redo[k]) if left + redo[k] else 0.0 for k in best})
    loser = "loop" if winner == "batched" else "batched"
    if done < total:
        lo, ac = runners[winner].run(coords[done:], _offset(progress, done, total))
        _put(losses, accs, done, lo, ac)
    for a, b in spans[loser]:  # the surface from one method: redo the loser's points
        lo, ac = runners[winner].run(coords[a:b])
        _put(losses, accs, a, lo, ac)
    timings = {
        "batched_s_per_point": None if math.isinf(best["batched"]) else best["batched"],
        "loop_s_per_point": None if math.isinf(best["loop"]) else best["loop"],
        "recomputed_points": sum(b - a for a, b in spans[loser]),
    }
    return losses, accs, winner, timings


#: Winners of past races, by what decides the cost (see ``_race_key``): a later surface of the
#: same model, data shape, loss and threads uses the remembered method without calibrating
#: again (as cuDNN's benchmark mode keeps its choice per shape). Bounded, least recent first
#: out; per process.
_WINNERS: OrderedDict[tuple, str] = OrderedDict()
MAX_WINNERS = 64
_WINNERS_LOCK = threading.Lock()


def _race_key(model: nn.Module, loss_fn, X: Tensor, n_dirs: int, moved: list[str], accuracy_fn):
    shapes = tuple((k, tuple(p.shape), str(p.dtype)) for k, p in model.state_dict().items())
    loss = getattr(loss_fn, "__qualname__", type(loss_fn).__qualname__)
    return (
        type(model).__qualname__, str(model), shapes, tuple(X.shape), str(X.dtype),
        str(X.device), torch.get_num_threads(), loss, accuracy_fn is not None, n_dirs,
        tuple(moved),
    )  # fmt: skip


def _remembered(key: tuple) -> str | None:
    with _WINNERS_LOCK:
        if key in _WINNERS:
            _WINNERS.move_to_end(key)
            return _WINNERS[key]
    return None


def _remember(key: tuple, winner: str) -> None:
    with _WINNERS_LOCK:
        _WINNERS[key] = winner
        _WINNERS.move_to_end(key)
        while len(_WINNERS) > MAX_WINNERS:
            _WINNERS.popitem(last=False)


def _put(losses, accs, start: int, lo, ac) -> None:
    losses[start : start + len(lo)] = lo
    if accs is not None:
        accs[start : start + len(lo)] = ac


def _offset(progress, done: int, total: int):
    if progress is None:
        return None
    return lambda d, _t: progress(done + d, total)


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


def _evaluate(model, loss_fn, data, dirs, coords, accuracy_fn, progress, method):
    """Check inputs, pick the path, evaluate every point; returns (losses, accs, info)."""
    if not isinstance(model, nn.Module):
        raise ValueError(f"model={type(model).__name__} must be a torch nn.Module")
    X, y = _data(data)
    center, dirs = _split_states(model, dirs)
    dtype = next(iter(center.values())).dtype if center else X.dtype
    X = X.to(dtype) if X.is_floating_point() else X  # float64 data into a float32 model
    moved_buffers = [k for k in center if k not in dict(model.named_parameters())]
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not allowed: must be one of {list(METHODS)}")
    start = time.perf_counter()
    race = key = used = None
    if method == "auto":  # a kind of model raced before runs its winner: no calibration
        key = _race_key(model, loss_fn, X, len(dirs), moved_buffers, accuracy_fn)
        used = _remembered(key)
        race = None if used is None else {"remembered": used}
    fast = None if used == "loop" else _method(method, model, moved_buffers)
    if fast is None:
        losses, accs = LoopSession(model, loss_fn, X, y, center, dirs, accuracy_fn).run(
            coords, progress
        )
        race = race if used == "loop" else None  # the fast path cannot take this model
        used = "loop"
    else:
        session = fast.session(loss_fn, X, y, center, dirs, accuracy_fn)
        if method == "batched" or used == "batched":
            losses, accs = session.run(coords, progress)
            used = "batched"
        else:
            loop = LoopSession(model, loss_fn, X, y, center, dirs, accuracy_fn)
            losses, accs, used, race = _race(session, loop, coords, progress)
            _remember(key, used)
    info = {
        "method": used,
        "seconds": time.perf_counter() - start,
        "n_data": int(X.shape[0]),
        "n_params": int(sum(p.numel() for p in model.parameters())),
    }
    if race is not None:
        info["race"] = race
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
    ``plane`` are this over a line or a grid; ``landscape.pipelines.slices`` calls it for every point.
    """
    coords = np.asarray(coords, dtype=np.float64).reshape(len(coords), len(directions))
    losses, accs, info = _evaluate(
        model, loss_fn, data, list(directions), coords, accuracy_fn, progress, method
    )
    return losses, None if accs is None else np.asarray(accs, dtype=np.float64), info
