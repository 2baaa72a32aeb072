"""Hessian measures over data in batches (exact mean), on a device, and eos on an own model.

References: the float64 Hessian formed in full by ``torch.autograd.functional.hessian`` and
diagonalised by ``torch.linalg.eigvalsh``; full-batch runs of the same commands.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from landscape.cli.main import main
from landscape.measures import curvature, stability

OWN = ["--model-factory", "own_net:make_net", "--weights", "net.safetensors", "--data",
       "data.npz", "--quiet"]  # fmt: skip


def _json(prefix):
    return json.loads(Path(f"{prefix}.json").read_text())


def exact_hessian(net, X, y):
    """The float64 Hessian of the mean cross-entropy over every parameter (eval mode)."""
    net = net.double().eval()
    names = [n for n, _ in net.named_parameters()]
    shapes = [p.shape for _, p in net.named_parameters()]
    sizes = [p.numel() for _, p in net.named_parameters()]
    buffers = dict(net.named_buffers())

    def loss(flat):
        parts = torch.split(flat, sizes)
        params = {n: t.view(s) for n, t, s in zip(names, parts, shapes)}
        return F.cross_entropy(functional_call(net, {**params, **buffers}, (X,)), y)

    x0 = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    return torch.autograd.functional.hessian(loss, x0)


def test_batched_lambda_max_and_trace_equal_the_exact_float64_hessian(user):
    net = user.make_net().double()
    X, y = (torch.from_numpy(a) for a in user.make_data(n=30))
    X = X.double()
    H = exact_hessian(user.make_net(), X, y)
    eig = torch.linalg.eigvalsh(H)
    lam = curvature.top_eigen(net, F.cross_entropy, (X, y), k=1, tol=1e-8, batch_size=7)
    assert lam.eigenvalues[0] == pytest.approx(float(eig[-1]), rel=1e-6)
    tr, _ = curvature.trace(net, F.cross_entropy, (X, y), batch_size=7, exact=True)
    assert tr == pytest.approx(float(torch.diagonal(H).sum()), rel=1e-6)
    # Hutchinson with the same probes: the batched operator gives the full-batch estimate
    full = curvature.trace(net, F.cross_entropy, (X, y), 30, seed=3)
    batched = curvature.trace(net, F.cross_entropy, (X, y), 30, seed=3, batch_size=7)
    assert batched[0] == pytest.approx(full[0], rel=1e-10)
    assert batched[1] == pytest.approx(full[1], rel=1e-8)


def test_sharpness_spectrum_and_connect_in_batches_equal_full_batch(user):
    base = [*OWN, "--device", "cpu"]
    assert main(["sharpness", *base, "--ascent-steps", "3", "--out", "full"]) == 0
    assert (
        main(["sharpness", *base, "--ascent-steps", "3", "--batch-size", "7", "--out", "b7"]) == 0
    )
    full, b7 = (_json(p)["panels"][0] for p in ("full", "b7"))
    assert b7["loss"] == pytest.approx(full["loss"], rel=1e-6)
    assert b7["values"]["lambda_max"] == pytest.approx(full["values"]["lambda_max"], rel=1e-6)
    assert b7["values"]["trace"] == pytest.approx(full["values"]["trace"], rel=1e-6)
    for m in ("eps", "rho", "asam", "basin_width"):
        assert b7["values"][m] == pytest.approx(full["values"][m], rel=1e-5, abs=1e-7), m
    assert _json("b7")["settings"]["batch_size"] == 7
    # the CLI's λmax is the library's on the float64 Hessian (Lanczos tolerance 1e-3)
    X, y = (torch.from_numpy(a) for a in user.make_data(n=30))
    H = exact_hessian(user.make_net(), X.double(), y)
    assert b7["values"]["lambda_max"] == pytest.approx(
        float(torch.linalg.eigvalsh(H)[-1]), rel=1e-4
    )

    spec = ["--vectors", "2", "--lanczos-steps", "8", "--top-k", "2"]
    assert main(["spectrum", *base, *spec, "--out", "pf"]) == 0
    assert main(["spectrum", *base, *spec, "--batch-size", "7", "--out", "p7"]) == 0
    np.testing.assert_allclose(_json("p7")["top"], _json("pf")["top"], rtol=1e-5)
    np.testing.assert_allclose(_json("p7")["nodes"], _json("pf")["nodes"], rtol=1e-4, atol=1e-6)

    con = ["--to", "other.safetensors", "--curve-steps", "3", "--points", "5", "--plane-res", "3"]
    assert main(["connect", *base, *con, "--out", "cf"]) == 0
    assert main(["connect", *base, *con, "--batch-size", "7", "--out", "c7"]) == 0
    for key in ("line_loss", "curve_loss"):
        np.testing.assert_allclose(_json("c7")[key], _json("cf")[key], rtol=1e-5)


def test_a_rooted_loss_is_not_batched(user, capsys):
    X, _ = user.make_data(n=30)
    np.savez("reg.npz", X=X, y=np.zeros((30, 3), np.float32))
    argv = [*OWN[:5], "reg.npz", "--loss", "rmse", "--batch-size", "7", "--quiet"]
    with pytest.raises(SystemExit) as e:
        main(["sharpness", *argv, "--out", "s"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "rmse" in err, err


def test_eos_on_an_own_model_starts_at_its_lambda_max(user):
    assert main(["eos", *OWN, "--steps", "4", "--every", "2", "--lr", "0.05", "--out", "e"]) == 0
    e = _json("e")
    assert e["track_steps"] == [0, 2, 4] and e["threshold"] == pytest.approx(2 / 0.05)
    X, y = (torch.from_numpy(a) for a in user.make_data(n=30))
    want = curvature.top_eigen(user.make_net(), F.cross_entropy, (X, y), k=1, tol=1e-6)
    assert e["sharpness"][0] == pytest.approx(want.eigenvalues[0], rel=1e-4)
    with torch.no_grad():  # GD runs in training mode: BatchNorm on the batch's statistics
        assert e["loss"][0] == pytest.approx(
            float(F.cross_entropy(user.make_net().train()(X), y)), rel=1e-6
        )


def test_eos_on_an_own_model_follows_the_schedule(user, capsys):
    """--schedule and --warmup-epochs reach an own model's GD (the Trainer's schedule)."""
    tiny = [*OWN, "--steps", "4", "--every", "4", "--lr", "0.05"]
    assert main(["eos", *tiny, "--out", "c"]) == 0
    assert main(["eos", *tiny, "--schedule", "cosine", "--warmup-epochs", "2", "--out", "w"]) == 0
    assert "warning: the step size follows the cosine schedule after 2 warm-up" in (
        capsys.readouterr().out
    )
    c, w = _json("c"), _json("w")
    assert w["loss"][0] == c["loss"][0] and w["loss"][1] != c["loss"][1]  # step 1: lr x 1/2


def test_eos_in_batches_is_full_batch_gd(user, capsys):
    tiny = ["--steps", "6", "--every", "3", "--n-samples", "60", "--quiet"]
    assert main(["eos", *tiny, "--out", "f"]) == 0
    assert main(["eos", *tiny, "--batch-size", "7", "--out", "b"]) == 0
    f, b = _json("f"), _json("b")
    np.testing.assert_allclose(b["loss"], f["loss"], rtol=1e-5)
    np.testing.assert_allclose(b["sharpness"], f["sharpness"], rtol=1e-3)
    # BatchNorm in training mode: batches would change the statistics, so refused
    with pytest.raises(SystemExit) as e:
        main(["eos", *OWN, "--steps", "2", "--batch-size", "7", "--out", "x"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "BatchNorm" in err and err.count("\n") == 1, err


def test_track_model_equals_a_plain_gd_loop():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))
    X, y = torch.randn(23, 3), torch.randint(0, 2, (23,))
    plain = [p.detach().clone() for p in net.parameters()]
    ref = []
    for _ in range(5):  # plain full-batch GD
        ps = [p.requires_grad_(True) for p in plain]
        out = F.linear(torch.tanh(F.linear(X, ps[0], ps[1])), ps[2], ps[3])
        loss = F.cross_entropy(out, y)
        ref.append(float(loss.detach()))
        gs = torch.autograd.grad(loss, ps)
        plain = [(p - 0.1 * g).detach() for p, g in zip(ps, gs)]
    res = stability.track_model(net, F.cross_entropy, (X, y), lr=0.1, steps=5, every=5,
                                batch_size=4)  # fmt: skip
    np.testing.assert_allclose(res.loss[:5], ref, rtol=1e-5)
    for p, q in zip(net.parameters(), plain):
        torch.testing.assert_close(p.detach(), q, rtol=1e-5, atol=1e-6)


def test_track_model_drives_the_one_training_loop(monkeypatch):
    """track_model builds no optimiser of its own: one make_optimizer call (the Trainer's), and
    the config's momentum, weight decay, warm-up and cosine schedule give the losses and
    weights of a Trainer stepped by hand on the same model, loss and data."""
    from landscape.data.config import Config
    from landscape.training import loop

    def make_net():
        torch.manual_seed(1)
        return torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))

    X, y = torch.randn(31, 3), torch.randint(0, 2, (31,))
    cfg = Config(optimizer="momentum", momentum=0.5, lr=0.2, weight_decay=0.01, epochs=8,
                 schedule="cosine", warmup_epochs=2, seed=3)  # fmt: skip
    ref = loop.Trainer(cfg, model=make_net(), loss_fn=F.cross_entropy, data=(X, y),
                       batch_size=31, evaluate=False, keep_trajectory=False)  # fmt: skip
    for _ in range(8):
        ref.step(1)
    made = []
    real = loop.make_optimizer
    monkeypatch.setattr(loop, "make_optimizer", lambda c, m: made.append(m) or real(c, m))
    net = make_net()
    res = stability.track_model(net, F.cross_entropy, (X, y), config=cfg, every=4,
                                batch_size=6)  # fmt: skip
    assert made == [net] and res.config == cfg and len(res.loss) == 9
    np.testing.assert_allclose(res.loss[:8], ref.step_loss, rtol=1e-6)
    for p, q in zip(net.parameters(), ref.model.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-6)
    assert any("cosine schedule after 2 warm-up steps" in n for n in res.notes)
    # keywords override the config's hyper-parameters
    lone = stability.track_model(make_net(), F.cross_entropy, (X, y), config=cfg, lr=0.1,
                                 steps=2, track_sharpness=False)  # fmt: skip
    assert lone.lr == 0.1 and lone.config == cfg.replace(lr=0.1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_sharpness_on_cuda_equals_the_cpu(user):
    assert main(["sharpness", *OWN, "--ascent-steps", "2", "--device", "cpu", "--out", "c"]) == 0
    assert main(["sharpness", *OWN, "--ascent-steps", "2", "--device", "cuda", "--batch-size",
                 "7", "--out", "g"]) == 0  # fmt: skip
    c, g = (_json(p)["panels"][0]["values"] for p in ("c", "g"))
    assert g["lambda_max"] == pytest.approx(c["lambda_max"], rel=1e-4)
