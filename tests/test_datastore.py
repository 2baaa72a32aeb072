"""The data folder (landscape.storage.datastore): round trips, content addressing, LRU eviction under
the cap (pins and leases kept), concurrent writers from several processes, damaged files.
Every test uses its own temporary folder (never the real home)."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch

from landscape.data.config import Config
from landscape.pipelines import pictures
from landscape.storage import codec, datastore
from landscape.training import loop as training
from tests.store_jobs import TINY, train_once, write_many


@pytest.fixture
def store(tmp_path):
    return datastore.Store(tmp_path / "data", max_mb=100)


@pytest.fixture(scope="module")
def runs():
    return [training.train(Config(seed=s, **TINY)) for s in range(4)]


POOL_TIMEOUT_S = 300  # the spawned jobs take seconds; a dead child would wait forever


def _same_run(a, b):
    assert a.config == b.config and a.name == b.name and a.history == b.history
    assert np.array_equal(a.trajectory, b.trajectory)
    assert list(a.state_dict) == list(b.state_dict)
    for k in a.state_dict:
        assert torch.equal(a.state_dict[k], b.state_dict[k])


def test_run_round_trip_and_ids(store, runs):
    rid = store.put_run(runs[0], owner="abcdef0123")
    assert rid == datastore.run_id(runs[0].config) and len(rid) == datastore.RUN_ID_LEN
    _same_run(store.get_run(rid), runs[0])
    _same_run(store.find_run(Config(seed=0, **TINY)), runs[0])  # an equal config, same run
    assert store.find_run(Config(seed=9, **TINY)) is None
    assert [i.run_id for i in store.runs(owner="abcdef0123")] == [rid]
    assert store.runs(owner="0123456789") == []


def test_ids_are_content_addresses():
    a, b = Config(lr=0.1), Config(lr=0.1, loss_params={"label_smoothing": 0.0})
    assert datastore.run_id(a) == datastore.run_id(b)  # equal configs (defaults filled in)
    assert datastore.run_id(a) != datastore.run_id(Config(lr=0.2))
    with pytest.raises(ValueError, match="run="):
        datastore.check_run_id("../../etc")


def test_train_stored_trains_a_config_once(store, tmp_path):
    marker = tmp_path / "trained"
    from tests.store_jobs import counting_train

    train = counting_train(str(marker))
    a = datastore.train_stored(Config(**TINY), store=store, train=train)
    b = datastore.train_stored(Config(**TINY), store=store, train=train)
    _same_run(a, b)
    assert marker.read_text().count("\n") == 1


@pytest.mark.slow
def test_same_config_from_several_processes_is_trained_once(tmp_path):
    root, marker = str(tmp_path / "data"), str(tmp_path / "trained")
    with mp.get_context("spawn").Pool(3) as pool:
        # a child that dies is replaced and its task never answers: fail, never hang the suite
        ids = pool.starmap_async(train_once, [(root, marker, 7)] * 3).get(timeout=POOL_TIMEOUT_S)
    assert len(set(ids)) == 1
    assert Path(marker).read_text().count("\n") == 1  # one process trained; two read its run


@pytest.mark.slow
def test_concurrent_writers(tmp_path):
    root = str(tmp_path / "data")
    with mp.get_context("spawn").Pool(4) as pool:
        keys = pool.starmap_async(write_many, [(root, t, 15) for t in range(4)]).get(
            timeout=POOL_TIMEOUT_S
        )
    store = datastore.Store(root, max_mb=100)
    assert store.usage()["entries"] == 60
    for t, ks in enumerate(keys):
        for i, k in enumerate(ks):
            got = store.get_object("comparison", k)
            assert got["tag"] == t and np.array_equal(got["a"], np.arange(50.0) * i)
    with sqlite3.connect(store.index_path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def _expected_victims(sizes: dict, used_order: list, cap: int, protected: set) -> list:
    """Plain reference: walk least recently used first, dropping until under the cap."""
    total, out = sum(sizes.values()), []
    for rid in used_order:
        if total <= cap:
            break
        if rid not in protected:
            out.append(rid)
            total -= sizes[rid]
    return out


def test_lru_eviction_keeps_pinned_and_leased(tmp_path, runs):
    store = datastore.Store(tmp_path / "data", max_mb=100)
    ids = [store.put_run(r) for r in runs]
    sizes = {i.run_id: i.bytes for i in store.runs()}
    store.get_run(ids[0])  # 0 is now the most recently used
    store.pin(ids[1])
    store.lease(ids[2], "session-a")
    order = [ids[1], ids[2], ids[3], ids[0]]  # least recently used first
    cap = sizes[ids[1]] + sizes[ids[2]] + 10  # room for two runs only
    store.max_bytes = cap
    dropped = [k for kind, k in store.evict() if kind == "run"]
    expected = _expected_victims(sizes, order, cap, {ids[1], ids[2]})
    assert [
        datastore.run_key(r.config)[: datastore.RUN_ID_LEN]
        for r in runs
        if datastore.run_key(r.config) in dropped
    ] != []
    assert sorted(k[: datastore.RUN_ID_LEN] for k in dropped) == sorted(expected)
    left = {i.run_id for i in store.runs()}
    assert left == set(ids) - set(expected) and {ids[1], ids[2]} <= left
    assert store.usage()["bytes"] <= cap
    for rid in expected:  # the files went too
        assert not list(
            (store.root / "objects" / "run").glob(
                datastore.run_key(runs[ids.index(rid)].config) + "*"
            )
        )


def test_results_go_with_their_run_and_stay_with_a_pinned_one(store, runs):
    a, b = store.put_run(runs[0]), store.put_run(runs[1])
    store.put_object("landscape", datastore.object_key("a"), {"x": np.zeros(10)}, rid=a)
    store.put_object("landscape", datastore.object_key("b"), {"x": np.zeros(10)}, rid=b)
    store.pin(b)
    store.max_bytes = 1
    store.evict()
    assert store.get_object("landscape", datastore.object_key("a")) is None
    assert store.get_object("landscape", datastore.object_key("b")) is not None
    assert store.get_run(b) is not None and store.get_run(a) is None


def test_damaged_run_file_is_dropped_with_a_note(store, runs):
    rid = store.put_run(runs[0])
    path = store.root / "objects" / "run" / f"{datastore.run_key(runs[0].config)}.npz"
    path.write_bytes(path.read_bytes()[:200])  # truncated
    notes: list[str] = []
    assert store.get_run(rid, notes) is None
    assert len(notes) == 1 and rid in notes[0] and "damaged" in notes[0]
    assert not path.exists() and not store.has_run(rid)
    assert store.get_run(rid, notes) is None and len(notes) == 1  # now simply unknown


def test_damaged_result_and_hostile_skeleton(store):
    key = datastore.object_key("x")
    store.put_object("landscape", key, [1, 2.5, "a"])
    path = store.root / "objects" / "landscape" / f"{key}.npz"
    # a well-formed .npz naming a class outside the allow-list must not build it
    import io
    import json

    buf = io.BytesIO()
    sk = {"format": codec.FORMAT, "root": {"dc": "os:system", "v": {"command": "true"}}}
    np.savez(buf, skeleton=np.frombuffer(json.dumps(sk).encode(), np.uint8))
    path.write_bytes(buf.getvalue())
    notes: list[str] = []
    assert store.get_object("landscape", key, notes) is None
    assert "damaged" in notes[0] and not path.exists()


def test_damaged_index_is_set_aside_and_runs_reindexed(tmp_path, runs):
    root = tmp_path / "data"
    store = datastore.Store(root, max_mb=100)
    rid = store.put_run(runs[0])
    store._local.conn.close()
    del store
    for suffix in ("-wal", "-shm"):
        (root / f"index.sqlite{suffix}").unlink(missing_ok=True)
    (root / "index.sqlite").write_bytes(b"not a database at all" * 100)
    again = datastore.Store(root, max_mb=100)
    _same_run(again.get_run(rid), runs[0])
    assert list(root.glob("index.sqlite.damaged-*"))


def test_landscape_result_round_trip(runs):
    run = runs[0]
    req = pictures.SurfaceRequest.for_run(run, dim=2, direction="random", nx=5, ny=4)
    res = pictures.compute(req, run)
    back = codec.from_bytes(codec.to_bytes(res))
    assert back.request == req
    assert list(back.surfaces) == list(res.surfaces)
    for k in res.surfaces:
        assert np.array_equal(back.surfaces[k].loss, res.surfaces[k].loss, equal_nan=True)
        assert back.surfaces[k].meta == res.surfaces[k].meta
    for d0, d1 in zip(res.directions, back.directions):
        assert all(torch.equal(d0[k], d1[k]) for k in d0)
    assert back.cosine == res.cosine and back.notes == res.notes


def test_bad_cap_from_env(monkeypatch):
    for bad in ("lots", "-5", "0", "nan"):
        monkeypatch.setenv(datastore.MAX_MB_ENV, bad)
        with pytest.raises(ValueError, match=datastore.MAX_MB_ENV):
            datastore.max_mb_from_env()
    monkeypatch.setenv(datastore.MAX_MB_ENV, "12.5")
    assert datastore.max_mb_from_env() == 12.5
