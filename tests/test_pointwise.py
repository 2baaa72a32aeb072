"""Per-point losses evaluated for a chunk of points at once (landscape.core.pointwise).

Each batched value is checked against the function itself called on one point at a time, the
reference every method of computing a surface used before.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape.core import pointwise
from landscape.core.directions import random_directions
from landscape.core.pointwise import Pointwise
from landscape.engine import surface

K, N, C = 5, 37, 4


def _preds(seed=0, shape=(K, N, C)):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 3


def _labels(seed=1, n=N, c=C):
    return torch.randint(0, c, (n,), generator=torch.Generator().manual_seed(seed))


def _per_point(fn, preds, y):
    return np.array([float(fn(p, y)) for p in preds])


CROSS_ENTROPIES = {
    "mean": nn.CrossEntropyLoss(),
    "sum": nn.CrossEntropyLoss(reduction="sum"),
    "smoothing": nn.CrossEntropyLoss(label_smoothing=0.2),
    "ignore": nn.CrossEntropyLoss(ignore_index=2),
    "ignore-smoothing-sum": nn.CrossEntropyLoss(
        ignore_index=2, label_smoothing=0.1, reduction="sum"
    ),
    "functional": F.cross_entropy,
}


@pytest.mark.parametrize("fn", CROSS_ENTROPIES.values(), ids=CROSS_ENTROPIES.keys())
def test_cross_entropy_batched_equals_torch_per_point(fn):
    preds, y = _preds(), _labels()
    assert (y == 2).any()  # ignore_index=2 really ignores some targets
    pw = Pointwise(fn, y, "loss_fn")
    assert pw.many is not None  # the batched form is used, not the fallback
    got = pw.values(preds)
    assert pw.many is not None and pw.checked  # still batched after the first-point check
    np.testing.assert_allclose(got, _per_point(fn, preds, y), rtol=1e-6)


def test_one_point_and_a_diverged_point():
    y = _labels()
    preds = _preds()[:1].clone()
    got = Pointwise(nn.CrossEntropyLoss(), y, "loss_fn").values(preds)
    np.testing.assert_allclose(got, _per_point(nn.CrossEntropyLoss(), preds, y), rtol=1e-6)
    preds = _preds()
    preds[3, 0, 0] = float("nan")  # a diverged point stays NaN, the others are untouched
    got = Pointwise(nn.CrossEntropyLoss(), y, "loss_fn").values(preds)
    ref = _per_point(nn.CrossEntropyLoss(), preds, y)
    assert np.isnan(got[3]) and np.isnan(ref[3])
    np.testing.assert_allclose(np.delete(got, 3), np.delete(ref, 3), rtol=1e-6)


def test_what_is_not_known_runs_per_point():
    preds, y = _preds(), _labels()

    class Doubled(nn.CrossEntropyLoss):  # a subclass may change the meaning
        def forward(self, pred, target):
            return 2 * super().forward(pred, target)

    weighted = nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 3.0, 4.0]))
    for fn in (Doubled(), weighted, lambda p, t: F.cross_entropy(p, t)):
        pw = Pointwise(fn, y, "loss_fn")
        assert pw.many is None
        np.testing.assert_allclose(pw.values(preds), _per_point(fn, preds, y), rtol=1e-6)


def test_probability_targets_fall_back_to_per_point():
    preds = _preds()
    q = torch.softmax(_preds(seed=5)[0], 1)  # (N, C) class probabilities
    fn = nn.CrossEntropyLoss()
    pw = Pointwise(fn, q, "loss_fn")
    np.testing.assert_allclose(pw.values(preds), _per_point(fn, preds, q), rtol=1e-6)


def test_a_batched_attribute_that_lies_is_caught_on_the_first_chunk():
    preds, y = _preds(), _labels()

    def loss(p, t):
        return F.cross_entropy(p, t)

    loss.batched = lambda ps, t: torch.zeros(len(ps))  # wrong
    pw = Pointwise(loss, y, "loss_fn")
    assert pw.many is not None
    np.testing.assert_allclose(pw.values(preds), _per_point(loss, preds, y), rtol=1e-6)
    assert pw.many is None  # the rest of the surface goes per point


def test_errors_are_the_per_point_ones():
    preds, y = _preds(), _labels()
    with pytest.raises(ValueError, match="loss_fn returned shape"):
        Pointwise(lambda p, t: p.sum(1), y, "loss_fn").values(preds)
    bad = torch.full((N,), C + 3)  # class indices out of range: torch's own error
    with pytest.raises((IndexError, RuntimeError)):
        Pointwise(nn.CrossEntropyLoss(), bad, "loss_fn").values(preds)


@pytest.mark.parametrize("shape", [(K, N, C), (K, N, 1), (K, N)])
def test_accuracy_batched_equals_per_point(shape):
    preds = _preds(shape=shape)
    y = _labels(c=C if len(shape) == 3 and shape[2] > 1 else 2)
    pw = Pointwise(pointwise.accuracy, y, "accuracy_fn")
    assert pw.many is not None
    np.testing.assert_array_equal(pw.values(preds), _per_point(pointwise.accuracy, preds, y))


def test_surface_with_torch_cross_entropy_equals_a_plain_loop():
    """End to end: both methods of surface.plane (batched losses) against a loop written here
    with the user's own per-point call."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 3)).eval()
    X = torch.randn(200, 3)
    y = torch.randint(0, 3, (200,))
    d1, d2 = random_directions(model, 2, seed=3)
    xs = np.linspace(-1, 1, 5)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    ref = np.empty((5, 5))
    center = {k: p.detach().clone() for k, p in model.named_parameters()}
    probe = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 3)).eval()
    with torch.no_grad():
        for i, b in enumerate(xs):
            for j, a in enumerate(xs):
                for k, p in probe.named_parameters():
                    p.copy_(center[k] + a * d1[k] + b * d2[k])
                ref[i, j] = float(loss_fn(probe(X), y))
    for method in ("loop", "batched"):
        s = surface.plane(model, loss_fn, (X, y), d1, d2, xs, xs, method=method)
        np.testing.assert_allclose(s.loss, ref, rtol=1e-5)


@pytest.mark.parametrize("smoothing", [0.0, 0.15])
def test_the_apps_cross_entropy_is_batched_and_equals_the_zoos(smoothing):
    from landscape.data.config import Config
    from landscape.training.loop import make_loss_fn

    config = Config(
        dataset="spiral3", loss="cross_entropy", loss_params={"label_smoothing": smoothing}
    )
    ds = config.make_dataset()
    fn = make_loss_fn(config, ds)
    preds = _preds(shape=(K, len(ds.y_train), ds.n_classes))
    pw = Pointwise(fn, ds.y_train, "loss_fn")
    got = pw.values(preds)
    assert pw.many is not None and pw.checked
    np.testing.assert_allclose(got, _per_point(fn, preds, ds.y_train), rtol=1e-6)


def _confident(margin, seed=3, n=64, c=10, k=None):
    """float32 logits whose right class leads by about ``margin``: losses near zero."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, c, (n,), generator=g)
    x = torch.randn(*((k,) if k else ()), n, c, generator=g)
    x[..., torch.arange(n), y] += margin
    return x, y


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("margin", [5.0, 10.0, 15.0, 20.0])  # mean loss 0.1 down to 5e-8
def test_the_apps_cross_entropy_keeps_float32_precision_near_zero(margin, smoothing):
    """The zoo's loss (training, own models' default) and its batched form, in float32,
    against torch's cross-entropy in float64."""
    from landscape.data.config import Config
    from landscape.engine.own import make_loss
    from landscape.training.loop import make_loss_fn

    x, y = _confident(margin)
    ref = float(F.cross_entropy(x.double(), y, label_smoothing=smoothing))
    config = Config(
        dataset="spiral3", loss="cross_entropy", loss_params={"label_smoothing": smoothing}
    )
    app = make_loss_fn(config, config.make_dataset())
    own = make_loss(None, y, {"label_smoothing": smoothing})
    for fn in (app, own):
        np.testing.assert_allclose(float(fn(x, y)), ref, rtol=2e-6)
    preds, _ = _confident(margin, k=3)
    refs = [float(F.cross_entropy(p.double(), y, label_smoothing=smoothing)) for p in preds]
    for fn in (app, own.batch):
        pw = Pointwise(fn, y, "loss_fn")
        np.testing.assert_allclose(pw.values(preds), refs, rtol=2e-6)
        assert pw.many is not None and pw.checked  # it was the batched form


def test_the_apps_cross_entropy_gradients_equal_torchs_in_float64():
    from landscape.core import losses

    x, y = _confident(4.0, n=16, c=5)
    x = x.double().requires_grad_(True)
    for smoothing in (0.0, 0.2):
        ours = losses.get("cross_entropy")(x, y, label_smoothing=smoothing)
        (g,) = torch.autograd.grad(ours, x, create_graph=True)
        ref = F.cross_entropy(x, y, label_smoothing=smoothing)
        (gr,) = torch.autograd.grad(ref, x, create_graph=True)
        torch.testing.assert_close(ours, ref, rtol=1e-12, atol=0)
        torch.testing.assert_close(g, gr, rtol=1e-10, atol=1e-14)
        v = torch.randn_like(x)  # Hessian-vector products too (curvature measures)
        (h,) = torch.autograd.grad((g * v).sum(), x)
        (hr,) = torch.autograd.grad((gr * v).sum(), x)
        torch.testing.assert_close(h, hr, rtol=1e-10, atol=1e-14)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_a_gpu_the_values_equal_the_cpus():
    preds, y = _preds(), _labels()
    for fn in (nn.CrossEntropyLoss(), pointwise.accuracy):
        cpu = Pointwise(fn, y, "fn").values(preds)
        gpu = Pointwise(fn, y.cuda(), "fn").values(preds.cuda())
        np.testing.assert_allclose(gpu, cpu, rtol=1e-5)
