"""The loss of a user's model: a name of the loss zoo or ``MODULE:FUNCTION`` (``fn(output,
y)`` -> the batch mean); default cross-entropy for integer targets, MSE for float targets.
A ``subject.Loss``: the batch mean, then the zoo's final transform (rmse's square root) on the
exact mean over the whole set.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from landscape.core import losses, pointwise
from landscape.core.pointwise import accuracy
from landscape.engine.own.loading import import_object
from landscape.engine.subject import Loss

# Targets the zoo's non-regression losses adapt: binary ones take probabilities/logits in
# one column, these two take a probability target.
_PROB_INPUT = ("bce",)
_PROB_TARGET = ("kl_div",)


def _flat_pred(out: Tensor, y: Tensor, name: str) -> Tensor:
    """One prediction per sample: (N,) from (N,) or (N, 1)."""
    if out.ndim == 2 and out.shape[1] == 1:
        out = out[:, 0]
    if out.shape != y.shape:
        raise ValueError(
            f"--loss {name!r}: the model gives outputs of shape {tuple(out.shape)} for targets "
            f"of shape {tuple(y.shape)}: they must match (or outputs (N, 1) for targets (N,))"
        )
    return out


def make_loss(spec: str | None, y_example: Tensor, params: dict | None = None) -> Loss:
    """The loss ``--loss`` names for targets like ``y_example`` (None: CE or MSE by dtype)."""
    integer = not torch.is_floating_point(y_example)
    if spec is None:
        spec = "cross_entropy" if integer else "mse"
    if ":" in spec:
        if params:
            raise ValueError("--loss-param only applies to losses of the zoo")
        fn = import_object(spec, "--loss")
        return Loss(spec, lambda out, y: fn(out, y))

    try:
        zoo = losses.get(spec)
    except ValueError as e:
        raise ValueError(f"--loss {spec!r}: {e} (or MODULE:FUNCTION)") from None
    kw = zoo.resolve(**(params or {}))
    post = None if zoo.post is None else (lambda v: float(zoo.post(torch.as_tensor(v))))

    def mean(values: Tensor) -> Tensor:
        return values.mean()

    if zoo.task == "multiclass":
        if not integer:
            raise ValueError(
                f"--loss {spec!r} is a classification loss: it needs integer class targets, "
                f"but y is {y_example.dtype}; use a regression loss such as mse"
            )
        if spec in _PROB_TARGET:
            return Loss(
                spec,
                lambda out, y: mean(zoo.fn(out, F.one_hot(y, out.shape[1]).to(out.dtype), **kw)),
                post,
            )

        def multiclass(out, y):
            return mean(zoo.fn(out, y, **kw))

        if spec == "cross_entropy":  # many surface points at once, the same formula
            multiclass.batched = pointwise.zoo_cross_entropy_batched(kw["label_smoothing"])
        return Loss(spec, multiclass, post)
    if zoo.task == "binary":

        def binary(out, y):
            if integer and bool(((y != 0) & (y != 1)).any()):
                raise ValueError(f"--loss {spec!r} is binary: targets must be 0 or 1")
            p = _flat_pred(out, y, spec)
            p = torch.sigmoid(p) if spec in _PROB_INPUT else p
            return mean(zoo.fn(p, y.to(p.dtype), **kw))

        return Loss(spec, binary, post)

    def regression(out, y):
        if integer:  # Li et al.'s MSE option: softmax vs one-hot, all N*C entries
            p, t = torch.softmax(out, 1), F.one_hot(y, out.shape[1]).to(out.dtype)
        else:
            p, t = (_flat_pred(out, y, spec) if y.ndim == 1 else out), y.to(out.dtype)
        return mean(zoo.fn(p, t, **kw))

    return Loss(spec, regression, post)


def accuracy_fn_for(on: bool) -> Callable | None:
    return accuracy if on else None
