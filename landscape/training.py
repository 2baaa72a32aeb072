"""Train a small net from a frozen Config and keep everything the landscape pages need.

`train(config) -> Run`: per-epoch train/test loss and accuracy, per-step training loss, the
flattened parameters at initialisation and after every epoch (the trajectory for the PCA
plane of Li et al. 2018), and the final weights. Same config (seed included) -> the same
numbers, bit for bit: data, initial weights and batch order all come from `config.seed`.

Speed: no DataLoader. The whole (small) dataset is a tensor; each epoch draws a seeded
permutation and slices index batches, and train/test loss are evaluated in one full-batch
no-grad pass per epoch. The default run (MLP 2x32 on 1000 moons, 100 epochs) takes about a
second on two cores; see benchmarks/bench_training.py.

Loss / data compatibility (`make_loss_fn`), by the loss's task in `landscape.losses`:
- multiclass losses (cross_entropy, multi_margin, kl_div, ...) need classification data; the
  model has n_classes outputs (logits). kl_div gets one-hot target probabilities.
- binary losses (hinge, logistic, bce, ...) need classification data with exactly 2 classes;
  the model has 1 output logit f(x). `bce` alone takes probabilities, so it gets sigmoid(f(x)).
- regression losses on regression data: the model has 1 output, compared with the target.
- regression losses on classification data: the model has n_classes outputs and the loss is
  applied elementwise to softmax(outputs) vs one-hot targets, averaged over all N*C entries
  (the MSE option of Li et al.'s code).
- classification losses on regression data are rejected with a ValueError.

Divergence: when a step's loss, or an epoch's train/test loss, is NaN or inf, or exceeds
DIVERGENCE_FACTOR (1e4) times the initial training loss (floored at 1), training stops: no
useful run climbs ten thousand times above where it started (Adam at lr=1e6 on moons sits at a
finite ~1e5 without this rule, a blow-up all the same). The Run is marked `diverged` with the epoch (1-based) and the last finite training loss; its
history, trajectory and weights end at the last epoch whose losses were all finite (the last
sane point), so the landscape pages can still use them.

Serialisation: `run_to_bytes`/`run_from_bytes` write/read a .npz of plain arrays plus JSON
(config and metadata as UTF-8 bytes); loading uses allow_pickle=False, so a file can never run
code.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from landscape import data, losses, models

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
DIVERGENCE_FACTOR = 1e4  # loss > factor * max(initial train loss, 1) counts as diverged
PROB_TARGET_LOSSES = ("kl_div",)  # multiclass losses whose target is a probability vector
PROB_INPUT_LOSSES = ("bce",)  # binary losses whose input is a probability, not a logit


def _range_error(name, value, rng: str) -> ValueError:
    return ValueError(f"{name}={value!r} is out of range: must be in {rng}")


def _check_int(name, value, lo, hi) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}={value!r} must be an integer in [{lo}, {hi}]")
    if not lo <= value <= hi:
        raise _range_error(name, value, f"[{lo}, {hi}]")


def _check_float(name, value, lo, hi, open_lo=False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name}={value!r} must be a finite number in [{lo}, {hi}]")
    if value > hi or value < lo or (open_lo and value == lo):
        raise _range_error(name, value, f"{'(' if open_lo else '['}{lo}, {hi}]")


def _check_choice(name, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not allowed: must be one of {list(choices)}")


@dataclass(frozen=True)
class Config:
    """Everything that determines a training run; frozen and hashable (the cache key)."""

    # data
    dataset: str = "moons"  # key of landscape.data.DATASETS
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
    loss: str = "cross_entropy"  # key of landscape.losses
    loss_params: tuple[tuple[str, float], ...] = ()  # sorted (name, value), defaults filled in;
    # a dict is accepted too. Ranges are the loss's own (landscape.losses Param.check).
    # optimiser
    optimizer: str = "adam"  # sgd | momentum | adam | adamw
    lr: float = 0.01  # learning rate, in (0, 1e6]
    momentum: float = 0.9  # "momentum" optimiser only, in [0, 0.999]
    batch_size: int = 64  # examples per step, in [1, 5000] (capped at the training set size)
    epochs: int = 100  # passes over the training set, in [1, 500]
    weight_decay: float = 0.0  # L2 (sgd/adam) or decoupled (adamw) decay, in [0, 1]
    seed: int = 0  # data, initial weights and batch order, in [0, 2^31 - 1]

    def __post_init__(self):
        object.__setattr__(self, "loss_params", _normalise_loss_params(self.loss_params))
        for name in ("n_samples", "outliers", "depth", "width", "batch_size", "epochs", "seed"):
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
        _check_choice("dataset", self.dataset, data.DATASETS)
        _check_int("n_samples", self.n_samples, data.MIN_SAMPLES, data.MAX_SAMPLES)
        _check_float("noise", self.noise, 0.0, data.MAX_NOISE)
        _check_float(
            "test_fraction", self.test_fraction, data.MIN_TEST_FRACTION, data.MAX_TEST_FRACTION
        )
        _check_int("outliers", self.outliers, 0, min(data.MAX_OUTLIERS, self.n_samples // 2))
        _check_float("outlier_scale", self.outlier_scale, 0.0, data.MAX_OUTLIER_SCALE)
        _check_choice("model", self.model, models.MODELS)
        _check_int("depth", self.depth, 1, MAX_DEPTH)
        _check_int("width", self.width, 2, MAX_WIDTH)
        _check_choice("activation", self.activation, models.ACTIVATIONS)
        for name in ("skip", "batchnorm"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}={getattr(self, name)!r} must be True or False")
        self._validate_loss()
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_float("lr", self.lr, MIN_LR, MAX_LR, open_lo=True)
        _check_float("momentum", self.momentum, 0.0, MAX_MOMENTUM)
        _check_int("batch_size", self.batch_size, 1, MAX_BATCH)
        _check_int("epochs", self.epochs, 1, MAX_EPOCHS)
        _check_float("weight_decay", self.weight_decay, 0.0, MAX_WEIGHT_DECAY)
        _check_int("seed", self.seed, 0, MAX_SEED)
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
        info = data.DATASETS[self.dataset]
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
        """The dataset this config trains on (cached in landscape.data)."""
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


# ----------------------------------------------------------------------------- loss, accuracy


def make_loss_fn(
    config: Config, dataset: data.Dataset
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """(model_output, y) -> scalar mean loss, adapting outputs/targets to the loss's convention."""
    spec, params = losses.get(config.loss), config.loss_kwargs()
    if dataset.task == "regression":
        if spec.task != "regression":
            raise ValueError(
                f"loss={config.loss!r} ({spec.task}) cannot be used on regression data"
            )
        return lambda out, y: spec(out[:, 0], y, **params)
    if spec.task == "regression":  # Li et al.'s MSE option: softmax vs one-hot, all N*C entries
        return lambda out, y: spec(
            torch.softmax(out, 1), F.one_hot(y, dataset.n_classes).to(out.dtype), **params
        )
    if spec.task == "binary":
        if dataset.n_classes != 2:
            raise ValueError(
                f"loss={config.loss!r} is binary: dataset has {dataset.n_classes} classes"
            )
        if config.loss in PROB_INPUT_LOSSES:
            return lambda out, y: spec(torch.sigmoid(out[:, 0]), y.to(out.dtype), **params)
        return lambda out, y: spec(out[:, 0], y.to(out.dtype), **params)
    if config.loss in PROB_TARGET_LOSSES:
        return lambda out, y: spec(out, F.one_hot(y, dataset.n_classes).to(out.dtype), **params)
    return lambda out, y: spec(out, y, **params)


def _accuracy(out: torch.Tensor, y: torch.Tensor) -> float:
    pred = (out[:, 0] > 0).long() if out.shape[1] == 1 else out.argmax(1)  # logit > 0 <=> p > 1/2
    return float((pred == y).double().mean())


def make_accuracy_fn(config: Config, dataset: data.Dataset) -> Callable | None:
    """(model_output, y) -> fraction correct in [0, 1]; None for regression data."""
    return None if dataset.task == "regression" else _accuracy


def make_optimizer(config: Config, model: nn.Module) -> torch.optim.Optimizer:
    p, lr, wd = model.parameters(), config.lr, config.weight_decay
    if config.optimizer == "sgd":
        return torch.optim.SGD(p, lr=lr, weight_decay=wd)
    if config.optimizer == "momentum":
        return torch.optim.SGD(p, lr=lr, momentum=config.momentum, weight_decay=wd)
    if config.optimizer == "adam":
        return torch.optim.Adam(p, lr=lr, weight_decay=wd)
    return torch.optim.AdamW(p, lr=lr, weight_decay=wd)


def flat_params(model: nn.Module) -> torch.Tensor:
    """All parameters in named_parameters order as one float32 vector (P,)."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).float()


# ----------------------------------------------------------------------------- Run


_LOSS_ABBREV = {"cross_entropy": "CE", "mse": "MSE", "mae": "MAE", "huber": "Huber", "bce": "BCE"}


def run_name(config: Config) -> str:
    """Readable one-line name, e.g. 'mlp 2x32 relu · moons · CE · adam lr=0.01 · s0'."""
    c = config
    if c.model == "linear":
        arch = "linear"
    elif c.model == "cnn":
        arch = f"cnn w{c.width} {c.activation}"
    else:
        arch = f"{c.model} {c.depth}x{c.width} {c.activation}"
    if c.model in models.RESIDUAL_MODELS and not c.skip:
        arch += " noskip"
    if c.batchnorm:
        arch += " bn"
    loss = _LOSS_ABBREV.get(c.loss, c.loss)
    defaults = losses.get(c.loss).defaults()
    changed = [(k, v) for k, v in c.loss_params if v != defaults.get(k)]
    if changed:
        loss += "(" + ",".join(f"{k}={v:g}" for k, v in changed) + ")"
    opt = f"{c.optimizer} lr={c.lr:g}"
    if c.batch_size != 64:
        opt += f" b={c.batch_size}"
    if c.weight_decay:
        opt += f" wd={c.weight_decay:g}"
    return f"{arch} · {c.dataset} · {loss} · {opt} · s{c.seed}"


@dataclass
class Run:
    config: Config
    history: dict[str, list[float]]  # epoch, train_loss, test_loss, train_acc, test_acc (0 = init)
    step_loss: list[float]  # training loss of every optimiser step
    trajectory: np.ndarray  # (epochs_done + 1, P) float32: init, then after each epoch
    state_dict: dict[str, torch.Tensor]  # final weights and buffers (cpu)
    diverged: bool = False
    diverged_epoch: int | None = None  # 1-based epoch in which the loss became NaN/inf
    last_finite_loss: float | None = None  # last finite training-step loss
    n_params: int = 0
    seconds: float = 0.0  # wall-clock training time
    name: str = field(default="")

    def __post_init__(self):
        if not self.name:
            self.name = run_name(self.config)

    @property
    def epochs_done(self) -> int:
        return len(self.history["epoch"]) - 1

    def dataset(self) -> data.Dataset:
        return self.config.make_dataset()

    def _fresh(self) -> nn.Module:
        return models.build(self.config, self.dataset())

    def model(self) -> nn.Module:
        """A new module holding the final weights, in eval mode."""
        m = self._fresh()
        m.load_state_dict(self.state_dict)
        return m.eval()

    def initial_model(self) -> nn.Module:
        """A new module holding the weights at initialisation (rebuilt from the seed), eval mode."""
        return self._fresh().eval()

    def loss_fn(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        return make_loss_fn(self.config, self.dataset())

    def accuracy_fn(self) -> Callable | None:
        return make_accuracy_fn(self.config, self.dataset())

    def param_vector(self, which="final") -> torch.Tensor:
        """Flattened parameters (P,): "final", "initial", or an epoch index into the trajectory."""
        row = {"final": -1, "initial": 0}.get(which, which)
        if not isinstance(row, int):
            raise ValueError(f"which={which!r} must be 'final', 'initial' or an epoch index")
        return torch.from_numpy(self.trajectory[row].copy())


# ----------------------------------------------------------------------------- train


def _evaluate(model, loss_fn, acc_fn, ds) -> dict[str, float]:
    """Train and test loss/accuracy in one full-batch, no-grad pass each (eval mode)."""
    model.eval()
    out = {}
    with torch.no_grad():
        for split, X, y in (("train", ds.X_train, ds.y_train), ("test", ds.X_test, ds.y_test)):
            o = model(X)
            out[f"{split}_loss"] = float(loss_fn(o, y))
            out[f"{split}_acc"] = acc_fn(o, y) if acc_fn else float("nan")
    model.train()
    return out


def _epoch(model, opt, loss_fn, ds, batch, gen, skip_singletons, limit) -> tuple[list[float], bool]:
    """One pass in seeded random order; returns step losses and whether all stayed sane
    (finite and <= limit); stops at the first step that is not."""
    n = ds.n_train
    perm = torch.randperm(n, generator=gen)
    losses_ = []
    for i in range(0, n, batch):
        idx = perm[i : i + batch]
        if skip_singletons and len(idx) < 2:  # BatchNorm cannot normalise a batch of one
            continue
        loss = loss_fn(model(ds.X_train[idx]), ds.y_train[idx])
        value = loss.item()
        if not _sane(value, limit):
            return losses_, False
        losses_.append(value)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return losses_, True


def _sane(value: float, limit: float) -> bool:
    return math.isfinite(value) and value <= limit


def _has_batchnorm(model) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def train(config: Config, progress: Callable[[dict], None] | None = None) -> Run:
    """Train `config` and return the Run; never raises on divergence (see module docstring).

    progress, if given, is called after every epoch with a dict: epoch, epochs, train_loss,
    test_loss, train_acc, test_acc, step_loss (this epoch's step losses), diverged, seconds.
    """
    t0 = time.perf_counter()
    ds = config.make_dataset()
    model = models.build(config, ds)
    loss_fn, acc_fn = make_loss_fn(config, ds), make_accuracy_fn(config, ds)
    opt = make_optimizer(config, model)
    gen = torch.Generator().manual_seed(config.seed)
    batch, bn = min(config.batch_size, ds.n_train), _has_batchnorm(model)

    first = _evaluate(model, loss_fn, acc_fn, ds)
    history = {k: [v] for k, v in first.items()}
    history["epoch"] = [0]
    limit = (
        DIVERGENCE_FACTOR * max(first["train_loss"], 1.0)
        if math.isfinite(first["train_loss"])
        else math.inf
    )
    trajectory, step_loss = [flat_params(model).numpy()], []
    last_good = {k: v.detach().clone() for k, v in model.state_dict().items()}
    diverged_epoch = None
    for epoch in range(1, config.epochs + 1):
        steps, sane = _epoch(model, opt, loss_fn, ds, batch, gen, bn, limit)
        step_loss += steps
        ev = _evaluate(model, loss_fn, acc_fn, ds) if sane else {}
        if not sane or not all(_sane(ev[k], limit) for k in ("train_loss", "test_loss")):
            diverged_epoch = epoch
        else:
            for k, v in ev.items():
                history[k].append(v)
            history["epoch"].append(epoch)
            trajectory.append(flat_params(model).numpy())
            last_good = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if progress is not None:
            progress(_progress_info(epoch, config, ev, steps, diverged_epoch, t0))
        if diverged_epoch is not None:
            break
    finite_steps = [v for v in step_loss if math.isfinite(v)]
    return Run(
        config=config,
        history=history,
        step_loss=step_loss,
        trajectory=np.stack(trajectory).astype(np.float32),
        state_dict=last_good,
        diverged=diverged_epoch is not None,
        diverged_epoch=diverged_epoch,
        last_finite_loss=finite_steps[-1] if finite_steps else history["train_loss"][0],
        n_params=models.count_params(model),
        seconds=time.perf_counter() - t0,
    )


def _progress_info(epoch, config, ev, steps, diverged_epoch, t0) -> dict:
    nan = float("nan")
    return {
        "epoch": epoch,
        "epochs": config.epochs,
        "train_loss": ev.get("train_loss", nan),
        "test_loss": ev.get("test_loss", nan),
        "train_acc": ev.get("train_acc", nan),
        "test_acc": ev.get("test_acc", nan),
        "step_loss": steps,
        "diverged": diverged_epoch is not None,
        "seconds": time.perf_counter() - t0,
    }


# ----------------------------------------------------------------------------- predictions


def decision_grid(
    model: nn.Module, dataset: data.Dataset, resolution: int = 100, margin: float = 0.3
):
    """Class probabilities over a grid covering 2D data, for decision-boundary plots.

    Returns xs (R,), ys (R,), probs (R, R, C) where probs[i, j] is at (xs[j], ys[i]) and C is
    2 for a 1-logit binary head (p, 1-p reordered as [P(0), P(1)]).
    """
    if dataset.input_shape != (2,):
        raise ValueError(
            f"decision_grid needs 2D inputs: dataset has input shape {dataset.input_shape}"
        )
    X = torch.cat([dataset.X_train, dataset.X_test])
    lo, hi = X.min(0).values - margin, X.max(0).values + margin
    xs = torch.linspace(float(lo[0]), float(hi[0]), resolution)
    ys = torch.linspace(float(lo[1]), float(hi[1]), resolution)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)  # (R*R, 2)
    model.eval()
    with torch.no_grad():
        out = model(pts)
    if out.shape[1] == 1:
        p1 = torch.sigmoid(out[:, 0])
        probs = torch.stack([1 - p1, p1], 1)
    else:
        probs = torch.softmax(out, 1)
    return xs.numpy(), ys.numpy(), probs.reshape(resolution, resolution, -1).numpy()


def regression_curve(model: nn.Module, dataset: data.Dataset, n: int = 200, margin: float = 0.1):
    """The fitted function over the range of 1D regression data: xs (n,), yhat (n,)."""
    if dataset.input_shape != (1,):
        raise ValueError(
            f"regression_curve needs 1D inputs: dataset has input shape {dataset.input_shape}"
        )
    X = torch.cat([dataset.X_train, dataset.X_test])[:, 0]
    span = float(X.max() - X.min())
    xs = torch.linspace(float(X.min()) - margin * span, float(X.max()) + margin * span, n)
    model.eval()
    with torch.no_grad():
        yhat = model(xs[:, None])[:, 0]
    return xs.numpy(), yhat.numpy()


# ----------------------------------------------------------------------------- (de)serialise

_HISTORY_KEYS = ("epoch", "train_loss", "test_loss", "train_acc", "test_acc")


def _json_array(obj) -> np.ndarray:
    return np.frombuffer(json.dumps(obj).encode("utf-8"), dtype=np.uint8)


def run_to_bytes(run: Run) -> bytes:
    """A .npz (no pickles) of the run: arrays, plus config and metadata as JSON bytes."""
    meta = {
        "format": "landscape-run/1",
        "diverged": run.diverged,
        "diverged_epoch": run.diverged_epoch,
        "last_finite_loss": run.last_finite_loss,
        "n_params": run.n_params,
        "seconds": run.seconds,
        "name": run.name,
        "state_keys": list(run.state_dict),
    }
    arrays = {
        "config_json": _json_array(run.config.to_dict()),
        "meta_json": _json_array(meta),
        "step_loss": np.asarray(run.step_loss, dtype=np.float64),
        "trajectory": run.trajectory,
    }
    arrays.update(
        {f"history/{k}": np.asarray(run.history[k], dtype=np.float64) for k in _HISTORY_KEYS}
    )
    arrays.update(
        {f"state/{i}": t.detach().cpu().numpy() for i, t in enumerate(run.state_dict.values())}
    )
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def run_from_bytes(b: bytes) -> Run:
    """Inverse of run_to_bytes; never unpickles. ValueError if the bytes are not such a file."""
    try:
        with np.load(io.BytesIO(b), allow_pickle=False) as z:
            meta = json.loads(z["meta_json"].tobytes().decode("utf-8"))
            config = Config.from_dict(json.loads(z["config_json"].tobytes().decode("utf-8")))
            history = {k: z[f"history/{k}"].tolist() for k in _HISTORY_KEYS}
            history["epoch"] = [int(e) for e in history["epoch"]]
            state = {
                k: torch.from_numpy(z[f"state/{i}"].copy())
                for i, k in enumerate(meta["state_keys"])
            }
            step_loss, trajectory = z["step_loss"].tolist(), z["trajectory"].copy()
    except (OSError, KeyError, ValueError, json.JSONDecodeError) as e:
        raise ValueError(f"not a saved run (.npz from run_to_bytes): {e}") from None
    return Run(
        config=config,
        history=history,
        step_loss=step_loss,
        trajectory=trajectory,
        state_dict=state,
        diverged=meta["diverged"],
        diverged_epoch=meta["diverged_epoch"],
        last_finite_loss=meta["last_finite_loss"],
        n_params=meta["n_params"],
        seconds=meta["seconds"],
        name=meta["name"],
    )


def history_csv(run: Run) -> str:
    """The per-epoch history as CSV text (epoch 0 = at initialisation)."""
    lines = [",".join(_HISTORY_KEYS)]
    for row in zip(*(run.history[k] for k in _HISTORY_KEYS)):
        lines.append(",".join(repr(v) if isinstance(v, float) else str(v) for v in row))
    return "\n".join(lines) + "\n"


_TABULAR_FEATURES = {"iris": 4, "wine": 13, "breast_cancer": 30}


def estimate_params(config: Config) -> int:
    """Trainable parameters of `config`'s model, counted on torch's meta device (no memory,
    no data made), so validation can cap model size before anything is built."""
    fields = ("dataset", "model", "depth", "width", "activation", "skip", "batchnorm", "loss")
    return _estimate_params(tuple(getattr(config, f) for f in fields))


@functools.lru_cache(maxsize=256)
def _estimate_params(key: tuple) -> int:
    dataset, model, depth, width, activation, skip, batchnorm, loss = key
    info = data.DATASETS[dataset]
    shape = data.IMAGE_SHAPES.get(dataset) or {"2d": (2,), "1d": (1,)}.get(info.kind)
    if dataset.startswith(data.UPLOAD_PREFIX):
        shape = tuple(data.make(dataset).input_shape)
    elif shape is None:
        shape = (_TABULAR_FEATURES.get(dataset, 64),)
    stand_in = SimpleNamespace(
        name=dataset, task=info.task, n_classes=info.n_classes, input_shape=shape
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
