"""The slicing pipeline against a plain re-implementation, on a Subject built without a Run."""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest
import torch
from torch import nn

from landscape.core import directions
from landscape.engine.subject import Subject
from landscape.pipelines import slices


def _subject(seed=0, trajectory=False):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 2))
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(30, 3, generator=g)
    y = (X[:, 0] > 0).long()
    Xt = torch.randn(12, 3, generator=g)
    yt = (Xt[:, 1] > 0).long()
    traj = None
    if trajectory:
        flat = directions.flatten(directions.weights_of(net)).numpy()
        steps = np.random.default_rng(seed).normal(size=(5, flat.size)).astype(np.float32)
        traj = flat[None, :] + np.cumsum(steps, axis=0)[::-1] * 0.05
        traj[-1] = flat
    subject = Subject.from_module(
        net,
        nn.functional.cross_entropy,
        {"train": (X, y), "test": (Xt, yt)},
        accuracy_fn=lambda out, t: float((out.argmax(1) == t).float().mean()),
        trajectory=traj,
        name="tiny",
    )
    return subject, net


def _plain_loss(net, data, centre, dirs, coords):
    """A from-scratch evaluation: copy the net, write the moved weights in, forward."""
    X, y = data
    out = []
    for point in coords:
        m = copy.deepcopy(net).eval()
        with torch.no_grad():
            for k, p in m.named_parameters():
                p.copy_(centre[k] + sum(float(a) * d[k] for a, d in zip(point, dirs)))
            out.append(float(nn.functional.cross_entropy(m(X), y)))
    return np.array(out)


def test_plane_matches_a_plain_loop_and_leaves_the_module_alone():
    subject, net = _subject()
    before = copy.deepcopy(net.state_dict())
    req = slices.SliceRequest(dim=2, nx=4, ny=3, xmin=-0.5, split="test", method="loop")
    res = slices.compute(req, subject)
    d1, d2 = res.directions
    assert torch.equal(
        directions.flatten(d1),
        directions.flatten(directions.random_directions(net, 2, seed=0)[0]),
    )
    gx, gy = np.meshgrid(req.xs(), req.ys())
    coords = np.stack([gx.ravel(), gy.ravel()], 1)
    want = _plain_loss(net, subject.data("test"), directions.weights_of(net), [d1, d2], coords)
    np.testing.assert_allclose(res.main.loss.ravel(), want, rtol=1e-5, atol=1e-6)
    assert res.main.loss.shape == (3, 4) and res.main.meta["split"] == "test"
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_a_custom_evaluator_sees_every_point_once_and_gives_the_same_numbers():
    subject, _ = _subject()
    seen = []

    def halves(subject, dirs, coords, split="train", **kw):  # as two ranks would
        parts = [slices.evaluate(subject, dirs, c, split, **kw) for c in np.array_split(coords, 2)]
        seen.extend(map(tuple, coords))
        accs = [p[1] for p in parts]
        return np.concatenate([p[0] for p in parts]), np.concatenate(accs), parts[0][2]

    req = slices.SliceRequest(dim=2, nx=5, ny=4, lines=2, line_res=7)
    a = slices.compute(req, subject)
    b = slices.compute(req, subject, evaluator=halves)
    np.testing.assert_allclose(a.main.loss, b.main.loss, rtol=1e-6)
    np.testing.assert_allclose(a.main.accuracy, b.main.accuracy)
    assert len(seen) == 5 * 4 + 2 * 7
    for la, lb in zip(a.lines, b.lines):
        np.testing.assert_allclose(la.loss, lb.loss, rtol=1e-6)


def test_lines_beside_a_plane_follow_its_directions():
    subject, net = _subject(1)
    req = slices.SliceRequest(dim=2, nx=5, ny=5, lines=3, line_res=5, method="loop")
    res = slices.compute(req, subject)
    assert len(res.lines) == 3 and len(res.directions) == 3
    centre = directions.weights_of(net)
    for k, line in enumerate(res.lines):
        coords = line.xs[:, None]
        want = _plain_loss(net, subject.data("train"), centre, [res.directions[k]], coords)
        np.testing.assert_allclose(line.loss, want, rtol=1e-5, atol=1e-6)
    # the first line is the plane's middle row (y = 0), the second its middle column
    np.testing.assert_allclose(res.lines[0].loss, res.main.loss[2], rtol=1e-5)
    np.testing.assert_allclose(res.lines[1].loss, res.main.loss[:, 2], rtol=1e-5)


def test_random_lines_use_consecutive_seeds_on_each_split():
    subject, net = _subject(2)
    res = slices.compute(slices.SliceRequest(dim=1, n_lines=2, nx=5, seed=7), subject)
    assert list(res.surfaces) == ["train:0", "train:1"]
    for k in range(2):
        want = directions.random_direction(net, seed=7 + k)
        assert torch.equal(directions.flatten(res.directions[k]), directions.flatten(want))


def test_between_reaches_the_other_net_at_t1():
    a, _ = _subject(0)
    b, net_b = _subject(3)
    req = slices.SliceRequest(dim=1, direction="between", xmin=0.0, xmax=1.0, nx=3)
    res = slices.compute(req, a, other=b)
    X, y = a.data("train")
    with torch.no_grad():
        want = float(nn.functional.cross_entropy(net_b.eval()(X), y))
    assert res.main.loss[-1] == pytest.approx(want, rel=1e-5)
    with pytest.raises(ValueError, match="second net"):
        slices.compute(req, a)


def test_pca_frames_the_path_and_needs_one():
    subject, _ = _subject(trajectory=True)
    res = slices.compute(slices.SliceRequest(direction="pca", nx=5, ny=5, auto_range=True), subject)
    px, py = res.path
    assert res.main.xs[0] < min(px.min(), 0) and res.main.xs[-1] > max(px.max(), 0)
    assert res.main.ys[0] < min(py.min(), 0) and res.main.ys[-1] > max(py.max(), 0)
    assert 0.0 <= res.path_share <= 1.0 + 1e-9
    bare, _ = _subject()
    with pytest.raises(ValueError, match="trajectory"):
        slices.compute(slices.SliceRequest(direction="pca", nx=3, ny=3), bare)


def test_options_are_checked_against_the_library_and_passed_through(monkeypatch):
    for bad, says in (
        (dict(norm="bogus"), "norm='bogus'"),
        (dict(dir_type="bogus"), "dir_type='bogus'"),
        (dict(projection="bogus"), "projection='bogus'"),
        (dict(method="fast"), "method='fast'"),
        (dict(split="val"), "split='val'"),
        (dict(nx=1), "nx=1"),
        (dict(nx=201, ny=202), "201x202"),
        (dict(xmin=1.0, xmax=0.0), "xmax=0.0 must be greater"),
        (dict(dim=1, direction="pca"), "direction='pca'"),
    ):
        with pytest.raises(ValueError, match=re.escape(says)):
            slices.SliceRequest(**bad)
    # an option the library grows is accepted and reaches it unchanged
    monkeypatch.setattr(directions, "DIR_TYPES", ("weights", "states"), raising=False)
    seen = {}
    real = directions.random_directions

    def spy(*a, dir_type="weights", **kw):
        seen["dir_type"] = dir_type
        return real(*a, **kw)

    monkeypatch.setattr(directions, "random_directions", spy)
    subject, _ = _subject()
    slices.compute(slices.SliceRequest(dim=2, nx=3, ny=3, dir_type="states"), subject)
    assert seen == {"dir_type": "states"}


def test_subject_data_is_checked():
    subject, _ = _subject()
    with pytest.raises(ValueError, match="split='val'"):
        subject.data("val")
    only_train = Subject.from_module(nn.Linear(2, 1), nn.functional.mse_loss, {
        "train": (torch.zeros(3, 2), torch.zeros(3, 1))})  # fmt: skip
    with pytest.raises(ValueError, match="no test data"):
        only_train.data("test")


def test_the_pca_plane_ignores_what_its_metadata_says():
    """Li et al. zero the 1-D parameters in the PCA rows: the default, said in the metadata."""
    subject, _ = _subject(trajectory=True)
    for ignore in ("biasbn", None):
        req = slices.SliceRequest(direction="pca", nx=3, ny=3, ignore=ignore)
        res = slices.compute(req, subject)
        assert res.main.meta["ignore"] == ignore
        model = subject.model()
        one_d = [k for k, p in model.named_parameters() if p.ndim == 1]
        moved = any(torch.count_nonzero(d[k]) for d in res.directions for k in one_d)
        assert moved == (ignore is None)
