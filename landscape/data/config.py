"""The training configuration: a frozen, validated, hashable ``Config`` and its caps.

``Config`` is the cache key of a run, what is saved next to it, and what the command line
and a download reproduce it from. Every field is checked in ``__post_init__`` (one
ValueError naming the field, its value and the allowed range), and so is the job as a whole
(model size, memory of the training path, optimiser steps) before anything is built.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import torch

from landscape.core import checks, losses
from landscape.data import datasets as data
from landscape.data import models

# Caps that keep one training job short enough for a shared server (a few seconds to ~20 s).
MAX_EPOCHS = 500  # epochs in [1, 500]
MAX_WIDTH = 256  # hidden units / channels in [2, 256]
MAX_DEPTH = 9  # hidden layers / residual blocks (per stage for resnet: 9 = ResNet-56), in [1, 9]
MAX_BATCH = data.MAX_SAMPLES  # batch size in [1, 5000]
MIN_LR, MAX_LR = 0.0, 1e6  # lr in (0, 1e6]: the top is absurd on purpose, to show divergence
MAX_WEIGHT_DECAY = 1.0
MAX_MOMENTUM = 0.999
MAX_SEED = 2**31 - 1
#: Trainable parameters of one model. With the trajectory kept for every epoch this bounds a
#: run's memory: (epochs + 1) x params x 4 bytes.
MAX_PARAMS = 250_000
MAX_TRAJECTORY_BYTES = 400e6  # (epochs + 1) x params x 4 B, per run
#: Optimiser steps of one run (epochs x batches per epoch): batch 1 on thousands of points for
#: hundreds of epochs would hold a server worker for an hour.
MAX_STEPS = 100_000
OPTIMIZERS = {"sgd": "SGD", "momentum": "SGD + momentum", "adam": "Adam", "adamw": "AdamW"}
#: Learning-rate schedules, applied per optimiser step after the linear warm-up (if any).
SCHEDULES = {"constant": "constant", "cosine": "cosine decay to 0"}
DIVERGENCE_FACTOR = 1e4  # loss > factor * max(initial train loss, 1) counts as diverged
PROB_TARGET_LOSSES = ("kl_div",)  # multiclass losses whose target is a probability vector
PROB_INPUT_LOSSES = ("bce",)  # binary losses whose input is a probability, not a logit


@dataclass(frozen=True)
class Config:
    """Everything that determines a training run; frozen and hashable (the cache key)."""

    # data
    dataset: str = "moons"  # a built-in set (landscape.data.datasets.DATASETS) or a registered one
    n_samples: int = 1000  # points before the train/test split, in [20, 5000]
    noise: float = 0.2  # jitter of synthetic sets (data units), in [0, 2]
    test_fraction: float = 0.2  # share held out for test, in [0.05, 0.5]
    outliers: int = 0  # outlier points ("outliers" set only), in [0, n_samples/2]
    outlier_scale: float = 5.0  # how far outliers sit off the line (target units), in [0, 100]
    # model
    model: str = "mlp"  # linear | mlp | cnn | resmlp | rescnn
    depth: int = 2  # hidden layers (mlp), residual blocks (res*; per stage for resnet), in [1, 9]
    width: int = 32  # hidden units (mlp) or channels scale (cnn), in [2, 256]
    activation: str = "relu"  # relu | tanh | sigmoid | gelu
    skip: bool = True  # residual nets: keep the skip connections
    batchnorm: bool = False  # BatchNorm after hidden layers
    # loss
    loss: str = "cross_entropy"  # key of landscape.core.losses
    loss_params: tuple[tuple[str, float], ...] = ()  # sorted (name, value), defaults filled in;
    # a dict is accepted too. Ranges are the loss's own (landscape.core.losses Param.check).
    # optimiser
    optimizer: str = "adam"  # sgd | momentum | adam | adamw
    lr: float = 0.01  # learning rate, in (0, 1e6]
    momentum: float = 0.9  # "momentum" optimiser only, in [0, 0.999]
    batch_size: int = 64  # examples per step, in [1, 5000] (capped at the training set size)
    epochs: int = 100  # passes over the training set, in [1, 500]
    weight_decay: float = 0.0  # L2 (sgd/adam) or decoupled (adamw) decay, in [0, 1]
    schedule: str = "constant"  # lr schedule after warm-up: constant | cosine (to 0 at the end)
    warmup_epochs: int = 0  # lr rises linearly to lr over these epochs, in [0, epochs]
    seed: int = 0  # data, initial weights and batch order, in [0, 2^31 - 1]

    def __post_init__(self):
        object.__setattr__(self, "loss_params", _normalise_loss_params(self.loss_params))
        ints = ("n_samples", "outliers", "depth", "width", "batch_size", "epochs", "warmup_epochs")
        for name in (*ints, "seed"):
            value = getattr(self, name)
            if isinstance(value, np.integer):
                object.__setattr__(self, name, int(value))
        for name in ("noise", "test_fraction", "outlier_scale", "lr", "momentum", "weight_decay"):
            value = getattr(self, name)
            if isinstance(value, int | np.floating) and not isinstance(value, bool):
                object.__setattr__(self, name, float(value))
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first bad field, its value and the allowed range."""
        data.info(self.dataset)  # ValueError naming the built-in sets
        checks.int_in("n_samples", self.n_samples, data.MIN_SAMPLES, data.MAX_SAMPLES)
        checks.number_in("noise", self.noise, 0.0, data.MAX_NOISE)
        checks.number_in(
            "test_fraction", self.test_fraction, data.MIN_TEST_FRACTION, data.MAX_TEST_FRACTION
        )
        checks.int_in("outliers", self.outliers, 0, min(data.MAX_OUTLIERS, self.n_samples // 2))
        checks.number_in("outlier_scale", self.outlier_scale, 0.0, data.MAX_OUTLIER_SCALE)
        checks.choice("model", self.model, models.MODELS)
        checks.int_in("depth", self.depth, 1, MAX_DEPTH)
        checks.int_in("width", self.width, 2, MAX_WIDTH)
        checks.choice("activation", self.activation, models.ACTIVATIONS)
        for name in ("skip", "batchnorm"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}={getattr(self, name)!r} must be True or False")
        self._validate_loss()
        checks.choice("optimizer", self.optimizer, OPTIMIZERS)
        checks.number_in("lr", self.lr, MIN_LR, MAX_LR, open_lo=True)
        checks.number_in("momentum", self.momentum, 0.0, MAX_MOMENTUM)
        checks.int_in("batch_size", self.batch_size, 1, MAX_BATCH)
        checks.int_in("epochs", self.epochs, 1, MAX_EPOCHS)
        checks.number_in("weight_decay", self.weight_decay, 0.0, MAX_WEIGHT_DECAY)
        checks.choice("schedule", self.schedule, SCHEDULES)
        checks.int_in("warmup_epochs", self.warmup_epochs, 0, self.epochs)
        checks.int_in("seed", self.seed, 0, MAX_SEED)
        self._validate_compatibility()
        self._validate_budget()

    def _validate_budget(self) -> None:
        """Caps on the whole job, not just field by field: model size, memory, optimiser steps."""
        n_params = estimate_params(self)
        if n_params > MAX_PARAMS:
            raise ValueError(
                f"width={self.width}, depth={self.depth} give a {self.model} of {n_params:,} "
                f"parameters: the cap is {MAX_PARAMS:,} parameters; use a smaller width or depth"
            )
        traj = (self.epochs + 1) * n_params * 4
        if traj > MAX_TRAJECTORY_BYTES:
            raise ValueError(
                f"epochs={self.epochs} with {n_params:,} parameters keeps a {traj / 1e6:.0f} MB "
                f"training path: the cap is {MAX_TRAJECTORY_BYTES / 1e6:.0f} MB; "
                f"use at most {int(MAX_TRAJECTORY_BYTES // (4 * n_params)) - 1} epochs"
            )
        n_train = max(1, int(self.n_samples * (1 - self.test_fraction)))
        steps = self.epochs * -(-n_train // min(self.batch_size, n_train))
        if steps > MAX_STEPS:
            raise ValueError(
                f"batch_size={self.batch_size} with epochs={self.epochs} on about {n_train} "
                f"training points is {steps:,} optimiser steps: the cap is {MAX_STEPS:,}; "
                f"use a larger batch or fewer epochs"
            )

    def _validate_loss(self) -> None:
        """Known loss, known parameter names, values in the loss's valid range; then fill in
        the defaults of unnamed parameters so that equal losses give equal (cache) keys."""
        try:
            spec = losses.get(self.loss)
        except ValueError as e:
            raise ValueError(f"loss={self.loss!r} is unknown: {e}") from None
        given = dict(self.loss_params)
        for name, value in given.items():
            if name not in spec.param_names():
                raise ValueError(
                    f"loss_params: {name!r} is not a parameter of loss={self.loss!r}: "
                    f"allowed {spec.param_names() or 'none'}"
                )
            try:
                spec.param(name).check(self.loss, value)
            except ValueError as e:
                raise ValueError(f"loss_params[{name!r}]: {e}") from None
        object.__setattr__(self, "loss_params", tuple(sorted({**spec.defaults(), **given}.items())))

    def _validate_compatibility(self) -> None:
        info = data.info(self.dataset)
        task = losses.get(self.loss).task
        if self.model in models.IMAGE_MODELS and info.kind != "image":
            raise ValueError(
                f"model={self.model!r} needs image data: dataset={self.dataset!r} is {info.kind}; "
                f"use dataset='digits' or 'shapes', or an MLP"
            )
        if info.task == "regression" and task != "regression":
            raise ValueError(
                f"loss={self.loss!r} is a {task} classification loss but dataset={self.dataset!r} "
                f"is regression: choose a regression loss such as mse, mae or huber"
            )
        if task == "binary" and info.n_classes != 2:
            raise ValueError(
                f"loss={self.loss!r} is a binary loss but dataset={self.dataset!r} has "
                f"{info.n_classes} classes: use it on a 2-class set or pick a multiclass loss"
            )
        if self.outliers and self.dataset != "outliers":
            raise ValueError(
                f"outliers={self.outliers} is only used by dataset='outliers': set it to 0"
            )

    # --- conveniences -------------------------------------------------------------------

    def replace(self, **kw) -> Config:
        """A copy with some fields changed; changing the loss resets loss_params."""
        if "loss" in kw and kw["loss"] != self.loss and "loss_params" not in kw:
            kw["loss_params"] = ()
        return dataclasses.replace(self, **kw)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["loss_params"] = dict(self.loss_params)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Config:
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown Config field(s) {sorted(unknown)}")
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def loss_kwargs(self) -> dict[str, float]:
        return dict(self.loss_params)

    def make_dataset(self) -> data.Dataset:
        """The dataset this config trains on (cached in landscape.data.datasets)."""
        extra = {}
        if self.dataset == "outliers":
            extra = {"outliers": self.outliers, "outlier_scale": self.outlier_scale}
        return data.make(
            self.dataset, self.n_samples, self.noise, self.test_fraction, self.seed, **extra
        )


def _normalise_loss_params(lp) -> tuple[tuple[str, float], ...]:
    """dict or pairs -> sorted tuple of (name, float) pairs (a canonical, hashable cache key)."""
    items = lp.items() if isinstance(lp, dict) else lp
    try:
        pairs = [(str(k), float(v)) for k, v in items]
    except (TypeError, ValueError):
        raise ValueError(f"loss_params={lp!r} must be a dict or (name, value) pairs") from None
    if len({k for k, _ in pairs}) != len(pairs):
        raise ValueError(f"loss_params={lp!r} names a parameter twice")
    return tuple(sorted(pairs))


def estimate_params(config: Config) -> int:
    """Trainable parameters of `config`'s model, counted on torch's meta device (no memory,
    no data made), so validation can cap model size before anything is built."""
    fields = ("dataset", "model", "depth", "width", "activation", "skip", "batchnorm", "loss")
    return _estimate_params(tuple(getattr(config, f) for f in fields))


@functools.lru_cache(maxsize=256)
def _estimate_params(key: tuple) -> int:
    dataset, model, depth, width, activation, skip, batchnorm, loss = key
    info = data.info(dataset)
    stand_in = SimpleNamespace(
        name=dataset, task=info.task, n_classes=info.n_classes, input_shape=info.input_shape
    )
    cfg = SimpleNamespace(
        model=model,
        depth=depth,
        width=width,
        activation=activation,
        skip=skip,
        batchnorm=batchnorm,
        loss=loss,
        seed=0,
    )
    with torch.device("meta"):
        return models.count_params(models.build(cfg, stand_in))
