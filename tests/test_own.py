"""Your own model (landscape.engine.own, the --model-factory command line): checked against plain
loops written here from scratch, over a model that lives only in the tests (tests/own_net.py:
conv + BatchNorm + a custom block with scalar nn.Parameters)."""

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from landscape.cli.main import main
from landscape.core import directions, pointwise
from landscape.engine import own, surface
from landscape.engine.own import data as own_data
from landscape.engine.own import loading
from landscape.engine.own import loss as own_loss
from landscape.pipelines import slices
from landscape.storage import formats as store

HERE = Path(__file__).parent


@pytest.fixture
def user(tmp_path, monkeypatch):
    """A user's folder: own_net.py, weights as .safetensors and .pt, data as .npz; cwd there."""
    shutil.copy(HERE / "own_net.py", tmp_path / "own_net.py")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("own_net", None)
    import own_net

    net = own_net.make_net()
    save_file(net.state_dict(), "net.safetensors")
    torch.save(net.state_dict(), "net.pt")
    X, y = own_net.make_data()
    np.savez("data.npz", X=X, y=y)
    yield own_net
    sys.modules.pop("own_net", None)


def plain_loss(net, X, y, point, dirs, loss=F.cross_entropy, buffers=False):
    """Loss of ``net`` moved to ``sum_k point[k] * dirs[k]``: load_state_dict, eval, forward."""
    state = {k: v.clone() for k, v in net.state_dict().items()}
    for a, d in zip(point, dirs):
        for k, t in d.items():
            if k in dict(net.named_parameters()) or buffers:
                state[k] = state[k] + float(a) * t
    moved = type(net)(net.head.in_features // 36, net.head.out_features)
    moved.load_state_dict(state)
    moved.eval()
    with torch.no_grad():
        out = moved(torch.as_tensor(X))
        return float(loss(out, torch.as_tensor(y))), float(
            (out.argmax(1) == torch.as_tensor(y)).double().mean()
        )


def run_cli(*argv):
    return main(["plane" if "--to" not in argv else "line", "--quiet", *argv])


def cli_error(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as e:
        main(list(argv))
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err  # one line
    return err


# ----------------------------------------------------------------------------- CLI = plain loop


def test_cli_plane_equals_plain_loop_with_stored_directions(user):
    argv = ["--model-factory", "own_net:make_net", "--model-kwargs", '{"width": 4}']
    argv += ["--weights", "net.safetensors", "--data", "data.npz", "--res", "3"]
    assert run_cli(*argv, "--batch-size", "7", "--dir-seed", "3", "--out", "out/a") == 0
    surf = store.load_surface("out/a.npz")
    d1, d2 = store.load_directions("out/a.npz")
    assert "own_net:make_net" in Path("out/a.html").read_text()  # the title names the model
    net, (X, y) = user.make_net(), user.make_data()
    for i, b in enumerate(surf.ys):
        for j, a in enumerate(surf.xs):
            loss, acc = plain_loss(net, X, y, (a, b), (d1, d2))
            assert surf.loss[i, j] == pytest.approx(loss, rel=1e-5)
            assert surf.accuracy[i, j] == pytest.approx(acc, abs=1e-6)  # float32 scalars
    assert surf.meta["request"]["dim"] == 2  # made by landscape.pipelines.slices.compute
    spec = surf.meta["model"]
    assert spec["factory"] == "own_net:make_net" and spec["kwargs"] == {"width": 4}
    assert spec["weights_sha256"] == loading.file_sha256("net.safetensors")
    assert spec["data_sha256"] == loading.file_sha256("data.npz")
    # the scalar parameters of the custom block moved only under --ignore none
    assert float(d1["gate.scale"]) == 0.0
    # .pt gives exactly the same surface
    pt = [*argv[:4], "--weights", "net.pt", *argv[6:]]
    assert run_cli(*pt, "--batch-size", "7", "--dir-seed", "3", "--out", "b") == 0
    np.testing.assert_array_equal(store.load_surface("b.npz").loss, surf.loss)


def test_safetensors_and_pt_load_the_same_tensors(user):
    a, b = loading.read_state_dict("net.safetensors"), loading.read_state_dict("net.pt")
    assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------- bad specs


BAD = [
    (["--model-factory", "no_such_module:f"], "no module named 'no_such_module'"),
    (["--model-factory", "own_net:nothing"], "has no 'nothing'"),
    (["--model-factory", "own_net"], "must look like MODULE:FUNCTION"),
    (["--model-factory", "own_net:broken_factory"], "raised RuntimeError: out of coffee"),
    (["--model-kwargs", '{"width": '], "is not valid JSON"),
    (["--model-kwargs", "[1]"], "must be a JSON object"),
    (["--weights", "missing.safetensors"], "no such file"),
    (["--weights", "w5.safetensors"], "head.weight: model (3, 144), file (3, 180)"),
    (["--weights", "extra.safetensors"], "unexpected keys (file shape) ['extra (2,)']"),
    (["--weights", "short.safetensors"], "missing keys (model shape) ['head.bias (3,)']"),
    (["--weights", "net.txt"], "unknown kind '.txt'"),
    (["--data", "flat.npz"], "does not fit the model"),
    (["--data", "noxy.npz"], "must hold arrays 'X' and 'y'"),
    (["--data", "floaty.npz", "--loss", "cross_entropy"], "needs integer class targets"),
    (["--data", "data.npz", "--loss", "no_loss"], "loss='no_loss' is unknown"),
    (["--data", "own_net:missing_fn"], "has no 'missing_fn'"),
    (["--device", "gpu"], "must be auto, cpu, cuda, cuda:N or mps"),
    (["--batch-size", "0"], "--batch-size 0 must be an integer"),
    (["--max-samples", "0"], "--max-samples 0 must be an integer >= 1"),
    (["--epochs", "3"], "--epochs is a flag of built-in runs"),
    (["--checkpoints", "nothing_*.pt"], "matched no file"),
    (["--dir", "pca"], "--dir pca with --model-factory needs --checkpoints"),
    (["--projection", "lstsq"], "--projection lstsq is for PCA directions"),
    (["--checkpoints", "net.pt", "--orthogonal"], "--orthogonal is for random directions"),
    (["--checkpoints", "net.pt", "--dir-type", "states"], "--dir-type states is for random"),
    (["--dir", "pca", "--checkpoints", "net.pt", "--norm", "layer"], "--norm layer is for random"),
    (["--checkpoints", "net.pt", "--dir-seed", "3"], "--dir-seed 3 is for random directions"),
    (["--checkpoints", "net.pt"], "PCA needs at least 2 besides --weights"),
]


@pytest.mark.parametrize("change,message", BAD, ids=[m for _, m in BAD])
def test_each_bad_spec_is_one_line_and_exit_2(user, capsys, change, message):
    net5 = user.make_net(width=5)
    save_file(net5.state_dict(), "w5.safetensors")
    state = user.make_net().state_dict()
    save_file({**state, "extra": torch.zeros(2)}, "extra.safetensors")
    save_file({k: v for k, v in state.items() if k != "head.bias"}, "short.safetensors")
    Path("net.txt").write_text("x")
    np.savez("flat.npz", X=np.zeros((5, 3), np.float32), y=np.zeros(5, np.int64))
    np.savez("noxy.npz", A=np.zeros(3))
    np.savez("floaty.npz", X=user.make_data()[0], y=np.zeros(40, np.float32))
    argv = {"--model-factory": "own_net:make_net", "--weights": "net.safetensors"}
    argv |= {"--data": "data.npz"}
    flags = [x for k, v in argv.items() if k not in change for x in (k, v)]
    err = cli_error(capsys, "plane", "--res", "3", "--out", "never", *flags, *change)
    assert message in err
    assert not Path("never.npz").exists()


def test_pickle_that_would_run_code_is_refused_and_never_runs(user, capsys, tmp_path):
    marker = tmp_path / "MARKER"
    evil = user.Evil()
    evil.marker = str(marker)
    torch.save({"conv.weight": evil}, "evil.pt")
    assert not marker.exists()
    err = cli_error(
        capsys, "plane", "--model-factory", "own_net:make_net", "--weights", "evil.pt",
        "--data", "data.npz", "--out", "x",
    )  # fmt: skip
    assert "is refused" in err and "io.open" in err
    assert not marker.exists()
    with pytest.raises(ValueError, match="refused"):
        loading.read_state_dict("evil.pt")
    assert not marker.exists()


# ----------------------------------------------------------------------------- streaming


def test_streaming_equals_full_batch_and_a_seeded_subset(user):
    full = own.open_model("own_net:make_net", "net.pt", "data.npz", batch_size=1000)
    small = own.open_model("own_net:make_net", "net.pt", "data.npz", batch_size=7)
    d1, d2 = full.directions(2, seed=1)
    xs = np.linspace(-1, 1, 3)
    a, b = full.plane(d1, d2, xs, xs), small.plane(d1, d2, xs, xs)
    np.testing.assert_allclose(b.loss, a.loss, rtol=1e-6)
    np.testing.assert_allclose(b.accuracy, a.accuracy, atol=1e-12)
    # --max-samples: the same samples for the same seed, and the loss of exactly those
    sub = own.open_model(
        "own_net:make_net", "net.pt", "data.npz", batch_size=4, max_samples=11, sample_seed=5
    )
    again = own.open_model("own_net:make_net", "net.pt", "data.npz", max_samples=11, sample_seed=5)
    np.testing.assert_array_equal(sub.data.indices, again.data.indices)
    X, y = user.make_data()
    idx = sub.data.indices
    assert len(idx) == 11 and len(set(idx)) == 11
    s = sub.line(d1, [0.0, 0.5])
    for t, value in zip([0.0, 0.5], s.loss):
        assert value == pytest.approx(
            plain_loss(user.make_net(), X[idx], y[idx], (t,), (d1,))[0], rel=1e-5
        )


def test_batch_size_from_memory_whole_data_when_it_fits_else_equal_batches(user, monkeypatch):
    """No --batch-size: one pass over all samples when they fit the budget (as a plain
    full-batch loop), else the fewest equal batches that fit; the numbers are the same."""
    m = own.open_model("own_net:make_net", "net.pt", "data.npz")
    assert m.batch_size is None
    d = m.directions(1, seed=3)[0]
    whole = m.line(d, [0.0, 0.5])
    assert whole.meta["batch_size"] == 40  # the 40 samples in one pass
    X, y = user.make_data()
    for t, value in zip([0.0, 0.5], whole.loss):
        assert value == pytest.approx(plain_loss(user.make_net(), X, y, (t,), (d,))[0], rel=1e-5)
    monkeypatch.setattr(surface, "STREAM_BYTES", 10 * X[0].nbytes)  # under 10 samples fit
    split = m.line(d, [0.0, 0.5])
    assert 1 <= split.meta["batch_size"] < 10
    np.testing.assert_allclose(split.loss, whole.loss, rtol=1e-6)
    np.testing.assert_allclose(split.accuracy, whole.accuracy, atol=1e-12)


def test_batch_size_for_is_the_fewest_equal_batches_within_the_budget(user):
    m = own.open_model("own_net:make_net", "net.pt", "data.npz")
    X, _ = user.make_data()
    inputs = X.nbytes  # the estimate counts the inputs and every layer's output
    assert surface.batch_size_for(m.model, m.data, m.device, 2**40) == 40
    assert surface.batch_size_for(m.model, m.data, m.device, int(inputs * 0.99)) < 40
    last = 0
    for budget in np.geomspace(X[0].nbytes, 100 * inputs, 25).astype(int):
        b = surface.batch_size_for(m.model, m.data, m.device, int(budget))
        batches = -(-40 // b)
        assert b == -(-40 // batches)  # equal batches: sizes differ by at most one
        assert b >= last  # a larger budget never gives smaller batches
        last = b
    assert last == 40


def test_rmse_streamed_is_the_root_of_the_whole_mean(user):
    X, _ = user.make_data()
    target = np.random.default_rng(1).normal(size=(40, 3)).astype(np.float32)
    np.savez("reg.npz", X=X, y=target)
    m = own.open_model("own_net:make_net", "net.pt", "reg.npz", loss="rmse", batch_size=6)
    assert m.accuracy_fn is None  # float targets: no accuracy
    losses, _, info = slices.evaluate(m.subject(), [m.directions(1, seed=0)[0]], np.zeros((1, 1)))
    assert info["batch_size"] == 6  # 7 batches, the last of 4
    with torch.no_grad():
        out = user.make_net().eval()(torch.from_numpy(X))
    assert losses[0] == pytest.approx(
        float(((out - torch.from_numpy(target)) ** 2).mean().sqrt()), rel=1e-6
    )


def test_dataset_function_and_csv_give_the_same_numbers_as_npz(user):
    X, y = user.make_data()
    flat = X.reshape(40, -1)
    header = ",".join([f"f{i}" for i in range(flat.shape[1])] + ["label"])
    rows = [",".join([*(repr(float(v)) for v in r), str(int(t))]) for r, t in zip(flat, y)]
    Path("data.csv").write_text("\n".join([header, *rows]) + "\n")
    base = own.open_model("own_net:make_net", "net.pt", "data.npz")
    d = base.directions(1, seed=2)
    ref = base.line(d[0], [-0.5, 0.5]).loss
    for spec in ("own_net:dataset_fn", "own_net:data_fn"):
        m = own.open_model("own_net:make_net", "net.pt", spec, batch_size=9)
        np.testing.assert_allclose(m.line(d[0], [-0.5, 0.5]).loss, ref, rtol=1e-6)
    Xc, yc = own_data.load_data("data.csv").all()
    assert yc.dtype == torch.int64 and torch.equal(yc, torch.from_numpy(y))
    np.testing.assert_array_equal(Xc.numpy(), flat)
    own_loss = own.open_model("own_net:make_net", "net.pt", "data.npz", loss="own_net:my_loss")
    np.testing.assert_allclose(own_loss.line(d[0], [-0.5, 0.5]).loss, ref + 0.5, rtol=1e-6)


def test_fast_path_is_used_when_it_supports_the_model_and_agrees(user, monkeypatch):
    from landscape.engine import race

    monkeypatch.setattr(race, "RACE_MIN_S", 0.0)  # race even this tiny surface
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3), torch.nn.BatchNorm2d(3), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(48, 3),
    ).eval()  # fmt: skip
    net[1].running_var.uniform_(0.5, 2)
    X, y = user.make_data()
    data = own_data.Data(arrays=(X, y), source="arrays")
    dirs = directions.random_directions(net, 2, seed=0)
    coords = np.array([[0.0, 0.0], [0.3, -0.2], [1.0, 1.0]])
    loss = own_loss.make_loss(None, torch.tensor([0]))
    fast = surface.evaluate(
        net, loss, data, dirs, coords, pointwise.accuracy, method="batched", batch_size=9
    )
    loop = surface.evaluate(
        net, loss, data, dirs, coords, pointwise.accuracy, method="loop", batch_size=9
    )
    assert fast[2]["method"] == "batched" and loop[2]["method"] == "loop"
    np.testing.assert_allclose(fast[0], loop[0], rtol=1e-5)
    np.testing.assert_allclose(fast[1], loop[1])
    # the one method choice: auto races (or remembers) on the first batch, as for any model
    auto = surface.evaluate(net, loss, data, dirs, coords, pointwise.accuracy, batch_size=9)
    assert auto[2]["method"] in ("batched", "loop") and "race" in auto[2]
    np.testing.assert_allclose(auto[0], loop[0], rtol=1e-5)
    whole = surface.evaluate(net, loss, (torch.as_tensor(X), torch.as_tensor(y)), dirs, coords)
    np.testing.assert_allclose(fast[0], whole[0], rtol=1e-5)  # 5 batches = the whole set


# ----------------------------------------------------------------------------- directions


def test_line_to_other_weights_interpolates_buffers_so_both_ends_are_exact(user):
    other = user.make_net(seed=7)
    save_file(other.state_dict(), "other.safetensors")
    assert run_cli("--model-factory", "own_net:make_net", "--weights", "net.pt", "--data",
                   "data.npz", "--to", "other.safetensors", "--xrange", "0", "1", "--res", "3",
                   "--out", "line")  == 0  # fmt: skip
    s = store.load_surface("line.npz")
    X, y = user.make_data()
    assert s.loss[0] == pytest.approx(plain_loss(user.make_net(), X, y, (), ())[0], rel=1e-5)
    assert s.loss[-1] == pytest.approx(plain_loss(other, X, y, (), ())[0], rel=1e-5)
    (d,) = store.load_directions("line.npz")
    mid = plain_loss(user.make_net(), X, y, (0.5,), (d,), buffers=True)[0]
    assert s.loss[1] == pytest.approx(mid, rel=1e-5)
    assert s.meta["to_sha256"] == loading.file_sha256("other.safetensors")


def test_states_directions_move_the_buffers(user):
    m = own.open_model("own_net:make_net", "net.pt", "data.npz")
    d1, d2 = m.directions(2, norm="filter", ignore=None, seed=4, dir_type="states")
    assert "bn.running_mean" in d1 and float(d1["bn.running_var"].abs().sum()) > 0
    s = m.plane(d1, d2, [-0.3, 0.2], [0.1, 0.4])
    X, y = user.make_data()
    for i, b in enumerate(s.ys):
        for j, a in enumerate(s.xs):
            want = plain_loss(user.make_net(), X, y, (a, b), (d1, d2), buffers=True)[0]
            assert s.loss[i, j] == pytest.approx(want, rel=1e-5)
    weights_only = m.directions(2, norm="filter", ignore=None, seed=4)
    assert "bn.running_mean" not in weights_only[0]


def test_pca_of_checkpoints_sorted_naturally_final_at_origin(user):
    net = user.make_net()
    gen = torch.Generator().manual_seed(0)
    for i in (1, 2, 10):  # lexical order would put 10 before 2
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=gen) + 0.02 * i)
        save_file(net.state_dict(), f"ckpt_{i}.safetensors")
    save_file(net.state_dict(), "final.safetensors")
    assert sorted(["ckpt_10.safetensors", "ckpt_2.safetensors"], key=loading.natural_key) == [
        "ckpt_2.safetensors",
        "ckpt_10.safetensors",
    ]
    m = own.open_model(
        "own_net:make_net", "final.safetensors", "data.npz",
        checkpoints=["ckpt_10.safetensors", "ckpt_1.safetensors", "ckpt_2.safetensors"],
    )  # fmt: skip
    assert m.trajectory.shape[0] == 3  # the last checkpoint is the final weights: not twice
    rows = [loading.read_state_dict(f"ckpt_{i}.safetensors") for i in (1, 2, 10)]
    keys = [k for k, _ in net.named_parameters()]
    want = np.stack([torch.cat([r[k].reshape(-1) for k in keys]).double().numpy() for r in rows])
    np.testing.assert_allclose(m.trajectory, want)
    assert run_cli("--model-factory", "own_net:make_net", "--weights", "final.safetensors",
                   "--data", "data.npz", "--checkpoints", "ckpt_*.safetensors", "--res", "3",
                   "--out", "pca") == 0  # fmt: skip
    s = store.load_surface("pca.npz")
    assert s.meta["direction"] == "pca" and s.meta["path"]["x"][-1] == pytest.approx(0, abs=1e-9)
    assert [c["file"] for c in s.meta["model"]["checkpoints"]] == [
        "ckpt_1.safetensors", "ckpt_2.safetensors", "ckpt_10.safetensors",
    ]  # fmt: skip


# ----------------------------------------------------------------------------- devices


def test_device_auto_picks_cuda_when_available(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert loading.resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert loading.resolve_device("auto") == torch.device("cuda")
    assert loading.resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ValueError, match="2 CUDA device"):
        loading.resolve_device("cuda:2")


def test_evaluation_runs_on_the_device_it_is_given(user, monkeypatch):
    seen = []
    real = surface.LoopSession.run

    def spy(self, *rest):
        seen.append((self.X.device, next(self.frozen.parameters()).device))
        return real(self, *rest)

    monkeypatch.setattr(surface.LoopSession, "run", spy)
    m = own.open_model("own_net:make_net", "net.pt", "data.npz", device="cpu", batch_size=16)
    s = m.line(m.directions(1)[0], [0.0, 1.0])
    # every batch (3 of 16 samples) on the CPU; auto times the loop on the first in parts
    assert set(seen) == {(torch.device("cpu"), torch.device("cpu"))} and len(seen) >= 3
    assert s.meta["device"] == "cpu" and s.meta["batch_size"] == 16


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_agrees_with_cpu(user):
    cpu = own.open_model("own_net:make_net", "net.pt", "data.npz", device="cpu")
    gpu = own.open_model("own_net:make_net", "net.pt", "data.npz", device="cuda")
    d1, d2 = cpu.directions(2, seed=0)
    xs = np.linspace(-1, 1, 3)
    a, b = cpu.plane(d1, d2, xs, xs), gpu.plane(d1, d2, xs, xs)
    assert b.meta["device"].startswith("cuda")
    np.testing.assert_allclose(b.loss, a.loss, rtol=1e-4)


# ----------------------------------------------------------------------------- direction flags


def _save_path(user, files=(1, 2, 3)):
    """Checkpoints ckpt_<i>.safetensors on a path ending one step later at final.safetensors."""
    net = user.make_net()
    gen = torch.Generator().manual_seed(1)
    for i in (*files, "final"):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=gen))
        save_file(
            net.state_dict(), f"ckpt_{i}.safetensors" if i != "final" else "final.safetensors"
        )
    return net


def test_pca_projection_lstsq_from_the_cli_is_the_least_squares_fit(user):
    net = _save_path(user)
    own_flags = ["--model-factory", "own_net:make_net", "--weights", "final.safetensors",
                 "--data", "data.npz", "--res", "3"]  # fmt: skip
    assert run_cli(*own_flags, "--checkpoints", "ckpt_1.safetensors", "ckpt_2.safetensors",
                   "--projection", "lstsq", "--out", "lsq") == 0  # fmt: skip
    s = store.load_surface("lsq.npz")
    assert s.meta["request"]["projection"] == "lstsq"
    d1, d2 = store.load_directions("lsq.npz")
    keys = [k for k, _ in net.named_parameters()]
    A = np.stack(
        [torch.cat([d[k].reshape(-1) for k in keys]).double().numpy() for d in (d1, d2)], 1
    )
    final = torch.cat([p.detach().reshape(-1) for p in net.parameters()]).double().numpy()
    for i, c in enumerate(["ckpt_1.safetensors", "ckpt_2.safetensors", "final.safetensors"]):
        st = loading.read_state_dict(c)
        row = torch.cat([st[k].reshape(-1) for k in keys]).double().numpy() - final
        x, y = np.linalg.lstsq(A, row, rcond=None)[0]
        assert (s.meta["path"]["x"][i], s.meta["path"]["y"][i]) == pytest.approx((x, y), abs=1e-6)
    X, y = user.make_data()
    for i, b in enumerate(s.ys):  # the plane itself: the plain loop along the stored axes
        for j, a in enumerate(s.xs):
            want = plain_loss(net, X, y, (a, b), (d1, d2))[0]
            assert s.loss[i, j] == pytest.approx(want, rel=1e-5)


def test_line_from_the_first_checkpoint_to_the_weights(user):
    net = _save_path(user, files=(1,))
    first = user.make_net()  # ckpt_1 moved every parameter of make_net(): rebuild it
    first.load_state_dict(loading.read_state_dict("ckpt_1.safetensors"))
    assert main(["line", "--quiet", "--model-factory", "own_net:make_net", "--weights",
                 "final.safetensors", "--data", "data.npz", "--dir", "interpolation",
                 "--checkpoints", "ckpt_1.safetensors", "--xrange", "0", "1", "--res", "3",
                 "--out", "init"]) == 0  # fmt: skip
    s = store.load_surface("init.npz")
    X, y = user.make_data()
    assert s.meta["direction"] == "interpolation"
    assert s.loss[-1] == pytest.approx(plain_loss(net, X, y, (), ())[0], rel=1e-5)
    (d,) = store.load_directions("init.npz")
    params = dict(net.named_parameters())  # t=0: the checkpoint's parameters, final buffers
    for k, p in first.named_parameters():
        torch.testing.assert_close(d[k], (params[k] - p).detach())
    assert s.loss[0] == pytest.approx(plain_loss(net, X, y, (-1.0,), (d,))[0], rel=1e-5)
