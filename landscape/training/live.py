"""Training that advances in small, bounded chunks: the Train page's Play / Pause / Step.

`LiveTrainer(config)` is the one training loop (`landscape.training.loop.Trainer`) moved on by
`step(n)`, `step_epoch()` or `run_for(seconds)`; `evaluate()` records the full-batch
train/test loss at the current step in `frames` for the live curves (it changes no weight).
Stepping through every epoch, in any chunks, gives exactly `train(config)`: the same weights,
history, step losses, trajectory and divergence (`result()` is then that Run). It stops, like
`train`, after `config.epochs` epochs or at divergence, and at `max_steps` steps at the latest.

Between chunks the learning rate, momentum, weight decay, the optimiser or the epoch count
can change (`set_hyper`): training continues from the current weights. A new optimiser starts
with fresh state (Adam's moment estimates, SGD's momentum buffer), because the old state means
nothing to a different rule; a new learning rate, momentum or weight decay keeps the state.
A run whose steps were taken under more than one setting is `reproducible` no more: no Config
describes it.

`FramePacer` decides how long each chunk trains so that drawing a frame costs at most a set
share of the time: the chunk is stretched to (1 - share) / share times the last frame's
drawing time, and never shorter than `min_train_s`.
"""

from __future__ import annotations

import time

from landscape.data.config import Config
from landscape.training import loop as training
from landscape.training import predictions

MAX_LIVE_STEPS = 20_000  # optimiser steps of one live run (a session holds one live run)
MAX_CHUNK_S = 2.0  # the longest one chunk may train, whatever the pacer asks
HYPER = ("optimizer", "lr", "momentum", "weight_decay", "epochs")  # changeable while paused


class LiveTrainer(training.Trainer):
    """One live training run (see the module docstring)."""

    def __init__(self, config: Config, max_steps: int = MAX_LIVE_STEPS):
        if not 1 <= max_steps <= MAX_LIVE_STEPS:
            raise ValueError(
                f"max_steps={max_steps!r} is out of range: must be in [1, {MAX_LIVE_STEPS}]"
            )
        super().__init__(config)
        self.max_steps = max_steps
        self.reproducible = True  # every step so far was taken under `config`
        self.frames = {
            k: [] for k in ("step", "epoch", "train_loss", "test_loss", "train_acc", "test_acc")
        }
        self.evaluate()

    @property
    def done(self) -> bool:
        """No more steps: diverged, all epochs done, or the step cap reached."""
        return self.finished or self.steps >= self.max_steps

    def step(self, n: int = 1) -> int:
        """Up to `n` optimiser steps (fewer when it diverges, finishes or hits the cap)."""
        return super().step(max(0, min(n, self.max_steps - self.steps)))

    def step_epoch(self) -> int:
        """To the end of the current epoch (a whole one at an epoch boundary), within the cap."""
        if self.steps_per_epoch == 0:
            return super().step_epoch()
        left = self.steps_per_epoch - self.steps % self.steps_per_epoch
        return self.step(left)

    def run_for(self, seconds: float, max_steps: int | None = None) -> int:
        """Steps until `seconds` (at most MAX_CHUNK_S) have passed or `max_steps` were taken
        (slow motion); at least one step unless done."""
        end = time.perf_counter() + min(max(seconds, 0.0), MAX_CHUNK_S)
        cap = max_steps if max_steps is not None else self.max_steps
        done = self.step(1)
        while done and done < cap and not self.done and time.perf_counter() < end:
            done += self.step(1)
        return done

    def evaluate(self) -> dict[str, float]:
        """Full-batch train/test loss and accuracy now; appended to `frames`."""
        ev = training._evaluate(self.model, self.loss_fn, self.acc_fn, self.ds)
        for k, v in ev.items():
            self.frames[k].append(v)
        self.frames["step"].append(self.steps)
        self.frames["epoch"].append(self.epoch)
        return ev

    def set_hyper(self, **kw) -> bool:
        """Change optimiser settings or the epoch count (keys of HYPER) and keep the weights;
        True if anything changed. ValueError (from Config) for a bad value or another key."""
        unknown = set(kw) - set(HYPER)
        if unknown:
            raise ValueError(f"set_hyper got {sorted(unknown)}: only {list(HYPER)} can change")
        new = self.config.replace(**kw)
        if new == self.config:
            return False
        if self.steps and (
            new.replace(epochs=self.config.epochs) != self.config or new.schedule == "cosine"
        ):  # the steps so far followed other settings (cosine's length depends on epochs)
            self.reproducible = False
        if new.optimizer != self.config.optimizer:
            self.opt = training.make_optimizer(new, self.model)
        else:
            for g in self.opt.param_groups:
                g["lr"], g["weight_decay"] = new.lr, new.weight_decay
                if new.optimizer == "momentum":
                    g["momentum"] = new.momentum
        self.config, self.n_epochs = new, new.epochs
        self.factor = training.lr_factor(new, self.steps_per_epoch)
        return True

    def same_setup(self, config: Config) -> bool:
        """True when `config` differs from this run's only in what `set_hyper` can change."""
        keep = {k: getattr(self.config, k) for k in HYPER}
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
