"""The interpreter of the planned graph: one chunk of points at a time."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.fx
import torch.nn.functional as F
from torch import Tensor, nn

from landscape.engine.batched.graph import _last_uses, _plan
from landscape.engine.batched.kernels import (
    MEMORY_CAP,
    _bn_affine,
    _channels_last,
    _Fusion,
    _plain,
    _Val,
)
from landscape.engine.batched.layers import _FUNCTIONS, _METHODS, _MODULES
from landscape.engine.batched.points import _Points

IM2COL_FAN_IN = 32  # a convolution on the data with at most this fan-in runs as a matmul
BASIS_FAN_IN = 16  # combine precomputed first-layer products when fan_in >= this * (m + 1)


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
