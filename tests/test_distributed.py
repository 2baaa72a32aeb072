"""landscape.engine.distributed + landscape.engine.chunkstore: 2 CPU ranks under torchrun (Gloo) give the
single-process numbers, a killed job resumes, other configurations are refused."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from landscape.core import directions as D
from landscape.engine import distributed as dist_
from landscape.engine import surface as S
from landscape.engine.chunkstore import PointStore, chunk_size
from landscape.storage import formats as store

ROOT = Path(__file__).resolve().parents[1]
JOB = ROOT / "tests" / "dist_job.py"
sys.path.insert(0, str(ROOT / "tests"))
import dist_job  # noqa: E402


def env():
    e = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    e.pop("LANDSCAPE_TORCH_THREADS", None)
    return e


def torchrun(*args, ranks=2, **kw):
    """``python -m torch.distributed.run --standalone`` (a free port each time) on Gloo."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += [f"--nproc-per-node={ranks}", *map(str, args)]
    return cmd


def reference(seed: int, res: int):
    """The plane of dist_job's net computed in one plain loop over every point."""
    subject = dist_job.TinySubject(0)
    model = subject.model()
    dirs = D.random_directions(model, 2, seed=seed)
    center = {k: p.detach().clone() for k, p in model.named_parameters()}
    return S.loop_evaluate(
        model,
        subject.loss_fn,
        subject.X,
        subject.y,
        center,
        dirs,
        dist_job.grid(res),
        subject.accuracy_fn,
    )


def result(prefix):
    with np.load(f"{prefix}.npz") as z:
        return z["loss"], z["accuracy"], int(z["ranks"])


# ----------------------------------------------------------------------------- store


def test_store_keeps_blocks_and_finds_the_missing_ones(tmp_path):
    path = tmp_path / "s.zarr"
    store = PointStore.create_or_resume(path, 10, {"grid": "a"})
    assert store.chunk == chunk_size(10) == 1 and store.missing_chunks() == list(range(10))
    store.write(3, [2.5], [0.5])
    store.write(9, [np.nan], None)
    again = PointStore.create_or_resume(path, 10, {"grid": "a"})
    assert again.missing_chunks() == [0, 1, 2, 4, 5, 6, 7, 8]
    assert again.n_done() == 2
    with pytest.raises(ValueError, match="8 of 10 points are missing"):
        again.results()
    for c in again.missing_chunks():
        again.write(c, [float(c)], [1.0])
    loss, acc = PointStore.open(path, 10, {"grid": "a"}).results()
    expect = np.arange(10.0)
    expect[3], expect[9] = 2.5, np.nan
    np.testing.assert_array_equal(loss, expect)
    assert acc[3] == 0.5 and acc[0] == 1.0


def test_blocks_of_a_big_grid_hold_many_points():
    assert chunk_size(90) == 6 and chunk_size(51 * 51) == chunk_size(201 * 201) == 32
    with pytest.raises(ValueError, match="n_points"):
        PointStore.create_or_resume("unused", 0, {})


def test_store_of_another_configuration_is_refused_unless_overwrite(tmp_path):
    path = tmp_path / "s.zarr"
    PointStore.create_or_resume(path, 4, {"grid": "a", "data": "x"}).write(0, [1.0])
    with pytest.raises(ValueError, match=r"another configuration \(different grid\).*--overwrite"):
        PointStore.create_or_resume(path, 4, {"grid": "b", "data": "x"})
    fresh = PointStore.create_or_resume(path, 4, {"grid": "b", "data": "x"}, overwrite=True)
    assert fresh.missing_chunks() == [0, 1, 2, 3]


def test_a_folder_that_is_not_a_store_is_never_deleted(tmp_path):
    path = tmp_path / "mine.zarr"
    path.mkdir()
    (path / "keep.txt").write_text("precious")
    with pytest.raises(ValueError, match="not a point store"):
        PointStore.create_or_resume(path, 4, {}, overwrite=True)
    assert (path / "keep.txt").read_text() == "precious"


def test_digest_sees_values_dtypes_and_keys():
    a = {"w": torch.ones(3)}
    assert dist_.digest(a) == dist_.digest({"w": torch.ones(3)})
    assert dist_.digest(a) != dist_.digest({"w": torch.ones(3, dtype=torch.float64)})
    assert dist_.digest(a) != dist_.digest({"v": torch.ones(3)})
    assert dist_.digest(np.zeros(2)) != dist_.digest(np.zeros(3))


def test_outside_torchrun_the_context_is_one_process():
    ctx = dist_.init()
    assert (ctx.rank, ctx.world_size, ctx.distributed) == (0, 1, False)


def test_single_process_evaluator_matches_the_loop_and_resumes(tmp_path, capsys):
    subject = dist_job.TinySubject(0)
    dirs = D.random_directions(subject.model(), 2, seed=1)
    coords = dist_job.grid(5)
    ev = dist_.Evaluator(dist_.Context(), tmp_path / "p", dist_job.inner, quiet=True)
    losses, accs, info = ev(subject, dirs, coords)
    ref_loss, ref_acc = reference(1, 5)
    np.testing.assert_allclose(losses, ref_loss, rtol=1e-6)
    np.testing.assert_allclose(accs, ref_acc)
    assert info["ranks"] == 1 and info["method"] == "loop"
    ev2 = dist_.Evaluator(dist_.Context(), tmp_path / "p", dist_job.inner, quiet=True)
    again, _, _ = ev2(subject, dirs, coords)
    assert f"resuming {tmp_path / 'p'}: 30/30 points already computed" in capsys.readouterr().err
    np.testing.assert_array_equal(again, losses)


# ----------------------------------------------------------------------------- torchrun


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc), children first."""
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids = [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            continue
        for k in kids:
            out += [k, *_descendants(k)]
    return out


def kill_job(pid: int) -> None:
    """SIGKILL the torchrun agent's process group and each rank's (torchrun starts every
    rank in a session of its own, so killing the agent's group alone leaves them running)."""
    groups = {os.getpgid(p) for p in [pid, *_descendants(pid)] if Path(f"/proc/{p}").exists()}
    for g in groups:
        os.killpg(g, signal.SIGKILL)


def chunk_files(prefix) -> list[Path]:
    """The chunk files of ``PREFIX.zarr/slice0`` (complete: zarr renames each into place)."""
    folder = dist_.store_path_for(prefix) / "slice0" / "c"
    return [f for f in folder.rglob("*") if f.is_file() and not f.name.endswith(".partial")]


def _done_points(prefix, total=90) -> int:
    return min(total, len(chunk_files(prefix)) * chunk_size(total))


@pytest.mark.slow
def test_a_killed_job_resumes_with_only_the_missing_points(tmp_path):
    out = tmp_path / "k"
    total = 90
    job = subprocess.Popen(
        torchrun(JOB, out, "--slow", "0.25"),
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the SIGKILL reaches every rank
    )
    try:
        deadline = time.monotonic() + 120
        while _done_points(out) < 6 and job.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        kill_job(job.pid)
        job.wait()
    assert 0 < _done_points(out) < total and not Path(f"{out}.npz").exists()
    r = subprocess.run(torchrun(JOB, out), env=env(), capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    line = next(x for x in r.stderr.splitlines() if x.startswith("resuming"))
    n, m = map(int, line.split(": ")[1].split()[0].split("/"))
    assert line == f"resuming {out}: {n}/{m} points already computed" and 0 < n < m == total
    np.testing.assert_allclose(result(out)[0], reference(0, 9)[0], rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_torchrun_max_restarts_restarts_a_dead_rank_and_resumes(tmp_path):
    out = tmp_path / "r"
    cmd = torchrun("--max-restarts=1", JOB, out, "--die-after", "3")
    r = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "resuming" in r.stderr
    n = int(r.stderr.split("resuming")[1].split(": ")[1].split("/")[0])
    assert 3 <= n < 90
    np.testing.assert_allclose(result(out)[0], reference(0, 9)[0], rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------- the CLI

TINY = ["--n-samples", "120", "--epochs", "3", "--width", "8", "--batch-size", "32", "--quiet"]


@pytest.fixture(scope="module")
def run_file(tmp_path_factory):
    from landscape.cli.main import main

    path = tmp_path_factory.mktemp("scale") / "run.npz"
    assert main(["train", *TINY, "--out", str(path)]) == 0
    return path


def plane_argv(run_file, out, *extra):
    return [
        "plane",
        "--load-run",
        str(run_file),
        "--res",
        "6",
        "--quiet",
        "--out",
        str(out),
        *extra,
    ]


def test_cli_resumes_refuses_another_configuration_and_overwrites(
    run_file, tmp_path, capsys, monkeypatch
):
    from landscape.cli.main import main

    ref = tmp_path / "ref"
    assert main(plane_argv(run_file, ref)) == 0
    assert not dist_.store_path_for(ref).exists()  # a finished job leaves no point store
    out = tmp_path / "p"
    write, calls = PointStore.write, []

    def crash_after_two(self, c, loss, accuracy=None):
        if len(calls) == 2:
            raise KeyboardInterrupt  # the process dies midway
        calls.append(c)
        write(self, c, loss, accuracy)

    monkeypatch.setattr(PointStore, "write", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        main(plane_argv(run_file, out))
    monkeypatch.setattr(PointStore, "write", write)
    assert not Path(f"{out}.npz").exists()
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:  # other directions at the same --out
        main(plane_argv(run_file, out, "--dir-seed", "9"))
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1
    assert "another configuration (different directions, settings)" in err and "--overwrite" in err
    assert main(plane_argv(run_file, out)) == 0
    err = capsys.readouterr().err
    assert f"resuming {out}: 6/36 points already computed" in err  # 2 blocks of 3 points
    a, b = store.load_surface(f"{ref}.npz"), store.load_surface(f"{out}.npz")
    np.testing.assert_allclose(b.loss, a.loss, rtol=1e-6)
    # --overwrite: a half-done store of other directions is replaced
    monkeypatch.setattr(PointStore, "write", crash_after_two)
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        main(plane_argv(run_file, out))
    monkeypatch.setattr(PointStore, "write", write)
    assert main(plane_argv(run_file, out, "--dir-seed", "9", "--overwrite")) == 0
    assert "resuming" not in capsys.readouterr().err
    d1 = store.load_directions(f"{out}.npz")[0]
    e1 = D.random_directions(load_run(run_file).model(), 2, seed=9)[0]
    assert all(torch.equal(d1[k], e1[k]) for k in e1)


def test_cli_never_touches_a_users_own_zarr_folder(run_file, tmp_path, capsys):
    from landscape.cli.main import main

    own = tmp_path / "p.zarr"
    own.mkdir()
    (own / "data").write_text("mine")
    with pytest.raises(SystemExit) as e:
        main(plane_argv(run_file, tmp_path / "p", "--overwrite"))
    assert e.value.code == 2 and "not a point store" in capsys.readouterr().err
    assert (own / "data").read_text() == "mine"


def load_run(path):
    from landscape.storage.formats import run_from_bytes

    return run_from_bytes(Path(path).read_bytes())


@pytest.mark.slow
def test_cli_plane_under_torchrun_equals_one_process(tmp_path):
    from landscape.cli.main import main

    # a built-in run trained by the command itself: every rank trains it with the
    # one-process thread count, so the net (and so the surface) is the one-process one
    one, two = tmp_path / "one", tmp_path / "two"
    argv = ["plane", *TINY, "--seed", "1", "--res", "6", "--dir-seed", "2", "--out"]
    assert main([*argv, str(one)]) == 0
    cmd = torchrun("-m", "landscape", *argv, str(two))
    r = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count(f"wrote {two}.npz") == 1  # rank 0 alone writes and reports
    a, b = store.load_surface(f"{one}.npz"), store.load_surface(f"{two}.npz")
    np.testing.assert_allclose(b.loss, a.loss, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(b.accuracy, a.accuracy)
    assert b.meta["ranks"] == 2 and a.meta["ranks"] == 1
    for da, db in zip(store.load_directions(f"{one}.npz"), store.load_directions(f"{two}.npz")):
        assert all(torch.equal(da[k], db[k]) for k in da)
    assert Path(f"{two}.html").stat().st_size > 0 and not dist_.store_path_for(two).exists()


@pytest.mark.slow
def test_own_model_plane_under_torchrun_equals_one_process(tmp_path, monkeypatch):
    import shutil

    from safetensors.torch import save_file

    from landscape.cli.main import main

    # a user's folder: tests/own_net.py (conv + BatchNorm + scalar parameters), its weights
    # and 24 samples; the factory is imported from the current folder, as a user's would be
    shutil.copy(ROOT / "tests" / "own_net.py", tmp_path / "own_net.py")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("own_net", None)
    import own_net

    save_file(own_net.make_net().state_dict(), "net.safetensors")
    X, y = own_net.make_data(n=24)
    np.savez("data.npz", X=X, y=y)
    argv = ["plane", "--model-factory", "own_net:make_net", "--weights", "net.safetensors",
            "--data", "data.npz", "--batch-size", "10", "--res", "5", "--dir-seed", "4",
            "--quiet", "--out"]  # fmt: skip
    try:
        assert main([*argv, "one"]) == 0
    finally:
        sys.modules.pop("own_net", None)
    cmd = torchrun("-m", "landscape", *argv, "two")
    r = subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("wrote two.npz") == 1  # rank 0 alone writes and reports
    a, b = store.load_surface("one.npz"), store.load_surface("two.npz")
    np.testing.assert_allclose(b.loss, a.loss, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(b.accuracy, a.accuracy)
    assert b.meta["ranks"] == 2 and b.meta["model"] == a.meta["model"]
    for da, db in zip(store.load_directions("one.npz"), store.load_directions("two.npz")):
        assert all(torch.equal(da[k], db[k]) for k in da)
    assert not dist_.store_path_for(tmp_path / "two").exists()


def test_own_model_store_holds_its_spec_resumes_and_refuses_another_model(
    tmp_path, monkeypatch, capsys
):
    import shutil

    from safetensors.torch import save_file

    from landscape.cli.main import main

    shutil.copy(ROOT / "tests" / "own_net.py", tmp_path / "own_net.py")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("own_net", None)
    import own_net

    save_file(own_net.make_net().state_dict(), "net.safetensors")
    X, y = own_net.make_data(n=12)
    np.savez("data.npz", X=X, y=y)
    argv = ["plane", "--model-factory", "own_net:make_net", "--weights", "net.safetensors",
            "--data", "data.npz", "--res", "4", "--quiet", "--out", "p"]  # fmt: skip
    write = PointStore.write

    def crash_after_two(self, c, loss, accuracy=None):
        if self.n_done() == 2:
            raise KeyboardInterrupt  # the process dies midway
        write(self, c, loss, accuracy)

    monkeypatch.setattr(PointStore, "write", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        main(argv)
    monkeypatch.setattr(PointStore, "write", write)
    capsys.readouterr()
    # the same net under another loss: only the spec (in "settings") tells them apart
    with pytest.raises(SystemExit) as e:
        main([*argv, "--loss", "own_net:my_loss"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1, err
    assert "another configuration (different settings)" in err
    assert main(argv) == 0
    assert "resuming p: 2/16 points already computed" in capsys.readouterr().err
    sys.modules.pop("own_net", None)
