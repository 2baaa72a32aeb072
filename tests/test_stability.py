"""Edge of stability: tracked λmax against an independent GD loop and exact eigen-solves."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from landscape.data import models
from landscape.data.config import Config
from landscape.measures import curvature, stability
from landscape.pipelines import presets
from landscape.training.loop import make_loss_fn

SMALL = Config(dataset="moons", n_samples=120, model="mlp", depth=1, width=8, activation="tanh",
               optimizer="sgd", lr=0.5, batch_size=5000, epochs=30)  # fmt: skip


def _plain_gd(config, steps, lrs=None):
    """GD by hand: w <- w - lr * grad, on the whole training set; the weights at each step.
    `lrs`: the step size of each step (default: config.lr throughout)."""
    ds = config.make_dataset()
    model, loss_fn = models.build(config, ds), make_loss_fn(config, ds)
    out = []
    for k in range(steps + 1):
        out.append([p.detach().clone() for p in model.parameters()])
        loss = loss_fn(model(ds.X_train), ds.y_train)
        grads = torch.autograd.grad(loss, list(model.parameters()))
        with torch.no_grad():
            for p, g in zip(model.parameters(), grads):
                p -= (config.lr if lrs is None else lrs[min(k, steps - 1)]) * g
    return model, loss_fn, (ds.X_train, ds.y_train), out


@pytest.mark.parametrize("schedule, warmup", [("cosine", 0), ("constant", 10), ("cosine", 10)])
def test_track_follows_the_schedule_and_warm_up(schedule, warmup):
    """Step k uses lr x f(k): (k + 1) / W over the W warm-up steps, then 1 or the cosine
    0.5 (1 + cos(pi (k - W) / (T - W))) down to 0 (the Config's schedule, one step an epoch)."""
    cfg = SMALL.replace(schedule=schedule, warmup_epochs=warmup)
    T, W = cfg.epochs, warmup
    lrs = [cfg.lr * ((k + 1) / W if k < W else
                     0.5 * (1 + math.cos(math.pi * (k - W) / (T - W))) if schedule == "cosine"
                     else 1.0) for k in range(T)]  # fmt: skip
    r = stability.track(cfg, every=10, tol=1e-6, max_iter=60)
    model, loss_fn, data, weights = _plain_gd(cfg, T, lrs)
    ref = []
    for w in weights:
        with torch.no_grad():
            for p, v in zip(model.parameters(), w):
                p.copy_(v)
            ref.append(float(loss_fn(model(data[0]), data[1])))
    np.testing.assert_allclose(r.loss, ref, rtol=1e-5)
    constant = stability.track(SMALL, every=10)
    assert np.abs(r.loss[-1] - constant.loss[-1]) > 1e-3  # the schedule mattered
    assert any("schedule" in n for n in r.notes)


def test_tracked_sharpness_matches_a_cold_eigen_solve_along_an_independent_gd_loop():
    r = stability.track(SMALL, every=10, tol=1e-6, max_iter=60)
    assert list(r.track_steps) == [0, 10, 20, 30]
    assert r.threshold == pytest.approx(2 / 0.5)
    model, loss_fn, data, weights = _plain_gd(SMALL, SMALL.epochs)
    for step, lam in zip(r.track_steps, r.sharpness):
        with torch.no_grad():
            for p, w in zip(model.parameters(), weights[step]):
                p.copy_(w)
        ref = curvature.top_eigen(model, loss_fn, data, tol=1e-7, max_iter=200).eigenvalues[0]
        assert lam == pytest.approx(ref, rel=1e-4)
        assert r.loss[step] == pytest.approx(float(loss_fn(model(data[0]), data[1])), rel=1e-5)


def test_warm_start_uses_fewer_hvps_than_cold_for_the_same_values():
    cfg = SMALL.replace(width=32, depth=2)
    warm = stability.track(cfg, every=2, tol=1e-4, max_iter=60)
    cold = stability.track(cfg, every=2, tol=1e-4, max_iter=60, warm=False)
    assert np.allclose(warm.sharpness, cold.sharpness, rtol=1e-3)
    assert warm.hvps[1:].sum() < 0.75 * cold.hvps[1:].sum()
    base = stability.track(cfg, track_sharpness=False)
    assert np.array_equal(base.loss, warm.loss) and len(base.sharpness) == 0


def test_momentum_threshold_and_rejected_optimisers():
    r = stability.track(SMALL.replace(optimizer="momentum", momentum=0.5, lr=0.1), every=30)
    assert r.threshold == pytest.approx((2 + 2 * 0.5) / 0.1)
    with pytest.raises(ValueError, match="optimizer"):
        stability.track(SMALL.replace(optimizer="adam"))
    with pytest.raises(ValueError, match="every"):
        stability.track(SMALL, every=0)


def test_the_preset_reaches_the_edge_of_stability():
    cfg = presets.get(presets.EOS_PRESET)
    r = stability.track(cfg, every=10, steps=250)
    assert r.sharpness[0] < 0.7 * r.threshold  # starts well below 2/lr
    assert r.first_crossing() is not None  # progressive sharpening up to 2/lr
    late = r.sharpness[r.track_steps >= 200]
    assert np.all(np.abs(late / r.threshold - 1) < 0.35)  # then hovers near it
