"""The notebook API of `landscape/__init__`: each call against an independent path."""

import copy
import subprocess
import sys

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

import landscape
from landscape.core import directions as D


def _net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 3)).eval()


def _data():
    g = torch.Generator().manual_seed(1)
    X = torch.randn(40, 3, generator=g)
    return X, (X[:, 0] > 0).long() + (X[:, 1] > 0).long()


def _loss_at(model, centre, moves):
    """A from-scratch point: a copy of the model with the moved weights written in."""
    m = copy.deepcopy(model)
    with torch.no_grad():
        for k, p in m.named_parameters():
            p.copy_(centre[k] + sum(c * d[k] for c, d in moves))
    X, y = _data()
    with torch.no_grad():
        return float(F.cross_entropy(m(X), y))


def test_random_plane_is_li_et_al_s_plane_and_leaves_the_model_alone():
    model = _net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    s = landscape.random_plane(model, F.cross_entropy, _data(), distance=0.5, steps=5, seed=3)
    assert s.loss.shape == (5, 5)
    d1, d2 = D.random_directions(model, 2, norm="filter", ignore="biasbn", seed=3)
    centre = {k: p.detach().clone() for k, p in model.named_parameters()}
    for i, j in [(0, 0), (1, 3), (4, 2)]:
        ref = _loss_at(model, centre, [(s.xs[j], d1), (s.ys[i], d2)])  # row = y
        assert abs(s.loss[i, j] - ref) <= 1e-5 * max(1.0, ref)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_random_line_puts_the_model_at_t0():
    model = _net()
    s = landscape.random_line(model, F.cross_entropy, _data(), steps=7)
    X, y = _data()
    assert s.xs[3] == 0.0
    np.testing.assert_allclose(s.loss[3], float(F.cross_entropy(model(X), y)), rtol=1e-6)


def test_linear_interpolation_ends_at_each_nets_own_loss():
    a, b = _net(0), _net(1)
    with torch.no_grad():  # different BatchNorm statistics: they move with the weights
        b[1].running_mean.add_(0.5)
    s = landscape.linear_interpolation(a, b, F.cross_entropy, _data(), steps=5)
    X, y = _data()
    np.testing.assert_allclose(s.xs, np.linspace(0, 1, 5))
    np.testing.assert_allclose(s.loss[0], float(F.cross_entropy(a(X), y)), rtol=1e-6)
    np.testing.assert_allclose(s.loss[-1], float(F.cross_entropy(b(X), y)), rtol=1e-6)


def test_import_landscape_stays_light_and_lists_its_api():
    code = "import sys, landscape; print('torch' in sys.modules, sorted(landscape.__all__))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded, names = out.stdout.split(" ", 1)
    assert loaded == "False"
    assert "random_plane" in names and "open_model" in names
    assert landscape.Config().dataset and callable(landscape.train)
