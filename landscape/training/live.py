"""Training that advances in small, bounded chunks: the Train page's Play / Pause / Step.

`LiveTrainer(config)` holds a model, its optimiser and the batch order of `config`, and moves
on by `step(n)` or `run_for(seconds)`; `evaluate()` records the full-batch train/test loss at
the current step for the curves. Stepping through every epoch gives exactly the weights of
`landscape.training.loop.train(config)`: the same seeded permutation per epoch, the same batches
(BatchNorm nets skip a last batch of one, as `train` does), the same divergence rule.

Between chunks the learning rate, momentum, weight decay or even the optimiser can change
(`set_hyper`): training continues from the current weights. A new optimiser starts with fresh
state (Adam's moment estimates, SGD's momentum buffer), because the old state means nothing to
a different rule; a new learning rate, momentum or weight decay keeps the state.

`FramePacer` decides how long each chunk trains so that drawing a frame costs at most a set
share of the time: the chunk is stretched to (1 - share) / share times the last frame's
drawing time, and never shorter than `min_train_s`.
"""

from __future__ import annotations

import math
import time

import torch

from landscape.data import models
from landscape.data.config import Config
from landscape.training import loop as training
from landscape.training import predictions

MAX_LIVE_STEPS = 20_000  # optimiser steps of one live run (a session holds one live run)
MAX_CHUNK_S = 2.0  # the longest one chunk may train, whatever the pacer asks
HYPER = ("optimizer", "lr", "momentum", "weight_decay")  # changeable while paused


class LiveTrainer:
    """One live training run (see the module docstring)."""

    def __init__(self, config: Config, max_steps: int = MAX_LIVE_STEPS):
        if not 1 <= max_steps <= MAX_LIVE_STEPS:
            raise ValueError(
                f"max_steps={max_steps!r} is out of range: must be in [1, {MAX_LIVE_STEPS}]"
            )
        self.config = config
        self.max_steps = max_steps
        self.ds = config.make_dataset()
        self.model = models.build(config, self.ds)
        self.loss_fn = training.make_loss_fn(config, self.ds)
        self.acc_fn = training.make_accuracy_fn(config, self.ds)
        self.opt = training.make_optimizer(config, self.model)
        self.gen = torch.Generator().manual_seed(config.seed)
        self.batch = min(config.batch_size, self.ds.n_train)
        self.bn = training._has_batchnorm(self.model)
        self.steps = 0  # optimiser steps taken
        self.epochs = 0  # full passes completed
        self.step_loss: list[float] = []
        self.history = {
            k: [] for k in ("step", "epoch", "train_loss", "test_loss", "train_acc", "test_acc")
        }
        self.diverged = False
        self._batches: list[torch.Tensor] = []  # index batches left in the current epoch
        first = self.evaluate()
        self.limit = (
            training.DIVERGENCE_FACTOR * max(first["train_loss"], 1.0)
            if math.isfinite(first["train_loss"])
            else math.inf
        )

    @property
    def steps_per_epoch(self) -> int:
        n = self.ds.n_train
        full, last = divmod(n, self.batch)
        return full + (1 if last and not (self.bn and last < 2) else 0)

    @property
    def done(self) -> bool:
        """No more steps: diverged, or the step cap reached."""
        return self.diverged or self.steps >= self.max_steps

    def _next_batch(self) -> torch.Tensor:
        while not self._batches:
            perm = torch.randperm(self.ds.n_train, generator=self.gen)
            batches = [perm[i : i + self.batch] for i in range(0, self.ds.n_train, self.batch)]
            self._batches = [b for b in batches if not (self.bn and len(b) < 2)]
        return self._batches.pop(0)

    def step(self, n: int = 1) -> int:
        """Up to `n` optimiser steps (fewer when it diverges or hits the cap); returns how many."""
        done = 0
        self.model.train()
        while done < n and not self.done:
            idx = self._next_batch()
            loss = self.loss_fn(self.model(self.ds.X_train[idx]), self.ds.y_train[idx])
            value = loss.item()
            if not training._sane(value, self.limit):
                self.diverged = True
                self.step_loss.append(value)  # the blow-up itself, to mark where it stopped
                break
            self.step_loss.append(value)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.steps += 1
            done += 1
            if not self._batches:
                self.epochs += 1
        return done

    def run_for(self, seconds: float, max_steps: int | None = None) -> int:
        """Steps until `seconds` (at most MAX_CHUNK_S) have passed or `max_steps` were taken
        (slow motion); at least one step."""
        end = time.perf_counter() + min(max(seconds, 0.0), MAX_CHUNK_S)
        cap = max_steps if max_steps is not None else self.max_steps
        done = self.step(1)
        while done and done < cap and not self.done and time.perf_counter() < end:
            done += self.step(1)
        return done

    @property
    def epoch(self) -> float:
        """Progress in epochs (fractional)."""
        return self.steps / max(1, self.steps_per_epoch)

    def evaluate(self) -> dict[str, float]:
        """Full-batch train/test loss and accuracy now; appended to `history`."""
        ev = training._evaluate(self.model, self.loss_fn, self.acc_fn, self.ds)
        for k, v in ev.items():
            self.history[k].append(v)
        self.history["step"].append(self.steps)
        self.history["epoch"].append(self.epoch)
        return ev

    def set_hyper(self, **kw) -> bool:
        """Change optimiser settings (keys of HYPER) and keep the weights; True if anything
        changed. ValueError (from Config) for a bad value or another key."""
        unknown = set(kw) - set(HYPER)
        if unknown:
            raise ValueError(f"set_hyper got {sorted(unknown)}: only {list(HYPER)} can change")
        new = self.config.replace(**kw)
        if new == self.config:
            return False
        if new.optimizer != self.config.optimizer:
            self.opt = training.make_optimizer(new, self.model)
        else:
            for g in self.opt.param_groups:
                g["lr"], g["weight_decay"] = new.lr, new.weight_decay
                if new.optimizer == "momentum":
                    g["momentum"] = new.momentum
        self.config = new
        return True

    def same_setup(self, config: Config) -> bool:
        """True when `config` differs from this run's only in what `set_hyper` can change
        (and the epoch count, which a live run does not use)."""
        keep = {k: getattr(self.config, k) for k in (*HYPER, "epochs")}
        return config.replace(**keep) == self.config

    def picture(self):
        """What the net does now: ("2d", (xs, ys, probs)), ("1d", (xs, yhat)) or (kind, None)."""
        kind = "2d" if self.ds.input_shape == (2,) else "1d" if self.ds.input_shape == (1,) else ""
        if kind == "2d" and self.acc_fn is not None:
            return kind, predictions.decision_grid(self.model, self.ds, resolution=60)
        if kind == "1d" and self.acc_fn is None:
            return kind, predictions.regression_curve(self.model, self.ds)
        return kind, None


class FramePacer:
    """How long the next chunk trains, so that drawing stays within `share` of the time."""

    def __init__(self, share: float = 0.1, min_train_s: float = 0.4):
        if not 0 < share < 1:
            raise ValueError(f"share={share!r} is out of range: must be in (0, 1)")
        self.share, self.min_train_s = share, min_train_s
        self.draw_s = 0.0

    def record_draw(self, seconds: float) -> None:
        # a running mean that follows changes within a few frames
        self.draw_s = seconds if self.draw_s == 0 else 0.7 * self.draw_s + 0.3 * seconds

    def train_seconds(self) -> float:
        return min(MAX_CHUNK_S, max(self.min_train_s, self.draw_s * (1 - self.share) / self.share))
