"""The edge of stability, live: full-batch gradient descent with λmax tracked every k steps.

Cohen et al. (ICLR 2021): with full-batch GD at step size η, the sharpness (top Hessian
eigenvalue) first rises ("progressive sharpening") until it reaches 2/η, the largest
curvature GD can descend stably on a quadratic, and then hovers just above it while the loss
keeps falling, non-monotonically. With heavy-ball momentum β the threshold is (2 + 2β)/η.

``track(config)`` trains ``config``'s model on the whole training set (one GD step per
"epoch"; ``batch_size`` is ignored; schedule, warm-up and divergence rule are ``train``'s)
with ``config.optimizer`` "sgd" or "momentum" (``track_model``: a user's own model, loss and
data, which have no Config), and every ``every`` steps runs Lanczos on the Hessian of the training loss, started from the previous
top eigenvector (warm start): the top eigenvector changes little between nearby steps, so a
handful of Hessian-vector products suffice where a cold start needs several times more. The
time spent tracking is measured separately from the time spent training.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from landscape.core import checks
from landscape.core.hessian import FlatLoss, extreme_eigenpairs
from landscape.data.config import DIVERGENCE_FACTOR, MAX_BATCH
from landscape.training.loop import Trainer, is_sane

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
    checks.int_in("every", every, 1, MAX_STEPS)
    steps = config.epochs if steps is None else checks.int_in("steps", steps, 1, MAX_STEPS)
    checks.number_in("tol", tol, 0.0, 1.0, open_lo=True)
    checks.int_in("max_iter", max_iter, 2, MAX_LANCZOS)
    # the one training loop, one full-batch step per epoch, for `steps` epochs: the schedule,
    # warm-up and divergence rule are train()'s
    trainer = Trainer(config, epochs=steps, batch_size=MAX_BATCH, keep_trajectory=False,
                      evaluate=False)  # fmt: skip
    ds, model, loss_fn = trainer.ds, trainer.model, trainer.loss_fn
    X, y = ds.X_train, ds.y_train
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
            r = torch.randn(F.numel, generator=gen, dtype=torch.float64).to(F.dtype)
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
            with torch.no_grad():
                losses.append(float(loss_fn(model(X), y)))
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


def check_optimizer(optimizer: str) -> None:
    if optimizer not in OPTIMIZERS:
        raise ValueError(
            f"optimizer={optimizer!r} is not allowed for the edge of stability: must be "
            f"one of {list(OPTIMIZERS)} (the 2/η threshold is a gradient-descent result)"
        )


def track_model(
    model: torch.nn.Module,
    loss_fn,
    data,
    lr: float,
    steps: int,
    optimizer: str = "sgd",
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    every: int = 5,
    tol: float = 1e-3,
    max_iter: int = 30,
    warm: bool = True,
    seed: int = 0,
    track_sharpness: bool = True,
    progress: Callable[[dict], None] | None = None,
    batch_size: int | None = None,
    device: str | torch.device = "cpu",
    config=None,
) -> EoSResult:
    """Full-batch GD on any ``model`` (trained in place, in training mode) from its weights,
    with λmax of ``loss_fn`` over ``data = (X, y)`` every ``every`` steps: the edge of
    stability of a user's own net. (``Trainer``, the one training loop, is built from a
    Config's dataset and model; this is plain GD at a constant step size with the same
    divergence rule.)

    ``batch_size``: the gradient and every Hessian-vector product are summed over batches
    weighted ``n_b / N``, exactly the full-batch ones (a model with BatchNorm is refused
    then: its training-mode statistics depend on the batch). ``device``: where the model and
    the data go (the random start vectors are drawn on the CPU: the same on any device).
    """
    check_optimizer(optimizer)
    checks.number_in("lr", lr, 0.0, 1e6, open_lo=True)
    checks.int_in("every", every, 1, MAX_STEPS)
    steps = checks.int_in("steps", steps, 1, MAX_STEPS)
    checks.number_in("tol", tol, 0.0, 1.0, open_lo=True)
    checks.int_in("max_iter", max_iter, 2, MAX_LANCZOS)
    X, y = checks.data_pair(data)
    dev = torch.device(device)
    model = model.to(dev).train()
    X, y = X.to(dev), y.to(dev)
    n = len(X)
    bs = n if batch_size is None else checks.int_in("batch_size", batch_size, 1, 10**9)
    if bs < n and any(
        isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()
    ):
        raise ValueError(
            f"batch_size={bs} < {n} samples: the model has BatchNorm, whose training-mode "
            "statistics depend on the batch, so batches would not be full-batch GD"
        )
    batches = [(X[i : i + bs], y[i : i + bs], min(bs, n - i) / n) for i in range(0, n, bs)]
    beta = momentum if optimizer == "momentum" else 0.0
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=beta, weight_decay=weight_decay)
    threshold = (2.0 + 2.0 * beta) / lr
    F = FlatLoss(model, loss_fn, (X, y), batch_size=batch_size) if track_sharpness else None
    gen = torch.Generator().manual_seed(seed)
    v = None
    losses, t_steps, sharp, hvps = [], [], [], []
    t_train = t_track = 0.0
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
        opt.zero_grad(set_to_none=True)
        value = 0.0
        for Xb, yb, w in batches:  # one backward per batch: the full-batch gradient, summed
            with torch.enable_grad():
                loss = w * loss_fn(model(Xb), yb)
                if step < steps:
                    loss.backward()
            value += float(loss.detach())
        losses.append(value)
        if step == 0:  # train()'s rule: NaN, inf or DIVERGENCE_FACTOR x the start
            limit = DIVERGENCE_FACTOR * max(value, 1.0) if math.isfinite(value) else math.inf
        if not is_sane(value, limit):
            diverged = step
            t_train += time.perf_counter() - t0
            break
        if step < steps:
            opt.step()
        t_train += time.perf_counter() - t0
        if progress is not None and (step % every == 0 or step == steps):
            progress(
                {"step": step, "steps": steps, "loss": value, "threshold": threshold,
                 "track_steps": list(t_steps), "sharpness": list(sharp),
                 "loss_history": list(losses)}
            )  # fmt: skip
    notes = []
    if diverged is not None:
        notes.append(
            f"the loss blew up (NaN, inf or over {DIVERGENCE_FACTOR:g}x its start) "
            f"at step {diverged}: GD diverged"
        )
    return EoSResult(
        lr=lr,
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
