"""Resource caps that keep one user from starving the others (issue 7).

Each cap is checked where it lives (the library refuses, with a message naming the field, the
value and the allowed range) and where a user meets it (the page's widget cannot go past it,
and can reach it). Also: heavy jobs are bounded in number, torch threads are bounded, the
shared caches are bounded.

Beyond the per-field caps, a run is capped as a whole: model size in parameters (the width
and depth caps alone would allow a 2.4M-parameter CNN whose 500-epoch trajectory is 4.8 GB),
trajectory memory, and total optimiser steps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from landscape.data import datasets as data
from landscape.data import models, upload
from landscape.data.config import Config
from landscape.engine import surface
from landscape.pipelines import pictures
from landscape.training import loop as training
from landscape.ui import common
from landscape.ui import runs as ui_runs

ROOT = Path(__file__).resolve().parents[1]


def refused(fn, *words) -> str:
    with pytest.raises(ValueError) as e:
        fn()
    msg = str(e.value)
    for w in words:
        assert w in msg, msg
    return msg


# ----------------------------------------------------------------------------- the library


@pytest.mark.parametrize(
    "field,value,allowed",
    [
        ("epochs", training.MAX_EPOCHS + 1, f"[1, {training.MAX_EPOCHS}]"),
        ("epochs", 0, f"[1, {training.MAX_EPOCHS}]"),
        ("n_samples", data.MAX_SAMPLES + 1, f"[{data.MIN_SAMPLES}, {data.MAX_SAMPLES}]"),
        ("width", training.MAX_WIDTH + 1, f"[2, {training.MAX_WIDTH}]"),
        ("depth", training.MAX_DEPTH + 1, f"[1, {training.MAX_DEPTH}]"),
        ("batch_size", training.MAX_BATCH + 1, f"[1, {training.MAX_BATCH}]"),
        ("lr", 1e7, "(0.0, 1000000.0]"),
    ],
)
def test_config_caps_name_field_value_and_range(field, value, allowed):
    refused(lambda: Config(**{field: value}), f"{field}={value!r}", allowed)


def test_config_caps_are_reachable():
    """The caps are limits, not traps: each largest value is accepted on its own, and the
    budget caps (parameters, trajectory, steps) admit the sizes the page offers together."""
    for field, top in [
        ("epochs", training.MAX_EPOCHS),
        ("n_samples", data.MAX_SAMPLES),
        ("width", training.MAX_WIDTH),
        ("depth", training.MAX_DEPTH),
        ("batch_size", training.MAX_BATCH),
    ]:
        assert getattr(Config(**{field: top}), field) == top
    c = Config(n_samples=data.MAX_SAMPLES, width=training.MAX_WIDTH, batch_size=256, epochs=100)
    assert training.estimate_params(c) <= training.MAX_PARAMS


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(dataset="digits", model="cnn", width=64, n_samples=1797, epochs=50),
        dict(dataset="digits", model="rescnn", width=16, depth=3, skip=False, batchnorm=True),
        dict(dataset="wine", model="resmlp", width=40, depth=3, activation="gelu"),
        dict(dataset="outliers", model="linear", loss="huber", outliers=5),
        dict(dataset="spiral3", depth=4),
    ],
)
def test_parameter_estimate_equals_the_built_model(kw):
    """The budget check counts parameters on the meta device; the real model must agree."""
    c = Config(**kw)
    assert training.estimate_params(c) == models.count_params(models.build(c, c.make_dataset()))


def test_dataset_cap_in_make():
    refused(lambda: data.make("moons", n_samples=data.MAX_SAMPLES + 1), "n_samples=5001")


def test_upload_caps():
    big = b"a,b\n" + b"1,0\n" * (upload.MAX_ROWS + 1)
    refused(lambda: upload.parse_csv(big), f"cap is {upload.MAX_ROWS} rows")
    refused(lambda: upload.parse_csv(b"a,b\n" + b"1,0\n" * 20, max_bytes=10), "cap is 10 bytes")
    assert upload.MAX_ROWS <= data.MAX_SAMPLES  # an upload is never bigger than a built-in set


def test_grid_caps_in_the_request():
    run = training.train(Config(n_samples=100, epochs=1, width=4))
    for field in ("nx", "ny"):
        refused(
            lambda f=field: pictures.SurfaceRequest.for_run(run, **{f: pictures.MAX_RES + 1}),
            f"{field}={pictures.MAX_RES + 1}",
            str(pictures.MAX_RES),
        )
    refused(lambda: pictures.SurfaceRequest.for_run(run, xmin=-1e5), "xmin=-100000.0", "10000")
    refused(lambda: pictures.SurfaceRequest.for_run(run, dim=1, n_lines=6), "n_lines=6")
    ok = pictures.SurfaceRequest.for_run(run, nx=pictures.MAX_RES, ny=pictures.MAX_RES)
    assert ok.n_points == pictures.MAX_RES**2


def test_grid_caps_in_the_engine():
    model = torch.nn.Linear(2, 1)
    X, y = torch.zeros(4, 2), torch.zeros(4)
    d = {k: torch.ones_like(v) for k, v in model.named_parameters()}
    mse = torch.nn.functional.mse_loss
    refused(
        lambda: surface.line(model, mse, (X, y), d, np.linspace(0, 1, surface.MAX_AXIS + 1)),
        "ts",
        str(surface.MAX_AXIS),
    )
    side = np.linspace(-1, 1, 202)  # 202 x 202 > 201 x 201
    refused(lambda: surface.plane(model, mse, (X, y), d, d, side, side), "grid", "too large")


# ----------------------------------------------------------------------------- the pages


def widget(at, kind, key):
    return next(w for w in getattr(at, kind) if w.key == key)


def test_train_page_widgets_stop_at_the_library_caps():
    at = AppTest.from_file(
        str(ROOT / "landscape/ui/server/app_pages" / "train.py"), default_timeout=60
    )
    at.run()
    assert not at.exception
    assert widget(at, "slider", "tr_epochs").max == training.MAX_EPOCHS
    assert widget(at, "slider", "tr_n_moons").max == data.MAX_SAMPLES
    assert widget(at, "slider", "tr_depth_mlp").max == training.MAX_DEPTH
    assert widget(at, "select_slider", "tr_width_mlp").options[-1] == str(training.MAX_WIDTH)
    assert widget(at, "select_slider", "tr_batch").options[-1] == str(training.MAX_BATCH)
    assert widget(at, "select_slider", "tr_lr").options[-1] == f"{training.MAX_LR:g}"


def test_landscape_page_grid_stops_at_the_cap():
    run = training.train(Config(n_samples=100, epochs=1, width=4))
    at = AppTest.from_file(
        str(ROOT / "landscape/ui/server/app_pages" / "loss_landscape.py"), default_timeout=60
    )
    at.session_state[ui_runs._SESSION_KEY] = {run.name: run}
    at.run()
    assert not at.exception
    assert widget(at, "slider", "lp_nx2").max == pictures.MAX_RES
    assert widget(at, "slider", "lp_ny2").max == pictures.MAX_RES
    assert pictures.MAX_RES**2 <= surface.MAX_POINTS


# ----------------------------------------------------------------------------- shared server


def test_heavy_jobs_are_bounded():
    """The app's heavy jobs go to one shared pool of MAX_HEAVY_JOBS worker processes (the
    bound itself, queueing and the note are tested in tests/test_workers.py)."""
    from landscape.ui import workers

    pool = workers.shared_pool()
    assert pool is workers.shared_pool()
    assert pool.size == common.MAX_HEAVY_JOBS
    if isinstance(pool, workers.Pool):
        assert pool.threads * pool.size <= max(common.MAX_THREADS, pool.size)


def test_torch_threads_are_bounded():
    """Light work in a script thread gets one thread, at most MAX_THREADS (<= the cores)."""
    import os

    before = torch.get_num_threads()
    try:
        assert 1 <= common.MAX_THREADS <= (os.cpu_count() or 1)
        common.torch_threads(64)
        assert torch.get_num_threads() == common.MAX_THREADS
        common.torch_threads()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_run_cache_is_bounded():
    cache = ui_runs.RunCache(max_runs=2, max_mb=1000)
    runs = [training.train(Config(n_samples=100, epochs=1, width=4, seed=s)) for s in range(3)]
    for r in runs:
        cache.put(r)
    assert len(cache) == 2 and cache.get(runs[0].config) is None
    small = ui_runs.RunCache(max_runs=10, max_mb=runs[0].trajectory.nbytes * 1.5 / 1e6)
    for r in runs:
        small.put(r)
    assert len(small) == 1  # bounded by bytes too


def test_upload_registry_is_bounded():
    assert upload.REGISTRY_SIZE <= 64


# ----------------------------------------------------------------------------- missing caps


def n_params(config: Config) -> int:
    return models.count_params(models.build(config, config.make_dataset()))


def test_model_size_has_a_cap_in_parameters():
    biggest = dict(dataset="digits", model="cnn", width=training.MAX_WIDTH, epochs=500)
    try:
        config = Config(**biggest)
    except ValueError as e:
        assert "param" in str(e)
        return
    assert n_params(config) * (config.epochs + 1) * 4 <= 1e9  # a trajectory under 1 GB


def test_training_work_has_a_cap():
    worst = dict(n_samples=5000, batch_size=1, epochs=500, depth=8, width=256)
    refused(lambda: Config(**worst), "")
