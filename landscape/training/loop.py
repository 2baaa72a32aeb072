"""Train a small net from a frozen Config and keep everything the landscape pages need.

`train(config) -> Run`: per-epoch train/test loss and accuracy, per-step training loss, the
flattened parameters at initialisation and after every epoch (the trajectory for the PCA
plane of Li et al. 2018), and the final weights. Same config (seed included) -> the same
numbers, bit for bit: data, initial weights and batch order all come from `config.seed`.

One loop: `Trainer` holds the model, optimiser, schedule, data, batch order, history and
divergence rule and advances by steps or epochs; `train` runs it to the end, live training
(`landscape.training.live`) in chunks and the edge-of-stability tracker
(`landscape.measures.stability`) one full-batch step at a time, so they cannot drift apart.

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
from collections import deque
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


def lr_factor(config: Config, steps_per_epoch: int, epochs: int | None = None):
    """The per-step learning-rate multiplier of `config`'s schedule, or None for a constant lr
    without warm-up (then the optimiser's lr is left untouched, so default runs stay bit for
    bit the same). `epochs` overrides `config.epochs` as the schedule's length.

    Step k (0-based) of T = epochs x steps_per_epoch uses lr x f(k): during the W =
    warmup_epochs x steps_per_epoch warm-up steps f(k) = (k + 1) / W; after them f = 1
    ("constant") or 0.5 (1 + cos(pi (k - W) / (T - W))) ("cosine", decaying to 0 at the end).
    """
    if config.schedule == "constant" and config.warmup_epochs == 0:
        return None
    epochs = config.epochs if epochs is None else epochs
    warm = config.warmup_epochs * steps_per_epoch
    rest = max(1, epochs * steps_per_epoch - warm)
    cosine = config.schedule == "cosine"

    def factor(k: int) -> float:
        if k < warm:
            return (k + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(k - warm, rest) / rest)) if cosine else 1.0

    return factor


def steps_per_epoch(n_train: int, batch: int, skip_singletons: bool) -> int:
    """Optimiser steps in one pass over n_train points (a BatchNorm net skips a last batch of
    one: it cannot normalise it)."""
    full, last = divmod(n_train, batch)
    return full + (1 if last and not (skip_singletons and last < 2) else 0)


def is_sane(value: float, limit: float) -> bool:
    return math.isfinite(value) and value <= limit


def has_batchnorm(model) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


class Trainer:
    """The one training loop: `train` runs it to the end, live training advances it in chunks
    (`landscape.training.live`), the edge-of-stability tracker one full-batch step at a time
    (`landscape.measures.stability`). Whatever the chunks, the same config gives the same
    numbers: state lives here, not in the caller.

    Each epoch draws a seeded permutation and slices index batches; before every optimiser
    step the lr is set to config.lr x the schedule's factor of that step (`lr_factor`); at the
    end of every epoch the train/test loss and accuracy are evaluated (one full-batch no-grad
    pass each) and appended to `history`, the flat weights to `trajectory`, and the weights
    kept as the last sane point. The divergence rule is the module docstring's: the first
    insane step loss or epoch loss stops it (`diverged_epoch`, 1-based; `diverged_step`: the
    optimiser steps taken when the insane loss was seen; `blowup`: that loss).

    `epochs` and `batch_size` override the config's (the edge-of-stability tracker runs more
    full-batch steps than a Config allows epochs); `keep_trajectory=False` records no
    trajectory; `evaluate=False` skips the per-epoch evaluation (the history keeps the initial
    point only; divergence is then judged on the step losses, which for full-batch GD are the
    training loss of every step). `progress` is called after every epoch (and on
    divergence), see `train`.
    """

    def __init__(
        self,
        config: Config,
        *,
        epochs: int | None = None,
        batch_size: int | None = None,
        keep_trajectory: bool = True,
        evaluate: bool = True,
        progress: Callable[[dict], None] | None = None,
    ):
        t0 = time.perf_counter()
        self.config = config
        self.n_epochs = config.epochs if epochs is None else epochs
        self.progress = progress
        self.keep_trajectory, self.evaluate_epochs = keep_trajectory, evaluate
        self.ds = ds = config.make_dataset()
        self.model = models.build(config, ds)
        self.loss_fn, self.acc_fn = make_loss_fn(config, ds), make_accuracy_fn(config, ds)
        self.opt = make_optimizer(config, self.model)
        self.gen = torch.Generator().manual_seed(config.seed)
        self.batch = min(config.batch_size if batch_size is None else batch_size, ds.n_train)
        self.bn = has_batchnorm(self.model)
        self.steps_per_epoch = steps_per_epoch(ds.n_train, self.batch, self.bn)
        self.factor = lr_factor(config, self.steps_per_epoch, self.n_epochs)
        self.steps = 0  # optimiser steps taken
        self.epochs_done = 0  # epochs completed (evaluated and sane)
        self.step_loss: list[float] = []
        self.diverged_epoch: int | None = None
        self.diverged_step: int | None = None
        self.blowup: float | None = None  # the insane loss that stopped it
        self._batches: deque[torch.Tensor] = deque()  # index batches left in this epoch
        self._epoch_steps: list[float] = []  # step losses of the current epoch
        self._in_epoch = False  # this epoch's order is drawn (its batches may be used up)
        first = _evaluate(self.model, self.loss_fn, self.acc_fn, ds)
        self.history = {k: [v] for k, v in first.items()}
        self.history["epoch"] = [0]
        self.limit = (
            DIVERGENCE_FACTOR * max(first["train_loss"], 1.0)
            if math.isfinite(first["train_loss"])
            else math.inf
        )
        self.trajectory = [flat_params(self.model).numpy()] if keep_trajectory else []
        self.last_good = self._weights()
        self.seconds = time.perf_counter() - t0  # time spent in the loop (not between chunks)

    @property
    def diverged(self) -> bool:
        return self.diverged_epoch is not None

    @property
    def finished(self) -> bool:
        """Diverged, or all epochs done."""
        return self.diverged or self.epochs_done >= self.n_epochs

    @property
    def epoch(self) -> float:
        """Progress in epochs (fractional)."""
        return self.steps / max(1, self.steps_per_epoch)

    def _weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def _start_epoch(self) -> None:
        n, b = self.ds.n_train, self.batch
        perm = torch.randperm(n, generator=self.gen)
        batches = (perm[i : i + b] for i in range(0, n, b))
        self._batches = deque(x for x in batches if not (self.bn and len(x) < 2))
        self._in_epoch = True

    def next_batch(self) -> torch.Tensor:
        """The index batch the next step trains on (drawing the epoch's order if needed)."""
        if not self._in_epoch:
            self._start_epoch()
        return self._batches[0]

    def step(self, n: int = 1) -> int:
        """Up to `n` optimiser steps (fewer when it diverges or finishes); returns how many."""
        return self._chunk(lambda done: done < n)

    def step_epoch(self) -> int:
        """Steps to the end of the current epoch (a whole epoch at an epoch boundary)."""
        start = self.epochs_done
        return self._chunk(lambda done: self.epochs_done == start)

    def _chunk(self, more: Callable[[int], bool]) -> int:
        self._chunk_t0, done = time.perf_counter(), 0
        self.model.train()
        while more(done) and not self.finished:
            done += self._advance()
        self.seconds += time.perf_counter() - self._chunk_t0
        return done

    def _advance(self) -> int:
        """One optimiser step, then the epoch's end if it was the last; returns steps taken."""
        if not self._in_epoch:
            self._start_epoch()
        if not self._batches:  # an epoch without a step (every batch skipped)
            self._end_epoch()
            return 0
        idx = self._batches.popleft()
        loss = self.loss_fn(self.model(self.ds.X_train[idx]), self.ds.y_train[idx])
        value = loss.item()
        if not is_sane(value, self.limit):
            self._diverge(value)
            return 0
        self.step_loss.append(value)
        self._epoch_steps.append(value)
        if self.factor is not None:  # LambdaLR's rule: base lr x factor(step)
            for g in self.opt.param_groups:
                g["lr"] = self.config.lr * self.factor(self.steps)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.steps += 1
        if not self._batches:
            self._end_epoch()
        return 1

    def _end_epoch(self) -> None:
        self._in_epoch = False
        ev = (
            _evaluate(self.model, self.loss_fn, self.acc_fn, self.ds)
            if self.evaluate_epochs
            else {}
        )
        bad = [
            ev[k] for k in ("train_loss", "test_loss") if k in ev and not is_sane(ev[k], self.limit)
        ]
        if bad:
            self._diverge(bad[0], ev)
            return
        self.epochs_done += 1
        if ev:
            for k, v in ev.items():
                self.history[k].append(v)
            self.history["epoch"].append(self.epochs_done)
        if self.keep_trajectory:
            self.trajectory.append(flat_params(self.model).numpy())
        self.last_good = self._weights()
        self._report(ev)

    def _diverge(self, value: float, ev: dict | None = None) -> None:
        self.diverged_epoch = self.epochs_done + 1
        self.diverged_step, self.blowup = self.steps, value
        self._report(ev or {})

    def _report(self, ev: dict) -> None:
        steps, self._epoch_steps = self._epoch_steps, []
        if self.progress is None:
            return
        nan = float("nan")
        self.progress(
            {
                "epoch": self.epochs_done + self.diverged,
                "epochs": self.n_epochs,
                "train_loss": ev.get("train_loss", nan),
                "test_loss": ev.get("test_loss", nan),
                "train_acc": ev.get("train_acc", nan),
                "test_acc": ev.get("test_acc", nan),
                "step_loss": steps,
                "diverged": self.diverged,
                "seconds": self.seconds + time.perf_counter() - self._chunk_t0,
            }
        )

    def run(self) -> Run:
        """Step to the end and return the Run."""
        while not self.finished:
            self.step_epoch()
        return self.result()

    def result(self) -> Run:
        """The Run so far: history, trajectory and weights end at the last sane epoch."""
        return Run(
            config=self.config,
            history={k: list(v) for k, v in self.history.items()},
            step_loss=list(self.step_loss),
            trajectory=np.stack(self.trajectory).astype(np.float32),
            state_dict=self.last_good,
            diverged=self.diverged,
            diverged_epoch=self.diverged_epoch,
            last_finite_loss=self.step_loss[-1]
            if self.step_loss
            else self.history["train_loss"][0],
            n_params=models.count_params(self.model),
            seconds=self.seconds,
        )


def train(config: Config, progress: Callable[[dict], None] | None = None) -> Run:
    """Train `config` and return the Run; never raises on divergence (see module docstring).

    progress, if given, is called after every epoch with a dict: epoch, epochs, train_loss,
    test_loss, train_acc, test_acc, step_loss (this epoch's step losses), diverged, seconds.
    """
    return Trainer(config, progress=progress).run()


# ----------------------------------------------------------------------------- (de)serialise

_HISTORY_KEYS = ("epoch", "train_loss", "test_loss", "train_acc", "test_acc")


def history_csv(run: Run) -> str:
    """The per-epoch history as CSV text (epoch 0 = at initialisation)."""
    lines = [",".join(_HISTORY_KEYS)]
    for row in zip(*(run.history[k] for k in _HISTORY_KEYS)):
        lines.append(",".join(repr(v) if isinstance(v, float) else str(v) for v in row))
    return "\n".join(lines) + "\n"
