"""Your own network and data: load a model, its weights, a data set and a loss, and slice them.

Everything here is a user's spec, so everything is checked before any long work, and every
bad spec is one ``ValueError`` naming what is wrong: the model factory and weight files
(``loading``), the data (``data``), the loss (``loss``).

``open_model(...)`` returns an ``OwnModel``. It is a ``Subject`` (``OwnModel.subject()``)
whose data is streamed in batches, so its surfaces are computed by the one engine,
``landscape.engine.surface`` (the loop or the batched fast path, chosen as for any model),
through ``landscape.pipelines.slices.compute_own`` or ``surface.line``/``surface.plane``.
The batch size is chosen from the data and memory (the whole set in one pass when it fits
``surface.STREAM_BYTES``) unless ``batch_size`` is given.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from landscape.core import directions as D
from landscape.engine import surface as S
from landscape.engine.own.data import Data, check_labels, load_data
from landscape.engine.own.loading import (
    _existing_file,
    _one,
    build_model,
    file_sha256,
    load_weights,
    natural_key,
    parse_kwargs,
    resolve_device,
    state_of,
)
from landscape.engine.own.loss import accuracy_fn_for, make_loss
from landscape.engine.subject import Loss, Subject

DIR_TYPES = ("weights", "states")
MAX_BATCH = 2**20
PROBE_ROWS = 2  # samples of the check that the data fits the model, before long work


@dataclass
class OwnModel:
    """A user's model with its weights, data, loss and device: the thing being sliced."""

    model: nn.Module  # eval mode, on the CPU, the weights of --weights
    data: Data
    loss: Loss
    accuracy_fn: Callable | None
    device: torch.device
    batch_size: int | None = None  # samples per batch; None: from the data and memory
    spec: dict = field(default_factory=dict)  # JSON: factory, kwargs, files and their sha256
    trajectory: np.ndarray | None = None  # (checkpoints, P): --checkpoints then --weights

    def state(self) -> dict[str, Tensor]:
        """Parameters and floating-point buffers (the keys a ``states`` direction has)."""
        out = dict(D.weights_of(self.model))
        out.update({k: b for k, b in self.model.named_buffers() if b.is_floating_point()})
        return out

    def directions(
        self,
        n: int = 2,
        norm: str = "filter",
        ignore: str | None = "biasbn",
        seed: int = 0,
        orthogonal: bool = False,
        dir_type: str = "weights",
    ) -> list[dict[str, Tensor]]:
        """Seeded random directions (``dir_type="states"``: BatchNorm buffers move too), the
        same as the built-in runs get from ``landscape.core.directions``."""
        if dir_type not in DIR_TYPES:
            raise ValueError(f"--dir-type {dir_type!r} is not allowed: must be one of {DIR_TYPES}")
        return D.random_directions(self.model, n, norm, ignore, seed, orthogonal, dir_type)

    def line(self, direction, ts, progress=None, method="auto", meta=None) -> S.Surface:
        """Loss at ``weights + t * direction`` for each t: ``surface.line`` on the stream."""
        return S.line(
            self.model, self.loss, self.data, direction, ts, self.accuracy_fn, progress, method,
            {"model": self.spec, **(meta or {})}, self.batch_size, self.device,
        )  # fmt: skip

    def plane(self, d1, d2, xs, ys, progress=None, method="auto", meta=None) -> S.Surface:
        """Loss over ``weights + x*d1 + y*d2``: ``surface.plane`` on the stream."""
        return S.plane(
            self.model, self.loss, self.data, d1, d2, xs, ys, self.accuracy_fn, progress, method,
            {"model": self.spec, **(meta or {})}, self.batch_size, self.device,
        )  # fmt: skip

    def pca(self, ignore: str | None = None, projection: str = "cos"):
        """PCA directions of the checkpoint path and its projection (``projection``: "cos"
        or "lstsq", see ``directions.project``): (d1, d2, ratio, px, py)."""
        if self.trajectory is None:
            raise ValueError(
                "PCA directions need --checkpoints (at least 2 files besides --weights)"
            )
        d1, d2, ratio = D.pca_directions(self.trajectory, self.model, ignore)
        px, py = D.project(self.trajectory, self.model, d1, d2, projection)
        return d1, d2, ratio, px, py

    def other(self, weights: str | os.PathLike, what: str = "--to") -> nn.Module:
        """A copy of the model holding another weight file (checked like --weights)."""
        end = copy.deepcopy(self.model)
        end.load_state_dict(state_of(self.model, weights, what))
        return end.eval()

    def interpolation_to(self, other_weights: str | os.PathLike) -> dict[str, Tensor]:
        """``other - weights`` over parameters and float buffers: t=1 is the other net exactly."""
        return D.interpolation_direction(self.model, self.other(other_weights), dir_type="states")

    def subject(self, weights: str | os.PathLike | None = None) -> Subject:
        """This model (or it with another weight file) as a ``landscape.engine.subject.Subject``.

        Its one data set is the "train" split: surfaces stream it (``Subject.stream``, in
        ``batch_size`` batches on ``device``); measures that need every sample at once (the
        Hessian) read it whole through ``Subject.data``.
        """

        data: dict = {}

        def check(name: str) -> None:
            if name != "train":
                raise ValueError(
                    f"split={name!r}: your own model has one data set (--data), 'train'"
                )

        def split(name: str):
            check(name)
            if "all" not in data:  # only the Hessian needs every sample in memory at once
                data["all"] = self.data.all()
            return data["all"]

        def stream(name: str) -> Data:
            check(name)
            return self.data

        frozen = copy.deepcopy(self.model).eval() if weights is None else self.other(weights)
        spec = self.spec if weights is None else {**self.spec, "weights": str(weights)}
        key = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
        return Subject(
            build=lambda: copy.deepcopy(frozen),
            loss_fn=self.loss,
            splits=split,
            accuracy_fn=self.accuracy_fn,
            trajectory=self.trajectory,
            name=self.spec.get("factory", "model"),
            key=key,
            stream=stream,
            batch_size=self.batch_size,
            device=self.device,
        )


def _probe(model: nn.Module, data: Data, loss: Loss, acc: Callable | None, device) -> None:
    """Run the first samples through model, loss and accuracy: a misfit fails fast, in words."""
    X, y = data.batch(0, min(PROBE_ROWS, len(data)))
    work = copy.deepcopy(model).to(device).eval()
    with torch.no_grad():
        try:
            out = work(X.to(device))
        except Exception as e:
            raise ValueError(
                f"--data {data.source!r} does not fit the model: inputs of shape "
                f"{tuple(X.shape[1:])} ({X.dtype}) per sample gave {_one(e)[:300]}"
            ) from None
        if not isinstance(out, Tensor):
            raise ValueError(f"the model returned a {type(out).__name__}: must return one tensor")
        check_labels(data, out.shape[1] if out.ndim == 2 else 0, loss.name)
        try:
            value = loss.batch(out, y.to(device))
            if torch.as_tensor(value).numel() != 1:
                raise ValueError(
                    f"it returned shape {tuple(torch.as_tensor(value).shape)}, not a scalar"
                )
            if acc is not None:
                acc(out, y.to(device))
        except Exception as e:
            raise ValueError(
                f"--loss {loss.name!r} does not fit the outputs {tuple(out.shape[1:])} "
                f"({out.dtype}) and targets {tuple(y.shape[1:])} ({y.dtype}) per sample: "
                f"{_one(e)[:300]}"
            ) from None


def _trajectory(model: nn.Module, checkpoints: Sequence[str]) -> np.ndarray:
    """(checkpoints [+ 1], P): each file's parameters in named_parameters order, then the
    final weights unless the last checkpoint holds them already."""
    files = sorted(checkpoints, key=natural_key)
    if not files:
        raise ValueError("--checkpoints matched no file")
    keys = [k for k, _ in model.named_parameters()]
    rows = []
    for f in files:
        st = state_of(model, f, "--checkpoints")
        rows.append(torch.cat([st[k].reshape(-1).double() for k in keys]).numpy())
    final_row = D.flatten(D.weights_of(model)).double().numpy()
    if not np.array_equal(rows[-1], final_row):  # the final point once, even if also listed
        rows.append(final_row)
    if len(rows) < 2:
        raise ValueError(
            "--checkpoints gave no point besides --weights: a path needs at least one more"
        )
    return np.stack(rows)


def open_model(
    factory: str,
    weights: str | os.PathLike,
    data: str | Data,
    kwargs: str | dict | None = None,
    loss: str | None = None,
    device: str = "auto",
    batch_size: int | None = None,
    max_samples: int | None = None,
    sample_seed: int = 0,
    accuracy: bool | None = None,
    checkpoints: Sequence[str] = (),
    loss_params: dict | None = None,
) -> OwnModel:
    """Build ``factory(**kwargs)``, load ``weights``, read ``data``, pick the loss; check it all.

    Every spec is checked (and the first samples run through model and loss) before this
    returns, so a bad one fails in a second with one ValueError. ``accuracy``: None = on for
    integer targets. ``checkpoints``: weight files of the training path (any order; sorted
    naturally) for PCA directions (at least 2 besides ``weights``) or the line from the first.
    """
    if batch_size is not None and (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, int)
        or not 1 <= batch_size <= MAX_BATCH
    ):
        raise ValueError(f"--batch-size {batch_size!r} must be an integer in [1, {MAX_BATCH}]")
    dev = resolve_device(device)
    wfile = _existing_file(weights, "--weights")
    ds = data if isinstance(data, Data) else load_data(data)
    ds = ds.subset(max_samples, sample_seed)
    model = build_model(factory, kwargs)
    load_weights(model, wfile)
    model.eval()
    _, y0 = ds.batch(0, 1)
    if accuracy is None:
        accuracy = not torch.is_floating_point(y0)
    fn = make_loss(loss, y0, loss_params)
    acc = accuracy_fn_for(accuracy)
    _probe(model, ds, fn, acc, dev)
    traj = _trajectory(model, checkpoints) if checkpoints else None
    spec = {
        "factory": factory,
        "kwargs": parse_kwargs(kwargs),
        "weights": str(weights),
        "weights_sha256": file_sha256(wfile),
        "data": ds.source,
        "data_sha256": file_sha256(ds.source) if Path(ds.source).is_file() else None,
        "n_samples": len(ds),
        "max_samples": max_samples,
        "sample_seed": sample_seed,
        "loss": fn.name,
        "loss_params": loss_params or {},
        "checkpoints": [
            {"file": f, "sha256": file_sha256(f)} for f in sorted(checkpoints, key=natural_key)
        ],
    }
    return OwnModel(model, ds, fn, acc, dev, batch_size, spec, traj)
