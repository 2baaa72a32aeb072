"""The edge of stability, live: full-batch gradient descent with λmax tracked every k steps.

Cohen et al. (ICLR 2021): with full-batch GD at step size η, the sharpness (top Hessian
eigenvalue) first rises ("progressive sharpening") until it reaches 2/η, the largest
curvature GD can descend stably on a quadratic, and then hovers just above it while the loss
keeps falling, non-monotonically. With heavy-ball momentum β the threshold is (2 + 2β)/η.

``track(config)`` trains ``config``'s model on the whole training set (one GD step per
"epoch"; ``batch_size`` is ignored; schedule, warm-up and divergence rule are ``train``'s)
with ``config.optimizer`` "sgd" or "momentum" (``track_model``: a user's own model, loss and
data in the same ``Trainer``, the hyper-parameters still a Config's), and every ``every`` steps runs Lanczos on the Hessian of the training loss, started from the previous
top eigenvector (warm start): the top eigenvector changes little between nearby steps, so a
handful of Hessian-vector products suffice where a cold start needs several times more. The
time spent tracking is measured separately from the time spent training.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from landscape.core import checks
from landscape.core.hessian import FlatLoss, extreme_eigenpairs
from landscape.data.config import DIVERGENCE_FACTOR, MAX_BATCH, Config
from landscape.training.loop import Trainer, has_batchnorm, is_sane

OPTIMIZERS = ("sgd", "momentum")
MAX_STEPS = 5000
MAX_LANCZOS = 100
WARM_NOISE = 0.1  # norm of the random part added to the previous (unit) eigenvector


@dataclass
class EoSResult:
    lr: float
    momentum: float  # 0 for plain GD
    threshold: float  # (2 + 2 momentum) / lr: the edge of stability
    steps: np.ndarray  # (T+1,) 0..T
    loss: np.ndarray  # (T+1,) full-batch training loss before each step (and after the last)
    track_steps: np.ndarray  # (K,) steps at which λmax was measured
    sharpness: np.ndarray  # (K,) λmax at those steps
    hvps: np.ndarray  # (K,) Hessian-vector products each measurement took
    seconds_train: float  # gradient steps and loss evaluations only
    seconds_track: float  # the λmax measurements
    warm: bool
    diverged_step: int | None = None  # the step whose loss blew up (training's rule)
    config: object = None
    notes: list[str] = field(default_factory=list)

    @property
    def overhead(self) -> float:
        """Tracking time as a fraction of training time."""
        return self.seconds_track / max(self.seconds_train, 1e-12)

    def first_crossing(self) -> int | None:
        """The first tracked step with λmax >= 0.95 x threshold (None if never)."""
        hit = np.nonzero(self.sharpness >= 0.95 * self.threshold)[0]
        return int(self.track_steps[hit[0]]) if len(hit) else None


def track(
    config,
    every: int = 5,
    steps: int | None = None,
    tol: float = 1e-3,
    max_iter: int = 30,
    warm: bool = True,
    track_sharpness: bool = True,
    progress: Callable[[dict], None] | None = None,
    batch_size: int | None = None,
) -> EoSResult:
    """Full-batch GD on ``config`` with λmax every ``every`` steps (see the module docstring).

    ``steps`` defaults to ``config.epochs``. ``progress(info)`` after every tracked step with
    keys step, steps, loss, threshold, track_steps, sharpness (lists so far), loss_history. ``track_sharpness=False`` trains the same
    way without measuring (the baseline of the overhead benchmark). ``batch_size``: the
    Hessian-vector products read the data in batches weighted ``n_b / N`` (the exact mean).
    """

    check_optimizer(config.optimizer)
    steps = _check(config, every, steps, tol, max_iter)
    # the one training loop, one full-batch step per epoch, for `steps` epochs: the schedule,
    # warm-up and divergence rule are train()'s
    trainer = Trainer(config, epochs=steps, batch_size=MAX_BATCH, keep_trajectory=False,
                      evaluate=False)  # fmt: skip
    return _follow(trainer, steps, every, tol, max_iter, warm, track_sharpness, progress,
                   batch_size)  # fmt: skip


def check_optimizer(optimizer: str) -> None:
    if optimizer not in OPTIMIZERS:
        raise ValueError(
            f"optimizer={optimizer!r} is not allowed for the edge of stability: must be "
            f"one of {list(OPTIMIZERS)} (the 2/η threshold is a gradient-descent result)"
        )


def _check(config, every, steps, tol, max_iter) -> int:
    """The tracker's own arguments checked; returns the number of steps."""
    checks.int_in("every", every, 1, MAX_STEPS)
    steps = config.epochs if steps is None else checks.int_in("steps", steps, 1, MAX_STEPS)
    checks.number_in("tol", tol, 0.0, 1.0, open_lo=True)
    checks.int_in("max_iter", max_iter, 2, MAX_LANCZOS)
    return steps


def track_model(
    model: torch.nn.Module,
    loss_fn,
    data,
    lr: float | None = None,
    steps: int | None = None,
    optimizer: str | None = None,
    momentum: float | None = None,
    weight_decay: float | None = None,
    every: int = 5,
    tol: float = 1e-3,
    max_iter: int = 30,
    warm: bool = True,
    seed: int | None = None,
    track_sharpness: bool = True,
    progress: Callable[[dict], None] | None = None,
    batch_size: int | None = None,
    device: str | torch.device = "cpu",
    config: Config | None = None,
) -> EoSResult:
    """Full-batch GD on any ``model`` (trained in place, in training mode) from its weights,
    with λmax of ``loss_fn`` over ``data = (X, y)`` every ``every`` steps: the edge of
    stability of a user's own net, driven by the one training loop exactly as ``track``
    (``Trainer`` with the user's model, loss and data).

    The hyper-parameters (optimizer, lr, momentum, weight decay, schedule, warm-up, seed,
    epochs = the default ``steps``) are ``config``'s (default: plain SGD, momentum 0, no
    weight decay, constant lr, seed 0); ``lr``, ``optimizer``, ``momentum``,
    ``weight_decay`` and ``seed``, when given, override it. ``batch_size``: the gradient and
    every Hessian-vector product are summed over batches weighted ``n_b / N``, exactly the
    full-batch ones (a model with BatchNorm is refused then: its training-mode statistics
    depend on the batch). ``device``: where the model and the data go (the batch order and
    the random start vectors are drawn on the CPU: the same on any device).
    """
    if config is None:
        if lr is None:
            raise ValueError("lr=None: track_model needs lr= or a config= that holds one")
        config = Config(optimizer="sgd", momentum=0.0)
    given = dict(lr=lr, optimizer=optimizer, momentum=momentum, weight_decay=weight_decay,
                 seed=seed)  # fmt: skip
    config = config.replace(**{k: v for k, v in given.items() if v is not None})
    check_optimizer(config.optimizer)
    steps = _check(config, every, steps, tol, max_iter)
    X, y = checks.data_pair(data)
    dev = torch.device(device)
    n = len(X)
    bs = n if batch_size is None else checks.int_in("batch_size", batch_size, 1, 10**9)
    if bs < n and has_batchnorm(model):
        raise ValueError(
            f"batch_size={bs} < {n} samples: the model has BatchNorm, whose training-mode "
            "statistics depend on the batch, so batches would not be full-batch GD"
        )
    trainer = Trainer(config, epochs=steps, batch_size=n, keep_trajectory=False, evaluate=False,
                      model=model.to(dev).train(), loss_fn=loss_fn, data=(X.to(dev), y.to(dev)),
                      accumulate_batch=bs)  # fmt: skip
    return _follow(trainer, steps, every, tol, max_iter, warm, track_sharpness, progress,
                   batch_size)  # fmt: skip


def _follow(trainer, steps, every, tol, max_iter, warm, track_sharpness, progress, batch_size):
    """Step ``trainer`` (full batch, one step per epoch) ``steps`` times with λmax every
    ``every`` steps, warm-started from the previous top eigenvector."""
    config, model, loss_fn = trainer.config, trainer.model, trainer.loss_fn
    X, y = trainer.X, trainer.y
    beta = config.momentum if config.optimizer == "momentum" else 0.0
    threshold = (2.0 + 2.0 * beta) / config.lr
    F = FlatLoss(model, loss_fn, (X, y), batch_size=batch_size) if track_sharpness else None
    gen = torch.Generator().manual_seed(config.seed)
    v = None
    losses = trainer.step_loss  # full-batch training loss at w_0, w_1, ... (before each step)
    t_steps, sharp, hvps = [], [], []
    t_train, t_track = trainer.seconds, 0.0
    diverged = None
    for step in range(steps + 1):
        if F is not None and step % every == 0:  # λmax at w_step, before its update
            t0 = time.perf_counter()
            x = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
            F.buffers = {n: b.detach() for n, b in model.named_buffers()}
            r = torch.randn(F.numel, generator=gen, dtype=torch.float64).to(F.x0)
            # warm: the previous eigenvector plus a little noise, so that a new, larger
            # eigenvalue that the old vector is orthogonal to still enters the Krylov space
            v = r if v is None or not warm else v + WARM_NOISE * r / r.norm()
            lam, V, n_hvp, _ = extreme_eigenpairs(
                lambda u, x=x: F.hvp(x, u), v, 1, "top", tol, max_iter, gen
            )
            lam, v = float(lam[0]), V[:, 0]
            t_track += time.perf_counter() - t0
            t_steps.append(step)
            sharp.append(lam)
            hvps.append(n_hvp)
        t0 = time.perf_counter()
        if step < steps:
            trainer.step(1)  # records the loss at w_step, then steps (or stops: diverged)
        else:  # the loss after the last step (training is over: its list is ours now)
            losses.append(trainer.train_loss())
        t_train += time.perf_counter() - t0
        if trainer.diverged:
            diverged = trainer.diverged_step
            losses.append(trainer.blowup)
            break
        if step == steps and not is_sane(losses[-1], trainer.limit):
            diverged = step
            break
        if progress is not None and (step % every == 0 or step == steps):
            progress(
                {"step": step, "steps": steps, "loss": losses[step], "threshold": threshold,
                 "track_steps": list(t_steps), "sharpness": list(sharp),
                 "loss_history": list(losses)}
            )  # fmt: skip
    notes = []
    if trainer.factor is not None:
        notes.append(
            f"the step size follows the {config.schedule} schedule"
            f"{f' after {config.warmup_epochs} warm-up steps' if config.warmup_epochs else ''}: "
            f"the threshold 2/η is that of the peak η = {config.lr:g}"
        )
    if diverged is not None:
        notes.append(
            f"the loss blew up (NaN, inf or over {DIVERGENCE_FACTOR:g}x its start) "
            f"at step {diverged}: GD diverged"
        )
    return EoSResult(
        lr=config.lr,
        momentum=beta,
        threshold=threshold,
        steps=np.arange(len(losses)),
        loss=np.array(losses),
        track_steps=np.array(t_steps, dtype=int),
        sharpness=np.array(sharp),
        hvps=np.array(hvps, dtype=int),
        seconds_train=t_train,
        seconds_track=t_track,
        warm=warm,
        diverged_step=diverged,
        config=config,
        notes=notes,
    )
