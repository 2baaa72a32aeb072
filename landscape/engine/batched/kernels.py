"""The fast path's activations (``_Val``), what the planner fuses (``_Fusion``), and the
kernels every layer handler calls: oneDNN's fused linear/conv ops with F.* as the fallback.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.fx
import torch.nn.functional as F
from torch import Tensor, nn

MEMORY_CAP = 512 * 2**20  # bytes: most activation memory one chunk may allocate
ONEDNN_MACS = 2**21  # multiply-adds above which a matmul goes to oneDNN rather than MKL
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


def _only_user(node: torch.fx.Node) -> torch.fx.Node | None:
    return next(iter(node.users)) if len(node.users) == 1 else None


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
