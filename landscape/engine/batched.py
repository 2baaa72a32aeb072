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

import functools
import math
import operator
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.fx
import torch.nn.functional as F
from torch import Tensor, nn

from landscape.core.pointwise import Pointwise

MEMORY_CAP = 512 * 2**20  # bytes: most activation memory one chunk may allocate
POINT_BYTES = 8 * 2**20  # bytes: a point with at least this much activation runs alone (K=1)
CHUNK_BYTES = 32 * 2**20  # bytes: target activation size of a chunk of smaller points
MAX_CHUNK = 16  # most grid points evaluated together
ONEDNN_MACS = 2**21  # multiply-adds above which a matmul goes to oneDNN rather than MKL
PROBE_ROWS = 64  # samples of the probe run that measures activation bytes per sample
IM2COL_FAN_IN = 32  # a convolution on the data with at most this fan-in runs as a matmul
BASIS_FAN_IN = 16  # combine precomputed first-layer products when fan_in >= this * (m + 1)

CL = torch.channels_last
_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d)  # the BatchNorm layers the handlers evaluate
_STATS = ("running_mean", "running_var")  # the buffers a ``states`` direction may move


class _Unsupported(Exception):
    """The model has a layer or operation this module cannot evaluate (use the loop)."""


@dataclass
class _Val:
    """One activation of the chunk being evaluated.

    shared: the tensor does not depend on the point (it comes from the data alone): ``t`` is
    ``(N, ...)``, cached across chunks and never modified in place. Otherwise ``t`` is
    ``(K*N, ...)`` with point k in rows ``k*N:(k+1)*N``.
    """

    t: Tensor
    shared: bool
    owned: bool = False  # a fresh tensor of this chunk that nothing else aliases
    hwc: tuple[int, int, int] | None = None  # (C, H, W): t is a channels_last map flat in HWC
    relu: bool = False  # a ReLU still to apply (deferred past the max-pool that reads it)


@dataclass(frozen=True)
class _Fusion:
    """What the planner folded into a Linear/Conv2d node."""

    bn: nn.Module | None = None  # the eval BatchNorm right after it, folded into its weights
    relu: bool = False  # the ReLU right after it (or after that BatchNorm), in its epilogue


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


# ----------------------------------------------------------------------------- graph


class _ThreadSafeTracer(torch.fx.Tracer):
    """fx's tracer, harmless to other threads.

    While `Tracer.trace` runs, fx patches `torch.nn.Module.__call__` and `__getattr__` for
    the whole process, so a model called from another thread (another session's training)
    would go through the tracer and fail. Calls from any thread but the tracing one go
    straight to the module, as if nothing were patched.
    """

    def __init__(self):
        super().__init__()
        self._owner = threading.get_ident()

    def call_module(self, m, forward, args, kwargs):
        if threading.get_ident() != self._owner:
            return forward(*args, **kwargs)
        return super().call_module(m, forward, args, kwargs)

    def getattr(self, attr, attr_val, parameter_proxy_cache):
        if threading.get_ident() != self._owner:
            return attr_val
        return super().getattr(attr, attr_val, parameter_proxy_cache)


def _symbolic_trace(model: nn.Module) -> torch.fx.GraphModule:
    tracer = _ThreadSafeTracer()
    graph = tracer.trace(model)
    return torch.fx.GraphModule(tracer.root, graph, model.__class__.__name__)


#: Traces of live models: model -> (its signature, the graph or why it is unsupported), so a
#: model's later surfaces skip the trace (a few ms, as much as a small surface's points).
#: Weak keys: an entry goes with its model (the graph holds the submodules, not the model).
_TRACES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_TRACES_LOCK = threading.Lock()


def _signature(model: nn.Module) -> tuple:
    """What a trace depends on: the module tree (names, objects, types) and every module's
    settings as its repr shows them, so a replaced layer or a changed setting traces again."""
    return str(model), tuple((n, id(m), type(m)) for n, m in model.named_modules())


def _traced(model: nn.Module) -> torch.fx.GraphModule | str:
    """``_trace(model)``, or the reason it is unsupported, remembered per live model."""
    if not isinstance(model, nn.Module):
        return f"model={type(model).__name__} is not an nn.Module"
    sig = _signature(model)
    with _TRACES_LOCK:
        hit = _TRACES.get(model)
    if hit is not None and hit[0] == sig:
        return hit[1]
    try:
        gm = _trace(model)
    except _Unsupported as e:
        gm = str(e)
    with _TRACES_LOCK:
        _TRACES[model] = (sig, gm)
    return gm


def _trace(model: nn.Module) -> torch.fx.GraphModule:
    """The model as an fx graph whose every node has a handler, else _Unsupported."""
    if not isinstance(model, nn.Module):
        raise _Unsupported(f"model={type(model).__name__} is not an nn.Module")
    try:
        gm = _symbolic_trace(model)
    except Exception as e:  # data-dependent control flow, unsupported Python, ...
        raise _Unsupported(f"torch.fx cannot trace it ({type(e).__name__}: {e})") from None
    modules = dict(gm.named_modules())
    if sum(node.op == "placeholder" for node in gm.graph.nodes) != 1:
        raise _Unsupported("forward must take exactly one input")
    for node in gm.graph.nodes:
        _check_node(node, modules)
    return gm


def _check_node(node: torch.fx.Node, modules: dict[str, nn.Module]) -> None:
    """Raise _Unsupported unless ``node`` is an operation the handlers below cover."""
    if node.op == "placeholder":
        return
    if node.op == "output":
        if not isinstance(node.args[0], torch.fx.Node):
            raise _Unsupported("the model must return a single tensor")
        return
    if node.op == "call_module":
        mod = modules[node.target]
        if type(mod) not in _MODULES:
            raise _Unsupported(f"layer {node.target!r} is a {type(mod).__name__}")
        _check_module(node.target, mod)
        n_inputs = 1
    elif node.op == "call_function" and node.target in _FUNCTIONS:
        n_inputs = 2 if node.target in _BINARY else 1
    elif node.op == "call_method" and node.target in _METHODS:
        n_inputs = 1
    else:
        raise _Unsupported(f"operation {node.op} {getattr(node.target, '__name__', node.target)}")
    inputs = [a for a in node.args if isinstance(a, torch.fx.Node)]
    if len(inputs) != n_inputs or tuple(node.args[:n_inputs]) != tuple(inputs):
        raise _Unsupported(f"operation {node.target} with arguments {node.args}")
    if any(isinstance(v, torch.fx.Node) for v in node.kwargs.values()):
        raise _Unsupported(f"operation {node.target} with tensor keyword arguments")
    if node.target in _BINARY and node.kwargs:
        raise _Unsupported(f"operation {node.target} with {dict(node.kwargs)}")
    if node.target in (torch.flatten, "flatten"):
        start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
        if not isinstance(start, int) or start < 1:
            raise _Unsupported(f"flatten(start_dim={start!r}) would mix the samples")


def _check_module(name: str, mod: nn.Module) -> None:
    """Module settings that the handlers do not cover."""
    if isinstance(mod, nn.Conv2d) and (mod.padding_mode != "zeros" or isinstance(mod.padding, str)):
        raise _Unsupported(f"{name}: padding={mod.padding!r}, padding_mode={mod.padding_mode!r}")
    if isinstance(mod, _BATCHNORMS) and mod.running_mean is None:
        raise _Unsupported(f"{name}: BatchNorm without running statistics")
    if isinstance(mod, nn.Flatten) and mod.start_dim < 1:
        raise _Unsupported(f"{name}: Flatten(start_dim={mod.start_dim}) would mix the samples")
    if getattr(mod, "return_indices", False):
        raise _Unsupported(f"{name}: return_indices=True")


def _plan(nodes, modules) -> tuple[dict[str, _Fusion], set[str]]:
    """Fuse Linear/Conv2d -> [BatchNorm] -> [ReLU] chains: {layer: _Fusion}, skipped nodes.

    Only chains where each intermediate value has a single reader: then nobody sees the
    unfused value, and the skipped nodes just pass their input on.
    """
    fusions, skipped = {}, set()
    for node in nodes:
        layer = modules.get(node.target) if node.op == "call_module" else None
        if type(layer) not in _NORM_AFTER:
            continue
        bn, relu, last = None, False, node
        nxt = _only_user(last)
        after = modules.get(nxt.target) if nxt is not None and nxt.op == "call_module" else None
        if type(after) is _NORM_AFTER[type(layer)] and after.num_features == layer.weight.shape[0]:
            bn, last = after, nxt
            skipped.add(nxt.name)
            nxt = _only_user(last)
        if nxt is not None and _is_relu(nxt, modules):
            relu = True
            skipped.add(nxt.name)
        fusions[node.name] = _Fusion(bn, relu)
    return fusions, skipped


_NORM_AFTER = {nn.Linear: nn.BatchNorm1d, nn.Conv2d: nn.BatchNorm2d}  # foldable pairs


def _only_user(node: torch.fx.Node) -> torch.fx.Node | None:
    return next(iter(node.users)) if len(node.users) == 1 else None


def _is_relu(node: torch.fx.Node, modules) -> bool:
    if node.op == "call_module":
        return type(modules[node.target]) is nn.ReLU
    return node.target in (torch.relu, F.relu, "relu")


def _last_uses(nodes) -> dict[str, list[str]]:
    """node name -> names of the values it reads last (freed right after it runs)."""
    last: dict[str, str] = {}
    for node in nodes:
        for a in node.all_input_nodes:
            last[a.name] = node.name
    out: dict[str, list[str]] = {}
    for value, reader in last.items():
        out.setdefault(reader, []).append(value)
    return out


# ----------------------------------------------------------------------------- parameters


class _Points:
    """Parameters of every point of the current chunk.

    All moved parameters are one flat vector: the chunk's values are
    ``center + coords @ D`` in a single addmm, (K, P), and each parameter is a view of its
    columns, (K, *shape). A parameter that no direction moves is the centre tensor itself,
    shared by all points.
    """

    def __init__(self, model: nn.Module, center, directions, dtype) -> None:
        self.center: dict[str, Tensor] = {}
        self.used: dict[str, list[int]] = {}  # moved parameter -> the directions that move it
        self.slices: dict[str, slice] = {}  # moved parameter -> its columns of the flat vector
        rows = []
        params = dict(model.named_parameters())
        for name in center:  # buffers: moved BatchNorm statistics (checked by the Session)
            if name not in params:
                params[name] = model.get_buffer(name)
        for name, p in params.items():
            if name not in center:
                raise ValueError(f"center has no entry {name!r}: it must hold every parameter")
            c = torch.as_tensor(center[name]).detach().to(dtype)
            if c.shape != p.shape:
                raise ValueError(
                    f"center[{name!r}] has shape {tuple(c.shape)}: must be {tuple(p.shape)}"
                )
            self.center[name] = c
            d, used = _direction_rows(name, p, directions, dtype)
            if used:
                start = sum(r.shape[1] for r in rows)
                self.slices[name], self.used[name] = slice(start, start + c.numel()), used
                rows.append(d)
        moved = list(self.slices)
        self.flat_center = torch.cat(
            [self.center[n].reshape(-1) for n in moved] or [torch.zeros(0)]
        )
        self.flat_dirs = (
            torch.cat(rows, 1) if rows else torch.zeros(len(directions), 0, dtype=dtype)
        )
        self.coords = torch.zeros(1, len(directions), dtype=dtype)  # (K, m) of this chunk
        self.flat = self.flat_center[None]  # (K, P) of this chunk

    def start_chunk(self, coords: Tensor) -> None:
        self.coords = coords
        self.flat = torch.addmm(self.flat_center[None], coords, self.flat_dirs)  # (K, P)

    def moved(self, name: str) -> bool:
        return name in self.slices

    def get(self, name: str) -> Tensor:
        """(K, *shape) when some direction moves ``name``, else the shared centre tensor."""
        if name not in self.slices:
            return self.center[name]
        return self.flat[:, self.slices[name]].view(-1, *self.center[name].shape)

    def term(self, name: str, j: int | None) -> Tensor:
        """The centre (j=None) or direction j's entries of one parameter."""
        c = self.center[name]
        if j is None:
            return c
        if name not in self.slices:
            return torch.zeros_like(c)
        return self.flat_dirs[j, self.slices[name]].view(c.shape)


def _direction_rows(name, p, directions, dtype) -> tuple[Tensor, list[int]]:
    """The stacked directions (m, numel) of one parameter and the indices of non-zero ones."""
    rows, used = [], []
    for j, d in enumerate(directions):
        t = d.get(name)
        if t is None:
            rows.append(torch.zeros(p.numel(), dtype=dtype))
            continue
        t = torch.as_tensor(t).detach().to(dtype)
        if t.shape != p.shape:
            raise ValueError(
                f"directions[{j}][{name!r}] has shape {tuple(t.shape)}: must be {tuple(p.shape)}"
            )
        rows.append(t.reshape(-1))
        if bool(torch.any(t != 0)):
            used.append(j)
    return torch.stack(rows) if rows else torch.zeros(0, p.numel(), dtype=dtype), used


# ----------------------------------------------------------------------------- oneDNN kernels


@functools.cache
def _onednn_ok() -> bool:
    """True when oneDNN's fused linear/conv ops exist here and agree with F.linear/F.conv2d."""
    ops = getattr(torch.ops, "mkldnn", None)
    try:
        if not torch.backends.mkldnn.is_available() or ops is None:
            return False
        g = torch.Generator().manual_seed(0)
        x, w, b = (torch.randn(s, generator=g) for s in ((5, 3), (4, 3), (4,)))
        xc = torch.randn(2, 3, 5, 5, generator=g).contiguous(memory_format=CL)
        wc = torch.randn(4, 3, 3, 3, generator=g).contiguous(memory_format=CL)
        lin = ops._linear_pointwise(x, w, b, "relu", [], "")
        conv = ops._convolution_pointwise(xc, wc, b, [1, 1], [1, 1], [1, 1], 1, "relu", [], "")
        return torch.allclose(lin, F.linear(x, w, b).relu(), atol=1e-5) and torch.allclose(
            conv, F.conv2d(xc, wc, b, 1, 1).relu(), atol=1e-5
        )
    except Exception:  # an older or newer torch without these private ops: use F.*
        return False


def _dense(x: Tensor, w: Tensor, b: Tensor | None, relu: bool) -> Tensor:
    """x W^T + b (then ReLU): one fused oneDNN call for a big float32 product, else F.linear.

    oneDNN multiplies about twice as fast as MKL on this CPU but costs ~15 us more per call
    (it builds its kernel each time), so small products stay with F.linear.
    """
    big = x.numel() * w.shape[0] >= ONEDNN_MACS
    if big and x.dtype == torch.float32 and _onednn_ok():
        attr = "relu" if relu else "none"
        return torch.ops.mkldnn._linear_pointwise(x.contiguous(), w.contiguous(), b, attr, [], "")
    y = F.linear(x, w, b)
    return y.relu_() if relu else y


def _conv(x: Tensor, w: Tensor, b: Tensor | None, mod: nn.Conv2d, relu: bool) -> Tensor:
    """Conv2d (then ReLU), channels_last: one fused oneDNN call for float32, else F.conv2d."""
    w = w.contiguous(memory_format=CL)
    if x.dtype == torch.float32 and _onednn_ok():
        attr = "relu" if relu else "none"
        geometry = (list(mod.padding), list(mod.stride), list(mod.dilation), mod.groups)
        return torch.ops.mkldnn._convolution_pointwise(x, w, b, *geometry, attr, [], "")
    y = F.conv2d(x, w, b, mod.stride, mod.padding, mod.dilation, mod.groups)
    return y.relu_() if relu else y


# ----------------------------------------------------------------------------- engine


class _Engine:
    """Interprets the planned graph for one chunk of points at a time."""

    def __init__(self, model: nn.Module, gm: torch.fx.GraphModule, points: _Points) -> None:
        self.points = points
        self.modules = dict(gm.named_modules())
        self.pnames = {id(p): n for n, p in model.named_parameters()}
        self.pnames.update(
            {id(b): n for n, b in model.named_buffers() if n in points.center}
        )  # moved running statistics, read by params() like parameters
        self.nodes = list(gm.graph.nodes)
        self.fusions, self.skipped = _plan(self.nodes, self.modules)
        self.last_use = _last_uses(self.nodes)
        self.cache: dict[tuple[int, str], object] = {}  # (slice, node) -> shared _Val or basis
        self.K, self.slice, self.fresh_bytes = 1, 0, 0
        self.buffers: dict[str, Tensor] = {}  # node -> its output tensor, reused chunk to chunk
        self.reuse = False  # whether outputs may go to self.buffers (one data slice)

    def probe(self, coords: Tensor, X: Tensor) -> float:
        """Bytes of point-dependent activations per sample, from one point on a few rows."""
        self.predict(coords, [X], slice_ids=[-1])
        self.cache = {k: v for k, v in self.cache.items() if k[0] != -1}
        return self.fresh_bytes / X.shape[0]

    def predict(self, coords: Tensor, slices: list[Tensor], slice_ids=None) -> Tensor:
        """Model outputs at the chunk's K points: (K, N, ...), data slices concatenated."""
        self.points.start_chunk(coords)
        self.K, self.fresh_bytes = coords.shape[0], 0
        self.reuse = len(slices) == 1 and slice_ids is None
        outs = []
        for i, X in zip(slice_ids or range(len(slices)), slices):
            self.slice = i
            outs.append(self.per_point(_plain(self._graph(X))))
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)

    def _graph(self, X: Tensor) -> _Val:
        env: dict[str, _Val] = {}
        for node in self.nodes:
            if node.op == "output":
                return env[node.args[0].name]
            key = (self.slice, node.name)
            val = self.cache.get(key)
            if node.name in self.skipped:  # folded into the layer before it: pass its value on
                val = env[node.args[0].name]
            elif val is None:
                val = self._node(node, X, env)
                if val.shared:
                    self.cache[key] = val
                else:
                    self.fresh_bytes += val.t.numel() * val.t.element_size()
            env[node.name] = val
            for dead in self.last_use.get(node.name, ()):
                del env[dead]
        raise AssertionError("the graph has no output node")

    def _node(self, node: torch.fx.Node, X: Tensor, env: dict[str, _Val]) -> _Val:
        if node.op == "placeholder":
            return _Val(_channels_last(X) if X.ndim == 4 else X, shared=True)
        if node.op == "call_module":
            mod = self.modules[node.target]
            handler, args, kwargs = _MODULES[type(mod)], [mod, *node.args], {}
        else:
            table = _METHODS if node.op == "call_method" else _FUNCTIONS
            handler, args, kwargs = table[node.target], list(node.args), dict(node.kwargs)
        # a deferred ReLU or an HWC flatten reaches only the handlers that can take it
        lazy_relu, hwc = getattr(handler, "lazy_relu", False), getattr(handler, "hwc", False)
        args = [
            _plain(env[a.name], relu=not lazy_relu, hwc=not hwc)
            if isinstance(a, torch.fx.Node)
            else a
            for a in args
        ]
        return handler(self, node, *args, **kwargs)

    # --- helpers for the handlers

    def exclusive(self, node: torch.fx.Node, v: _Val, i: int = 0) -> bool:
        """May ``node`` overwrite its i-th input ``v`` in place? Yes if fresh and read only here."""
        return v.owned and not v.shared and len(node.args[i].users) == 1

    def params(self, mod: nn.Module) -> tuple[dict[str, Tensor], bool]:
        """The module's own parameters for the chunk, and whether any of them moves."""
        out, moved = {}, False
        tensors = [*mod.named_parameters(recurse=False), *mod.named_buffers(recurse=False)]
        for attr, p in tensors:
            name = self.pnames.get(id(p))
            if name is None:  # a buffer no direction moves: the handlers read the module's
                continue
            out[attr] = self.points.get(name)
            moved = moved or self.points.moved(name)
        return out, moved

    def weights(self, mod, bn) -> tuple[Tensor, Tensor | None, bool]:
        """(w, b, moved) of a Linear/Conv2d with its BatchNorm folded in.

        Moved: w is (K, out, ...) and b (K, out) or None; else the shared (out, ...), (out,).
        Folding: BN(y) = y * s + t with s = gamma / sqrt(var + eps), t = beta - mean * s,
        so BN(x W^T + b) = x (s W)^T + (b s + t): the same numbers to float32 rounding.
        """
        p, moved = self.params(mod)
        w, b = p["weight"], p.get("bias")
        if bn is None:
            s = t = None
        else:
            q, bn_moved = self.params(bn)
            s, t = _bn_affine(bn, q)
            moved = moved or bn_moved
        if moved:  # everything per point, (K, ...)
            w = w if w.ndim > mod.weight.ndim else w.expand(self.K, *w.shape)
            b = None if b is None else b if b.ndim == 2 else b.expand(self.K, -1)
            if s is not None:
                s, t = s.expand(self.K, -1), t.expand(self.K, -1)
        if s is not None:
            w = w * s.reshape(*s.shape, *[1] * (mod.weight.ndim - 1))
            b = t if b is None else torch.addcmul(t, b, s)
        return w, b, moved

    def combined(self, node, mod, fan_in: int, layer: Callable, bn) -> Tensor | None:
        """First-layer outputs of the chunk, ``P0 + sum_j c_kj P_j``; None if not cheaper.

        ``layer(params)`` applies the bare layer to the shared input. P0 uses the centre
        weights and bias, P_j direction j's entries of both, so the sum is exact linear
        algebra. The products are computed once per call and reused by every chunk.
        Returns (K, *layer output shape), before any folded BatchNorm or ReLU.
        """
        names = {a: self.pnames[id(p)] for a, p in mod.named_parameters(recurse=False)}
        used = sorted({j for n in names.values() for j in self.points.used.get(n, [])})
        if fan_in < BASIS_FAN_IN * (len(used) + 1) or (bn is not None and self.params(bn)[1]):
            return None
        key = (self.slice, node.name + ":basis")
        if key not in self.cache:
            terms = [
                layer({a: self.points.term(n, j) for a, n in names.items()}) for j in [None, *used]
            ]
            self.cache[key] = torch.stack(terms)  # (1 + u, *out)
        basis = self.cache[key]
        coords = self.points.coords
        coef = torch.cat([torch.ones_like(coords[:, :1]), coords[:, used]], dim=1)  # (K, 1 + u)
        return (coef @ basis.view(basis.shape[0], -1)).view(-1, *basis.shape[1:])

    def im2col(self, node, mod: nn.Conv2d, x: _Val) -> tuple[Tensor, tuple[int, int]] | None:
        """The shared input of a narrow convolution unfolded once: (N*Ho*Wo, fan_in), (Ho, Wo).

        oneDNN's direct kernels are slow for a small fan-in (a 3x3 conv of one channel: 9),
        measured 1.8 ms per point on the digits vs 0.3 ms as one matmul on the unfolded input,
        whose (N, Ho, Wo, out) result is already channels_last. None if not worth it.
        """
        fan_in = mod.in_channels * math.prod(mod.kernel_size)
        N, _, H, W = x.t.shape
        Ho, Wo = (
            (size + 2 * p - d * (k - 1) - 1) // s + 1
            for size, p, d, k, s in zip(
                (H, W), mod.padding, mod.dilation, mod.kernel_size, mod.stride
            )
        )
        too_big = N * Ho * Wo * fan_in * x.t.element_size() > MEMORY_CAP // 4
        if mod.groups != 1 or fan_in > IM2COL_FAN_IN or too_big:
            return None
        key = (self.slice, node.name + ":im2col")
        if key not in self.cache:
            cols = F.unfold(x.t, mod.kernel_size, mod.dilation, mod.padding, mod.stride)
            self.cache[key] = cols.transpose(1, 2).reshape(-1, fan_in).contiguous(), (Ho, Wo)
        return self.cache[key]

    def epilogue(self, fusion: _Fusion, y: Tensor) -> Tensor:
        """Folded BN and fused ReLU on a combined output whose channels are the last dim."""
        if fusion.bn is not None:
            s, t = _bn_affine(fusion.bn, self.params(fusion.bn)[0])
            y = torch.addcmul(t, y, s)
        return y.relu_() if fusion.relu else y

    def buffer(self, node, shape: tuple[int, ...], dtype) -> Tensor | None:
        """The node's output tensor of the previous chunk when it has this shape, else a new one.

        A chunk's outputs are read (the loss) before the next chunk runs, so a node can write
        into the same memory every chunk: a fresh multi-MB tensor costs page faults that were
        measured to take longer than the matmul writing it. None with several data slices
        (their outputs are concatenated at the end, so each would need its own).
        """
        if not self.reuse:
            return None
        buf = self.buffers.get(node.name)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = self.buffers[node.name] = torch.empty(shape, dtype=dtype)
        return buf

    def per_point(self, v: _Val) -> Tensor:
        """(K, N, ...) view of an activation (a broadcast view when it is shared)."""
        if v.shared:
            return v.t.expand(self.K, *v.t.shape)
        return v.t.reshape(self.K, -1, *v.t.shape[1:])

    def stack(self, t: Tensor) -> _Val:
        """A (K, N, ...) point-dependent tensor as the chunk's (K*N, ...) activation."""
        t = t.reshape(-1, *t.shape[2:])
        return _Val(_channels_last(t) if t.ndim == 4 else t, shared=False, owned=True)


def _channels_last(t: Tensor) -> Tensor:
    """(B, C, H, W) stored as (B, H, W, C), with exactly those strides.

    ``t.contiguous(memory_format=channels_last)`` keeps NCHW strides when C == 1 (both layouts
    hold the same bytes), and oneDNN then returns its output in NCHW, which the next
    convolution has to copy back: the explicit strides avoid that.
    """
    B, C, H, W = t.shape
    strides = (H * W * C, 1, W * C, C)
    if t.stride() == strides:
        return t
    return torch.empty_strided(t.shape, strides, dtype=t.dtype).copy_(t)


def _bn_affine(bn: nn.Module, q: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """Eval BatchNorm as y * s + t; s, t are (C,) or, with moved gamma/beta/statistics, (K, C)."""
    s = torch.rsqrt(q.get("running_var", bn.running_var) + bn.eps)
    if "weight" in q:
        s = s * q["weight"]
    t = -q.get("running_mean", bn.running_mean) * s
    if "bias" in q:
        t = t + q["bias"]
    return s, t


def _plain(v: _Val, relu: bool = True, hwc: bool = True) -> _Val:
    """The value in the model's own form: a deferred ReLU applied, an HWC flatten undone."""
    t = v.t
    if relu and v.relu:
        t = t.relu()
    if hwc and v.hwc is not None:
        C, H, W = v.hwc
        t = t.reshape(-1, H, W, C).permute(0, 3, 1, 2).reshape(t.shape[0], -1)
    if t is v.t:
        return v
    keep_relu = v.relu and not relu
    return _Val(t, v.shared, owned=not v.shared, hwc=None if hwc else v.hwc, relu=keep_relu)


def _fresh(t: Tensor, like: _Val, hwc=None) -> _Val:
    """A newly computed tensor: shared iff its input was, owned (writable) otherwise."""
    return _Val(t, like.shared, owned=not like.shared, hwc=hwc)


# ----------------------------------------------------------------------------- layers


def _hwc_columns(w: Tensor, hwc) -> Tensor:
    """Permute Linear weight columns from (C, H, W) order to (H, W, C) order (if needed)."""
    if hwc is None:
        return w
    return w.unflatten(-1, hwc).movedim(-3, -1).flatten(-3)


def _linear(e: _Engine, node, mod: nn.Linear, x: _Val) -> _Val:
    """y = x W^T + b per point, with the planned BatchNorm folded in and ReLU fused."""
    fusion = e.fusions[node.name]
    if fusion.bn is None or x.t.ndim == 2:
        return _linear_fused(e, node, mod, x, fusion)
    # BatchNorm1d over the middle dim of (N, L, out): it cannot fold, run the steps one by one
    y = _batchnorm(e, node, fusion.bn, _linear_fused(e, node, mod, x, _Fusion()))
    return _Val(y.t.relu(), y.shared, owned=not y.shared) if fusion.relu else y


_linear.hwc = True


def _linear_fused(e: _Engine, node, mod: nn.Linear, x: _Val, fusion: _Fusion) -> _Val:
    """oneDNN per point for big points, one bmm per chunk for small ones, or the basis."""
    if x.shared and any(e.points.moved(e.pnames[id(p)]) for p in mod.parameters()):

        def layer(q):  # the bare layer on the shared input, with parameters q
            return F.linear(x.t, _hwc_columns(q["weight"], x.hwc), q.get("bias"))

        out = e.combined(node, mod, mod.in_features, layer, fusion.bn)  # (K, N, out)
        if out is not None:
            return e.stack(e.epilogue(fusion, out))
    w, b, moved = e.weights(mod, fusion.bn)
    w, relu = _hwc_columns(w, x.hwc), fusion.relu
    if not moved:
        return _fresh(_dense(x.t, w, b, relu), x)
    if e.K == 1:
        return _Val(_dense(x.t, w[0], None if b is None else b[0], relu), False, owned=True)
    xs = e.per_point(x)  # (K, N, ..., in)
    x3 = xs.reshape(e.K, -1, xs.shape[-1])  # (K, N*..., in)
    wt = w.transpose(1, 2)  # (K, in, out)
    out = e.buffer(node, (e.K, x3.shape[1], wt.shape[2]), x3.dtype)
    if b is None:
        y = torch.bmm(x3, wt, out=out)
    else:
        y = torch.baddbmm(b.unsqueeze(1), x3, wt, out=out)
    y = y.view(*xs.shape[:-1], -1)  # (K, N, ..., out)
    return e.stack(y.relu_() if relu else y)


def _conv2d(e: _Engine, node, mod: nn.Conv2d, x: _Val) -> _Val:
    """2-D convolution (BN folded, ReLU fused), channels_last, one oneDNN call per point."""
    fusion = e.fusions[node.name]
    if x.shared and any(e.points.moved(e.pnames[id(p)]) for p in mod.parameters()):
        fan_in = mod.in_channels // mod.groups * math.prod(mod.kernel_size)

        def layer(q):  # the bare convolution of the shared input, (N, H, W, C)
            return _conv(x.t, q["weight"], q.get("bias"), mod, False).permute(0, 2, 3, 1)

        out = e.combined(node, mod, fan_in, layer, fusion.bn)  # (K, N, H, W, C)
        if out is not None:
            y = e.epilogue(fusion, out)
            return _Val(y.flatten(0, 1).permute(0, 3, 1, 2), shared=False, owned=True)
    w, b, moved = e.weights(mod, fusion.bn)
    relu = fusion.relu
    if not moved:
        return _fresh(_conv(x.t, w, b, mod, relu), x)
    unfolded = e.im2col(node, mod, x) if x.shared else None
    if unfolded is not None:  # each point is one matmul whose output is channels_last
        cols, (Ho, Wo) = unfolded  # (N*Ho*Wo, fan_in)
        w2 = w.flatten(2)  # (K, out, fan_in)
        outs = [_dense(cols, w2[k], None if b is None else b[k], relu) for k in range(e.K)]
        y = torch.stack(outs) if e.K > 1 else outs[0][None]  # (K, N*Ho*Wo, out)
        return _Val(y.view(-1, Ho, Wo, w.shape[1]).permute(0, 3, 1, 2), shared=False, owned=True)
    xs = e.per_point(x)
    outs = [_conv(xs[k], w[k], None if b is None else b[k], mod, relu) for k in range(e.K)]
    return _Val(outs[0] if e.K == 1 else torch.cat(outs), shared=False, owned=True)


def _batchnorm(e: _Engine, node, mod, x: _Val) -> _Val:
    """Eval-mode BatchNorm (running statistics) not folded into a layer before it."""
    q, moved = e.params(mod)
    if not moved:
        w, b = q.get("weight"), q.get("bias")
        mean, var = q.get("running_mean", mod.running_mean), q.get("running_var", mod.running_var)
        return _fresh(F.batch_norm(x.t, mean, var, w, b, False, 0.0, mod.eps), x)
    s, t = _bn_affine(mod, q)  # (K, C) each
    shape = (e.K, 1, s.shape[-1]) + (1,) * (x.t.ndim - 2)  # (K, 1, C, 1, 1) for images
    s, t = s.expand(e.K, -1).reshape(shape), t.expand(e.K, -1).reshape(shape)
    return e.stack(torch.addcmul(t, e.per_point(x), s))


def _activation(fn: Callable, inplace: Callable | None = None) -> Callable:
    """Handler for an elementwise activation: in place when the input is not read elsewhere."""

    def handler(e: _Engine, node, mod, x: _Val) -> _Val:
        if inplace is not None and e.exclusive(node, x):
            return _Val(inplace(x.t, mod), shared=False, owned=True, hwc=x.hwc)
        return _fresh(fn(x.t, mod), x, hwc=x.hwc)

    handler.hwc = True
    return handler


_relu_act = _activation(lambda t, m: t.relu(), lambda t, m: t.relu_())


def _relu(e: _Engine, node, mod, x: _Val) -> _Val:
    """ReLU; deferred past the max-pool that is its only reader (max commutes with ReLU)."""
    user = _only_user(node)
    if user is not None and _is_maxpool(e, user) and x.t.ndim == 4:
        return _Val(x.t, x.shared, x.owned, relu=True)
    return _relu_act(e, node, mod, x)


_relu.hwc = True


def _is_maxpool(e: _Engine, node: torch.fx.Node) -> bool:
    return node.op == "call_module" and type(e.modules[node.target]) is nn.MaxPool2d


def _maxpool(e: _Engine, node, mod: nn.MaxPool2d, x: _Val) -> _Val:
    """Max-pool; a 2x2 stride-2 pool of a channels_last map is two elementwise maxima."""
    t = x.t
    if _is_pair_pool(mod, t):
        B, C, H, W = t.shape
        v = t.permute(0, 2, 3, 1).view(B, H // 2, 2, W // 2, 2, C)
        rows = torch.maximum(v[:, :, 0], v[:, :, 1])  # (B, H/2, W/2, 2, C)
        out = torch.maximum(rows[:, :, :, 0], rows[:, :, :, 1]).permute(0, 3, 1, 2)
    else:
        out = F.max_pool2d(t, mod.kernel_size, mod.stride, mod.padding, mod.dilation, mod.ceil_mode)
    if x.relu:  # the deferred ReLU: relu(max(S)) == max(relu(S)), on 4x fewer values
        out = out.relu_()
    return _fresh(out, x)


_maxpool.lazy_relu = True


def _is_pair_pool(mod: nn.MaxPool2d, t: Tensor) -> bool:
    def pair(v):
        return tuple(v) if isinstance(v, (tuple, list)) else (v, v)

    return (
        pair(mod.kernel_size) == (2, 2)
        and pair(mod.stride or mod.kernel_size) == (2, 2)
        and pair(mod.padding) == (0, 0)
        and pair(mod.dilation) == (1, 1)
        and t.ndim == 4
        and t.shape[2] % 2 == 0
        and t.shape[3] % 2 == 0
        and t.is_contiguous(memory_format=CL)
    )


def _avgpool(e: _Engine, node, mod, x: _Val) -> _Val:
    if isinstance(mod, nn.AdaptiveAvgPool2d):
        return _fresh(F.adaptive_avg_pool2d(x.t, mod.output_size), x)
    args = (mod.kernel_size, mod.stride, mod.padding, mod.ceil_mode, mod.count_include_pad)
    return _fresh(F.avg_pool2d(x.t, *args, mod.divisor_override), x)


def _flatten_to(x: _Val, start_dim: int, end_dim: int) -> _Val:
    """Flatten the feature dims; a channels_last map becomes a free (H, W, C)-ordered view."""
    t = x.t
    if (start_dim % t.ndim, end_dim % t.ndim) != (1, t.ndim - 1):
        return _Val(t.flatten(start_dim, end_dim), x.shared)
    B, rest = t.shape[0], t.shape[1:]
    if t.ndim == 4 and rest[0] > 1 and rest[1] * rest[2] > 1 and t.is_contiguous(memory_format=CL):
        return _Val(t.permute(0, 2, 3, 1).reshape(B, -1), x.shared, hwc=tuple(rest))
    return _Val(t.reshape(B, -1), x.shared)


def _flatten(e: _Engine, node, mod: nn.Flatten, x: _Val) -> _Val:
    return _flatten_to(x, mod.start_dim, mod.end_dim)


def _fn_flatten(e: _Engine, node, x: _Val, start_dim: int = 0, end_dim: int = -1) -> _Val:
    return _flatten_to(x, start_dim, end_dim)


def _identity(e: _Engine, node, mod, x: _Val) -> _Val:
    """Dropout in eval mode, and Identity: the input itself (an alias: not owned)."""
    return _Val(x.t, x.shared, owned=False, hwc=x.hwc)


_identity.hwc = True


def _add(e: _Engine, node, a: _Val, b: _Val) -> _Val:
    """a + b (a residual connection); a shared operand broadcasts over the points.

    In place into an operand that nothing else reads: a fresh multi-MB result would cost
    more in page faults than the addition itself (measured on the residual CNN).
    """
    if a.shared == b.shared:
        for i, v, other in ((0, a, b), (1, b, a)):
            if e.exclusive(node, v, i) and v.t.shape == other.t.shape:
                return _Val(v.t.add_(other.t), shared=False, owned=True)
        return _fresh(a.t + b.t, a)
    return e.stack(e.per_point(a) + e.per_point(b))


def _fn_activation(fn: Callable) -> Callable:
    """Handler for a functional activation: torch.relu(x), F.gelu(x, approximate=...), ..."""

    def handler(e: _Engine, node, x: _Val, *args, **kwargs) -> _Val:
        kwargs.pop("inplace", None)
        return _fresh(fn(x.t, *args, **kwargs), x, hwc=x.hwc)

    handler.hwc = True
    return handler


_MODULES: dict[type, Callable] = {
    nn.Linear: _linear,
    nn.Conv2d: _conv2d,
    nn.BatchNorm1d: _batchnorm,
    nn.BatchNorm2d: _batchnorm,
    nn.ReLU: _relu,
    nn.LeakyReLU: _activation(
        lambda t, m: F.leaky_relu(t, m.negative_slope),
        lambda t, m: F.leaky_relu_(t, m.negative_slope),
    ),
    nn.Tanh: _activation(lambda t, m: t.tanh(), lambda t, m: t.tanh_()),
    nn.Sigmoid: _activation(lambda t, m: t.sigmoid(), lambda t, m: t.sigmoid_()),
    nn.GELU: _activation(lambda t, m: F.gelu(t, approximate=m.approximate)),
    nn.SiLU: _activation(lambda t, m: F.silu(t), lambda t, m: F.silu(t, inplace=True)),
    nn.ELU: _activation(lambda t, m: F.elu(t, m.alpha), lambda t, m: F.elu_(t, m.alpha)),
    nn.MaxPool2d: _maxpool,
    nn.AvgPool2d: _avgpool,
    nn.AdaptiveAvgPool2d: _avgpool,
    nn.Flatten: _flatten,
    nn.Identity: _identity,
    nn.Dropout: _identity,
    nn.Dropout1d: _identity,
    nn.Dropout2d: _identity,
    nn.AlphaDropout: _identity,
}

_FUNCTIONS: dict[Callable, Callable] = {
    operator.add: _add,
    torch.add: _add,
    torch.relu: _fn_activation(torch.relu),
    F.relu: _fn_activation(F.relu),
    torch.tanh: _fn_activation(torch.tanh),
    torch.sigmoid: _fn_activation(torch.sigmoid),
    F.gelu: _fn_activation(F.gelu),
    F.silu: _fn_activation(F.silu),
    torch.flatten: _fn_flatten,
}
_BINARY = (operator.add, torch.add)

_METHODS: dict[str, Callable] = {
    "relu": _fn_activation(torch.relu),
    "tanh": _fn_activation(torch.tanh),
    "sigmoid": _fn_activation(torch.sigmoid),
    "flatten": _fn_flatten,
}
