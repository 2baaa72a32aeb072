"""Live training: chunks add up to `train` exactly (every Config field, schedules included);
settings change mid-run from the current weights; divergence and Epochs stop it; the frame
pacer keeps drawing within its share."""

import itertools
import math

import numpy as np
import pytest
import torch

from landscape.data.config import Config
from landscape.measures import steplimit
from landscape.training import live
from landscape.training import loop as training

SMALL = Config(n_samples=300, epochs=3)
TINY = Config(n_samples=100, width=8, depth=1, epochs=3, batch_size=16)

# One Config per behaviour of the loop: schedules and warm-up, each optimiser, weight decay,
# BatchNorm (with a last batch of one, skipped), full batch, regression and classification
# (incl. Li et al.'s MSE on classes and a binary loss), a run that diverges in its first
# epoch and one whose epoch loss blows up later.
SWEEP = {
    "default adam": TINY,
    "cosine + warm-up": TINY.replace(schedule="cosine", warmup_epochs=2),
    "sgd constant + warm-up": TINY.replace(optimizer="sgd", lr=0.2, warmup_epochs=1),
    "momentum cosine wd": TINY.replace(
        optimizer="momentum", lr=0.05, schedule="cosine", weight_decay=1e-3
    ),  # fmt: skip
    "adamw wd": TINY.replace(optimizer="adamw", weight_decay=0.05, schedule="cosine"),
    "batchnorm, last batch of one": TINY.replace(
        batchnorm=True, batch_size=79, schedule="cosine", warmup_epochs=1
    ),  # fmt: skip
    "full batch": TINY.replace(batch_size=5000, optimizer="sgd", lr=0.5, epochs=5),
    "regression": TINY.replace(dataset="sine", loss="mse", schedule="cosine", warmup_epochs=1),
    "mse on classes": TINY.replace(loss="mse", optimizer="momentum", lr=0.1),
    "binary logistic": TINY.replace(loss="logistic", warmup_epochs=3),
    "diverges at once": TINY.replace(optimizer="sgd", lr=1e6),
    "diverges later": TINY.replace(
        dataset="sine",
        loss="mse",
        optimizer="sgd",
        lr=3.0,
        batch_size=5000,
        warmup_epochs=4,
        epochs=6,
    ),  # fmt: skip
}


def _same(m1, m2) -> bool:
    return all(torch.equal(a, b) for a, b in zip(m1.parameters(), m2.parameters()))


def _same_history(h1, h2) -> bool:
    return h1.keys() == h2.keys() and all(
        np.array_equal(np.asarray(h1[k]), np.asarray(h2[k]), equal_nan=True) for k in h1
    )


@pytest.mark.parametrize("name", list(SWEEP))
def test_live_in_uneven_chunks_is_train_bit_for_bit(name):
    cfg = SWEEP[name]
    run = training.train(cfg)
    t = live.LiveTrainer(cfg)
    chunks = itertools.cycle([1, 3, 2, 7, "epoch", 5])
    while not t.done:
        c = next(chunks)
        t.step_epoch() if c == "epoch" else t.step(c)
        t.evaluate()  # a frame between chunks changes nothing
    assert t.step(3) == 0 and t.step_epoch() == 0  # stopped: Epochs reached or diverged
    got = t.result()
    # the weights it ended on (the last sane epoch's), then everything else the Run holds
    assert all(torch.equal(run.state_dict[k], got.state_dict[k]) for k in run.state_dict)
    assert got.step_loss == run.step_loss
    assert _same_history(got.history, run.history)
    assert np.array_equal(got.trajectory, run.trajectory)
    assert (got.diverged, got.diverged_epoch, got.last_finite_loss) == (
        run.diverged,
        run.diverged_epoch,
        run.last_finite_loss,
    )
    assert got.config == cfg and got.n_params == run.n_params and t.reproducible
    if not run.diverged:
        assert t.epochs_done == cfg.epochs and _same(t.model, run.model())


def test_the_sweep_covers_divergence_in_both_ways():
    # "diverges at once": a step loss; "diverges later": an epoch's loss, after sane epochs
    at_once, later = (training.train(SWEEP[k]) for k in ("diverges at once", "diverges later"))
    assert at_once.diverged and at_once.diverged_epoch == 1
    assert len(at_once.step_loss) < 80 // 16  # a step loss stopped it inside epoch 1
    assert later.diverged and later.diverged_epoch > 1
    assert len(later.step_loss) == later.diverged_epoch  # every step sane: the epoch loss blew up


def test_schedule_is_followed_step_by_step():
    """An independent reference: each step's lr is lr x f(k), f from the docstring's formula."""
    cfg = TINY.replace(optimizer="sgd", lr=0.1, schedule="cosine", warmup_epochs=1)
    t = live.LiveTrainer(cfg)
    T, W = cfg.epochs * t.steps_per_epoch, t.steps_per_epoch
    seen = []
    while not t.done:
        t.step(1)
        seen.append(t.opt.param_groups[0]["lr"])
    want = [0.1 * ((k + 1) / W if k < W else 0.5 * (1 + math.cos(math.pi * (k - W) / (T - W))))
            for k in range(T)]  # fmt: skip
    np.testing.assert_allclose(seen, want, rtol=1e-12)


def test_lr_change_continues_from_the_current_weights():
    t = live.LiveTrainer(SMALL)
    t.step(5)
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    assert t.set_hyper(lr=0.1) and t.config.lr == 0.1
    assert all(torch.equal(before[k], v) for k, v in t.model.state_dict().items())
    assert t.opt.param_groups[0]["lr"] == 0.1
    # one more step is exactly one Adam step at the new rate from those weights (a plain copy)
    ref = live.LiveTrainer(SMALL)
    ref.step(5)
    for g in ref.opt.param_groups:
        g["lr"] = 0.1
    t.step(1), ref.step(1)
    assert _same(t.model, ref.model)
    assert not t.set_hyper(lr=0.1)  # nothing changed
    assert not t.reproducible  # 5 steps at one rate, then another: no Config describes it


def test_changing_epochs_moves_the_stop_and_keeps_a_constant_run_reproducible():
    t = live.LiveTrainer(TINY.replace(epochs=1))
    t.step(10_000)
    assert t.done and t.epochs_done == 1
    assert t.set_hyper(epochs=2) and not t.done
    t.step(10_000)
    assert t.epochs_done == 2 and t.reproducible
    run = training.train(TINY.replace(epochs=2))
    assert t.result().step_loss == run.step_loss and _same(t.model, run.model())


def test_optimiser_change_keeps_weights_and_uses_the_new_rule():
    t = live.LiveTrainer(SMALL)
    t.step(3)
    w = [p.detach().clone() for p in t.model.parameters()]
    t.set_hyper(optimizer="sgd", lr=0.5)
    assert isinstance(t.opt, torch.optim.SGD) and t.opt.param_groups[0]["momentum"] == 0
    idx = t.next_batch()  # the next batch, as the trainer will draw it
    model = t.model
    loss = t.loss_fn(model(t.ds.X_train[idx]), t.ds.y_train[idx])
    grads = torch.autograd.grad(loss, list(model.parameters()))
    t.step(1)
    for p, w0, g in zip(model.parameters(), w, grads):
        torch.testing.assert_close(p.detach(), w0 - 0.5 * g)
    with pytest.raises(ValueError, match="lr"):
        t.set_hyper(lr=-1)
    with pytest.raises(ValueError, match="only"):
        t.set_hyper(depth=3)


def test_divergence_stops_and_keeps_the_blow_up_value():
    t = live.LiveTrainer(steplimit.DEMO.replace(lr=5.0))  # linear least squares, far too big a step
    t.step(100)
    assert t.diverged and t.done
    assert t.step(5) == 0
    assert not math.isfinite(t.blowup) or t.blowup > t.limit
    # the step count where it stopped is the count of steps taken (what the status line says)
    assert t.diverged_step == t.steps == len(t.step_loss)


def test_run_for_is_bounded_by_steps_and_cap():
    t = live.LiveTrainer(SMALL, max_steps=7)
    assert t.run_for(10.0, max_steps=3) == 3
    assert t.run_for(10.0) == 4 and t.done  # the cap
    with pytest.raises(ValueError, match="max_steps"):
        live.LiveTrainer(SMALL, max_steps=0)


def test_setup_change_is_detected():
    t = live.LiveTrainer(SMALL)
    assert t.same_setup(SMALL.replace(lr=0.3, optimizer="sgd", epochs=50))
    assert not t.same_setup(SMALL.replace(width=8))
    assert not t.same_setup(SMALL.replace(schedule="cosine"))


def test_frame_pacer_keeps_drawing_within_its_share():
    p = live.FramePacer(share=0.2, min_train_s=0.1)
    assert p.train_seconds() == 0.1  # nothing drawn yet
    p.record_draw(0.1)
    t = p.train_seconds()
    assert 0.1 / (0.1 + t) == pytest.approx(0.2)
    p.record_draw(10.0)
    assert p.train_seconds() == live.MAX_CHUNK_S
    with pytest.raises(ValueError, match="share"):
        live.FramePacer(share=1.5)
