"""``--dir-file`` (the original code's ``--dir_file``) and the grid of lines between two nets.

References: the directions stored in the first file (compared array by array), and losses
computed plainly (model + x d1 + y d2, one forward pass, torch's own loss).
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from landscape.cli.main import main
from landscape.storage import formats

TINY = ["--n-samples", "100", "--epochs", "3", "--width", "8", "--quiet"]


def own(weights="net.safetensors"):
    return ["--model-factory", "own_net:make_net", "--weights", weights, "--data", "data.npz",
            "--quiet"]  # fmt: skip


def plain_loss(net, X, y, dirs=(), coords=()):
    """The loss of ``net`` moved by sum coords[k] dirs[k] (parameters and float buffers)."""
    net = copy.deepcopy(net).eval()
    state = net.state_dict()
    with torch.no_grad():
        for c, d in zip(coords, dirs):
            for n, t in d.items():
                state[n] += c * t.to(state[n].dtype)
        net.load_state_dict(state)
        return float(F.cross_entropy(net(X), y))


def same_directions(a, b):
    assert len(a) == len(b)
    for da, db in zip(a, b):
        assert list(da) == list(db)
        for n in da:
            assert torch.equal(da[n], db[n]), n


def test_a_second_run_is_sliced_along_the_first_runs_plane(tmp_path, capsys):
    from landscape.storage.formats import load_run

    a, b = str(tmp_path / "a.npz"), str(tmp_path / "b.npz")
    assert main(["train", *TINY, "--out", a]) == 0
    assert main(["train", *TINY, "--seed", "4", "--out", b]) == 0
    pa, pb = tmp_path / "pa", tmp_path / "pb"
    assert main(["plane", "--load-run", a, "--res", "5", "--quiet", "--out", str(pa)]) == 0
    assert main(["plane", "--load-run", b, "--res", "5", "--quiet", "--dir-file",
                 f"{pa}.npz", "--out", str(pb)]) == 0  # fmt: skip
    dirs = formats.load_directions(f"{pa}.npz")
    same_directions(formats.load_directions(f"{pb}.npz"), dirs)
    # the surface is run B's own, along A's directions: a corner point computed plainly
    surf = formats.load_surface(f"{pb}.npz")
    assert surf.meta["dir_file"] == f"{pa}.npz" and len(surf.meta["dir_file_sha256"]) == 64
    run = load_run(b)
    ds = run.dataset()
    want = plain_loss(run.model(), ds.X_train, ds.y_train, dirs, (surf.xs[0], surf.ys[-1]))
    assert surf.loss[-1, 0] == pytest.approx(want, rel=1e-5)
    # a run of another width does not fit: one line, exit 2, before training or writing
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["plane", *TINY[:4], "--width", "9", "--quiet", "--dir-file", f"{pa}.npz",
              "--out", str(tmp_path / "pc")])  # fmt: skip
    err = capsys.readouterr()
    assert e.value.code == 2 and err.err.count("\n") == 1 and "shape (8, 2)" in err.err, err.err
    assert "Traceback" not in err.err and err.out == "" and not (tmp_path / "pc.npz").exists()


@pytest.mark.parametrize(
    "extra, text",
    [
        (["--dir-seed", "3"], "--dir-seed 3 is for random directions"),
        (["--orthogonal"], "--orthogonal is for random directions"),
        (["--dir", "pca"], "--dir pca does not apply"),
    ],
)
def test_flags_that_make_directions_are_refused_beside_dir_file(tmp_path, capsys, extra, text):
    a = str(tmp_path / "a.npz")
    assert main(["train", *TINY[:2], "--epochs", "1", "--width", "8", "--quiet", "--out", a]) == 0
    assert main(["plane", "--load-run", a, "--res", "3", "--quiet", "--out",
                 str(tmp_path / "pa")]) == 0  # fmt: skip
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["plane", "--load-run", a, "--res", "3", "--quiet", "--dir-file",
              str(tmp_path / "pa.npz"), *extra, "--out", str(tmp_path / "x")])  # fmt: skip
    err = capsys.readouterr().err
    assert e.value.code == 2 and text in err and err.count("\n") == 1, err


def test_own_models_share_a_plane_and_a_line(user, capsys):
    X, y = (torch.from_numpy(v) for v in user.make_data(n=30))
    assert main(["plane", *own(), "--res", "3", "--dir-type", "states", "--out", "pa"]) == 0
    assert main(["plane", *own("other.safetensors"), "--res", "3", "--dir-file", "pa.npz",
                 "--out", "pb"]) == 0  # fmt: skip
    dirs = formats.load_directions("pa.npz")
    assert "bn.running_mean" in dirs[0]  # states directions: the buffers move too
    same_directions(formats.load_directions("pb.npz"), dirs)
    surf = formats.load_surface("pb.npz")
    want = plain_loss(user.make_net(seed=5), X, y, dirs, (surf.xs[2], surf.ys[0]))
    assert surf.loss[0, 2] == pytest.approx(want, rel=1e-5)
    # a line file for a line; a plane file is refused for a line (the count)
    assert main(["line", *own(), "--res", "5", "--out", "la"]) == 0
    assert main(["line", *own("other.safetensors"), "--res", "5", "--dir-file", "la.npz",
                 "--out", "lb"]) == 0  # fmt: skip
    same_directions(formats.load_directions("lb.npz"), formats.load_directions("la.npz"))
    capsys.readouterr()
    for argv, text in (
        (["line", *own(), "--dir-file", "pa.npz", "--out", "x"], "a line needs 1"),
        (["line", *own(), "--to", "other.safetensors", "--dir-file", "la.npz", "--out", "x"],
         "--to does not apply"),
        (["plane", *own(), "--dir-file", "nothing.npz", "--out", "x"], "nothing.npz"),
    ):  # fmt: skip
        with pytest.raises(SystemExit) as e:
            main(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and text in err and err.count("\n") == 1, err


def test_built_in_plane_file_does_not_fit_an_own_model(user, tmp_path, capsys):
    a = str(tmp_path / "a.npz")
    assert main(["train", *TINY[:2], "--epochs", "1", "--width", "8", "--quiet", "--out", a]) == 0
    assert main(["plane", "--load-run", a, "--res", "3", "--quiet", "--out", "pa"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["plane", *own(), "--res", "3", "--dir-file", "pa.npz", "--out", "x"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "does not fit this model" in err and err.count("\n") == 1, err


# ----------------------------------------------------------------------------- the t grid


def test_a_line_between_two_nets_has_both_nets_on_its_default_grid(user, capsys):
    X, y = (torch.from_numpy(v) for v in user.make_data(n=30))
    assert main(["line", *own(), "--to", "other.safetensors", "--out", "l"]) == 0
    assert "note:" not in capsys.readouterr().err
    surf = formats.load_surface("l.npz")
    assert len(surf.xs) == 41 and surf.xs[0] == -0.5 and surf.xs[-1] == 1.5
    i0, i1 = list(surf.xs).index(0.0), list(surf.xs).index(1.0)  # exactly on the grid
    assert surf.loss[i0] == pytest.approx(plain_loss(user.make_net(), X, y), rel=1e-6)
    assert surf.loss[i1] == pytest.approx(plain_loss(user.make_net(seed=5), X, y), rel=1e-6)
    # the user's own grid that misses them: a one-line note
    assert main(["line", *own(), "--to", "other.safetensors", "--res", "51", "--out", "m"]) == 0
    err = capsys.readouterr().err
    assert "note: the grid has no point at t=0 or t=1" in err and err.count("\n") == 1
    assert main(["line", *own(), "--to", "other.safetensors", "--xrange", "0", "1", "--res",
                 "7", "--out", "k"]) == 0  # fmt: skip
    assert "note:" not in capsys.readouterr().err
    # a random line keeps 51 points, centred on t=0
    assert main(["line", *own(), "--out", "r"]) == 0
    xs = formats.load_surface("r.npz").xs
    assert len(xs) == 51 and xs[25] == 0.0


def test_a_built_in_interpolation_line_has_t0_and_t1(tmp_path, capsys):
    from landscape.storage.formats import load_run

    a = str(tmp_path / "a.npz")
    assert main(["train", *TINY, "--out", a]) == 0
    out = str(tmp_path / "l")
    assert main(["line", "--load-run", a, "--dir", "interpolation", "--quiet", "--out", out]) == 0
    surf = formats.load_surface(f"{out}.npz")
    assert len(surf.xs) == 41 and 0.0 in surf.xs and 1.0 in surf.xs
    run = load_run(a)
    ds = run.dataset()
    with torch.no_grad():
        want = float(run.loss_fn()(run.model().eval()(ds.X_train), ds.y_train))
    assert surf.loss[list(surf.xs).index(1.0)] == pytest.approx(want, rel=1e-6)
    capsys.readouterr()
    assert main(["line", "--load-run", a, "--dir", "interpolation", "--quiet", "--xrange",
                 "0.1", "1.5", "--out", out]) == 0  # fmt: skip
    assert "no point at t=0 or t=1" in capsys.readouterr().err
