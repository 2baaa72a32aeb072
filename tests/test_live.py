"""Live training: chunks add up to `train` exactly; settings change mid-run from the current
weights; divergence stops it; the frame pacer keeps drawing within its share."""

import math

import pytest
import torch

from landscape.data.config import Config
from landscape.measures import steplimit
from landscape.training import live
from landscape.training import loop as training

SMALL = Config(n_samples=300, epochs=3)


def _same(m1, m2) -> bool:
    return all(torch.equal(a, b) for a, b in zip(m1.parameters(), m2.parameters()))


@pytest.mark.parametrize("cfg", [SMALL, SMALL.replace(batchnorm=True, batch_size=239)])
def test_stepping_through_every_epoch_gives_trains_weights(cfg):
    # batch 239 on 240 points with BatchNorm: a last batch of one, skipped by both
    run = training.train(cfg)
    t = live.LiveTrainer(cfg)
    total = cfg.epochs * t.steps_per_epoch
    while t.steps < total:
        t.step(min(2, total - t.steps))  # chunk boundaries need not match epochs
    assert t.epochs == cfg.epochs
    assert _same(run.model(), t.model)
    assert t.step_loss == pytest.approx(run.step_loss)


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


def test_optimiser_change_keeps_weights_and_uses_the_new_rule():
    t = live.LiveTrainer(SMALL)
    t.step(3)
    w = [p.detach().clone() for p in t.model.parameters()]
    t.set_hyper(optimizer="sgd", lr=0.5)
    assert isinstance(t.opt, torch.optim.SGD) and t.opt.param_groups[0]["momentum"] == 0
    idx = t._batches[0]  # the next batch, as the trainer will draw it
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
    last = t.step_loss[-1]
    assert not math.isfinite(last) or last > t.limit


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
