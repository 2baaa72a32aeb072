"""Layer handlers of the fast path: one function per supported module or operation, each
evaluating a chunk of points (``_Val`` in, ``_Val`` out) with the helpers of the engine ``e``
(``landscape.engine.batched.engine._Engine``) that calls it, and the check that a traced node
is one of them.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable

import torch
import torch.fx
import torch.nn.functional as F
from torch import Tensor, nn

from landscape.engine.batched.kernels import (
    _BATCHNORMS,
    CL,
    _bn_affine,
    _conv,
    _dense,
    _fresh,
    _Fusion,
    _only_user,
    _Unsupported,
    _Val,
)

# ----------------------------------------------------------------------------- layers


def _hwc_columns(w: Tensor, hwc) -> Tensor:
    """Permute Linear weight columns from (C, H, W) order to (H, W, C) order (if needed)."""
    if hwc is None:
        return w
    return w.unflatten(-1, hwc).movedim(-3, -1).flatten(-3)


def _linear(e, node, mod: nn.Linear, x: _Val) -> _Val:
    """y = x W^T + b per point, with the planned BatchNorm folded in and ReLU fused."""
    fusion = e.fusions[node.name]
    if fusion.bn is None or x.t.ndim == 2:
        return _linear_fused(e, node, mod, x, fusion)
    # BatchNorm1d over the middle dim of (N, L, out): it cannot fold, run the steps one by one
    y = _batchnorm(e, node, fusion.bn, _linear_fused(e, node, mod, x, _Fusion()))
    return _Val(y.t.relu(), y.shared, owned=not y.shared) if fusion.relu else y


_linear.hwc = True


def _linear_fused(e, node, mod: nn.Linear, x: _Val, fusion: _Fusion) -> _Val:
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


def _conv2d(e, node, mod: nn.Conv2d, x: _Val) -> _Val:
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


def _batchnorm(e, node, mod, x: _Val) -> _Val:
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

    def handler(e, node, mod, x: _Val) -> _Val:
        if inplace is not None and e.exclusive(node, x):
            return _Val(inplace(x.t, mod), shared=False, owned=True, hwc=x.hwc)
        return _fresh(fn(x.t, mod), x, hwc=x.hwc)

    handler.hwc = True
    return handler


_relu_act = _activation(lambda t, m: t.relu(), lambda t, m: t.relu_())


def _relu(e, node, mod, x: _Val) -> _Val:
    """ReLU; deferred past the max-pool that is its only reader (max commutes with ReLU)."""
    user = _only_user(node)
    if user is not None and _is_maxpool(e, user) and x.t.ndim == 4:
        return _Val(x.t, x.shared, x.owned, relu=True)
    return _relu_act(e, node, mod, x)


_relu.hwc = True


def _is_maxpool(e, node: torch.fx.Node) -> bool:
    return node.op == "call_module" and type(e.modules[node.target]) is nn.MaxPool2d


def _maxpool(e, node, mod: nn.MaxPool2d, x: _Val) -> _Val:
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


def _avgpool(e, node, mod, x: _Val) -> _Val:
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


def _flatten(e, node, mod: nn.Flatten, x: _Val) -> _Val:
    return _flatten_to(x, mod.start_dim, mod.end_dim)


def _fn_flatten(e, node, x: _Val, start_dim: int = 0, end_dim: int = -1) -> _Val:
    return _flatten_to(x, start_dim, end_dim)


def _identity(e, node, mod, x: _Val) -> _Val:
    """Dropout in eval mode, and Identity: the input itself (an alias: not owned)."""
    return _Val(x.t, x.shared, owned=False, hwc=x.hwc)


_identity.hwc = True


def _add(e, node, a: _Val, b: _Val) -> _Val:
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

    def handler(e, node, x: _Val, *args, **kwargs) -> _Val:
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
