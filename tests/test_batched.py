"""landscape.engine.batched (the surface fast path) against a plain loop written here.

The reference below is the obvious way to compute a surface: copy the model, write each
point's weights into it, run one eval-mode forward on all the data, call the loss. Every test
compares ``batched.evaluate`` with it to 1e-5 relative, on every kind of layer the fast path
handles, and again with each fast path forced on (one point per chunk, chunks of points, the
first-layer basis, im2col, data slices, no oneDNN), so that no branch goes unchecked.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape.engine import batched
from landscape.engine.batched import engine, graph, kernels

RTOL = 1e-5
KNOB_MODULES = (batched, engine, kernels)


def set_knob(monkeypatch, attr, value):
    """Set a tuning constant in every module of the fast path that reads it."""
    homes = [m for m in KNOB_MODULES if hasattr(m, attr)]
    assert homes, f"no module of the fast path has {attr}"
    for m in homes:
        monkeypatch.setattr(m, attr, value)


# ----------------------------------------------------------------------------- reference


def plain_loop(model, loss_fn, X, y, center, directions, coords, accuracy_fn=None):
    """Loss (and accuracy) per point: set weights in a copy, one eval forward per point."""
    net = copy.deepcopy(model).eval()
    params = dict(net.named_parameters())
    losses, accs = [], []
    with torch.no_grad():
        for point in coords:
            for name, p in params.items():
                w = center[name].clone()
                for a, d in zip(point, directions):
                    if name in d:
                        w += float(a) * d[name]
                p.copy_(w)
            out = net(X)
            losses.append(float(loss_fn(out, y)))
            if accuracy_fn is not None:
                accs.append(float(accuracy_fn(out, y)))
    return np.array(losses), (np.array(accs) if accuracy_fn is not None else None)


def accuracy(out, y):
    return (out.argmax(1) == y).float().mean().item()


def directions_for(model, m=2, seed=0, one_dim=False):
    """m filter-normalised Gaussian directions; 1-D tensors zero unless one_dim (all move)."""
    g = torch.Generator().manual_seed(seed)
    dirs = []
    for _ in range(m):
        d = {}
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g, dtype=p.dtype)
            if p.ndim > 1:
                scale = p.detach().flatten(1).norm(dim=1) / (r.flatten(1).norm(dim=1) + 1e-10)
                r = r * scale.view(-1, *[1] * (p.ndim - 1))
            elif one_dim:
                r = r * 0.3 * p.detach().abs().mean()
            else:
                r = torch.zeros_like(p)
            d[name] = r
        dirs.append(d)
    return dirs


def grid(nx=4, ny=3, lo=-1.0, hi=1.0):
    """Non-square grid, including 0 and both bounds, as (ny*nx, 2) coordinates."""
    xs = np.linspace(lo, hi, nx)
    ys = np.linspace(lo / 2, hi, ny)
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def randomize_bn(model, seed=0):
    """Non-trivial running statistics and affine parameters, so that BN really acts."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g))
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.5)
    return model


# ----------------------------------------------------------------------------- models


class Res(nn.Module):
    """Residual block as in landscape.data.models: act(h + f(h)) with skip, act(f(h)) without."""

    def __init__(self, l1, l2, skip=True):
        super().__init__()
        self.l1, self.l2, self.a1, self.a2, self.skip = l1, l2, nn.ReLU(), nn.ReLU(), skip

    def forward(self, h):
        out = self.l2(self.a1(self.l1(h)))
        return self.a2(h + out if self.skip else out)


class Functional(nn.Module):
    """Functional calls in forward: torch.relu, F.gelu, torch.flatten, x.tanh(), +."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.pool = nn.AvgPool2d(2)
        self.fc1 = nn.Linear(64, 16)
        self.fc2 = nn.Linear(16, 16)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        h = self.pool(torch.relu(self.conv(x)))
        h = torch.flatten(h, 1)
        h = F.gelu(self.fc1(h))
        h = h + self.fc2(h).tanh()
        return self.head(h)


def make(name, seed=0):
    """(model, X, y, loss_fn, accuracy_fn) for a named tiny case."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 1)
    img = torch.randn(40, 1, 8, 8, generator=g)
    cls3 = torch.randint(0, 3, (40,), generator=g)
    ce, mse = nn.CrossEntropyLoss(), nn.MSELoss()
    if name == "mlp":
        X, y = torch.randn(60, 2, generator=g), torch.randint(0, 3, (60,), generator=g)
        m = nn.Sequential(
            nn.Flatten(),
            nn.Linear(2, 16),
            nn.Tanh(),
            nn.Linear(16, 16),
            nn.ReLU(),
            nn.Linear(16, 3),
        )
        return m, X, y, ce, accuracy
    if name == "mlp_regression":
        X, y = torch.randn(50, 3, generator=g), torch.randn(50, 1, generator=g)
        m = nn.Sequential(
            nn.Linear(3, 12), nn.GELU(), nn.Linear(12, 12), nn.SiLU(), nn.Linear(12, 1)
        )
        return m, X, y, mse, None
    if name == "wide_mlp":  # fan-in 64: the first-layer basis applies
        m = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 3))
        return m, img, cls3, ce, accuracy
    if name == "cnn":
        m = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2), nn.Flatten(), nn.Linear(128, 16), nn.ReLU(), nn.Linear(16, 3),
        )  # fmt: skip
        return m, img, cls3, ce, accuracy
    if name == "cnn_bn":
        m = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
            nn.Conv2d(4, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(128, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3),
        )  # fmt: skip
        return randomize_bn(m), img, cls3, ce, accuracy
    if name == "cnn_misc":  # stride, dilation, groups, leaky ReLU, sigmoid, dropout, BN alone
        m = nn.Sequential(
            nn.BatchNorm2d(1), nn.Conv2d(1, 6, 3, padding=2, dilation=2), nn.LeakyReLU(0.1),
            nn.Conv2d(6, 6, 3, stride=2, padding=1, groups=3), nn.ELU(), nn.Dropout(0.5),
            nn.ReLU(), nn.MaxPool2d(3, stride=1, padding=1), nn.AdaptiveAvgPool2d(2),
            nn.Flatten(), nn.Linear(24, 3), nn.Sigmoid(),
        )  # fmt: skip
        return randomize_bn(m), img, cls3, mse_onehot, accuracy
    if name == "resmlp":
        X, y = torch.randn(50, 2, generator=g), torch.randn(50, 1, generator=g)
        m = nn.Sequential(
            nn.Flatten(), nn.Linear(2, 8), nn.ReLU(),
            Res(nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8)), nn.Linear(8, 8)),
            Res(nn.Linear(8, 8), nn.Linear(8, 8), skip=False), nn.Linear(8, 1),
        )  # fmt: skip
        return randomize_bn(m), X, y, mse, None
    if name == "rescnn":
        m = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
            Res(
                nn.Conv2d(4, 4, 3, padding=1),
                nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)),
            ),
            nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 3),
        )  # fmt: skip
        return randomize_bn(m), img, cls3, ce, accuracy
    if name == "functional":
        return Functional(), img, cls3, ce, accuracy
    raise KeyError(name)


def mse_onehot(out, y):
    return F.mse_loss(out, F.one_hot(y, out.shape[1]).float())


CASES = [
    "mlp",
    "mlp_regression",
    "wide_mlp",
    "cnn",
    "cnn_bn",
    "cnn_misc",
    "resmlp",
    "rescnn",
    "functional",
]


def check_equal(name, coords=None, one_dim=False, m=2):
    model, X, y, loss_fn, acc_fn = make(name)
    center = {k: p.detach().clone() for k, p in model.named_parameters()}
    dirs = directions_for(model, m=m, one_dim=one_dim)
    coords = grid() if coords is None else coords
    ref, ref_acc = plain_loop(model, loss_fn, X, y, center, dirs, coords, acc_fn)
    got, got_acc = batched.evaluate(model, loss_fn, X, y, center, dirs, coords, acc_fn)
    assert got.shape == (len(coords),) and got.dtype == np.float64
    np.testing.assert_allclose(got, ref, rtol=RTOL, err_msg=name)
    if acc_fn is None:
        assert got_acc is None
    else:
        np.testing.assert_allclose(got_acc, ref_acc, atol=1e-9, err_msg=name)
    return ref


# ----------------------------------------------------------------------------- equality


@pytest.mark.parametrize("name", CASES)
def test_supported(name):
    assert batched.supports(make(name)[0])


@pytest.mark.parametrize("name", CASES)
def test_equals_plain_loop(name):
    ref = check_equal(name)
    assert np.ptp(ref) > 1e-3, "the directions must actually change the loss"


@pytest.mark.parametrize("name", ["mlp", "cnn_bn", "resmlp", "rescnn", "cnn_misc"])
def test_equals_plain_loop_when_biases_and_bn_move(name):
    """ignore=None style directions: biases and BatchNorm scale/shift move per point too."""
    check_equal(name, one_dim=True)


@pytest.mark.parametrize(
    "knobs",
    [
        {"POINT_BYTES": 0},  # one point per chunk
        {"POINT_BYTES": 0, "ONEDNN_MACS": 0},  # one point per chunk, every matmul in oneDNN
        {"POINT_BYTES": 1 << 40, "CHUNK_BYTES": 1 << 40, "MAX_CHUNK": 5},  # chunks of 5: bmm
        {"POINT_BYTES": 1 << 40, "CHUNK_BYTES": 1 << 40, "ONEDNN_MACS": 0},  # chunks, oneDNN
        {"BASIS_FAN_IN": 1},  # first layer from precomputed products
        {"BASIS_FAN_IN": 1, "POINT_BYTES": 0},
        {"IM2COL_FAN_IN": 0},  # direct convolution of the data
        {"IM2COL_FAN_IN": 0, "POINT_BYTES": 1 << 40, "CHUNK_BYTES": 1 << 40},
        {"MEMORY_CAP": 20_000},  # data split into slices
    ],
    ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()),
)
@pytest.mark.parametrize("one_dim", [False, True])
def test_every_path_equals_plain_loop(monkeypatch, knobs, one_dim):
    for attr, value in knobs.items():
        set_knob(monkeypatch, attr, value)
    for name in CASES:
        check_equal(name, one_dim=one_dim)


def test_without_onednn_equals_plain_loop(monkeypatch):
    monkeypatch.setattr(kernels, "_onednn_ok", lambda: False)
    for name in CASES:
        check_equal(name, one_dim=True)


def test_paths_are_taken(monkeypatch):
    """The knobs above really switch paths: count basis/im2col hits and chunks (progress)."""
    hits = {"basis": 0, "im2col": 0}
    combined, im2col = engine._Engine.combined, engine._Engine.im2col

    def count(key, fn):
        def wrapped(*a, **k):
            out = fn(*a, **k)
            hits[key] += out is not None
            return out

        return wrapped

    monkeypatch.setattr(engine._Engine, "combined", count("basis", combined))
    monkeypatch.setattr(engine._Engine, "im2col", count("im2col", im2col))
    model, X, y, loss_fn, _ = make("wide_mlp")
    center = {k: p.detach().clone() for k, p in model.named_parameters()}
    dirs, coords = directions_for(model), grid(5, 4)
    calls = []
    batched.evaluate(
        model, loss_fn, X, y, center, dirs, coords, progress=lambda d, t: calls.append(d)
    )
    assert hits["basis"] > 0 and len(calls) < len(coords)  # small points: chunks, basis
    set_knob(monkeypatch, "POINT_BYTES", 0)
    set_knob(monkeypatch, "BASIS_FAN_IN", 10**6)
    hits["basis"], calls = 0, []
    batched.evaluate(
        model, loss_fn, X, y, center, dirs, coords, progress=lambda d, t: calls.append(d)
    )
    assert hits["basis"] == 0 and calls == list(range(1, len(coords) + 1))  # one point at a time
    model, X, y, loss_fn, _ = make("cnn")
    center = {k: p.detach().clone() for k, p in model.named_parameters()}
    batched.evaluate(model, loss_fn, X, y, center, directions_for(model), coords)
    assert hits["im2col"] > 0


def test_plan_folds_batchnorm_and_fuses_relu():
    model = make("cnn_bn")[0]
    gm = graph._trace(model)
    fusions, skipped = graph._plan(list(gm.graph.nodes), dict(gm.named_modules()))
    folded = [f for f in fusions.values() if f.bn is not None and f.relu]
    assert len(folded) == 3  # conv-BN-ReLU twice, Linear-BN1d-ReLU once
    assert len(skipped) == 6


# ----------------------------------------------------------------------------- semantics


def test_centre_point_is_the_model_loss():
    model, X, y, loss_fn, _ = make("cnn_bn")
    center = {k: p.detach().clone() for k, p in model.named_parameters()}
    got, _ = batched.evaluate(model, loss_fn, X, y, center, directions_for(model), np.zeros((1, 2)))
    with torch.no_grad():
        expected = float(loss_fn(copy.deepcopy(model).eval()(X), y))
    assert got[0] == pytest.approx(expected, rel=RTOL)


def test_model_left_bit_for_bit_unchanged_in_train_mode():
    """Train mode, BN stats and requires_grad are untouched; evaluation is in eval mode."""
    model, X, y, loss_fn, acc_fn = make("cnn_bn")
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    center = {k: p.detach().clone() for k, p in model.named_parameters()}
    dirs = directions_for(model, one_dim=True)
    ref, _ = plain_loop(model, loss_fn, X, y, center, dirs, grid(), acc_fn)
    got, _ = batched.evaluate(model, loss_fn, X, y, center, dirs, grid(), acc_fn)
    np.testing.assert_allclose(got, ref, rtol=RTOL)
    assert model.training and all(m.training for m in model.modules())
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.requires_grad and p.grad is None for p in model.parameters())


def test_centre_differs_from_model_weights():
    """The centre comes from ``center``, not from the model's current weights."""
    model, X, y, loss_fn, _ = make("mlp")
    center = {k: p.detach() + 0.1 for k, p in model.named_parameters()}
    dirs = directions_for(model)
    ref, _ = plain_loop(model, loss_fn, X, y, center, dirs, grid())
    got, _ = batched.evaluate(model, loss_fn, X, y, center, dirs, grid())
    np.testing.assert_allclose(got, ref, rtol=RTOL)


def test_missing_and_zero_directions_move_nothing():
    model, X, y, loss_fn, _ = make("cnn")
    center = {k: p.detach().clone() for k, p in model.named_parameters()}
    (d,) = directions_for(model, m=1)
    partial = {k: v for k, v in d.items() if k.startswith("0.")}  # only the first conv moves
    zero = {k: torch.zeros_like(v) for k, v in d.items()}
    coords = np.array([[-1.0, 2.0], [0.0, 0.0], [0.5, -3.0]])
    ref, _ = plain_loop(model, loss_fn, X, y, center, [partial, zero], coords)
    got, _ = batched.evaluate(model, loss_fn, X, y, center, [partial, zero], coords)
    np.testing.assert_allclose(got, ref, rtol=RTOL)
    flat, _ = batched.evaluate(model, loss_fn, X, y, center, [zero], np.array([[0.0], [5.0]]))
    assert flat[0] == flat[1]


@pytest.mark.parametrize("m", [1, 3])
def test_line_and_three_directions(m):
    coords = np.random.default_rng(0).uniform(-1, 1, size=(7, m))
    check_equal("cnn_bn", coords=coords, m=m, one_dim=True)
    check_equal("wide_mlp", coords=coords, m=m)


def test_zoo_loss_spec_and_binary_head():
    """A loss-zoo spec as loss_fn, on a one-unit head (binary logistic loss)."""
    from landscape.core import losses

    spec = losses.get("logistic")
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))
    X = torch.randn(30, 2, generator=torch.Generator().manual_seed(3))
    y = (X[:, 0] > 0).float()

    def loss_fn(out, target):
        return spec(out[:, 0], target)

    center = {k: p.detach().clone() for k, p in model.named_parameters()}
    dirs = directions_for(model)
    ref, _ = plain_loop(model, loss_fn, X, y, center, dirs, grid())
    got, _ = batched.evaluate(model, loss_fn, X, y, center, dirs, grid())
    np.testing.assert_allclose(got, ref, rtol=RTOL)


def test_diverging_points_give_the_same_non_finite_values():
    model, X, y, loss_fn, _ = make("mlp")
    center = {k: p.detach().clone() for k, p in model.named_parameters()}
    coords = np.array([[0.0, 0.0], [1e30, 0.0], [-1e35, 1e35]])
    ref, _ = plain_loop(model, loss_fn, X, y, center, directions_for(model), coords)
    got, _ = batched.evaluate(model, loss_fn, X, y, center, directions_for(model), coords)
    assert not np.all(np.isfinite(ref))
    np.testing.assert_array_equal(np.isfinite(got), np.isfinite(ref))
    np.testing.assert_allclose(got[0], ref[0], rtol=RTOL)


def test_float64_model():
    model, X, y, loss_fn, _ = make("cnn_bn")
    model, X = model.double(), X.double()
    center = {k: p.detach().clone() for k, p in model.named_parameters()}
    dirs = directions_for(model, one_dim=True)
    ref, _ = plain_loop(model, loss_fn, X, y, center, dirs, grid())
    got, _ = batched.evaluate(model, loss_fn, X, y, center, dirs, grid())
    np.testing.assert_allclose(got, ref, rtol=1e-10)


def test_progress_reports_every_chunk_up_to_total():
    model, X, y, loss_fn, _ = make("mlp")
    center = {k: p.detach().clone() for k, p in model.named_parameters()}
    calls = []
    coords = grid(7, 5)
    batched.evaluate(
        model,
        loss_fn,
        X,
        y,
        center,
        directions_for(model),
        coords,
        progress=lambda d, t: calls.append((d, t)),
    )
    assert calls and calls[-1] == (len(coords), len(coords))
    done = [d for d, _ in calls]
    assert done == sorted(done) and all(t == len(coords) for _, t in calls)


def test_matches_surface_plane_loop():
    """The public entry point: surface.plane with method='batched' equals method='loop'."""
    surface = pytest.importorskip("landscape.engine.surface")
    model, X, y, loss_fn, acc_fn = make("cnn_bn")
    d1, d2 = directions_for(model)
    xs, ys = np.linspace(-1, 1, 4), np.linspace(-0.5, 0.5, 3)
    loop = surface.plane(model, loss_fn, (X, y), d1, d2, xs, ys, acc_fn, method="loop")
    fast = surface.plane(model, loss_fn, (X, y), d1, d2, xs, ys, acc_fn, method="batched")
    np.testing.assert_allclose(fast.loss, loop.loss, rtol=RTOL)
    np.testing.assert_allclose(fast.accuracy, loop.accuracy, atol=1e-9)


# ----------------------------------------------------------------------------- unsupported


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)

    def forward(self, x):
        return self.fc(x) if x.sum() > 0 else -self.fc(x)


class Scaled(nn.Module):
    """Uses a parameter directly in forward (a get_attr node): not a known layer."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 2)
        self.scale = nn.Parameter(torch.ones(2))

    def forward(self, x):
        return self.fc(x) * self.scale


@pytest.mark.parametrize(
    "model",
    [
        nn.Sequential(nn.Linear(2, 4), nn.Softmax(dim=1)),  # layer without a handler
        nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"), nn.Flatten()),
        nn.Sequential(nn.Linear(2, 4), nn.BatchNorm1d(4, track_running_stats=False)),
        nn.Sequential(nn.Flatten(0), nn.Linear(2, 2)),  # would mix samples
        DataDependent(),  # not traceable
        Scaled(),  # parameter outside a layer
    ],
    ids=["softmax", "reflect-pad", "bn-no-stats", "flatten0", "data-dependent", "raw-param"],
)
def test_unsupported_model_is_reported_and_rejected(model):
    assert not batched.supports(model)
    X, y = torch.randn(4, 2), torch.randint(0, 2, (4,))
    center = {k: p.detach().clone() for k, p in model.named_parameters()}
    with pytest.raises(ValueError, match="cannot evaluate this model"):
        batched.evaluate(model, nn.CrossEntropyLoss(), X, y, center, [{}], np.zeros((1, 1)))


def test_bad_arguments_raise_value_errors_naming_them():
    model, X, y, loss_fn, _ = make("mlp")
    center = {k: p.detach().clone() for k, p in model.named_parameters()}
    dirs = directions_for(model)
    with pytest.raises(ValueError, match="coords"):
        batched.evaluate(model, loss_fn, X, y, center, dirs, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="coords"):
        batched.evaluate(model, loss_fn, X, y, center, dirs, np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="center"):
        batched.evaluate(model, loss_fn, X, y, {}, dirs, np.zeros((1, 2)))
    bad = [{**dirs[0], "1.weight": torch.zeros(3, 3)}, dirs[1]]
    with pytest.raises(ValueError, match="directions"):
        batched.evaluate(model, loss_fn, X, y, center, bad, np.zeros((1, 2)))
    with pytest.raises(ValueError, match="loss_fn"):
        batched.evaluate(model, lambda o, t: o, X, y, center, dirs, np.zeros((1, 2)))


# ----------------------------------------------------------------------------- states, oneDNN


def state_loop(model, loss_fn, X, y, center, directions, coords):
    """Reference for moved buffers: load every point's full state dict into a copy."""
    net, out = copy.deepcopy(model), []
    base = model.state_dict()
    with torch.no_grad():
        for point in coords:
            state = dict(base)
            for k, c in center.items():
                state[k] = c + sum(float(a) * d.get(k, 0) for a, d in zip(point, directions))
            net.load_state_dict(state)
            out.append(float(loss_fn(net.eval()(X), y)))
    return np.array(out)


@pytest.mark.parametrize("knobs", [{}, {"POINT_BYTES": 0}, {"BASIS_FAN_IN": 1}])
@pytest.mark.parametrize("name", ["cnn_bn", "resmlp", "rescnn"])
def test_moved_running_statistics_equal_a_state_loop(monkeypatch, knobs, name):
    for attr, value in knobs.items():
        set_knob(monkeypatch, attr, value)
    model, X, y, loss_fn, _ = make(name)
    stats = {
        k: b.detach().clone()
        for k, b in model.named_buffers()
        if k.endswith(("running_mean", "running_var"))
    }
    assert stats, "the case must have BatchNorm"
    center = {k: p.detach().clone() for k, p in model.named_parameters()} | stats
    dirs = directions_for(model)
    g = torch.Generator().manual_seed(9)
    for d in dirs:  # statistics move by up to 30% of themselves (variances stay positive)
        d.update({k: 0.3 * v.abs() * torch.rand(v.shape, generator=g) for k, v in stats.items()})
    coords = grid()
    ref = state_loop(model, loss_fn, X, y, center, dirs, coords)
    got, _ = batched.evaluate(model, loss_fn, X, y, center, dirs, coords)
    np.testing.assert_allclose(got, ref, rtol=RTOL, err_msg=name)
    still = plain_loop(model, loss_fn, X, y, center, dirs, coords)[0]
    assert not np.allclose(still, ref, rtol=1e-3)  # the statistics really moved


def test_only_batchnorm_statistics_may_move():
    model = make("cnn_bn")[0]
    fast = batched.FastPath(model)
    stats = [k for k, _ in model.named_buffers() if k.endswith("running_var")]
    assert stats and fast.can_move(stats)
    assert not fast.can_move(["1.num_batches_tracked"]) and not fast.can_move(["nope"])


def test_private_onednn_ops_still_work():
    """The fast path's speed rests on torch.ops.mkldnn's fused linear/conv ops (private API).

    If a torch upgrade renames or breaks them, ``_onednn_ok`` turns False and the fast path
    silently falls back to slower F.linear/F.conv2d: this test fails instead.
    """
    if not torch.backends.mkldnn.is_available():
        pytest.skip("this torch build has no oneDNN")
    kernels._onednn_ok.cache_clear()
    assert kernels._onednn_ok(), "torch.ops.mkldnn fused ops are gone or disagree with F.*"


def test_onednn_probe_detects_broken_ops(monkeypatch):
    """The probe really calls the ops: a broken one makes it report False (then F.* is used)."""

    def broken(*a, **k):
        raise RuntimeError("no such op")

    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", broken, raising=False)
    kernels._onednn_ok.cache_clear()
    try:
        assert not kernels._onednn_ok()
    finally:
        monkeypatch.undo()
        kernels._onednn_ok.cache_clear()


def test_a_models_trace_is_reused_until_the_model_changes():
    """Later surfaces of one model reuse its trace; replacing a layer or changing a layer's
    setting traces again (the numbers follow the model); the entry goes with the model."""
    import gc
    import weakref

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    X, y = torch.randn(40, 3), torch.randint(0, 3, (40,))
    loss_fn = nn.CrossEntropyLoss()
    center = {k: p.detach().clone() for k, p in model.named_parameters()}
    dirs = directions_for(model, seed=2)

    def check(net):
        got, _ = batched.evaluate(net, loss_fn, X, y, center, dirs, grid())
        ref, _ = plain_loop(net, loss_fn, X, y, center, dirs, grid())
        np.testing.assert_allclose(got, ref, rtol=1e-5)

    check(model)
    first = batched.FastPath(model).gm
    assert batched.FastPath(model).gm is first  # reused
    model[1] = nn.LeakyReLU(0.5)  # a replaced layer
    check(model)
    second = batched.FastPath(model).gm
    assert second is not first
    model[1].negative_slope = 0.01  # a changed setting
    check(model)
    assert batched.FastPath(model).gm is not second
    alive = weakref.ref(model)
    del model, first, second
    gc.collect()
    assert alive() is None  # the cache does not keep a model alive
