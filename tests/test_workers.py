"""Heavy jobs in worker processes (landscape.ui.workers): the same results as in-process, live
callbacks in the caller's thread, bounded concurrency, cancellation, crashes contained,
uploaded data carried along, and the server's own state untouched."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
import torch
import worker_jobs as jobs
from markdown_text import shown
from streamlit.testing.v1 import AppTest

from landscape.data import upload
from landscape.data.config import Config
from landscape.pipelines import pictures
from landscape.training import loop as training
from landscape.ui import common, workers
from landscape.ui import runs as ui_runs

SMALL = dict(n_samples=200, epochs=5, width=8)


@pytest.fixture(scope="module")
def pool():
    p = workers.Pool(size=2).start()
    yield p
    p.shutdown()


def _wait_idle(pool, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while pool.busy() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pool.busy() == 0


def test_training_in_a_worker_equals_training_here(pool):
    cfg = Config(**SMALL)
    seen, threads = [], set()

    def progress(info):
        seen.append(info["epoch"])
        threads.add(threading.get_ident())

    run = pool.call(training.train, cfg, callbacks={"progress": progress})
    here = training.train(cfg)
    assert np.array_equal(run.trajectory, here.trajectory)
    assert run.history == here.history
    for k, v in here.state_dict.items():
        assert torch.equal(run.state_dict[k], v)
    assert seen == list(range(1, cfg.epochs + 1))  # every epoch, in order
    assert threads == {threading.get_ident()}  # callbacks ran in the calling thread


def test_surface_in_a_worker_equals_surface_here(pool):
    run = training.train(Config(**SMALL))
    # one method in both processes: "auto" races the two and may pick either, whose sums
    # differ in the last bit
    req = pictures.SurfaceRequest.for_run(run, dim=2, nx=7, ny=5, method="loop")
    fracs, previews = [], []
    far = pool.call(
        pictures.compute,
        req,
        run,
        None,
        callbacks={"progress": lambda f, text: fracs.append(f), "preview": previews.append},
    )
    near = pictures.compute(req, run)
    np.testing.assert_array_equal(far.main.loss, near.main.loss)
    assert fracs and fracs[-1] == 1.0 and fracs == sorted(fracs)


def test_results_do_not_live_in_shared_memory(pool):
    t = pool.call(jobs.tensor_result)
    assert torch.equal(t, torch.arange(6.0))
    assert not t.is_shared()  # plain pickle, not torch's shared-memory reducers


def test_workers_are_niced_and_thread_bounded(pool):
    got = pool.call(jobs.info)
    assert got["pid"] != os.getpid() and got["pid"] in pool.pids()
    assert got["nice"] == min(os.nice(0) + workers.NICE, 19)
    assert got["threads"] == pool.threads <= (os.cpu_count() or 1)


def test_errors_come_back_with_their_type_and_message(pool):
    with pytest.raises(ValueError, match="lr=-1.0 is out of range"):
        pool.call(Config, lr=-1)
    with pytest.raises(ValueError, match="plain message"):
        pool.call(jobs.fail_value, "plain message")
    with pytest.raises(RuntimeError, match="first and second"):  # not rebuildable: message kept
        pool.call(jobs.fail_unpicklable)
    with pytest.raises(RuntimeError, match="could not be sent back"):
        pool.call(jobs.unpicklable_result)
    assert pool.call(jobs.identity, 42) == 42  # the worker still serves


def test_at_most_size_jobs_run_at_once_and_the_rest_wait(pool, tmp_path):
    log = tmp_path / "log.txt"
    waited = []
    results = {}

    def go(tag):
        results[tag] = pool.call(
            jobs.timed_sleep, 0.8, str(log), tag, on_wait=lambda ahead: waited.append(tag)
        )

    threads = [threading.Thread(target=go, args=(f"j{i}",)) for i in range(pool.size + 1)]
    for t in threads:
        t.start()
        time.sleep(0.1)  # a definite order: the last one finds every worker busy
    for t in threads:
        t.join(60)
    assert sorted(results.values()) == sorted(results)  # every job ran and answered
    running, peak = 0, 0
    for line in log.read_text().splitlines():
        running += 1 if line.startswith("start") else -1
        peak = max(peak, running)
    assert peak == pool.size
    assert waited == [f"j{pool.size}"]  # told once that it was queued


def test_a_caller_that_stops_waiting_cancels_the_job(pool, tmp_path):
    log = tmp_path / "ticks.txt"

    class PageGone(Exception):
        pass

    def progress(i):
        if i == 3:
            raise PageGone()  # what Streamlit does when the user leaves mid-job

    with pytest.raises(PageGone):
        pool.call(jobs.ticks, 400, str(log), callbacks={"progress": progress})
    _wait_idle(pool)
    assert len(log.read_text().split()) < 400  # it stopped early (400 ticks take 20 s)
    assert pool.call(jobs.identity, "next") == "next"


def test_a_dying_worker_is_replaced_and_others_unaffected(pool):
    before = set(pool.pids())
    with pytest.raises(workers.WorkerDied, match="stopped unexpectedly"):
        pool.call(jobs.die)
    assert pool.call(jobs.identity, 7) == 7
    after = set(pool.pids())
    assert len(after) == pool.size and after != before


def test_uploaded_data_travels_to_the_worker(pool):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    csv = "a,b,c,label\n" + "\n".join(f"{a},{b},{c},{t}" for (a, b, c), t in zip(X, y))
    name = upload.register(upload.parse_csv(csv.encode(), target="label"))
    cfg = Config(dataset=name, n_samples=120, epochs=3, width=8)
    far = pool.call(training.train, cfg)
    assert np.array_equal(far.trajectory, training.train(cfg).trajectory)


def test_inline_pool_has_the_same_interface(tmp_path):
    p = workers.InlinePool(size=1)
    seen = []
    run = p.call(training.train, Config(**SMALL), callbacks={"progress": seen.append})
    assert len(seen) == SMALL["epochs"] and run.history["epoch"][-1] == SMALL["epochs"]
    with pytest.raises(ValueError, match="plain"):
        p.call(jobs.fail_value, "plain")
    log, waited = tmp_path / "log.txt", []
    t = threading.Thread(target=p.call, args=(jobs.timed_sleep, 0.5, str(log), "a"))
    t.start()
    time.sleep(0.1)
    p.call(jobs.timed_sleep, 0.0, str(log), "b", on_wait=waited.append)
    t.join()
    assert log.read_text().split() == ["start", "a", "end", "a", "start", "b", "end", "b"]
    assert waited == [0]  # no one else was waiting


def test_queued_calls_know_their_place_and_start_in_arrival_order(tmp_path):
    """Issue 25: a queued job shows its place ("2 jobs ahead of yours"), and the note leaves
    when the job starts (on_start, before the job's first line), not when it ends."""
    p = workers.Pool(size=1).start()
    log, go = tmp_path / "log.txt", tmp_path / "go"
    places: dict[str, list[int]] = {}
    try:
        holder = threading.Thread(target=p.call, args=(jobs.wait_for_file, str(go)))
        holder.start()
        _until(lambda: p.busy() == 1)
        threads = []
        for k, tag in enumerate("abc"):
            places[tag] = []

            def queued(tag=tag):
                p.call(jobs.logged_wait, str(tmp_path / f"go_{tag}"), str(log), tag,
                       on_wait=places[tag].append,
                       on_start=lambda: log.open("a").write(f"on_start {tag}\n"))  # fmt: skip

            threads.append(threading.Thread(target=queued))
            threads[-1].start()
            _until(lambda k=k: p.waiting() == k + 1)  # a definite arrival order
        _until(lambda: places == {"a": [0], "b": [1], "c": [2]})
        # each job holds the worker until its file appears, so every place is seen for certain
        go.touch()
        _until(lambda: places["c"] == [2, 1])  # a runs: b is next, c has one ahead
        (tmp_path / "go_a").touch()
        _until(lambda: places["c"] == [2, 1, 0])  # b runs: c is next
        (tmp_path / "go_b").touch()
        (tmp_path / "go_c").touch()
        for t in (holder, *threads):
            t.join(60)
        assert places == {"a": [0], "b": [1, 0], "c": [2, 1, 0]}
        lines = log.read_text().split("\n")[:-1]
        assert lines == [f"{w} {t}" for t in "abc" for w in ("on_start", "start", "end")]
        assert p.waiting() == 0 and p.busy() == 0
    finally:
        p.shutdown()


def _until(cond, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_the_queued_note_names_the_place():
    assert "training is queued (2 jobs ahead of yours)" in common.queued_note("training", 2)
    assert "(1 job ahead of yours)" in common.queued_note("training", 1)
    assert "(yours is next)" in common.queued_note("training", 0)


def test_shutdown_stops_the_workers():
    p = workers.Pool(size=1).start()
    assert p.call(jobs.identity, 1) == 1
    (pid,) = p.pids()
    p.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        p.call(jobs.identity, 1)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


# ----------------------------------------------------------------------------- the app's side


def test_run_cache_key_locks_do_not_accumulate():
    cache = ui_runs.RunCache()
    for seed in range(5):
        with cache.key_lock(Config(seed=seed)):
            assert cache.n_key_locks() == 1
    assert cache.n_key_locks() == 0


def _fill_run_list(n: int, floats: int = 1):
    import numpy as np

    from landscape.data.config import Config
    from landscape.training.loop import Run
    from landscape.ui import runs as ui_runs

    for seed in range(n):
        traj = np.zeros((1, floats), np.float32)
        ui_runs.add_run(Run(Config(seed=seed), {}, [], traj, {}, name=f"r{seed}"))
    ui_runs.dropped_note()


def test_session_run_list_is_capped_with_a_note():
    n = ui_runs.MAX_SESSION_RUNS + 3
    at = AppTest.from_function(_fill_run_list, args=(n,)).run()
    assert not at.exception
    names = list(at.session_state["landscape_runs"])
    assert names == [f"r{s}" for s in range(3, n)]  # the newest kept, the oldest 3 dropped
    assert "r0, r1, r2" in shown(at.info[0].value)


def test_session_run_list_is_capped_in_bytes_too():
    mb = 35  # per run: four fit under MAX_SESSION_MB, a fifth would not
    assert 4 * mb <= ui_runs.MAX_SESSION_MB < 5 * mb
    at = AppTest.from_function(_fill_run_list, args=(6, mb * 250_000)).run()
    assert not at.exception
    assert list(at.session_state["landscape_runs"]) == ["r2", "r3", "r4", "r5"]
    assert "r0, r1" in shown(at.info[0].value)
