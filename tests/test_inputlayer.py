"""The reference loop computes the layer that reads the data once per surface
(landscape.engine.inputlayer): every point must equal a plain loop that writes the point's
weights into the model and runs it whole."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from landscape.engine import inputlayer
from landscape.engine.surface import LoopSession


def plain(model, X, y, center, dirs, coords):
    """Independent reference: each point's weights written in, one whole forward."""
    out = []
    with torch.no_grad():
        for c in coords:
            for k, p in model.named_parameters():
                p.copy_(center[k] + sum(float(a) * d[k] for a, d in zip(c, dirs)))
            out.append(F.cross_entropy(model(X), y).item())
        for k, p in model.named_parameters():
            p.copy_(center[k])
    return np.array(out)


class ReluInPlace(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = nn.Linear(12, 16)
        self.act = nn.ReLU(inplace=True)  # changes the first layer's output in place
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        return self.head(self.act(self.first(x)))


class Tokens(nn.Module):
    def __init__(self, max_norm=None):
        super().__init__()
        self.embed = nn.Embedding(11, 8, max_norm=max_norm)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.embed(x).mean(1))


class OwnLinear(nn.Linear):
    def forward(self, x):  # not linear in the weights: must run as written
        return super().forward(x) ** 2


class Twice(nn.Module):
    """The first layer also applied to a later activation: only the call on X is replaced."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(12, 12)
        self.head = nn.Linear(12, 3)

    def forward(self, x):
        return self.head(torch.tanh(self.lin(torch.tanh(self.lin(x)))))


def mlp():
    return nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 3))


def cnn():
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, padding_mode="circular"), nn.ReLU(),
        nn.Flatten(), nn.Linear(4 * 5 * 5, 3),
    )  # fmt: skip


def data_for(name, g):
    if name == "narrow":
        return torch.randn(40, 2, generator=g)
    if name == "cnn":
        return torch.randn(40, 1, 5, 5, generator=g)
    if name.startswith("tokens"):
        return torch.randint(0, 11, (40, 7), generator=g)
    return torch.randn(40, 12, generator=g)


MODELS = {
    "mlp": (mlp, True),
    "relu_in_place": (ReluInPlace, True),
    "cnn": (cnn, True),
    "tokens": (Tokens, False),  # a lookup: as cheap as the sum, left as it is
    "tokens_max_norm": (lambda: Tokens(max_norm=1.0), False),
    "narrow": (lambda: nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 3)), False),
    "own_linear": (lambda: nn.Sequential(OwnLinear(12, 16), nn.ReLU(), nn.Linear(16, 3)), False),
    "twice": (Twice, True),
}


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("skip_biases", [False, True])
def test_every_point_equals_a_plain_loop(name, skip_biases):
    build, replaced = MODELS[name]
    torch.manual_seed(0)
    model = build().eval()
    g = torch.Generator().manual_seed(1)
    X, y = data_for(name, g), torch.randint(0, 3, (40,), generator=g)
    center = {k: p.detach().clone() for k, p in model.named_parameters()}
    dirs = [
        {k: (torch.zeros_like(p) if skip_biases and p.ndim == 1 else torch.randn(p.shape, generator=g))
         for k, p in center.items()}
        for _ in range(2)
    ]  # fmt: skip
    coords = np.array([(a, b) for b in np.linspace(-1, 1, 4) for a in np.linspace(-1, 1, 5)])
    session = LoopSession(model, F.cross_entropy, X, y, center, dirs)
    got, _ = session.run(coords)
    want = plain(model, X, y, center, dirs, coords)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-6)
    assert bool(session.inputs and session.inputs.modules) == replaced
    again, _ = session.run(coords[::-1].copy())  # a second run on the same data reuses the terms
    np.testing.assert_allclose(again, want[::-1], rtol=2e-5, atol=1e-6)


def test_a_layer_no_direction_moves_is_computed_once_and_still_fresh_per_point():
    torch.manual_seed(0)
    model = ReluInPlace().eval()
    X, y = torch.randn(30, 12), torch.randint(0, 3, (30,))
    center = {k: p.detach().clone() for k, p in model.named_parameters()}
    dirs = [
        {k: torch.zeros_like(p) if k.startswith("first") else torch.randn_like(p)
         for k, p in center.items()}
        for _ in range(2)
    ]  # fmt: skip
    coords = np.array([(a, -a) for a in np.linspace(-2, 2, 7)])
    session = LoopSession(model, F.cross_entropy, X, y, center, dirs)
    got, _ = session.run(coords)
    assert session.inputs.terms["first"][1] == []  # base only: nothing to add per point
    np.testing.assert_allclose(got, plain(model, X, y, center, dirs, coords), rtol=2e-5)


def test_new_data_drops_the_terms_of_the_old():
    torch.manual_seed(0)
    model = mlp().eval()
    center = {k: p.detach().clone() for k, p in model.named_parameters()}
    dirs = [{k: torch.randn_like(p) for k, p in center.items()}]
    coords = np.linspace(-1, 1, 5)[:, None]
    X1, X2 = torch.randn(20, 12), torch.randn(25, 12)
    y1, y2 = torch.randint(0, 3, (20,)), torch.randint(0, 3, (25,))
    session = LoopSession(model, F.cross_entropy, X1, y1, center, dirs)
    session.run(coords)
    session.bind(X2, y2)
    got, _ = session.run(coords)
    np.testing.assert_allclose(got, plain(model, X2, y2, center, dirs, coords), rtol=2e-5)
    assert session.inputs.X is X2


def test_the_terms_stay_within_their_memory_bound(monkeypatch):
    monkeypatch.setattr(inputlayer, "BASIS_BYTES", 100)  # less than one layer's output
    torch.manual_seed(0)
    model = mlp().eval()
    X, y = torch.randn(20, 12), torch.randint(0, 3, (20,))
    center = {k: p.detach().clone() for k, p in model.named_parameters()}
    dirs = [{k: torch.randn_like(p) for k, p in center.items()}]
    coords = np.linspace(-1, 1, 3)[:, None]
    session = LoopSession(model, F.cross_entropy, X, y, center, dirs)
    got, _ = session.run(coords)
    assert session.inputs.modules == {}
    np.testing.assert_allclose(got, plain(model, X, y, center, dirs, coords), rtol=2e-5)
