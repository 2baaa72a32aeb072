"""Per-point losses and metrics, evaluated for a chunk of points at once where that is exact.

A surface needs ``loss_fn(pred, y)`` (and ``accuracy_fn(pred, y)``) for every point. The
fast path predicts K points together, ``preds`` of shape (K, N, ...); ``Pointwise.values``
turns them into K floats with one call when the function is one of these:

- torch's cross-entropy: an ``nn.CrossEntropyLoss`` with no class weights and reduction
  ``mean`` or ``sum`` (any ``ignore_index`` and ``label_smoothing``), or ``F.cross_entropy``
  itself. It runs as one K-dimensional cross-entropy over the view (K, C, N): torch's
  log-softmax over a last dimension of a few classes costs about as much per sample as a
  small network's whole forward pass (~50 ns), over a middle dimension several times less,
  and per point this is the floor under every method of computing a surface.
- any function carrying ``batched(preds, y) -> Tensor (K,)``: the library's ``accuracy``
  and the app's cross-entropy (``zoo_cross_entropy_batched``, set by
  ``training.make_loss_fn`` and by an own model's default loss).

Anything else is called per point, as before. The first chunk checks its first point's
batched value against the function itself, and a mismatch (a subclass or wrapper that
changes the meaning) sends the rest of the surface through the per-point call.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from landscape.core import losses

REL_TOL = 1e-5  # the batched value must match the per-point call to float32 rounding
ABS_TOL = 1e-6


def scalar(value, name: str) -> float:
    """``value`` as a float; ValueError naming ``name`` unless it holds exactly one number."""
    t = torch.as_tensor(value)
    if t.numel() != 1:
        raise ValueError(f"{name} returned shape {tuple(t.shape)}: must return a scalar")
    return float(t.item())


def accuracy(out: Tensor, y: Tensor) -> float:
    """Fraction correct: argmax of the logits, or logit > 0 for one output column.

    Counted on the device and divided on the host: exact, and no float64 on the device
    (Apple's mps has none)."""
    pred = (out.reshape(-1) > 0).long() if out.ndim == 1 or out.shape[1] == 1 else out.argmax(1)
    return int((pred == y.reshape(-1)).sum()) / pred.numel()


def _accuracy_batched(preds: Tensor, y: Tensor) -> Tensor:
    """``accuracy`` of K points: preds (K, N) or (K, N, C) -> (K,) float64 on the host."""
    if preds.ndim == 2 or preds.shape[2] == 1:
        pred = (preds.reshape(preds.shape[0], -1) > 0).long()
    else:
        pred = preds.argmax(2)
    return (pred == y.reshape(1, -1)).sum(1).cpu().double() / pred.shape[1]


accuracy.batched = _accuracy_batched


class _NoBatch(Exception):
    """These inputs are not ones the batched form takes: call per point."""


def _cross_entropy(loss_fn) -> dict | None:
    """The arguments of a torch cross-entropy that decomposes over points, else None."""
    if loss_fn is F.cross_entropy:
        return {"ignore_index": -100, "label_smoothing": 0.0, "reduction": "mean"}
    if (
        type(loss_fn) is nn.CrossEntropyLoss  # not a subclass: its forward may differ
        and loss_fn.weight is None
        and loss_fn.reduction in ("mean", "sum")
    ):
        return {
            "ignore_index": loss_fn.ignore_index,
            "label_smoothing": loss_fn.label_smoothing,
            "reduction": loss_fn.reduction,
        }
    return None


def cross_entropy_batched(
    ignore_index: int = -100, label_smoothing: float = 0.0, reduction: str = "mean"
) -> Callable[[Tensor, Tensor], Tensor]:
    """The ``batched`` form of a mean (or sum) cross-entropy over class indices:
    (preds (K, N, C), y (N,)) -> (K,), as one K-dimensional cross-entropy over (K, C, N)."""

    def many(preds: Tensor, y: Tensor) -> Tensor:
        if preds.ndim != 3 or y.ndim != 1 or y.is_floating_point():
            raise _NoBatch  # class probabilities or extra dimensions: per point
        k, n = preds.shape[:2]
        per = F.cross_entropy(
            preds.transpose(1, 2),
            y.expand(k, n),
            reduction="none",
            ignore_index=ignore_index,
            label_smoothing=label_smoothing,
        )  # (K, N); ignored targets give 0
        if reduction == "sum":
            return per.sum(1)
        return per.sum(1) / (y != ignore_index).sum()

    return many


def zoo_cross_entropy_batched(label_smoothing: float = 0.0) -> Callable[[Tensor, Tensor], Tensor]:
    """The ``batched`` form of the app's mean cross-entropy (``losses.cross_entropy_values``,
    accurate near zero loss): (preds (K, N, C), y (N,)) -> (K,)."""

    def many(preds: Tensor, y: Tensor) -> Tensor:
        if preds.ndim != 3 or y.ndim != 1 or y.is_floating_point():
            raise _NoBatch
        k, n = preds.shape[:2]
        # classes along the middle dimension of (K, C, N): see the module docstring
        per = losses.cross_entropy_values(preds.transpose(1, 2), y.expand(k, n), label_smoothing, 1)
        return per.mean(1)

    return many


def _batched(fn) -> Callable[[Tensor, Tensor], Tensor] | None:
    ce = _cross_entropy(fn)
    if ce is not None:
        return cross_entropy_batched(**ce)
    many = getattr(fn, "batched", None)
    return many if callable(many) else None


def _same(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)


class Pointwise:
    """``fn(pred, y)`` for many points: ``values(preds)`` -> float64 array (K,)."""

    def __init__(self, fn: Callable[[Tensor, Tensor], Tensor], y: Tensor, name: str) -> None:
        self.fn, self.y, self.name = fn, y, name
        self.many = _batched(fn)
        self.checked = False

    def values(self, preds: Tensor) -> np.ndarray:
        """One value per point of ``preds`` (K, N, ...), each ``fn(preds[k], y)``."""
        if self.many is not None:
            out = self._batched(preds)
            if out is not None:
                return out
        return np.array([scalar(self.fn(p, self.y), self.name) for p in preds], dtype=np.float64)

    def _batched(self, preds: Tensor) -> np.ndarray | None:
        try:
            out = torch.as_tensor(self.many(preds, self.y))
        except _NoBatch:
            return None
        except Exception:  # noqa: BLE001 - the per-point call raises the error the user knows
            self.many = None
            return None
        if tuple(out.shape) != (len(preds),):
            self.many = None
            return None
        out = out.cpu().double().numpy()  # float64 on the host: mps has none
        if not self.checked:
            if not _same(float(out[0]), scalar(self.fn(preds[0], self.y), self.name)):
                self.many = None  # the function is not what its type says: per point
                return None
            self.checked = True
        return out
