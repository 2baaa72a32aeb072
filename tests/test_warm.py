"""Presets computed ahead in the background (issue 25): every preset's default run, default
landscape and Compare comparison lands in the data folder under the key its page looks up
first, a stored one is not computed again, a page then serves it without a worker job, and
the process runs at the lowest priority."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from landscape.data.config import Config
from landscape.engine.subject import fingerprint
from landscape.pipelines import comparison_presets, pictures, presets
from landscape.pipelines.comparisons import Comparison, Settings
from landscape.storage import datastore
from landscape.training import loop as training
from landscape.ui import compare as ui_compare
from landscape.ui import kept, warm, workers
from landscape.ui import landscape_page as ui_landscape
from landscape.ui import runs as ui_runs

ROOT = Path(__file__).resolve().parents[1]
PAGES = ROOT / "landscape/ui/server/app_pages"
TINY = Config(n_samples=100, epochs=2, width=4)


def test_every_preset_and_every_compare_run_is_warmed():
    todo = warm.configs()
    assert len(todo) == len(set(todo))
    for name in presets.PRESETS:
        assert presets.get(name) in todo
    for preset in comparison_presets.PRESETS.values():
        assert all(panel.config in todo for panel in preset.panels)


def test_warm_trains_what_is_missing_once_and_keeps_it(tmp_path):
    store = datastore.Store(tmp_path / "data", max_mb=50)
    a, b = TINY, TINY.replace(seed=1)
    store.put_run(training.train(a))  # already stored: not trained again
    trained: list[Config] = []

    def train(config, progress=None):
        trained.append(config)
        return training.train(config, progress)

    assert warm.warm(store, [a, b], train=train) == [b]
    assert trained == [b]
    assert fingerprint(store.find_run(b)) == fingerprint(training.train(b))  # the same run
    assert warm.warm(store, [a, b], train=train) == [] and trained == [b]
    assert warm.warm(store, [TINY.replace(seed=2)], alive=lambda: False) == []  # server gone
    answers = iter([True, False])  # gone while it trains: stopped at the next epoch
    with pytest.raises(warm.ServerGone):
        warm.warm(store, [TINY.replace(seed=3)], alive=lambda: next(answers))
    assert store.find_run(TINY.replace(seed=3)) is None


def test_the_warm_up_process_runs_at_the_lowest_priority(tmp_path, monkeypatch):
    monkeypatch.setenv(warm.ENV, "0")
    assert warm.start() is None  # switched off
    monkeypatch.setenv(warm.ENV, "1")
    monkeypatch.setenv(datastore.DATA_DIR_ENV, str(tmp_path / "data"))
    proc = warm.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                nice = os.getpriority(os.PRIO_PROCESS, proc.pid)
                break
            except ProcessLookupError:
                time.sleep(0.05)
        assert nice == min(os.getpriority(os.PRIO_PROCESS, 0) + warm.NICE, 19)
    finally:
        warm.stop(proc)
    assert proc.poll() is not None


# ----------------------------------------------------------------------------- landscapes


def page_default(run) -> pictures.SurfaceRequest:
    """The Landscape page's form untouched, field by field as its widgets start (written out
    here, not taken from the library, so a drift of either side fails)."""
    return pictures.SurfaceRequest.for_run(
        run, dim=2, direction="random", seed=0, orthogonal=False, norm="filter",
        ignore="biasbn", xmin=-1.0, xmax=1.0, ymin=-1.0, ymax=1.0, nx=41, ny=41, split="train",
    )  # fmt: skip


def test_warm_keeps_each_default_landscape_under_the_pages_key(tmp_path):
    store = datastore.Store(tmp_path / "data", max_mb=50)
    a, b = TINY, TINY.replace(seed=1)
    assert warm.warm(store, [a]) == [a]
    assert warm.landscapes(store, [a, b]) == [a]  # b's run is not stored: nothing to slice
    run = store.find_run(a)
    request = page_default(run)
    assert pictures.default_request(run) == request
    page_key = datastore.object_key("landscape", dataclasses.asdict(request))  # the page's key
    assert pictures.store_key(request) == page_key
    found = store.get_object("landscape", page_key)
    assert found is not None and found.request == request
    direct = pictures.compute(request, run)  # the page's computation, called directly
    assert found.surfaces.keys() == direct.surfaces.keys()
    for key, surface in direct.surfaces.items():  # to float32 rounding (batching may differ)
        np.testing.assert_allclose(found.surfaces[key].loss, surface.loss, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(found.surfaces[key].accuracy, surface.accuracy, atol=1e-9)
    assert warm.landscapes(store, [a]) == []  # kept: not computed again
    # tied to its run: the run's deletion takes it along
    store.delete_run(datastore.run_id(a))
    assert store.get_object("landscape", pictures.store_key(request)) is None


def test_a_result_stored_meanwhile_wins(tmp_path):
    store = datastore.Store(tmp_path / "data", max_mb=50)
    key = datastore.object_key("test", 1)
    theirs, mine = {"who": np.array([1.0])}, {"who": np.array([2.0])}

    def compute():  # a user's job keeps its result while this one computes
        store.put_object("comparison", key, theirs)
        return mine

    got = datastore.stored_or_computed(store, "comparison", key, compute, accept=lambda f: True)
    assert got["who"][0] == 1.0
    assert store.get_object("comparison", key)["who"][0] == 1.0
    calls = []
    again = datastore.stored_or_computed(
        store, "comparison", key, lambda: calls.append(1), accept=lambda f: True
    )
    assert again["who"][0] == 1.0 and calls == []  # stored: nothing computed
    rejected = datastore.stored_or_computed(
        store, "comparison", key, lambda: mine, accept=lambda f: False
    )
    assert rejected is mine  # a stored object of the wrong type is not served


@pytest.fixture
def own_folder(tmp_path, monkeypatch):
    """An empty data folder as the app's store, no heavy job allowed: every call that
    would hand work to the worker pool is recorded and refused."""
    monkeypatch.setenv(datastore.DATA_DIR_ENV, str(tmp_path / "data"))
    kept._store_or_error.clear()
    ui_landscape.clear()
    ui_compare.clear()
    ui_runs.run_cache().clear()
    submitted: list = []

    def refuse(self, fn, *args, **kwargs):
        submitted.append(getattr(fn, "__name__", fn))
        raise RuntimeError("a job was sent to the worker pool")

    monkeypatch.setattr(workers.Pool, "call", refuse)
    threads = torch.get_num_threads()
    yield submitted
    torch.set_num_threads(threads)  # warm.main sets one thread, as its process does
    kept._store_or_error.clear()
    ui_runs.run_cache().clear()


def test_a_preset_opened_after_warm_up_is_served_without_a_worker(own_folder, monkeypatch):
    """The server's warm-up (warm.main, as its process runs it), then a first visitor: picks
    the preset, trains it, presses Compute with the form's defaults. Neither click sends a
    job to the worker pool, and the picture is the stored one."""
    name = "Tiny test preset"
    monkeypatch.setattr(presets, "PRESETS", {name: (TINY, "a tiny net for the test")})
    monkeypatch.setattr(comparison_presets, "PRESETS", {})
    assert warm.main([str(os.getppid())]) == 0
    assert own_folder == []
    at = AppTest.from_file(str(PAGES / "loss_landscape.py"), default_timeout=120)
    at.run()
    at.selectbox(key="lp_preset").set_value(name)
    at.button(key="lp_train_preset").click().run()
    assert not at.exception and not at.error, (at.exception, at.error)
    at.button(key="lp_go").click().run()
    assert not at.exception and not at.error, (at.exception, at.error)
    assert own_folder == []  # nothing was queued for a worker
    assert at.get("plotly_chart")  # the picture is drawn
    run = kept.store().find_run(TINY)
    stored = kept.store().get_object("landscape", pictures.store_key(page_default(run)))
    shown = at.session_state["lp_result"]
    assert shown.request == page_default(run)
    np.testing.assert_array_equal(shown.main.loss, stored.main.loss)
    assert shown.seconds == stored.seconds  # the very result the warm-up kept


@pytest.mark.slow
def test_a_compare_preset_after_warm_up_is_served_without_a_worker(own_folder, monkeypatch):
    """The Compare page's preset button with its default settings, after warm-up (scaled down
    for speed): the comparison comes from the data folder; no worker job, no training."""
    monkeypatch.setenv(comparison_presets.SCALE_ENV, "0.2")
    store = kept.store()
    assert warm.comparisons(store, ["norm"]) == ["norm"]
    assert warm.comparisons(store, ["norm"]) == []  # kept: not measured again
    key = comparison_presets.store_key("norm", 0.2, Settings())
    assert isinstance(store.get_object("comparison", key), Comparison)
    at = AppTest.from_file(str(PAGES / "compare.py"), default_timeout=120)
    at.run()
    at.button(key="cmp_preset_norm").click().run()
    assert not at.exception and not at.error, (at.exception, at.error)
    assert own_folder == []
    assert at.get("plotly_chart")
