"""Training: Config validation, losses vs torch, a plain reference loop, divergence, saving.

The default run (MLP 2x32 on 1000 moons, noise 0.2, Adam lr=0.01, 100 epochs) measured 0.975
test accuracy; the test asserts >= 0.95.
"""

import io
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from landscape.data import datasets as data
from landscape.data import models
from landscape.data.config import Config
from landscape.pipelines import presets
from landscape.storage import formats
from landscape.training import loop as training
from landscape.training import predictions
from landscape.training.loop import train

DEFAULT_ACCURACY_FLOOR = 0.95


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small nets gain nothing from a second thread, and on shared cores it can cost 10x."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def default_run():
    return train(Config())


@pytest.fixture(scope="module")
def short_run():
    return train(Config(epochs=6, n_samples=300))


# ----------------------------------------------------------------------------- Config


@pytest.mark.parametrize(
    "kw, field",
    [
        ({"dataset": "mnist"}, "dataset"),
        ({"n_samples": 5001}, "n_samples"),
        ({"n_samples": 19}, "n_samples"),
        ({"noise": 3.0}, "noise"),
        ({"test_fraction": 0.0}, "test_fraction"),
        ({"dataset": "outliers", "loss": "mse", "outliers": 600}, "outliers"),
        ({"outliers": 5}, "outliers"),  # only meaningful for the outliers set
        ({"outlier_scale": -1.0}, "outlier_scale"),
        ({"model": "transformer"}, "model"),
        ({"depth": 10}, "depth"),  # MAX_DEPTH is 9 (ResNet-56)
        ({"depth": 0}, "depth"),
        ({"width": 257}, "width"),
        ({"width": 2.5}, "width"),
        ({"activation": "swish"}, "activation"),
        ({"skip": "yes"}, "skip"),
        ({"batchnorm": 1}, "batchnorm"),
        ({"loss": "nope"}, "loss"),
        ({"loss_params": {"delta": 1.0}}, "delta"),
        ({"loss_params": {"label_smoothing": 1.5}}, "label_smoothing"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"lr": 0.0}, "lr"),
        ({"lr": -1}, "lr"),
        ({"lr": float("nan")}, "lr"),
        ({"lr": 2e6}, "lr"),
        ({"momentum": 1.0}, "momentum"),
        ({"batch_size": 0}, "batch_size"),
        ({"epochs": 501}, "epochs"),
        ({"epochs": 0}, "epochs"),
        ({"weight_decay": -0.1}, "weight_decay"),
        ({"seed": -1}, "seed"),
        ({"schedule": "step"}, "schedule"),
        ({"epochs": 3, "warmup_epochs": 4}, "warmup_epochs"),
        ({"warmup_epochs": -1}, "warmup_epochs"),
        ({"model": "cnn"}, "model"),
        ({"dataset": "sine"}, "cross_entropy"),  # classification loss on regression data
        ({"dataset": "spiral3", "loss": "hinge"}, "binary"),
    ],
)
def test_bad_config_raises_naming_field_value_and_range(kw, field):
    with pytest.raises(ValueError, match=field) as e:
        Config(**kw)
    value = next(iter(kw.values())) if len(kw) == 1 else None
    if isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value):
        assert str(float(value)) in str(e.value) or str(value) in str(e.value)


def test_range_message_states_the_allowed_range():
    with pytest.raises(ValueError, match=r"epochs=501 is out of range: must be in \[1, 500\]"):
        Config(epochs=501)


def test_config_is_hashable_canonical_and_json_round_trips():
    a = Config(loss="huber", dataset="sine", loss_params={"delta": 2})
    b = Config(loss="huber", dataset="sine", loss_params=(("delta", 2.0),))
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    # defaults are filled in: naming the default value gives the same key
    assert Config() == Config(loss_params={"label_smoothing": 0.0})
    d = json.loads(json.dumps(a.to_dict()))
    assert Config.from_dict(d) == a
    with pytest.raises(ValueError, match="colour"):
        Config.from_dict({**d, "colour": "red"})
    with pytest.raises(dataclass_error()):
        a.lr = 1.0  # frozen


def dataclass_error():
    import dataclasses

    return dataclasses.FrozenInstanceError


def test_replace_resets_loss_params_when_the_loss_changes():
    a = Config(dataset="sine", loss="huber", loss_params={"delta": 2.0})
    b = a.replace(loss="mse")
    assert b.loss_params == () and a.replace(lr=0.1).loss_params == (("delta", 2.0),)


def test_numpy_numbers_are_accepted():
    c = Config(epochs=np.int64(5), lr=np.float32(0.5))
    assert c.epochs == 5 and isinstance(c.epochs, int) and isinstance(c.lr, float)


# ----------------------------------------------------------------------------- losses vs torch


def _logits(n, c, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, generator=g, dtype=torch.float64, requires_grad=True), torch.randint(
        0, c, (n,), generator=g
    )


def _same_value_and_grad(ours, ref, x):
    (g1,) = torch.autograd.grad(ours, x)
    (g2,) = torch.autograd.grad(ref, x)
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(g1, g2)


@pytest.mark.parametrize(
    "cfg, ref",
    [
        (Config(dataset="spiral3"), lambda o, y: F.cross_entropy(o, y)),
        (
            Config(dataset="spiral3", loss_params={"label_smoothing": 0.1}),
            lambda o, y: F.cross_entropy(o, y, label_smoothing=0.1),
        ),
        (Config(dataset="spiral3", loss="multi_margin"), lambda o, y: F.multi_margin_loss(o, y)),
        (
            Config(dataset="spiral3", loss="kl_div"),
            lambda o, y: F.kl_div(
                F.log_softmax(o, 1), F.one_hot(y, 3).double(), reduction="batchmean"
            ),
        ),
        (  # Li et al.'s MSE option: softmax vs one-hot, mean over all N*C entries
            Config(dataset="spiral3", loss="mse"),
            lambda o, y: F.mse_loss(torch.softmax(o, 1), F.one_hot(y, 3).double()),
        ),
    ],
    ids=["ce", "ce-smooth", "multi_margin", "kl_div", "mse-on-classes"],
)
def test_multiclass_loss_fn_matches_torch(cfg, ref):
    out, y = _logits(50, 3)
    fn = training.make_loss_fn(cfg, cfg.make_dataset())
    _same_value_and_grad(fn(out, y), ref(out, y), out)


@pytest.mark.parametrize(
    "loss, ref",
    [
        ("bce", lambda f, y: F.binary_cross_entropy(torch.sigmoid(f), y)),
        ("logistic", lambda f, y: F.binary_cross_entropy_with_logits(f, y)),
        ("hinge", lambda f, y: torch.relu(1 - (2 * y - 1) * f).mean()),
    ],
)
def test_binary_loss_fn_uses_one_logit(loss, ref):
    cfg = Config(loss=loss)
    out, y = _logits(40, 1, seed=1)
    y = torch.randint(0, 2, (40,), generator=torch.Generator().manual_seed(2))
    fn = training.make_loss_fn(cfg, cfg.make_dataset())
    _same_value_and_grad(fn(out, y), ref(out[:, 0], y.double()), out)


def test_regression_loss_fn_matches_torch():
    cfg = Config(dataset="sine", loss="huber", loss_params={"delta": 0.5})
    out = torch.randn(30, 1, dtype=torch.float64, requires_grad=True)
    y = torch.randn(30, dtype=torch.float64)
    fn = training.make_loss_fn(cfg, cfg.make_dataset())
    _same_value_and_grad(fn(out, y), F.huber_loss(out[:, 0], y, delta=0.5), out)


def test_classification_loss_on_regression_data_is_rejected_clearly():
    with pytest.raises(ValueError, match="regression"):
        Config(dataset="sine", loss="cross_entropy")
    cfg = Config()  # make_loss_fn checks the pairing too
    with pytest.raises(ValueError, match="regression data"):
        training.make_loss_fn(cfg, data.make("sine"))


def test_accuracy_fn():
    cfg = Config(dataset="spiral3")
    acc = training.make_accuracy_fn(cfg, cfg.make_dataset())
    out = torch.tensor([[2.0, 0, 0], [0, 3, 0], [0, 0, 1], [5, 0, 0]])
    assert acc(out, torch.tensor([0, 1, 1, 2])) == 0.5
    assert acc(torch.tensor([[0.5], [-1.0], [2.0]]), torch.tensor([1, 0, 0])) == pytest.approx(
        2 / 3
    )
    assert training.make_accuracy_fn(Config(dataset="sine", loss="mse"), data.make("sine")) is None


# ----------------------------------------------------------------------------- training


def test_default_run_learns_moons(default_run):
    h = default_run.history
    assert h["epoch"] == list(range(101)) and not default_run.diverged
    assert h["train_loss"][-1] < 0.3 * h["train_loss"][0]
    assert h["test_acc"][-1] >= DEFAULT_ACCURACY_FLOOR
    assert h["train_acc"][-1] >= DEFAULT_ACCURACY_FLOOR
    assert default_run.n_params == 2 * 32 + 32 + 32 * 32 + 32 + 32 * 2 + 2
    assert default_run.name == "mlp 2x32 relu · moons · CE · adam lr=0.01 · s0"
    # history agrees with a fresh evaluation of the final model
    ds, m = default_run.dataset(), default_run.model()
    with torch.no_grad():
        assert float(F.cross_entropy(m(ds.X_test), ds.y_test)) == pytest.approx(
            h["test_loss"][-1], rel=1e-5
        )


def test_same_seed_reproduces_exactly_and_another_seed_differs(short_run):
    again = train(short_run.config)
    assert again.history == short_run.history and again.step_loss == short_run.step_loss
    assert np.array_equal(again.trajectory, short_run.trajectory)
    for k, v in short_run.state_dict.items():
        assert torch.equal(v, again.state_dict[k])
    other = train(short_run.config.replace(seed=1))
    assert other.history["train_loss"] != short_run.history["train_loss"]


def test_matches_a_plain_reference_loop(short_run):
    """Same seed, same permutations, torch's own CE and Adam: the same step losses."""
    cfg = short_run.config
    ds = cfg.make_dataset()
    model = models.build(cfg, ds)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    g = torch.Generator().manual_seed(cfg.seed)
    steps = []
    for _ in range(cfg.epochs):
        perm = torch.randperm(len(ds.y_train), generator=g)
        for i in range(0, len(perm), cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            loss = F.cross_entropy(model(ds.X_train[idx]), ds.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps.append(loss.item())
    np.testing.assert_allclose(short_run.step_loss, steps, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        short_run.trajectory[-1],
        torch.cat([p.detach().flatten() for p in model.parameters()]).numpy(),
        atol=1e-5,
    )


def test_warmup_and_cosine_schedule_match_torchs_own_schedulers():
    """SGD + momentum with 2 warm-up epochs then cosine decay: the same step losses as a plain
    loop driven by torch's LinearLR -> CosineAnnealingLR, and the lr ends at 0."""
    cfg = Config(dataset="moons", n_samples=100, width=8, optimizer="momentum", lr=0.2,
                 weight_decay=5e-4, batch_size=16, epochs=5, schedule="cosine",
                 warmup_epochs=2)  # fmt: skip
    run = train(cfg)
    ds = cfg.make_dataset()
    model = models.build(cfg, ds)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=5e-4)
    per_epoch = -(-len(ds.y_train) // cfg.batch_size)
    warm, total = 2 * per_epoch, 5 * per_epoch
    sched = torch.optim.lr_scheduler.SequentialLR(
        opt,
        [
            torch.optim.lr_scheduler.LinearLR(opt, 1 / warm, 1.0, total_iters=warm - 1),
            torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - warm),
        ],
        milestones=[warm],
    )
    g = torch.Generator().manual_seed(cfg.seed)
    steps, lrs = [], []
    for _ in range(cfg.epochs):
        perm = torch.randperm(len(ds.y_train), generator=g)
        for i in range(0, len(perm), cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            loss = F.cross_entropy(model(ds.X_train[idx]), ds.y_train[idx])
            opt.zero_grad()
            loss.backward()
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
            steps.append(loss.item())
    assert lrs[0] == pytest.approx(cfg.lr / warm) and max(lrs) == pytest.approx(cfg.lr)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(run.step_loss, steps, rtol=1e-5, atol=1e-6)
    # the schedule matters: the constant-lr run differs; the default makes no scheduler
    assert train(cfg.replace(schedule="constant", warmup_epochs=0)).step_loss != run.step_loss
    assert training.lr_factor(Config(), 10) is None


def test_trajectory_is_init_then_every_epoch(short_run):
    run = short_run
    n_params = run.n_params
    assert run.trajectory.shape == (run.config.epochs + 1, n_params)
    assert run.trajectory.dtype == np.float32
    flat = lambda m: torch.cat([p.detach().flatten() for _, p in m.named_parameters()])  # noqa: E731
    assert torch.equal(flat(run.initial_model()), torch.from_numpy(run.trajectory[0]))
    assert torch.equal(flat(run.model()), torch.from_numpy(run.trajectory[-1]))
    assert torch.equal(run.param_vector("initial"), torch.from_numpy(run.trajectory[0]))
    assert torch.equal(run.param_vector(), flat(run.model()))
    assert not np.array_equal(run.trajectory[1], run.trajectory[2])
    steps_per_epoch = math.ceil(len(run.dataset().y_train) / run.config.batch_size)
    assert len(run.step_loss) == run.config.epochs * steps_per_epoch


def test_progress_is_called_after_every_epoch():
    seen = []
    run = train(Config(epochs=4, n_samples=200), progress=seen.append)
    assert [p["epoch"] for p in seen] == [1, 2, 3, 4] and all(p["epochs"] == 4 for p in seen)
    assert [p["train_loss"] for p in seen] == run.history["train_loss"][1:]
    assert {"test_loss", "train_acc", "test_acc", "step_loss", "diverged", "seconds"} <= set(
        seen[0]
    )


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_huge_learning_rate_stops_early_and_reports_divergence(optimizer):
    cfg = Config(lr=1e6, optimizer=optimizer, epochs=50)
    run = train(cfg)  # no exception
    assert run.diverged and run.diverged_epoch is not None and 1 <= run.diverged_epoch < cfg.epochs
    assert run.epochs_done == run.diverged_epoch - 1 < cfg.epochs
    assert run.last_finite_loss is not None and math.isfinite(run.last_finite_loss)
    # what is kept is the last sane point: finite history, trajectory and weights
    assert np.isfinite(run.trajectory).all() and len(run.trajectory) == run.epochs_done + 1
    assert all(math.isfinite(v) for v in run.history["train_loss"])
    assert all(torch.isfinite(v).all() for v in run.state_dict.values())


def test_regression_training_fits_and_has_no_accuracy():
    run = train(Config(dataset="sine", loss="mse", activation="tanh", epochs=60, n_samples=400))
    assert run.history["test_loss"][-1] < 0.2 * run.history["test_loss"][0]
    assert all(math.isnan(a) for a in run.history["test_acc"])
    assert run.accuracy_fn() is None


def test_full_batch_mse_linear_fit_reaches_least_squares():
    """Independent implementation: numpy's least-squares line on the same training data."""
    cfg = presets.get("Linear regression with outliers (MSE)").replace(batch_size=5000, epochs=300)
    run = train(cfg)
    ds = run.dataset()
    slope, intercept = np.polyfit(ds.X_train[:, 0].double().numpy(), ds.y_train.double().numpy(), 1)
    sd = run.state_dict
    assert float(sd["1.weight"]) == pytest.approx(slope, abs=1e-3)
    assert float(sd["1.bias"]) == pytest.approx(intercept, abs=1e-3)
    huber = train(cfg.replace(loss="huber"))
    # Huber ignores the outliers: its slope stays near the true line, least squares is dragged
    assert abs(float(huber.state_dict["1.weight"]) - data.OUTLIER_SLOPE) < abs(
        slope - data.OUTLIER_SLOPE
    )


def test_batchnorm_with_a_trailing_batch_of_one_trains():
    # iris: 120 training points, batch 119 leaves one point that BatchNorm cannot use
    run = train(Config(dataset="iris", n_samples=150, batchnorm=True, batch_size=119, epochs=3))
    assert not run.diverged and len(run.step_loss) == 3
    assert any(k.endswith("running_mean") for k in run.state_dict)


# ----------------------------------------------------------------------------- saving


def _assert_runs_equal(a, b):
    assert a.config == b.config and a.name == b.name
    for k in training._HISTORY_KEYS:
        np.testing.assert_array_equal(np.array(a.history[k]), np.array(b.history[k]))
    assert a.step_loss == b.step_loss
    assert np.array_equal(a.trajectory, b.trajectory) and a.trajectory.dtype == b.trajectory.dtype
    assert list(a.state_dict) == list(b.state_dict)
    for k in a.state_dict:
        assert a.state_dict[k].dtype == b.state_dict[k].dtype and torch.equal(
            a.state_dict[k], b.state_dict[k]
        )
    assert (a.diverged, a.diverged_epoch, a.last_finite_loss) == (
        b.diverged,
        b.diverged_epoch,
        b.last_finite_loss,
    )
    assert (a.n_params, a.seconds) == (b.n_params, b.seconds)


def test_run_bytes_round_trip_is_exact(short_run):
    b = formats.run_to_bytes(short_run)
    _assert_runs_equal(short_run, formats.run_from_bytes(b))
    # no pickled objects inside: every member loads with allow_pickle=False
    with np.load(io.BytesIO(b), allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)
        assert json.loads(z["config_json"].tobytes()) == short_run.config.to_dict()


def test_round_trip_of_diverged_batchnorm_run():
    run = train(
        Config(dataset="iris", n_samples=150, batchnorm=True, lr=1e6, optimizer="sgd", epochs=5)
    )
    assert run.diverged
    _assert_runs_equal(run, formats.run_from_bytes(formats.run_to_bytes(run)))


def test_run_from_garbage_raises_value_error():
    with pytest.raises(ValueError, match="not a saved run"):
        formats.run_from_bytes(b"definitely not an npz")
    buf = io.BytesIO()
    np.savez(buf, x=np.zeros(3))
    with pytest.raises(ValueError, match="not a saved run"):
        formats.run_from_bytes(buf.getvalue())


def test_history_csv(short_run):
    df = pd.read_csv(io.StringIO(training.history_csv(short_run)))
    assert list(df.columns) == ["epoch", "train_loss", "test_loss", "train_acc", "test_acc"]
    assert df["epoch"].tolist() == short_run.history["epoch"]
    np.testing.assert_array_equal(df["train_loss"].to_numpy(), short_run.history["train_loss"])


# ----------------------------------------------------------------------------- predictions, presets


def test_decision_grid_orientation_and_probabilities(short_run):
    model, ds = short_run.model(), short_run.dataset()
    xs, ys, probs = predictions.decision_grid(model, ds, resolution=30)
    assert probs.shape == (30, 30, 2)
    np.testing.assert_allclose(probs.sum(-1), 1, atol=1e-6)
    i, j = 7, 21  # probs[i, j] is at (xs[j], ys[i])
    with torch.no_grad():
        p = torch.softmax(model(torch.tensor([[xs[j], ys[i]]])), 1)[0].numpy()
    np.testing.assert_allclose(probs[i, j], p, atol=1e-6)
    X = torch.cat([ds.X_train, ds.X_test])
    assert xs[0] < X[:, 0].min() and xs[-1] > X[:, 0].max()
    with pytest.raises(ValueError, match="2D"):
        predictions.decision_grid(model, data.make("sine"))


def test_regression_curve_is_the_model():
    run = train(Config(dataset="sine", loss="mse", epochs=2, n_samples=100))
    xs, yhat = predictions.regression_curve(run.model(), run.dataset(), n=50)
    with torch.no_grad():
        ref = run.model()(torch.from_numpy(xs)[:, None])[:, 0].numpy()
    np.testing.assert_allclose(yhat, ref, atol=1e-6)


def test_presets_are_valid_configs():
    assert "MLP on moons" in presets.PRESETS and presets.get("MLP on moons") == Config()
    skip, noskip = (
        presets.get("ResNet on digits (skips)"),
        presets.get("ResNet on digits (no skips)"),
    )
    assert skip.replace(skip=False) == noskip
    cnn = presets.get("CNN on digits")
    m = models.build(cnn, cnn.make_dataset())
    assert models.count_params(m) == 38282
    for cfg, text in presets.PRESETS.values():
        assert isinstance(cfg, Config) and len(text) > 20
    with pytest.raises(ValueError, match="preset"):
        presets.get("nope")
