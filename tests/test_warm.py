"""Presets trained ahead in the background (issue 25): every preset's default run lands in the
data folder, a stored run is not trained again, and the process runs at the lowest priority."""

from __future__ import annotations

import os
import time

from landscape.data.config import Config
from landscape.engine.subject import fingerprint
from landscape.pipelines import comparison_presets, presets
from landscape.storage import datastore
from landscape.training import loop as training
from landscape.ui import warm

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

    def train(config):
        trained.append(config)
        return training.train(config)

    assert warm.warm(store, [a, b], train=train) == [b]
    assert trained == [b]
    assert fingerprint(store.find_run(b)) == fingerprint(training.train(b))  # the same run
    assert warm.warm(store, [a, b], train=train) == [] and trained == [b]
    assert warm.warm(store, [TINY.replace(seed=2)], alive=lambda: False) == []  # server gone


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
