"""Train a small net from a frozen Config and keep everything the landscape pages need.

`train(config) -> Run`: per-epoch train/test loss and accuracy, per-step training loss, the
flattened parameters at initialisation and after every epoch (the trajectory for the PCA
plane of Li et al. 2018), and the final weights. Same config (seed included) -> the same
numbers, bit for bit: data, initial weights and batch order all come from `config.seed`.

Speed: no DataLoader. The whole (small) dataset is a tensor; each epoch draws a seeded
permutation and slices index batches, and train/test loss are evaluated in one full-batch
no-grad pass per epoch (times: benchmarks/bench_training.py).

Loss / data compatibility (`make_loss_fn`), by the loss's task in `landscape.core.losses`:
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

The configuration (`Config`) lives in `landscape.data.config` and prediction plots' helpers in
`landscape.training.predictions`; both are re-exported here.

Serialisation lives in `landscape.storage.formats` (`run_to_bytes`/`run_from_bytes`): a .npz
of plain arrays plus JSON, read as hostile input and never unpickled.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from landscape.core import losses, pointwise
from landscape.core.pointwise import accuracy
from landscape.data import datasets as data
from landscape.data import models
from landscape.data.config import (  # noqa: F401 - re-exported: `from landscape.training.loop import Config`
    DIVERGENCE_FACTOR,
    MAX_BATCH,
    MAX_DEPTH,
    MAX_EPOCHS,
    MAX_LR,
    MAX_MOMENTUM,
    MAX_PARAMS,
    MAX_SEED,
    MAX_STEPS,
    MAX_TRAJECTORY_BYTES,
    MAX_WEIGHT_DECAY,
    MAX_WIDTH,
    MIN_LR,
    OPTIMIZERS,
    PROB_INPUT_LOSSES,
    PROB_TARGET_LOSSES,
    Config,
    estimate_params,
)
from landscape.training.predictions import (  # noqa: F401 - re-exported
    class_probability_curve,
    decision_grid,
    regression_curve,
)

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

    def loss_fn(out, y):
        return spec(out, y, **params)

    if config.loss == "cross_entropy":  # many surface points at once, the zoo's formula
        smoothing = spec.resolve(**params)["label_smoothing"]
        loss_fn.batched = pointwise.zoo_cross_entropy_batched(smoothing)
    return loss_fn


def make_accuracy_fn(config: Config, dataset: data.Dataset) -> Callable | None:
    """(model_output, y) -> fraction correct in [0, 1]; None for regression data."""
    return None if dataset.task == "regression" else accuracy  # logit > 0 <=> p > 1/2


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


def make_scheduler(config: Config, opt, steps_per_epoch: int):
    """The per-step learning-rate schedule of `config`, or None for a constant lr without
    warm-up (then the optimiser is left untouched, so default runs stay bit for bit the same).

    Step k (0-based) of T = epochs x steps_per_epoch uses lr x f(k): during the W =
    warmup_epochs x steps_per_epoch warm-up steps f(k) = (k + 1) / W; after them f = 1
    ("constant") or 0.5 (1 + cos(pi (k - W) / (T - W))) ("cosine", decaying to 0 at the end).
    """
    if config.schedule == "constant" and config.warmup_epochs == 0:
        return None
    warm = config.warmup_epochs * steps_per_epoch
    rest = max(1, config.epochs * steps_per_epoch - warm)
    cosine = config.schedule == "cosine"

    def factor(k: int) -> float:
        if k < warm:
            return (k + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(k - warm, rest) / rest)) if cosine else 1.0

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _steps_per_epoch(n: int, batch: int, skip_singletons: bool) -> int:
    full, last = divmod(n, batch)
    return full + (1 if last and not (skip_singletons and last < 2) else 0)


def _epoch(
    model, opt, loss_fn, ds, batch, gen, skip_singletons, limit, sched=None
) -> tuple[list[float], bool]:
    """One pass in seeded random order; returns step losses and whether all stayed sane
    (finite and <= limit); stops at the first step that is not. `sched` (if any) steps after
    every optimiser step."""
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
        if sched is not None:
            sched.step()
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
    sched = make_scheduler(config, opt, _steps_per_epoch(ds.n_train, batch, bn))

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
        steps, sane = _epoch(model, opt, loss_fn, ds, batch, gen, bn, limit, sched)
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


# ----------------------------------------------------------------------------- (de)serialise

_HISTORY_KEYS = ("epoch", "train_loss", "test_loss", "train_acc", "test_acc")


def history_csv(run: Run) -> str:
    """The per-epoch history as CSV text (epoch 0 = at initialisation)."""
    lines = [",".join(_HISTORY_KEYS)]
    for row in zip(*(run.history[k] for k in _HISTORY_KEYS)):
        lines.append(",".join(repr(v) if isinstance(v, float) else str(v) for v in row))
    return "\n".join(lines) + "\n"
