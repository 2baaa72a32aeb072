"""The resumable point store (landscape.engine.chunkstore) under damage and under kills.

A block counts as computed only when it reads back and its tag (configuration, index,
values) verifies: garbage, a foreign configuration's chunk or an edited array shape are
recomputed, ``--overwrite`` always starts clean, and a real ``torchrun`` job killed at any
moment (then rerun on 1 or 2 processes) ends with the one-process surface bit for bit.
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from landscape.engine import distributed as dist_
from landscape.engine.chunkstore import PointStore, chunk_size
from landscape.storage import formats as store

ROOT = Path(__file__).resolve().parents[1]

# ----------------------------------------------------------------------------- the store


def filled(path, n=10, parts=None, blocks=None):
    """A store of ``n`` points whose block c holds losses c + i/10 (accuracy 1/(c+1))."""
    s = PointStore.create_or_resume(path, n, parts or {"grid": "a"})
    for c in range(s.n_chunks) if blocks is None else blocks:
        a, b = s.bounds(c)
        s.write(c, c + np.arange(b - a) / 10, np.full(b - a, 1 / (c + 1)))
    return s


def chunk_file(path, c) -> Path:
    return Path(path) / "c" / str(c) / "0"


def test_blocks_verify_and_results_come_back_exactly(tmp_path):
    s = filled(tmp_path / "s", 40, blocks=[0, 2, 9])
    assert s.chunk == chunk_size(40) == 3 and s.n_chunks == 14
    again = PointStore.create_or_resume(tmp_path / "s", 40, {"grid": "a"})
    assert not again.repaired and again.missing_chunks() == [1, *range(3, 9), *range(10, 14)]
    assert again.n_verified() == 9
    with pytest.raises(ValueError, match="31 of 40 points are missing"):
        again.results()
    for c in again.missing_chunks():
        a, b = again.bounds(c)
        again.write(c, c + np.arange(b - a) / 10, np.full(b - a, 1 / (c + 1)))
    loss, acc = PointStore.open(tmp_path / "s", 40, {"grid": "a"}).results()
    expect = np.concatenate([c + np.arange(b - a) / 10 for c, (a, b) in
                             enumerate(map(again.bounds, range(14)))])  # fmt: skip
    np.testing.assert_array_equal(loss, expect)
    assert acc[0] == 1.0 and acc[-1] == 1 / 14


def test_a_chunk_of_garbage_is_recomputed(tmp_path):
    s = filled(tmp_path / "s")
    chunk_file(s.path, 4).write_bytes(os.urandom(300))
    again = PointStore.create_or_resume(s.path, 10, {"grid": "a"})
    assert again.missing_chunks() == [4] and again.n_verified() == 9
    again.write(4, [7.0], [0.5])
    loss, _ = again.results()
    assert loss[4] == 7.0 and loss[3] == 3.0


def test_a_chunk_of_another_configuration_is_recomputed(tmp_path):
    ours = filled(tmp_path / "ours", blocks=[0, 1, 2])
    theirs = filled(tmp_path / "theirs", parts={"grid": "a", "directions": "seed1"})
    for c in (3, 5):  # copied whole: a valid chunk, with a valid tag, of the other store
        chunk_file(ours.path, c).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(chunk_file(theirs.path, c), chunk_file(ours.path, c))
    again = PointStore.create_or_resume(ours.path, 10, {"grid": "a"})
    assert again.missing_chunks() == list(range(3, 10)) and again.n_verified() == 3
    # and a chunk of the same configuration moved to another block does not verify either
    shutil.copy(chunk_file(ours.path, 0), chunk_file(ours.path, 1))
    assert again.missing_chunks() == [1, *range(3, 10)]


def test_an_edited_array_shape_is_repaired_and_only_verified_blocks_count(tmp_path):
    s = filled(tmp_path / "s", 40, blocks=[0, 5])
    meta = json.loads((s.path / "zarr.json").read_text())
    meta["shape"] = [41 * 41, 3]  # what a hand-edited zarr.json of issue 23 looked like
    (s.path / "zarr.json").write_text(json.dumps(meta))
    again = PointStore.create_or_resume(s.path, 40, {"grid": "a"})
    assert again.repaired and again.missing_chunks() == [c for c in range(14) if c not in (0, 5)]
    assert again.n_verified() == 6
    (s.path / "zarr.json").write_bytes(b"\x00garbage")  # unreadable metadata alike
    again = PointStore.create_or_resume(s.path, 40, {"grid": "a"})
    assert again.repaired and again.n_verified() == 6


def test_overwrite_always_starts_clean(tmp_path):
    s = filled(tmp_path / "s")
    chunk_file(s.path, 2).write_bytes(b"garbage")
    (s.path / "zarr.json").write_bytes(b"{")
    fresh = PointStore.create_or_resume(s.path, 10, {"grid": "a"}, overwrite=True)
    assert not fresh.repaired and fresh.missing_chunks() == list(range(10))
    assert not chunk_file(s.path, 0).exists()
    filled(s.path)  # the same configuration, complete
    fresh = PointStore.create_or_resume(s.path, 10, {"grid": "a"}, overwrite=True)
    assert fresh.missing_chunks() == list(range(10))


def test_another_configuration_is_still_refused_and_a_users_folder_never_touched(tmp_path):
    s = filled(tmp_path / "s", blocks=[0])
    with pytest.raises(ValueError, match=r"another configuration \(different grid\)"):
        PointStore.create_or_resume(s.path, 10, {"grid": "b"})
    (s.path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a point store"):
        PointStore.create_or_resume(s.path, 10, {"grid": "a"}, overwrite=True)
    assert (s.path / "notes.txt").read_text() == "mine"


def resumable(path, evaluate, overwrite=False):
    return dist_.evaluate_resumable(
        dist_.Context(), evaluate, 10, path, {"grid": "a"}, "pts", "job", True, quiet=True,
        overwrite=overwrite,
    )  # fmt: skip


def test_a_block_lost_while_the_job_runs_is_computed_again(tmp_path, capsys):
    calls = []

    def evaluate(a, b):
        calls.append(a)
        if a == 9 and calls.count(9) == 1:  # another process removes a finished block
            shutil.rmtree(tmp_path / "s" / "c" / "2")
        return np.arange(a, b) * 1.5, np.ones(b - a)

    loss, acc = resumable(tmp_path / "s", evaluate)
    assert calls == [*range(10), 2]
    np.testing.assert_array_equal(loss, np.arange(10) * 1.5)


def test_overwrite_starts_clean_once_per_job_not_per_restart(tmp_path, capsys, monkeypatch):
    filled(tmp_path / "s", blocks=[0, 1, 2])
    calls = []

    def evaluate(a, b):
        calls.append(a)
        return np.zeros(b - a), np.zeros(b - a)

    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")  # torchrun restarted this attempt
    resumable(tmp_path / "s", evaluate, overwrite=True)
    assert calls == list(range(3, 10))
    assert "resuming job: 3/10 points already computed" in capsys.readouterr().err
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "0")
    calls.clear()
    resumable(tmp_path / "s", evaluate, overwrite=True)
    assert calls == list(range(10)) and "resuming" not in capsys.readouterr().err


# ----------------------------------------------------------------------------- the CLI

ARGV = ["plane", "--model-factory", "own_net:make_net", "--weights", "net.safetensors",
        "--data", "data.npz", "--res", "4", "--method", "loop", "--quiet"]  # fmt: skip


@pytest.fixture
def own_folder(user, tmp_path):
    """A user's folder with tests/own_net.py, its weights and data (conftest's ``user``)."""
    return tmp_path


def crash_after(monkeypatch, k):
    """The next job dies (KeyboardInterrupt) when it has stored ``k`` blocks."""
    write, calls = PointStore.write, []

    def dying(self, c, loss, accuracy=None):
        if len(calls) == k:
            monkeypatch.setattr(PointStore, "write", write)
            raise KeyboardInterrupt
        calls.append(c)
        write(self, c, loss, accuracy)

    monkeypatch.setattr(PointStore, "write", dying)


def half_done(monkeypatch, out, k, *extra):
    from landscape.cli.main import main

    crash_after(monkeypatch, k)
    with pytest.raises(KeyboardInterrupt):
        main([*ARGV, *extra, "--out", out])
    return dist_.store_path_for(out) / "slice0"


def loss_of(prefix):
    return store.load_surface(f"{prefix}.npz").loss


def resumed(err) -> int | None:
    lines = [x for x in err.splitlines() if x.startswith("resuming")]
    return int(lines[0].split(": ")[1].split("/")[0]) if lines else None


def test_cli_recomputes_a_foreign_chunk_and_a_garbage_chunk(own_folder, monkeypatch, capsys):
    from landscape.cli.main import main

    assert main([*ARGV, "--out", "ref"]) == 0
    other = half_done(monkeypatch, "other", 6, "--dir-seed", "1")
    ours = half_done(monkeypatch, "p", 2)
    assert sorted(p.name for p in (ours / "c").iterdir()) == ["0", "1"]
    for c in ("4", "5"):  # issue 23: another configuration's chunks copied in
        shutil.copytree(other / "c" / c, ours / "c" / c)
    (ours / "c" / "1" / "0").write_bytes(os.urandom(64))  # and one chunk of garbage
    capsys.readouterr()
    assert main([*ARGV, "--out", "p"]) == 0
    assert resumed(capsys.readouterr().err) == 1  # block 0 only: 1 point of 16
    np.testing.assert_array_equal(loss_of("p"), loss_of("ref"))


def test_cli_repairs_an_edited_shape_and_overwrite_starts_clean(own_folder, monkeypatch, capsys):
    from landscape.cli.main import main

    assert main([*ARGV, "--out", "ref"]) == 0
    ours = half_done(monkeypatch, "p", 3)
    meta = json.loads((ours / "zarr.json").read_text())
    meta["shape"] = [1681, 3]
    (ours / "zarr.json").write_text(json.dumps(meta))
    capsys.readouterr()
    assert main([*ARGV, "--out", "p"]) == 0
    err = capsys.readouterr().err
    assert resumed(err) == 3 and "metadata was damaged" in err
    np.testing.assert_array_equal(loss_of("p"), loss_of("ref"))
    # --overwrite over a store of garbage metadata and chunks: a clean start, no traceback
    ours = half_done(monkeypatch, "q", 3)
    (ours / "zarr.json").write_bytes(b"garbage")
    (ours / "c" / "0" / "0").write_bytes(b"garbage")
    capsys.readouterr()
    assert main([*ARGV, "--out", "q", "--overwrite"]) == 0
    err = capsys.readouterr().err
    assert resumed(err) is None and "damaged" not in err
    np.testing.assert_array_equal(loss_of("q"), loss_of("ref"))


# ----------------------------------------------------------------------------- real kills

RES = 9  # 81 points in blocks of 6: 14 chunk files
N_BLOCKS = 14
SLOW_DATA = 1500  # samples: a block of 6 points takes ~0.2 s, long enough to kill between


def job_env():
    e = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    # one torch thread in every process, whatever the rank count: the same sums in the
    # same order, so 1 and 2 processes give the same bits
    e["LANDSCAPE_TORCH_THREADS"] = "1"
    e["LANDSCAPE_TEST_HOLD_OUTPUT"] = "60"  # rank 0 holds the finished .npz before renaming
    # each block takes at least this long, so the kill moments are hit on a busy machine too
    e["LANDSCAPE_TEST_HOLD_BLOCK"] = "0.4"
    return e


def launch(folder, ranks):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc-per-node={ranks}", "-m", "landscape", *ARGV, "--res", str(RES),
           "--data", "slow.npz", "--out", "out/p"]  # fmt: skip
    return subprocess.Popen(
        cmd, cwd=folder, env=job_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # the job's own process group, as `setsid torchrun ... &`
    )  # fmt: skip


def chunks(folder) -> list[Path]:
    c = Path(folder) / "out" / "p.zarr" / "slice0" / "c"
    return [f for f in c.rglob("*") if f.is_file() and not f.name.endswith(".partial")]


def tree(pid) -> list[int]:
    """``pid`` and every process below it (from /proc)."""
    out = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids = [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            continue
        for k in kids:
            out += tree(k)
    return out


def alive(pid) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "Z"
    except OSError:
        return False


def kill_when(job, folder, ready, what, timeout=180.0):
    """SIGKILL the job's process group (the torchrun agent) once ``ready()``; then every
    rank must be gone within a few seconds (each starts in a session of its own)."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert job.poll() is None, f"the job ended before {what}: {job.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, f"never reached {what}"
        time.sleep(0.002)
    procs = tree(job.pid)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    end = time.monotonic() + 10
    while any(map(alive, procs)) and time.monotonic() < end:
        time.sleep(0.05)
    orphans = [p for p in procs if alive(p)]
    for p in orphans:  # leave nothing running, then fail
        os.kill(p, signal.SIGKILL)
    assert not orphans, f"ranks outlived their killed job ({what})"
    assert not (Path(folder) / "out" / "p.npz").exists()
    return len(chunks(folder))


def written_points(folder) -> int:
    """Points in the chunk files on disk (each is complete: zarr renames it into place)."""
    return sum(min(6, RES * RES - 6 * int(f.parent.name)) for f in chunks(folder))


@contextlib.contextmanager
def one_thread():
    """One torch thread, as every process of the job has (LANDSCAPE_TORCH_THREADS=1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_a_torchrun_job_killed_at_any_moment_resumes_to_the_one_process_surface(own_folder, capsys):
    import own_net

    from landscape.cli.main import main

    X, y = own_net.make_data(n=SLOW_DATA)
    np.savez(own_folder / "slow.npz", X=X, y=y)
    with one_thread():
        assert main([*ARGV, "--res", str(RES), "--data", "slow.npz", "--out", "ref"]) == 0
    out = own_folder / "out"
    meta = out / "p.zarr" / "slice0" / "zarr.json"

    base = {"chunks": 0}  # chunks on disk when the current job started

    def n_chunks(k):  # k more chunks than the job found (a late kill before wrote some)
        return lambda: len(chunks(own_folder)) >= base["chunks"] + k

    def writing():  # rank 0's temporary .npz exists: the points are done, the rename is not
        return any(out.glob(".p.npz.*"))

    # A chain of kills, as a pre-empted job requeued with the identical command meets them.
    # Each rerun must count exactly the points on disk when the job before it was killed.
    moments = [
        (2, lambda: meta.exists(), "the store exists, before the first chunk"),
        (2, n_chunks(2), "two chunks are written"),
        # 2 killed, 1 resuming: half the blocks on disk, and at least one written by this job
        (1, lambda: len(chunks(own_folder)) >= max(base["chunks"] + 1, N_BLOCKS // 2), "half way"),
        (2, writing, "the final .npz is written"),  # 1 killed, 2 resuming
    ]
    on_disk = 0
    for ranks, ready, what in moments:
        base["chunks"] = len(chunks(own_folder))
        job = launch(own_folder, ranks)
        n = kill_when(job, own_folder, ready, what)
        err = job.stderr.read()
        assert resumed(err) == (on_disk or None), (what, err[-2000:])
        time.sleep(0.5)
        assert len(chunks(own_folder)) == n, f"chunks were written after the kill ({what})"
        on_disk = written_points(own_folder)
        # a busy machine may let the one resuming rank finish before "half way" is seen:
        # then the next job only writes the files, which is the moment it is killed at anyway
        assert on_disk < RES * RES or what in ("half way", moments[-1][2]), what
    assert on_disk == RES * RES  # killed while the .npz was written: every point was on disk
    # 2 killed, 1 resuming (one plain process, as without torchrun): nothing left to compute
    with one_thread():
        assert main([*ARGV, "--res", str(RES), "--data", "slow.npz", "--out", "out/p"]) == 0
    assert resumed(capsys.readouterr().err) == RES * RES
    a, b = store.load_surface(own_folder / "ref.npz"), store.load_surface(out / "p.npz")
    np.testing.assert_array_equal(b.loss, a.loss)
    np.testing.assert_array_equal(b.accuracy, a.accuracy)
    assert not dist_.store_path_for(out / "p").exists()
