"""What is sliced or measured: a net at its centre weights, its loss and its data.

``Subject.from_run`` adapts a trained ``Run``; a user's own module with its own data builds a
Subject directly (``Subject.from_module``), and ``landscape.engine.own.OwnModel.subject``
streams a data file through one. Every measure reads data through ``Subject.data(split)``;
a surface reads ``Subject.stream(split)`` instead when the subject has one (data read in
batches, never held whole), through the one evaluator, ``landscape.engine.surface``.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from landscape.core import checks

SPLITS = ("train", "test")
Data = tuple[Tensor, Tensor]  # (X, y)


@dataclass(frozen=True)
class Loss:
    """A loss as the mean of per-batch values, then ``post`` on the exact mean (rmse: sqrt).

    ``batch(output, y)`` returns the mean over the batch; ``surface.evaluate`` combines
    batches weighted by their number of samples, which gives the mean over the whole set
    exactly, and applies ``post`` to it.
    """

    name: str
    batch: Callable[[Tensor, Tensor], Tensor]
    post: Callable[[float], float] | None = None

    def __call__(self, output: Tensor, y: Tensor) -> Tensor:
        """The loss of one full batch (the same as streaming one batch)."""
        v = self.batch(output, y)
        return v if self.post is None else self.post(torch.as_tensor(v))


@dataclass(eq=False)
class Subject:
    """The thing being sliced: a net at its centre weights, its loss and its data."""

    build: Callable[[], nn.Module]  # a fresh module holding the centre weights and buffers
    loss_fn: Callable[[Tensor, Tensor], Tensor]  # (output, y) -> scalar mean loss
    splits: Mapping[str, Data] | Callable[[str], Data]  # split name -> (X, y)
    accuracy_fn: Callable[[Tensor, Tensor], float] | None = None  # None for regression
    trajectory: np.ndarray | None = None  # (checkpoints, P) parameters, named_parameters order
    epochs: Sequence[int] | None = None  # epoch of each trajectory row
    initial: Callable[[], nn.Module] | None = None  # a fresh module at the initial weights
    own_loss: Mapping[str, float] = field(default_factory=dict)  # known centre loss per split
    config: Any = None  # kept in the metadata (``to_dict()`` when it has one)
    name: str = "model"  # shown in titles
    key: str | None = None  # identity of the centre weights (``fingerprint``), for caches
    # split -> its data read in batches (``len``, ``batch(start, stop)`` -> (X, y)), for
    # surfaces of data that is never held whole; None: surfaces read ``data(split)``
    stream: Callable[[str], Any] | None = None
    batch_size: int | None = None  # samples per batch of the stream (None: from the memory)
    device: Any = None  # where surfaces are evaluated (None: where ``build()`` puts the model)

    @classmethod
    def from_run(cls, run) -> Subject:
        """The final weights of a trained ``landscape.training.loop.Run`` and the data it saw."""
        return cls(
            build=run.model,
            loss_fn=run.loss_fn(),
            splits=lambda split: _run_split(run, split),
            accuracy_fn=run.accuracy_fn(),
            trajectory=run.trajectory,
            epochs=list(run.history.get("epoch", [])),
            initial=run.initial_model,
            own_loss={s: v[-1] for s in SPLITS if (v := run.history.get(f"{s}_loss"))},
            config=run.config,
            name=run.name,
            key=fingerprint(run),
        )

    @classmethod
    def from_module(cls, module: nn.Module, loss_fn, splits, **kw) -> Subject:
        """Any module at its current weights (copied now: later changes do not leak in)."""
        frozen = copy.deepcopy(module).eval()
        return cls(build=lambda: copy.deepcopy(frozen), loss_fn=loss_fn, splits=splits, **kw)

    def model(self) -> nn.Module:
        """A fresh module at the centre weights, in eval mode."""
        return self.build().eval()

    def data(self, split: str) -> Data:
        """``(X, y)`` of ``split``: the one place data is read, so it can change in one place."""
        if split not in SPLITS:
            raise checks.choice_error("split", split, SPLITS)
        if callable(self.splits):
            return self.splits(split)
        if split not in self.splits:
            raise ValueError(f"split={split!r}: this model has no {split} data")
        return self.splits[split]

    def config_dict(self) -> dict | None:
        c = self.config
        return c.to_dict() if hasattr(c, "to_dict") else c


def _run_split(run, split: str) -> Data:
    ds = run.dataset()
    return (ds.X_train, ds.y_train) if split == "train" else (ds.X_test, ds.y_test)


def fingerprint(run) -> str:
    """A short hash of a run's final weights, buffers and trajectory: which net this is.

    The same config trained twice has the same fingerprint (training is deterministic); an
    uploaded run whose weights differ does not share cache entries.
    """
    h = hashlib.sha1()
    for k, t in run.state_dict.items():
        h.update(k.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    h.update(np.ascontiguousarray(run.trajectory).tobytes())
    return h.hexdigest()[:16]


def same_architecture(a: nn.Module, b: nn.Module) -> str | None:
    """None when a and b have identical parameter names and shapes, else why not (a sentence)."""
    pa = {k: tuple(p.shape) for k, p in a.named_parameters()}
    pb = {k: tuple(p.shape) for k, p in b.named_parameters()}
    if list(pa) != list(pb):
        return (
            f"the two nets have different layers ({len(pa)} vs {len(pb)} parameter tensors): "
            "interpolating between them needs the same architecture"
        )
    for k in pa:
        if pa[k] != pb[k]:
            return (
                f"parameter {k!r} has shape {pa[k]} in one net and {pb[k]} in the other: "
                "interpolating between them needs the same architecture"
            )
    return None
