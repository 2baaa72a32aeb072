"""The Hessian measures on models researchers use (attention, Conv1d+BatchNorm+GRU) against the
exact float64 Hessian (torch.autograd.functional.hessian, eigvalsh), the trace estimators
against the exact trace, and the one-line refusal of a model without a second derivative."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from research_toys import DATA, Quadratic, loss_of_output
from torch import nn
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel

from landscape.core.hessian import FlatLoss
from landscape.measures import curvature, sharpness, spectrum


class TinyTransformer(nn.Module):
    """A one-layer TransformerEncoderLayer classifier on token sequences (707 parameters)."""

    def __init__(self, vocab=10, d=8, classes=3):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.enc = nn.TransformerEncoderLayer(d, 2, 16, dropout=0.0, batch_first=True)
        self.head = nn.Linear(d, classes)

    def forward(self, tokens):
        return self.head(self.enc(self.emb(tokens)).mean(1))


class ConvGRU(nn.Module):
    """Conv1d + BatchNorm + GRU on 2-channel sequences (273 parameters)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(2, 4, 3)
        self.bn = nn.BatchNorm1d(4)
        self.gru = nn.GRU(4, 6, batch_first=True)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        h = torch.relu(self.bn(self.conv(x))).transpose(1, 2)
        return self.head(self.gru(h)[0][:, -1])


def transformer_setup():
    torch.manual_seed(0)
    m = TinyTransformer().double()
    g = torch.Generator().manual_seed(1)
    X = torch.randint(0, 10, (24, 5), generator=g)
    return m, (X, torch.randint(0, 3, (24,), generator=g))


def gru_setup():
    torch.manual_seed(0)
    m = ConvGRU().double()
    g = torch.Generator().manual_seed(1)
    X = torch.randn(24, 2, 7, generator=g, dtype=torch.float64)
    with torch.no_grad():  # running statistics away from their initial values
        for _ in range(3):
            m(X * 2 + 1)
    return m, (X, torch.randint(0, 3, (24,), generator=g))


def exact_hessian(m, data):
    """The float64 Hessian of the mean cross-entropy in eval mode over every parameter."""
    m = m.eval()
    names = [n for n, _ in m.named_parameters()]
    shapes = [p.shape for p in m.parameters()]
    x0 = torch.cat([p.detach().reshape(-1) for p in m.parameters()])

    def f(x):
        ps = dict(
            zip(
                names,
                (t.view(s) for t, s in zip(torch.split(x, [s.numel() for s in shapes]), shapes)),
            )
        )
        return F.cross_entropy(functional_call(m, ps, (data[0],)), data[1])

    with sdpa_kernel(SDPBackend.MATH):
        return torch.autograd.functional.hessian(f, x0)


@pytest.mark.slow
@pytest.mark.parametrize("setup", [transformer_setup, gru_setup], ids=["transformer", "gru"])
def test_lambda_max_and_trace_match_the_exact_hessian(setup):
    m, data = setup()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    H = exact_hessian(m, data)
    assert H.shape[0] < 3000
    lam = torch.linalg.eigvalsh(H).numpy()
    top = curvature.top_eigen(m, F.cross_entropy, data, tol=1e-8, max_iter=300)
    assert top.eigenvalues[0] == pytest.approx(lam[-1], rel=1e-6)
    bottom = curvature.min_eigen(m, F.cross_entropy, data, tol=1e-8, max_iter=300)
    assert bottom.eigenvalues[0] == pytest.approx(lam[0], rel=1e-4, abs=1e-6 * lam[-1])
    exact_tr = float(torch.trace(H))
    est, se = curvature.trace(m, F.cross_entropy, data, n_samples=200, seed=3)
    assert se > 0 and abs(est - exact_tr) < 4 * se
    # batches weighted n_b / N give the same operator
    Fb = FlatLoss(m, F.cross_entropy, data, batch_size=7)
    v = torch.randn(Fb.numel, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.allclose(Fb.matvec(v), H @ v, atol=1e-10)
    assert all(torch.equal(before[k], t) for k, t in m.state_dict().items())


@pytest.mark.slow
def test_spectrum_and_sharpness_panel_run_on_the_transformer():
    m, data = transformer_setup()
    lam = torch.linalg.eigvalsh(exact_hessian(m, data)).numpy()
    res = spectrum.density(m, F.cross_entropy, data, n_vectors=2, steps=30, top_k=1)
    # Ritz values interlace: inside the true spectrum
    assert lam[0] - 1e-9 <= res.ritz_min and res.ritz_max <= lam[-1] + 1e-9
    assert res.top[0] == pytest.approx(lam[-1], rel=1e-3)
    s = sharpness.PanelSettings(steps=2, trace_samples=4, n_dirs=1, line_points=5)
    p = sharpness.panel(m, F.cross_entropy, data, s)
    assert p.values["lambda_max"] == pytest.approx(lam[-1], rel=1e-3)
    assert p.errors["trace"] > 0


def test_hutchpp_beats_hutchinson_on_a_low_rank_dominated_hessian():
    P = 60
    g = torch.Generator().manual_seed(0)
    Q, _ = torch.linalg.qr(torch.randn(P, P, generator=g, dtype=torch.float64))
    lam = torch.cat([torch.tensor([50.0, 30.0, 20.0, 10.0]), 0.01 * torch.rand(P - 4, generator=g)])
    A = Q @ torch.diag(lam.double()) @ Q.T
    m = Quadratic(A, torch.zeros(P), torch.zeros(P))
    exact = float(lam.sum())
    errs = {"hutchinson": [], "hutchpp": []}
    for seed in range(8):
        for method in errs:
            est, se = curvature.trace(m, loss_of_output, DATA, 30, seed=seed, method=method)
            assert abs(est - exact) < 5 * se + 1e-9
            errs[method].append(est - exact)
    rms = {k: float(np.sqrt(np.mean(np.square(v)))) for k, v in errs.items()}
    assert rms["hutchpp"] < 0.1 * rms["hutchinson"]
    with pytest.raises(ValueError, match="method"):
        curvature.trace(m, loss_of_output, DATA, 30, method="girard")
    with pytest.raises(ValueError, match="n_samples"):
        curvature.trace(m, loss_of_output, DATA, 3, method="hutchpp")


class Bag(nn.Module):
    def __init__(self):
        super().__init__()
        self.bag = nn.EmbeddingBag(10, 4, mode="mean")  # PyTorch has no double backward for it
        self.head = nn.Linear(4, 2)

    def forward(self, tokens):
        return self.head(torch.tanh(self.bag(tokens)))


def test_a_module_without_second_derivative_is_named_in_one_line():
    torch.manual_seed(0)
    m = Bag().double()
    data = (torch.randint(0, 10, (8, 3)), torch.randint(0, 2, (8,)))
    with pytest.raises(ValueError, match=r"module bag \(EmbeddingBag\) has no second") as e:
        curvature.top_eigen(m, F.cross_entropy, data)
    assert "\n" not in str(e.value)
    # first-order measures still work on it
    assert sharpness.rho_sharpness(m, F.cross_entropy, data, steps=2).value >= 0


def make_transformer() -> TinyTransformer:
    """The command-line factory (float32, as a user's model is)."""
    torch.manual_seed(0)
    return TinyTransformer()


@pytest.mark.slow
def test_cli_sharpness_and_spectrum_on_a_transformer_state_their_error(
    tmp_path, monkeypatch, capsys
):
    import json

    from safetensors.torch import save_file

    from landscape.cli.main import main

    monkeypatch.chdir(tmp_path)
    net = make_transformer()
    save_file(net.state_dict(), "tf.safetensors")
    _, (X, y) = transformer_setup()
    np.savez("tok.npz", X=X.numpy(), y=y.numpy())
    own = ["--model-factory", "test_hessian_models:make_transformer", "--weights",
           "tf.safetensors", "--data", "tok.npz", "--quiet"]  # fmt: skip
    H = exact_hessian(net.double(), (X, y))
    lam = torch.linalg.eigvalsh(H).numpy()
    assert main(["sharpness", *own, "--probes", "60", "--trace-method", "hutchpp",
                 "--ascent-steps", "2", "--out", "s"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "(60 probes, Hutch++)" in out and "increase over L(w)" in out and "Keskar" in out
    panel = json.loads((tmp_path / "s.json").read_text())["panels"][0]
    se = panel["stderr"]["trace"]
    assert abs(panel["values"]["trace"] - float(torch.trace(H))) < 4 * se + 1e-4
    assert panel["values"]["lambda_max"] == pytest.approx(lam[-1], rel=1e-3)
    assert main(["spectrum", *own, "--probes", "2", "--iters", "12", "--top-k", "1",
                 "--out", "p"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    p = json.loads((tmp_path / "p.json").read_text())
    assert f"Ritz values [{p['ritz_min']:.5g}, {p['ritz_max']:.5g}]" in out
    assert lam[0] - 1e-5 <= p["ritz_min"] and p["ritz_max"] <= lam[-1] + 1e-5
    assert len(p["nodes"]) == 2 and len(p["nodes"][0]) == 12
    assert f"share of eigenvalues below 0: {p['share_below_0']:.3f}" in out
