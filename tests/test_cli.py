"""python -m landscape: files that load back and match the library, documented flags, exit 2."""

import argparse
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from landscape.cli.main import build_parser, main
from landscape.core import directions as D
from landscape.engine import surface as S
from landscape.storage import formats as store
from landscape.storage.formats import run_from_bytes

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--n-samples", "120", "--epochs", "4", "--width", "8", "--batch-size", "32", "--quiet"]


@pytest.fixture(scope="module")
def run_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "run.npz"
    assert main(["train", *TINY, "--seed", "3", "--out", str(path)]) == 0
    return path


def load_run(path):
    return run_from_bytes(Path(path).read_bytes())


def test_train_writes_a_run_that_loads(run_file, capsys):
    run = load_run(run_file)
    assert run.config.width == 8 and run.config.epochs == 4 and run.config.seed == 3
    assert run.trajectory.shape == (5, sum(p.numel() for p in run.model().parameters()))


def test_plane_random_files_load_back_and_match_the_library(run_file, tmp_path, capsys):
    out = tmp_path / "p"
    argv = ["plane", "--load-run", str(run_file), "--xres", "5", "--yres", "3"]
    argv += ["--xrange", "-0.5", "1", "--split", "test", "--dir-seed", "4", "--zmax", "50"]
    argv += ["--out", str(out)]
    assert main([*argv, "--quiet"]) == 0
    assert "wrote" in capsys.readouterr().out
    surf = store.load_surface(out.with_suffix(".npz"))
    d1, d2 = store.load_directions(out.with_suffix(".npz"))
    run = load_run(run_file)
    model = run.model()
    e1, e2 = D.random_directions(model, 2, norm="filter", ignore="biasbn", seed=4)
    assert all(torch.equal(d1[k], e1[k]) and torch.equal(d2[k], e2[k]) for k in d1)
    np.testing.assert_allclose(surf.xs, np.linspace(-0.5, 1, 5))
    np.testing.assert_allclose(surf.ys, np.linspace(-0.5, 1, 3))  # --yrange defaults to --xrange
    ds = run.dataset()
    ref = S.plane(
        model, run.loss_fn(), (ds.X_test, ds.y_test), d1, d2, surf.xs, surf.ys, method="loop"
    )
    assert surf.loss.shape == (3, 5) and surf.accuracy.shape == (3, 5)
    np.testing.assert_allclose(surf.loss, ref.loss, rtol=1e-5)
    meta = surf.meta
    assert meta["split"] == "test" and meta["dir_seed"] == 4 and meta["norm"] == "filter"
    assert meta["config"] == run.config.to_dict()
    html = out.with_suffix(".html").read_text()
    assert len(html) > 1_000_000 and "plotly" in html  # plotly.js inlined: works offline


def test_plane_pca_projects_the_path(run_file, tmp_path):
    out = tmp_path / "pca"
    argv = ["plane", "--load-run", str(run_file), "--dir", "pca", "--res", "4", "--linear"]
    assert main([*argv, "--out", str(out), "--quiet"]) == 0
    surf = store.load_surface(out.with_suffix(".npz"))
    d1, d2 = store.load_directions(out.with_suffix(".npz"))
    px, py = surf.meta["path"]["x"], surf.meta["path"]["y"]
    assert (
        len(px) == 5
        and px[-1] == pytest.approx(0, abs=1e-6)
        and py[-1] == pytest.approx(0, abs=1e-6)
    )
    assert surf.xs[0] <= min(px) and surf.xs[-1] >= max(px)
    assert surf.ys[0] <= min(py) and surf.ys[-1] >= max(py)
    assert (
        len(surf.meta["explained_variance"]) == 2
        and sum(surf.meta["explained_variance"]) <= 1 + 1e-9
    )
    assert float(D.flatten(d1).norm()) == pytest.approx(1, abs=1e-5)
    assert "PC1" in out.with_suffix(".html").read_text()


def test_line_interpolation_trains_saves_and_reaches_the_trained_net(tmp_path):
    out, saved = tmp_path / "line", tmp_path / "run.npz"
    argv = ["line", *TINY, "--dir", "interpolation", "--res", "5", "--xrange", "0", "1"]
    assert main([*argv, "--save-run", str(saved), "--out", str(out)]) == 0
    surf = store.load_surface(out.with_suffix(".npz"))
    run = load_run(saved)
    ds = run.dataset()
    with torch.no_grad():
        final = run.loss_fn()(run.model()(ds.X_train), ds.y_train).item()
        init = run.loss_fn()(run.initial_model()(ds.X_train), ds.y_train).item()
    assert surf.kind == "line" and surf.loss.shape == (5,)
    assert surf.loss[-1] == pytest.approx(final, rel=1e-5)
    assert surf.loss[0] == pytest.approx(init, rel=1e-5)


@pytest.mark.parametrize(
    "argv",
    [
        ["plane", "--bogus"],
        ["frobnicate"],
        ["plane", "--norm", "bogus"],
        ["plane", "--epochs", "abc"],
        ["line", "--dir", "pca"],
        ["plane", "--lr", "-1"],
        ["plane", "--dataset", "nope"],
        ["plane", "--load-run", "RUN", "--res", "300"],
        ["line", "--load-run", "RUN", "--xrange", "1", "0"],
        ["line", "--load-run", "RUN", "--end-run", "RUN"],
        ["plane", "--load-run", "/nonexistent/run.npz"],
        ["plane", "--loss-param", "delta"],
        ["plane", "--load-run", "RUN", "--zmax", "nan"],
        ["plane", "--load-run", "RUN", "--save-run", "o.npz", "--out", "o"],
    ],
)
def test_bad_flags_exit_2_with_one_line(argv, run_file, capsys):
    argv = [str(run_file) if a == "RUN" else a for a in argv]
    with pytest.raises(SystemExit) as e:
        main([*argv, "--quiet"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "error" in lines[0] and "Traceback" not in err, err


def _options(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _options(sub)
        elif action.option_strings:
            yield action


def test_every_flag_is_documented():
    actions = list(_options(build_parser()))
    assert len(actions) > 40
    for action in actions:
        assert action.help and action.help != argparse.SUPPRESS and len(action.help) > 10, action


def test_help_lists_the_flags(capsys):
    with pytest.raises(SystemExit) as e:
        main(["plane", "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    flags = ["--dir", "--norm", "--ignore", "--orthogonal", "--xrange", "--yrange", "--res"]
    flags += ["--xres", "--split", "--dir-seed", "--out", "--load-run", "--save-run", "--lr"]
    assert all(flag in text for flag in flags)


def test_real_process_bad_flag_exit_status():
    proc = subprocess.run(
        [sys.executable, "-m", "landscape", "line", "--no-such-flag"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "--no-such-flag" in proc.stderr


# ----------------------------------------------------------------------------- issue: output files


def test_readme_example_creates_the_out_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # a fresh folder with no out/
    argv = ["plane", "--dataset", "moons", "--res", "5", "--out", "out/moons_plane"]
    assert main([*argv, *TINY]) == 0
    surf = store.load_surface(tmp_path / "out" / "moons_plane.npz")
    assert surf.loss.shape == (5, 5)
    page = (tmp_path / "out" / "moons_plane.html").read_text()
    assert page.rstrip().endswith("</html>") and "plotly" in page
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "moons_plane.html",
        "moons_plane.npz",
    ]


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if training or a surface computation starts."""
    from landscape.cli import jobs

    def boom(*a, **k):
        raise AssertionError("work started before the flags were checked")

    monkeypatch.setattr(jobs, "train", boom)
    monkeypatch.setattr(jobs.slices, "compute", boom)


@pytest.mark.parametrize(
    "argv, says",
    [
        (["plane", "--res", "0"], "--res 0"),
        (["plane", "--xres", "1001", "--yres", "1001"], "1001x1001"),
        (["plane", "--xrange", "1", "0"], "--xrange 1 0"),
        (["plane", "--yrange", "nan", "1"], "--yrange nan 1"),
        (["line", "--res", "1002"], "--res 1002"),
        (["line", "--res", "1"], "--res 1"),
        (["plane", "--xrange", "-1e9", "1"], "--xrange"),
        (["plane", "--lr", "-1"], "lr=-1.0"),
        (["plane", "--out", "FILE/sub/out"], "cannot create folder"),
        (["plane", "--out", "DIR"], "is a folder"),
        (["plane", "--save-run", "FILE/run.npz"], "--save-run"),
        (["line", "--dir", "interpolation", "--end-run", "/nonexistent.npz"], "cannot read"),
        (["train", "--out", "FILE/run.npz"], "cannot create folder"),
    ],
)
def test_every_flag_is_checked_before_any_work(argv, says, tmp_path, no_work, capsys):
    afile = tmp_path / "a_file"
    afile.write_text("x")
    (tmp_path / "adir.npz").mkdir()  # --out adir would write this
    subs = {"FILE": str(afile), "DIR": str(tmp_path / "adir")}
    argv = [next((a.replace(k, v) for k, v in subs.items() if k in a), a) for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "o" / "x")]
    with pytest.raises(SystemExit) as e:
        main([*argv, "--quiet"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and says in lines[0] and "Traceback" not in err, err
    if argv[0] != "train" and "--out" not in " ".join(argv[:-2]):
        assert not (tmp_path / "o").exists()  # nothing created for a rejected command


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder nobody can write, root included: a read-only tmpfs, or a 0o500 folder when
    this process cannot mount (not root: the mode bits then hold)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() != 0:
        ro.chmod(0o500)
        yield ro
        ro.chmod(0o700)
        return
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(ro)], check=True)
    try:
        yield ro
    finally:
        subprocess.run(["umount", str(ro)], check=True)


def test_unwritable_out_folder_is_refused_before_work(read_only_folder, no_work, capsys):
    with pytest.raises(SystemExit) as e:
        main(["plane", "--out", str(read_only_folder / "x"), "--quiet"])
    assert e.value.code == 2 and "not writable" in capsys.readouterr().err


def _old_pair(tmp_path):
    npz, html = tmp_path / "s.npz", tmp_path / "s.html"
    npz.write_bytes(b"old npz")
    html.write_bytes(b"old html")
    return npz, html


@pytest.mark.parametrize("during", ["npz", "html"])
def test_an_interrupted_write_leaves_the_old_pair(during, run_file, tmp_path, monkeypatch):
    from landscape.cli import jobs

    npz, html = _old_pair(tmp_path)

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    if during == "npz":
        monkeypatch.setattr(jobs.store, "save_surface", interrupted)
    else:
        monkeypatch.setattr(jobs, "figure", lambda *a: types.SimpleNamespace(to_html=interrupted))
    argv = ["plane", "--load-run", str(run_file), "--res", "3", "--quiet", "--out", str(npz)]
    with pytest.raises(KeyboardInterrupt):
        main(argv)
    assert npz.read_bytes() == b"old npz" and html.read_bytes() == b"old html"
    # no temporaries; the computed points stay in the point store for the rerun
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.html", "s.npz", "s.zarr"]


def test_a_finished_write_replaces_both_files(run_file, tmp_path):
    npz, html = _old_pair(tmp_path)
    argv = ["plane", "--load-run", str(run_file), "--res", "3", "--quiet", "--out", str(npz)]
    assert main(argv) == 0
    assert store.load_surface(npz).loss.shape == (3, 3)
    assert b"plotly" in html.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.html", "s.npz"]
