"""The data folder damaged the way disks, crashes and people do (issue 23): nothing is lost or
silently dropped, and every failure is one line. Library, command line and app.

A read-only folder is a read-only bind mount and a full disk a small tmpfs, each made and
removed by the test (root can write through chmod); skipped only where mounting is refused."""

from __future__ import annotations

import contextlib
import gc
import os
import sqlite3
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from landscape.cli import main as cli
from landscape.data.config import Config
from landscape.storage import datastore, formats
from landscape.training import loop as training
from landscape.ui import kept
from tests.store_jobs import TINY

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ["--dataset", "xor", "--epochs", "2", "--n-samples", "60", "--width", "4", "--quiet"]
FLAGS_CONFIG = Config(dataset="xor", epochs=2, n_samples=60, width=4)


@pytest.fixture(scope="module")
def runs():
    return [training.train(Config(seed=s, **TINY)) for s in range(3)]


def _file(store, run) -> Path:
    return store.root / "objects" / "run" / f"{datastore.run_key(run.config)}.npz"


def _umount(at: Path) -> None:
    gc.collect()  # stores opened inside the commands close their index connections
    if subprocess.run(["umount", str(at)], capture_output=True).returncode:
        subprocess.run(["umount", "-l", str(at)], check=True)


def _mount(*args) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"mount not permitted here: {done.stderr.strip()}")


@contextlib.contextmanager
def read_only_view(src: Path, at: Path):
    """``at``: ``src`` seen through a read-only bind mount."""
    at.mkdir()
    _mount("--bind", str(src), str(at))
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(at)], check=True)
        yield at
    finally:
        _umount(at)


@contextlib.contextmanager
def small_disk(at: Path, size: str = "3m"):
    at.mkdir()
    _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(at))
    try:
        yield at
    finally:
        _umount(at)


def fill(disk: Path) -> None:
    """Take every free byte of ``disk``."""
    with open(disk / "filler", "wb") as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"\0" * 65536)
            fh.flush()
    with contextlib.suppress(OSError), open(disk / "filler2", "wb") as fh:  # the last block
        for _ in range(64):
            fh.write(b"\0" * 1024)
            fh.flush()


def run_cli(args, capsys) -> tuple[int, str, str]:
    try:
        code = cli.main(args)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


# ----------------------------------------------------------------------------- data loss


@pytest.mark.slow
def test_a_run_bigger_than_the_upload_cap_reads_back(tmp_path):
    """A width-256 MLP run over 32 MiB uncompressed was dropped as damaged on its next read."""
    run = training.train(Config(n_samples=60, epochs=70, width=256, depth=3, batch_size=64))
    assert run.trajectory.nbytes > formats.MAX_FILE_BYTES  # over the app's upload cap
    store = datastore.Store(tmp_path / "data", max_mb=500)
    rid = store.put_run(run)
    store.pin(rid)
    notes: list[str] = []
    back = store.get_run(rid, notes)
    assert notes == [] and back is not None
    assert np.array_equal(back.trajectory, run.trajectory)
    assert store.run_info(rid).pinned and _file(store, run).exists()


def test_a_damaged_run_is_quarantined_said_once_and_kept_out_of_the_cap(tmp_path, runs):
    store = datastore.Store(tmp_path / "data", max_mb=100)
    rid, other = store.put_run(runs[0]), store.put_run(runs[1])
    path = _file(store, runs[0])
    original = path.read_bytes()
    path.write_bytes(original[:300])  # truncated
    before = store.usage()["bytes"]
    notes: list[str] = []
    assert store.get_run(rid, notes) is None
    (moved,) = (store.root / "quarantine" / "run").iterdir()
    assert moved.read_bytes() == original[:300]  # moved, never deleted
    assert len(notes) == 1 and rid in notes[0] and str(moved) in notes[0]
    assert store.get_run(rid, notes) is None and len(notes) == 1  # said once
    usage = store.usage()
    assert usage["quarantined"] == 1 and usage["bytes"] == before - len(original)
    assert store.get_run(other) is not None  # the rest untouched
    # recovery: the intact file moved back is indexed again at the next start
    moved.unlink()
    path.write_bytes(original)
    again = datastore.Store(store.root, max_mb=100)
    assert again.get_run(rid).config == runs[0].config


def test_an_entry_replaced_by_a_folder_is_quarantined_not_raised(tmp_path, runs, capsys):
    store = datastore.Store(tmp_path / "data", max_mb=100)
    rid = store.put_run(runs[0])
    path = _file(store, runs[0])
    path.unlink()
    path.mkdir()
    (path / "inside").write_text("x")
    notes: list[str] = []
    assert store.get_run(rid, notes) is None and len(notes) == 1
    assert (store.root / "quarantine" / "run" / path.name / "inside").exists()
    assert store.put_run(runs[0]) == rid and store.get_run(rid) is not None  # stored afresh
    # a folder found at start (not in the index) goes to quarantine as well
    path2 = _file(store, runs[1])
    path2.mkdir()
    datastore.Store(store.root, max_mb=100)
    assert not path2.exists()


def _drop_index(root: Path) -> None:
    for p in root.glob("index.sqlite*"):
        p.unlink()


def test_removed_index_is_rebuilt_from_objects_with_pins(tmp_path, runs, capsys):
    root = tmp_path / "data"
    store = datastore.Store(root, max_mb=100)
    ids = [store.put_run(r) for r in runs]
    key = datastore.object_key("x")
    store.put_object("landscape", key, {"a": np.arange(5.0)}, rid=ids[0])
    store.pin(ids[1])
    total = store.usage()["bytes"]
    store._drop_conn()
    _drop_index(root)
    code, out, _ = run_cli(["runs", "--store", str(root)], capsys)
    assert code == 0 and all(i in out for i in ids)
    assert [line for line in out.splitlines() if "pinned" in line][0].startswith(ids[1])
    again = datastore.Store(root, max_mb=100)
    assert again.usage()["bytes"] == total  # every file counts against the cap again
    assert [i.run_id for i in again.runs(pinned=True)] == [ids[1]]
    assert again.get_object("landscape", key)["a"][4] == 4.0
    again.max_bytes = 1  # and the orphans are evictable again; the pinned run stays
    again.evict()
    assert [i.run_id for i in again.runs()] == [ids[1]]
    assert sorted(p.name for p in (root / "objects" / "run").iterdir()) == [
        f"{datastore.run_key(runs[1].config)}.npz"
    ]


def test_garbled_index_mid_session_is_rebuilt(tmp_path, runs):
    root = tmp_path / "data"
    store = datastore.Store(root, max_mb=100)
    rid = store.put_run(runs[0])
    store.pin(rid)
    store._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    (root / "index.sqlite").write_bytes(b"garbage!" * 2000)
    got: list = []
    worker = threading.Thread(target=lambda: got.append(store.runs()))  # a fresh connection
    worker.start()
    worker.join(60)
    assert [i.run_id for i in got[0]] == [rid] and got[0][0].pinned
    assert list(root.glob("index.sqlite.damaged-*"))
    assert store.get_run(rid).config == runs[0].config  # this thread reconnects as well


def test_a_cap_smaller_than_one_run_refuses_in_one_line(tmp_path, runs, capsys, monkeypatch):
    store = datastore.Store(tmp_path / "lib", max_mb=0.001)
    with pytest.raises(datastore.StoreError, match=r"larger than its cap .*not stored"):
        store.put_run(runs[0])
    assert store.runs() == [] and not list((store.root / "objects" / "run").iterdir())
    monkeypatch.setenv(datastore.MAX_MB_ENV, "0.001")
    out = tmp_path / "run.npz"
    folder = tmp_path / "data"
    code, _, err = run_cli(["train", "--store", str(folder), *FLAGS, "--out", str(out)], capsys)
    assert code == 0 and out.exists()  # the training is paid for: its --out is written
    assert "stored as run" not in err and "not stored" in err and str(folder) in err
    assert len([line for line in err.splitlines() if line]) == 1
    assert datastore.Store(folder, max_mb=1).runs() == []


def test_pinned_runs_filling_the_cap_refuse_the_new_one_and_evict_nothing(tmp_path, runs):
    store = datastore.Store(tmp_path / "data", max_mb=100)
    a = store.put_run(runs[0])
    store.pin(a)
    b = store.put_run(runs[1])
    store.max_bytes = store.run_info(a).bytes + store.run_info(b).bytes // 2
    with pytest.raises(datastore.StoreError, match="pinned and shown runs fill its cap"):
        store.put_run(runs[2])
    assert {i.run_id for i in store.runs()} == {a, b}  # nothing evicted for a refused write


# ----------------------------------------------------------------------------- crashes


def test_temporary_files_of_dead_writers_are_removed_at_start(tmp_path, runs):
    store = datastore.Store(tmp_path / "data", max_mb=100)
    folder = store.root / "objects" / "run"
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = folder / f".{'a' * 64}.{dead.pid}.1.tmp"  # what kill -9 mid-write leaves
    live = folder / f".{'b' * 64}.{os.getpid()}.1.tmp"  # a writer still at work
    stale.write_bytes(b"half a run")
    live.write_bytes(b"being written")
    datastore.Store(store.root, max_mb=100)
    assert not stale.exists() and live.exists()


def test_store_naming_a_file_is_one_line(tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(datastore.StoreError, match="is a file, not a folder"):
        datastore.Store(f)
    for args in (["runs", "--store", str(f)], ["train", "--store", str(f), *FLAGS]):
        code, _, err = run_cli(args, capsys)
        assert code == 2 and err.count("\n") == 1 and "not a folder" in err


def test_sqlite_errors_are_one_line_on_the_command_line(tmp_path, capsys):
    root = tmp_path / "data"
    (root / "index.sqlite").mkdir(parents=True)  # cannot be opened at all
    code, _, err = run_cli(["runs", "--store", str(root)], capsys)
    assert code == 2 and err.count("\n") == 1 and str(root) in err and "Traceback" not in err


def test_read_only_folder_reads_and_refuses_writes_in_one_line(tmp_path, runs, capsys):
    src = tmp_path / "data"
    store = datastore.Store(src, max_mb=100)
    rid = store.put_run(runs[0])
    store.pin(rid)
    store._drop_conn()
    for seal in (False, True):  # WAL files present / checkpointed away (a clean shutdown)
        if seal:
            c = sqlite3.connect(src / "index.sqlite")
            c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            c.close()
            for p in src.glob("index.sqlite-*"):
                p.unlink()
        with read_only_view(src, tmp_path / f"ro{seal}") as ro:
            lib = datastore.Store(ro, max_mb=100)
            assert lib.read_only and "read-only" in lib.problem
            assert lib.get_run(rid).config == runs[0].config
            assert [i.run_id for i in lib.runs(pinned=True)] == [rid]
            with pytest.raises(datastore.StoreError, match=f"{ro}.*read-only"):
                lib.put_run(runs[1])
            app = datastore.Store(ro, max_mb=100, strict=False)
            assert app.put_run(runs[1]) is None and "read-only" in app.problem
            code, out, _ = run_cli(["runs", "--store", str(ro)], capsys)
            assert code == 0 and rid in out
            code, _, err = run_cli(
                ["train", "--store", str(ro), *FLAGS, "--out", str(tmp_path / "r.npz")], capsys
            )
            assert code == 2 and err.count("\n") == 1 and "read-only" in err and str(ro) in err
            lib._drop_conn()
            app._drop_conn()


def test_read_only_folder_without_an_index_is_indexed_in_memory(tmp_path, runs):
    src = tmp_path / "data"
    store = datastore.Store(src, max_mb=100)
    rid = store.put_run(runs[0])
    store._drop_conn()
    _drop_index(src)
    with read_only_view(src, tmp_path / "ro") as ro:
        lib = datastore.Store(ro, max_mb=100)
        assert lib.get_run(rid).config == runs[0].config
        lib._drop_conn()
        lib._memory.close()


def test_full_disk_reads_and_fails_writes_in_one_line(tmp_path, runs, capsys):
    with small_disk(tmp_path / "disk") as disk:
        store = datastore.Store(disk / "data", max_mb=100)
        rid = store.put_run(runs[0])
        fill(disk)
        assert store.get_run(rid).config == runs[0].config  # the last-use update is skipped
        with pytest.raises(datastore.StoreError, match=f"{disk / 'data'}.*No space left"):
            store.put_run(runs[1])
        assert not list((disk / "data" / "objects").glob("*/.*.tmp"))  # no debris
        app = datastore.Store(disk / "data", max_mb=100, strict=False)
        assert app.get_run(rid) is not None
        assert app.put_run(runs[1]) is None and "No space left" in app.problem
        out = tmp_path / "run.npz"
        code, _, err = run_cli(
            ["train", "--store", str(disk / "data"), *FLAGS, "--out", str(out)], capsys
        )
        assert code == 0 and out.exists() and "stored as run" not in err
        assert "not stored" in err and "No space left" in err
        store._drop_conn()
        app._drop_conn()


@pytest.mark.parametrize("name", ["a" * 300 + ".npz", "/".join(["a"] * 2100) + ".npz"])
def test_out_too_long_is_one_line(tmp_path, capsys, name):
    code, _, err = run_cli(["train", *FLAGS, "--out", str(tmp_path / name)], capsys)
    assert code == 2 and err.count("\n") == 1 and "too long" in err and len(err) < 300


# ----------------------------------------------------------------------------- the app


@pytest.fixture
def app_folder(monkeypatch):
    def use(folder: Path) -> None:
        monkeypatch.setenv(datastore.DATA_DIR_ENV, str(folder))
        monkeypatch.setenv(datastore.MAX_MB_ENV, "50")
        kept._store_or_error.clear()
        datastore._stores.clear()

    yield use
    kept._store_or_error.clear()
    datastore._stores.clear()


def _home(tmp_path) -> AppTest:
    at = AppTest.from_file(str(ROOT / "landscape/ui/server/lab.py"), default_timeout=120).run()
    assert not at.exception, at.exception
    return at


def test_app_on_a_read_only_folder_lists_runs_with_one_notice(tmp_path, runs, app_folder):
    src = tmp_path / "data"
    store = datastore.Store(src, max_mb=100)
    rid = store.put_run(runs[0])
    store.pin(rid)
    store._drop_conn()
    with read_only_view(src, tmp_path / "ro") as ro:
        app_folder(ro)
        at = _home(tmp_path)
        assert any(rid in t.value for t in at.text)  # the Classroom list still reads
        notices = [w.value for w in at.warning if "read-only" in w.value]
        assert len(notices) == 1 and str(ro) in notices[0]
        at.run()
        assert not at.exception
        assert not [w for w in at.warning if "read-only" in w.value]  # said once
        datastore._stores.clear()
        kept._store_or_error.clear()


def test_app_with_an_index_that_cannot_open_keeps_working(tmp_path, app_folder):
    folder = tmp_path / "data"
    (folder / "index.sqlite").mkdir(parents=True)
    app_folder(folder)
    at = _home(tmp_path)
    assert [w.value for w in at.warning if "in memory only" in w.value]
    at.run()
    assert not at.exception and not [w for w in at.warning if "in memory only" in w.value]


def test_kill_9_mid_write_leaves_nothing_behind(tmp_path):
    import multiprocessing as mp
    import signal
    import time

    from tests.store_jobs import write_and_hang

    root = tmp_path / "data"
    datastore.Store(root, max_mb=100)
    proc = mp.get_context("spawn").Process(target=write_and_hang, args=(str(root),))
    proc.start()
    deadline = time.monotonic() + 120
    while not list((root / "objects").glob("*/.*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list((root / "objects").glob("*/.*.tmp")), "the writer never got to its write"
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(30)
    again = datastore.Store(root, max_mb=100)
    assert not list((root / "objects").glob("*/.*.tmp"))
    assert again.usage()["entries"] == 0
    assert again.get_object("comparison", datastore.object_key("killed")) is None


def test_out_in_a_read_only_folder_is_refused_before_work(tmp_path, capsys):
    """As root, chmod does not stop a write: a read-only mount does (test_cli skips as root)."""
    src = tmp_path / "src"
    src.mkdir()
    with read_only_view(src, tmp_path / "ro") as ro:
        code, _, err = run_cli(["train", *FLAGS, "--out", str(ro / "run.npz")], capsys)
        assert code == 2 and err.count("\n") == 1 and "not writable" in err
