"""Surfaces against a plain loop written here, centre = model loss, model untouched, BatchNorm."""

import copy
import json

import numpy as np
import pytest
import torch
from torch import nn

from landscape.core import directions as D
from landscape.engine import race as R
from landscape.engine import surface as S

METHODS = ["loop", "auto"]


def cnn_bn(seed=0):
    """A tiny CNN with BatchNorm whose running statistics differ from any batch's."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 8 * 8, 3),
    )
    with torch.no_grad():
        model[1].running_mean.uniform_(-0.5, 0.5)
        model[1].running_var.uniform_(0.5, 2.0)
    return model


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3)
    )


def image_data(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g)


def tabular_data(n=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 2, generator=g), torch.randint(0, 3, (n,), generator=g)


def accuracy(out, y):
    return (out.argmax(1) == y).float().mean()


def snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}, model.training


def assert_unchanged(model, snap):
    state, training = snap
    now = model.state_dict()
    assert list(now) == list(state)
    assert all(torch.equal(now[k], state[k]) for k in state)  # bit for bit
    assert model.training == training


def plain_loop(model, loss_fn, X, y, d1, d2, xs, ys):
    """Independent reference: copy the weights in place into a fresh copy, point by point."""
    loss = np.empty((len(ys), len(xs)))
    acc = np.empty((len(ys), len(xs)))
    center = {k: p.detach().clone() for k, p in model.named_parameters()}
    for i, b in enumerate(ys):
        for j, a in enumerate(xs):
            m = copy.deepcopy(model).eval()
            with torch.no_grad():
                for k, p in m.named_parameters():
                    p.copy_(center[k] + a * d1[k] + b * d2[k])
                out = m(X)
                loss[i, j] = loss_fn(out, y).item()
                acc[i, j] = accuracy(out, y).item()
    return loss, acc


# ----------------------------------------------------------------------------- equality


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind", ["cnn_bn", "mlp"])
def test_plane_non_square_equals_plain_loop(kind, method):
    model, (X, y) = (cnn_bn(), image_data()) if kind == "cnn_bn" else (mlp(), tabular_data())
    model.train()  # the caller's mode must not matter: points are evaluated in eval mode
    d1, d2 = D.random_directions(model, 2, seed=1)
    xs, ys = np.array([-1.0, -0.3, 0.0, 0.4, 1.0]), np.array([-0.5, 0.0, 0.75])
    loss_fn = nn.CrossEntropyLoss()
    snap = snapshot(model)
    surf = S.plane(model, loss_fn, (X, y), d1, d2, xs, ys, accuracy_fn=accuracy, method=method)
    ref_loss, ref_acc = plain_loop(model, loss_fn, X, y, d1, d2, xs, ys)
    assert surf.loss.shape == (3, 5) and surf.accuracy.shape == (3, 5)
    np.testing.assert_allclose(surf.loss, ref_loss, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(surf.accuracy, ref_acc, atol=1e-6)
    assert np.ptp(surf.loss) > 1e-3  # the directions really move the loss
    assert_unchanged(model, snap)
    np.testing.assert_array_equal(surf.xs, xs)
    np.testing.assert_array_equal(surf.ys, ys)


@pytest.mark.parametrize("method", METHODS)
def test_centre_point_is_the_models_loss_with_running_stats(method):
    model = cnn_bn()
    model.train()
    X, y = image_data()
    loss_fn = nn.CrossEntropyLoss()
    d1, d2 = D.random_directions(model, 2, seed=0)
    surf = S.plane(
        model, loss_fn, (X, y), d1, d2, [-0.5, 0.0, 0.5, 1.0], [-1.0, 0.0], method=method
    )
    ref = copy.deepcopy(model)
    with torch.no_grad():
        eval_loss = loss_fn(ref.eval()(X), y).item()
        batch_loss = loss_fn(ref.train()(X), y).item()
    assert abs(eval_loss - batch_loss) > 1e-3  # running stats differ from batch stats
    assert surf.loss[1, 1] == pytest.approx(eval_loss, rel=1e-6)
    assert model.training


@pytest.mark.parametrize("method", METHODS)
def test_line_along_interpolation_reaches_end_model(method):
    start, end = mlp(0), mlp(1)
    X, y = tabular_data()
    loss_fn = nn.CrossEntropyLoss()
    d = D.interpolation_direction(start, end)
    surf = S.line(start, loss_fn, (X, y), d, np.linspace(0, 1, 5), accuracy, method=method)
    with torch.no_grad():
        end_loss = loss_fn(end(X), y).item()
        start_loss = loss_fn(start(X), y).item()
        end_acc = accuracy(end(X), y).item()
    assert surf.kind == "line" and surf.ys is None and surf.loss.shape == (5,)
    assert surf.loss[-1] == pytest.approx(end_loss, rel=1e-5)
    assert surf.loss[0] == pytest.approx(start_loss, rel=1e-6)
    assert surf.accuracy[-1] == pytest.approx(end_acc)
    assert abs(end_loss - start_loss) > 1e-3


def test_line_equals_plane_row():
    model = mlp()
    X, y = tabular_data()
    d1, d2 = D.random_directions(model, 2, seed=2)
    ts = [-1.0, -0.25, 0.5]
    ln = S.line(model, nn.CrossEntropyLoss(), (X, y), d1, ts, method="loop")
    pl = S.plane(model, nn.CrossEntropyLoss(), (X, y), d1, d2, ts, [0.0], method="loop")
    np.testing.assert_allclose(ln.loss, pl.loss[0], rtol=1e-6)
    assert ln.accuracy is None and pl.accuracy is None


def test_chunked_forward_equals_full_batch(monkeypatch):
    model = cnn_bn()
    X, y = image_data(n=50)
    d1, d2 = D.random_directions(model, 2, seed=0)
    full = S.plane(
        model, nn.CrossEntropyLoss(), (X, y), d1, d2, [-1.0, 1.0], [0.0, 1.0], method="loop"
    )
    monkeypatch.setattr(S, "CHUNK_ROWS", 7)
    chunked = S.plane(
        model, nn.CrossEntropyLoss(), (X, y), d1, d2, [-1.0, 1.0], [0.0, 1.0], method="loop"
    )
    np.testing.assert_allclose(chunked.loss, full.loss, rtol=1e-6)


# ----------------------------------------------------------------------------- robustness


@pytest.mark.parametrize("method", METHODS)
def test_model_unchanged_when_loss_fn_raises_midway(method):
    model = cnn_bn()
    model.train()
    X, y = image_data()
    calls = {"n": 0}

    def flaky(out, target):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("boom at point 3")
        return nn.functional.cross_entropy(out, target)

    d1, d2 = D.random_directions(model, 2, seed=0)
    snap = snapshot(model)
    with pytest.raises(RuntimeError, match="boom"):
        S.plane(model, flaky, (X, y), d1, d2, [-1.0, 0.0, 1.0], [-1.0, 1.0], method=method)
    assert calls["n"] >= 3
    assert_unchanged(model, snap)
    assert all(p.grad is None for p in model.parameters())


def test_non_finite_losses_are_kept_not_raised():
    model = mlp()
    X, y = tabular_data()
    d1, d2 = D.random_directions(model, 2, seed=0)

    def loss_fn(out, target):  # diverges far from the centre
        base = nn.functional.cross_entropy(out, target)
        return base if out.abs().max() < 2.0 else torch.tensor(float("nan"))

    xs = ys = np.linspace(-20, 20, 5)
    surf = S.plane(model, loss_fn, (X, y), d1, d2, xs, ys, method="loop")
    assert np.isnan(surf.loss).any() and np.isfinite(surf.loss).any()
    assert np.isfinite(surf.loss[2, 2])
    assert (surf.finite == np.isfinite(surf.loss)).all()


def test_progress_and_meta():
    model = mlp()
    X, y = tabular_data()
    d1, d2 = D.random_directions(model, 2, seed=0)
    seen = []
    surf = S.plane(
        model,
        nn.CrossEntropyLoss(),
        (X, y),
        d1,
        d2,
        [-1.0, 0.0, 1.0],
        [0.0, 1.0],
        progress=lambda done, total: seen.append((done, total)),
        meta={"norm": "filter", "seeds": [0, 0], "split": "test"},
    )
    assert seen[-1] == (6, 6) and all(t == 6 for _, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    meta = json.loads(json.dumps(surf.meta))
    assert meta == surf.meta
    assert meta["split"] == "test" and meta["kind"] == "plane" and meta["n_data"] == 60
    assert meta["cosine"] == pytest.approx(D.cosine(d1, d2))
    assert meta["method"] in ("loop", "batched")
    assert meta["n_params"] == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    "xs, ys, field",
    [
        ([], [0.0], "xs"),
        ([0.0, np.nan], [0.0], "xs"),
        ([0.0, 1.0], [0.0, np.inf], "ys"),
        ([1.0, 0.0], [0.0], "xs"),
        ([0.0, 0.0], [0.0], "xs"),
        (np.arange(202.0), np.arange(201.0), "grid"),
        (np.arange(1002.0), [0.0], "xs"),
    ],
)
def test_bad_coordinates_raise(xs, ys, field):
    model = mlp()
    d1, d2 = D.random_directions(model, 2)
    with pytest.raises(ValueError, match=field):
        S.plane(model, nn.CrossEntropyLoss(), tabular_data(), d1, d2, xs, ys)


def test_bad_arguments_raise():
    model = mlp()
    X, y = tabular_data()
    d = D.random_direction(model)
    with pytest.raises(ValueError, match="ts"):
        S.line(model, nn.CrossEntropyLoss(), (X, y), d, [])
    with pytest.raises(ValueError, match="method"):
        S.line(model, nn.CrossEntropyLoss(), (X, y), d, [0.0], method="fast")
    with pytest.raises(ValueError, match="data"):
        S.line(model, nn.CrossEntropyLoss(), (X, y[:-1]), d, [0.0])
    with pytest.raises(ValueError, match="direction"):
        S.line(model, nn.CrossEntropyLoss(), (X, y), D.random_direction(cnn_bn()), [0.0])
    with pytest.raises(ValueError, match="meta"):
        S.line(model, nn.CrossEntropyLoss(), (X, y), d, [0.0], meta={"f": object()})
    with pytest.raises(ValueError, match="scalar"):
        S.line(model, nn.CrossEntropyLoss(reduction="none"), (X, y), d, [0.0], method="loop")


def test_coordinates_may_include_zero_and_single_points():
    model = mlp()
    X, y = tabular_data()
    d1, d2 = D.random_directions(model, 2)
    surf = S.plane(model, nn.CrossEntropyLoss(), (X, y), d1, d2, [0.0], [0.0], method="loop")
    with torch.no_grad():
        assert surf.loss[0, 0] == pytest.approx(nn.CrossEntropyLoss()(model(X), y).item(), rel=1e-6)


def test_batched_unavailable_or_equal_to_loop():
    model = mlp()
    X, y = tabular_data()
    d1, d2 = D.random_directions(model, 2, seed=4)
    try:
        from landscape.engine import batched
    except ImportError:
        with pytest.raises(ValueError, match="batched"):
            S.plane(model, nn.CrossEntropyLoss(), (X, y), d1, d2, [0.0], [0.0], method="batched")
        return
    if not batched.supports(model):
        pytest.skip("landscape.engine.batched does not support this model")
    xs, ys = np.linspace(-1, 1, 4), np.linspace(-0.5, 0.5, 3)
    fast = S.plane(model, nn.CrossEntropyLoss(), (X, y), d1, d2, xs, ys, accuracy, method="batched")
    slow = S.plane(model, nn.CrossEntropyLoss(), (X, y), d1, d2, xs, ys, accuracy, method="loop")
    assert fast.meta["method"] == "batched" and slow.meta["method"] == "loop"
    np.testing.assert_allclose(fast.loss, slow.loss, rtol=1e-5)
    np.testing.assert_allclose(fast.accuracy, slow.accuracy, atol=1e-6)


# ----------------------------------------------------------------------------- states (buffers)


def moons_bn_net(batch_size, epochs=4, seed=0, n=200):
    """A two-moons MLP with BatchNorm trained with ``batch_size`` (seeded), and its data."""
    from sklearn.datasets import make_moons

    Xn, yn = make_moons(n, noise=0.2, random_state=0)
    X, y = torch.tensor(Xn, dtype=torch.float32), torch.tensor(yn)
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(2, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 16),
        nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 2),
    )  # fmt: skip
    init = copy.deepcopy(model).eval()
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(n, generator=g).split(batch_size):
            if len(idx) < 2:
                continue
            opt.zero_grad()
            nn.functional.cross_entropy(model(X[idx]), y[idx]).backward()
            opt.step()
    return init, model.eval(), (X, y)


def original_states_line(start, end, loss_fn, data, ts):
    """The original's --dir_type states: per t, load start + t*(end - start) of every float
    state entry (weights and buffers) into a copy and evaluate it in eval mode."""
    X, y = data
    sa, sb = start.state_dict(), end.state_dict()
    out = []
    for t in ts:
        net = copy.deepcopy(start)
        state = {
            k: sa[k] + float(t) * (sb[k] - sa[k]) if sa[k].is_floating_point() else sa[k]
            for k in sa
        }
        net.load_state_dict(state)
        with torch.no_grad():
            out.append(loss_fn(net.eval()(X), y).item())
    return np.array(out)


def own_loss(model, data):
    with torch.no_grad():
        return nn.functional.cross_entropy(model.eval()(data[0]), data[1]).item()


@pytest.mark.parametrize("method", ["loop", "batched", "auto"])
def test_states_interpolation_ends_at_each_nets_own_loss(method):
    """Two BatchNorm nets (batch 64 vs 8), and init -> trained: both ends exact."""
    _, a, data = moons_bn_net(64)
    init, b, _ = moons_bn_net(8, seed=1)
    loss_fn = nn.CrossEntropyLoss()
    ts = np.linspace(-0.25, 1.25, 7)  # includes t=0 and t=1
    for start, end in ((a, b), (init, b)):
        snap = snapshot(start)
        d = D.interpolation_direction(start, end, dir_type="states")
        surf = S.line(start, loss_fn, data, d, ts, method=method)
        assert_unchanged(start, snap)
        assert surf.loss[1] == pytest.approx(own_loss(start, data), rel=1e-6)
        assert surf.loss[5] == pytest.approx(own_loss(end, data), rel=1e-5)
        np.testing.assert_allclose(
            surf.loss, original_states_line(start, end, loss_fn, data, ts), rtol=1e-5
        )
    # the old way (weights only, the end net's statistics throughout) misses the start's loss
    moved = copy.deepcopy(a)
    moved.load_state_dict({**a.state_dict(), **dict(b.named_buffers())})
    old = S.line(moved, loss_fn, data, D.interpolation_direction(a, b), ts, method=method)
    assert abs(old.loss[1] - own_loss(a, data)) > 1e-3


@pytest.mark.parametrize("method", ["loop", "batched"])
def test_states_plane_equals_a_state_dict_loop(method):
    """Random states directions with ignore=None move the running statistics too."""
    model = cnn_bn()
    X, y = image_data()
    loss_fn = nn.CrossEntropyLoss()
    d1, d2 = D.random_directions(model, 2, ignore=None, seed=3, dir_type="states")
    assert torch.count_nonzero(d1["1.running_var"]) > 0
    xs, ys = np.linspace(-0.5, 0.5, 3), np.array([-0.3, 0.4])
    surf = S.plane(model, loss_fn, (X, y), d1, d2, xs, ys, method=method)
    state = model.state_dict()
    ref = np.empty((len(ys), len(xs)))
    for i, b in enumerate(ys):
        for j, a in enumerate(xs):
            net = copy.deepcopy(model)
            net.load_state_dict(
                {k: state[k] + a * d1[k] + b * d2[k] if k in d1 else state[k] for k in state}
            )
            with torch.no_grad():
                ref[i, j] = loss_fn(net.eval()(X), y).item()
    np.testing.assert_allclose(surf.loss, ref, rtol=1e-5)
    weights_only = S.plane(
        model, loss_fn, (X, y), {k: d1[k] for k, _ in model.named_parameters()},
        {k: d2[k] for k, _ in model.named_parameters()}, xs, ys, method=method,
    )  # fmt: skip
    assert not np.allclose(weights_only.loss, ref, rtol=1e-3)


def test_states_direction_bad_keys_raise():
    model = cnn_bn()
    X, y = image_data()
    d = D.random_direction(model, seed=0, dir_type="states")
    with pytest.raises(ValueError, match="neither a parameter nor a floating-point buffer"):
        S.line(model, nn.CrossEntropyLoss(), (X, y), {**d, "1.num_batches_tracked": 1}, [0.0])
    with pytest.raises(ValueError, match="running_var"):
        S.line(model, nn.CrossEntropyLoss(), (X, y), {**d, "1.running_var": torch.ones(3)}, [0])


@pytest.fixture
def always_race(monkeypatch):
    """Race even the tests' tiny surfaces (the loop finishes them under RACE_MIN_S)."""
    monkeypatch.setattr(R, "RACE_MIN_S", 0.0)


def test_auto_races_and_reports_one_method(always_race):
    model = mlp()
    X, y = tabular_data()
    d1, d2 = D.random_directions(model, 2, seed=4)
    xs = np.linspace(-1, 1, 9)
    auto = S.plane(model, nn.CrossEntropyLoss(), (X, y), d1, d2, xs, xs, accuracy)
    ref, ref_acc = plain_loop(model, nn.CrossEntropyLoss(), X, y, d1, d2, xs, xs)
    np.testing.assert_allclose(auto.loss, ref, rtol=1e-5)
    np.testing.assert_allclose(auto.accuracy, ref_acc, atol=1e-6)
    assert auto.meta["method"] in ("batched", "loop")
    race = auto.meta["race"]
    assert race["batched_s_per_point"] > 0 and race["loop_s_per_point"] > 0


def test_choose_picks_the_fewest_seconds_per_point():
    assert R.choose({"batched": 1e-3, "loop": 2e-3}) == "batched"
    assert R.choose({"batched": 3e-3, "loop": 2e-3}) == "loop"
    assert R.choose({"batched": 2e-3, "loop": 2e-3}) == "loop"  # a tie: the reference
    assert R.choose({"batched": float("inf"), "loop": float("inf")}) == "loop"


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class FakeSession:
    """A method whose every point costs ``cost`` seconds on ``clock`` and whose values carry
    its own offset, so that the result shows which method computed each point."""

    def __init__(self, clock, cost, offset, K=8, accuracy_fn=None):
        self.clock, self.cost, self.offset, self.K = clock, cost, offset, K
        self.accuracy_fn, self.points = accuracy_fn, 0

    def run(self, coords, progress=None):
        coords = np.asarray(coords)
        self.clock.now += self.cost * len(coords)
        self.points += len(coords)
        vals = coords[:, 0] + self.offset
        if progress is not None:
            progress(len(coords), len(coords))
        return vals, (vals + 0.5 if self.accuracy_fn else None)


@pytest.mark.parametrize("fast_cost, loop_cost", [(1.0, 3.0), (3.0, 1.0), (1.0, 1.1), (1.1, 1.0)])
def test_race_picks_the_faster_and_the_surface_is_one_method(fast_cost, loop_cost):
    coords = np.stack([np.arange(200.0), np.zeros(200)], axis=1)
    clock = FakeClock()
    fast = FakeSession(clock, fast_cost, offset=1000.0, accuracy_fn=accuracy)
    loop = FakeSession(clock, loop_cost, offset=2000.0, accuracy_fn=accuracy)
    seen = []
    losses, accs, winner, timings = R.race(
        lambda: fast, loop, coords, lambda d, t: seen.append(d), clock=clock
    )
    expected = "batched" if fast_cost < loop_cost else "loop"
    assert winner == expected
    offset = fast.offset if expected == "batched" else loop.offset
    np.testing.assert_array_equal(losses, coords[:, 0] + offset)  # every point: the winner's
    np.testing.assert_array_equal(accs, losses + 0.5)
    assert timings["batched_s_per_point"] == pytest.approx(fast_cost)
    assert timings["loop_s_per_point"] == pytest.approx(loop_cost)
    loser = loop if expected == "batched" else fast
    assert timings["recomputed_points"] == loser.points
    # the loser only calibrated: a timed chunk is at most 1/RACE_SHARE of the surface
    assert loser.points <= 2 + R.RACE_ROUNDS * max(fast.K, 2)
    assert seen[-1] == len(coords)


def test_race_in_a_near_tie_finishes_with_the_method_that_ends_sooner(monkeypatch):
    """The loop is 3% faster per point, but on a short surface the fast path has computed
    far more calibration points: redoing them would cost more than the 3% saves, so the
    fast path finishes, and the whole surface takes less time than finishing with the loop."""
    coords = np.stack([np.arange(40.0), np.zeros(40)], axis=1)

    def race():
        clock = FakeClock()
        fast = FakeSession(clock, 1.03, offset=1000.0)
        loop = FakeSession(clock, 1.0, offset=2000.0)
        losses, _, winner, timings = R.race(lambda: fast, loop, coords, None, clock=clock)
        return losses, winner, timings, clock.now

    losses, winner, timings, seconds = race()
    assert winner == "batched" and timings["loop_s_per_point"] < timings["batched_s_per_point"]
    np.testing.assert_array_equal(losses, coords[:, 0] + 1000.0)  # all the fast path's
    monkeypatch.setattr(R, "choose", lambda costs: "loop")  # finish with the loop instead
    _, winner, _, loop_seconds = race()
    assert winner == "loop" and seconds < loop_seconds


def test_a_surface_the_loop_finishes_at_once_is_not_raced():
    """Below RACE_MIN_S of loop time (measured on its first points) the loop evaluates the
    whole surface and the fast path is never even built; above it the race runs."""
    coords = np.stack([np.arange(49.0), np.zeros(49)], axis=1)
    for cost, raced in ((R.RACE_MIN_S / 100 / 49, False), (R.RACE_MIN_S * 2 / 49, True)):
        clock, built, seen = FakeClock(), [], []
        fast = FakeSession(clock, cost / 3, offset=1000.0)
        loop = FakeSession(clock, cost, offset=2000.0, accuracy_fn=accuracy)
        losses, accs, winner, timings = R.race(
            lambda b=built, f=fast: b.append(1) or f, loop, coords, lambda d, t, s=seen: s.append(d),
            clock=clock,
        )  # fmt: skip
        assert (winner, bool(built), timings.get("skipped", False)) == (
            ("batched", True, False) if raced else ("loop", False, True)
        )
        if not raced:
            np.testing.assert_array_equal(losses, coords[:, 0] + 2000.0)
            np.testing.assert_array_equal(accs, losses + 0.5)
            assert loop.points == 49 and fast.points == 0
            assert timings["loop_s_per_point"] == pytest.approx(cost)
        assert seen[-1] == len(coords)


def test_a_small_first_batch_of_many_is_raced():
    """The estimate covers every batch of streamed data: points cheap on one batch but not
    on all of them are raced."""
    coords = np.stack([np.arange(49.0), np.zeros(49)], axis=1)
    cost = R.RACE_MIN_S / 2 / 49  # half the threshold on one batch
    for batches, raced in ((1, False), (4, True)):
        clock = FakeClock()
        fast = FakeSession(clock, cost / 3, offset=1000.0)
        loop = FakeSession(clock, cost, offset=2000.0)
        _, _, winner, timings = R.race(
            lambda f=fast: f, loop, coords, None, clock=clock, batches=batches
        )
        assert (winner, timings.get("skipped", False)) == (
            ("batched", False) if raced else ("loop", True)
        )


def test_race_without_a_fast_path_is_the_loop():
    coords = np.stack([np.arange(30.0), np.zeros(30)], axis=1)
    clock = FakeClock()
    loop = FakeSession(clock, 1.0, offset=2000.0)
    losses, _, winner, timings = R.race(lambda: None, loop, coords, None, clock=clock)
    assert (winner, timings, loop.points) == ("loop", None, 30)
    np.testing.assert_array_equal(losses, coords[:, 0] + 2000.0)


def test_auto_on_a_small_surface_runs_the_loop_without_tracing(monkeypatch):
    """A tiny net's plane: auto never traces the model, equals the loop bit for bit, says
    the race was skipped, and does not remember the loop for larger surfaces of the model."""
    from landscape.engine import batched

    model = mlp()
    X, y = tabular_data()
    d1, d2 = D.random_directions(model, 2, seed=4)
    xs = np.linspace(-1, 1, 5)
    loop = S.plane(model, nn.CrossEntropyLoss(), (X, y), d1, d2, xs, xs, accuracy, method="loop")
    traced = []
    monkeypatch.setattr(batched, "prepare", lambda m: traced.append(m))
    auto = S.plane(model, nn.CrossEntropyLoss(), (X, y), d1, d2, xs, xs, accuracy)
    assert traced == [] and auto.meta["method"] == "loop" and auto.meta["race"]["skipped"]
    np.testing.assert_array_equal(auto.loss, loop.loss)
    np.testing.assert_array_equal(auto.accuracy, loop.accuracy)
    assert R._WINNERS == {}


@pytest.fixture(autouse=True)
def _forget_race_winners():
    """Every test races afresh: auto remembers winners per process."""
    R._WINNERS.clear()
    yield
    R._WINNERS.clear()


def test_auto_remembers_the_winner_per_kind_of_model(monkeypatch, always_race):
    """A second surface of the same kind of model skips the race and uses the remembered
    method (same numbers); another shape of data races again."""
    model = mlp()
    X, y = tabular_data()
    d1, d2 = D.random_directions(model, 2, seed=4)
    xs = np.linspace(-1, 1, 7)
    loss_fn = nn.CrossEntropyLoss()
    calls = []
    monkeypatch.setattr(R, "choose", lambda seconds: calls.append(seconds) or "loop")
    first = S.plane(model, loss_fn, (X, y), d1, d2, xs, xs, accuracy)
    again = S.plane(model, loss_fn, (X, y), d1, d2, xs, xs, accuracy)
    assert len(calls) == 1 and "loop_s_per_point" in first.meta["race"]
    assert again.meta["race"] == {"remembered": "loop"} and again.meta["method"] == "loop"
    np.testing.assert_array_equal(again.loss, first.loss)
    S.plane(model, loss_fn, (X[:50], y[:50]), d1, d2, xs, xs, accuracy)
    assert len(calls) == 2  # another data shape: raced again
    for i in range(R.MAX_WINNERS + 5):  # bounded
        R.remember(("k", i), "loop")
    assert len(R._WINNERS) == R.MAX_WINNERS


def test_auto_is_exactly_the_loop_when_the_loop_wins(monkeypatch, always_race):
    """Auto's surface is one method's: when the loop wins it equals a loop-only run bit for bit
    (the fast path's calibration points are recomputed), and records the method."""
    model = mlp()
    X, y = tabular_data()
    d1, d2 = D.random_directions(model, 2, seed=4)
    xs = np.linspace(-1, 1, 9)
    loss_fn = nn.CrossEntropyLoss()
    loop = S.plane(model, loss_fn, (X, y), d1, d2, xs, xs, accuracy, method="loop")
    monkeypatch.setattr(R, "choose", lambda seconds: "loop")
    auto = S.plane(model, loss_fn, (X, y), d1, d2, xs, xs, accuracy)
    assert auto.meta["method"] == "loop" and auto.meta["race"]["recomputed_points"] > 0
    np.testing.assert_array_equal(auto.loss, loop.loss)
    np.testing.assert_array_equal(auto.accuracy, loop.accuracy)
    monkeypatch.setattr(R, "choose", lambda seconds: "batched")
    R._WINNERS.clear()
    auto = S.plane(model, loss_fn, (X, y), d1, d2, xs, xs, accuracy)
    batched = S.plane(model, loss_fn, (X, y), d1, d2, xs, xs, accuracy, method="batched")
    assert auto.meta["method"] == "batched"
    np.testing.assert_allclose(auto.loss, batched.loss, rtol=1e-6)
    np.testing.assert_allclose(auto.loss, loop.loss, rtol=1e-5)


class Mixed(nn.Module):
    """A float64 layer after a float32 one: the loop cannot make one vector of their weights."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Linear(2, 8), nn.Linear(8, 3).double()

    def forward(self, x):
        return self.b(torch.relu(self.a(x)).double())


@pytest.mark.parametrize("model", [mlp(), Mixed()], ids=["one_vector", "per_tensor"])
def test_loop_session_both_ways_equal_plain_loop(model):
    X, y = tabular_data()
    d1, d2 = D.random_directions(model, 2, seed=5)
    xs, ys = np.linspace(-1, 1, 3), np.array([-0.5, 0.7])
    session = S.LoopSession(model, nn.CrossEntropyLoss(), X, y, *S._split_states(model, [d1, d2]))
    assert (session.flat is None) == isinstance(model, Mixed)
    gx, gy = np.meshgrid(xs, ys)
    losses, _ = session.run(np.stack([gx.ravel(), gy.ravel()], axis=1))
    ref, _ = plain_loop(model, nn.CrossEntropyLoss(), X, y, d1, d2, xs, ys)
    np.testing.assert_allclose(losses.reshape(ref.shape), ref, rtol=1e-6)
