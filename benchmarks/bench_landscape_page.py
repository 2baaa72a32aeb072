"""Landscape page speed: from pressing "Compute landscape" to the full 41x41 contour.

The default MLP preset is trained first (not timed) and put into the session, as if it had
been trained on the Train page. Then, through ``streamlit.testing.v1.AppTest`` (the page's
real script, widgets, cache and Plotly serialisation, without a browser):

- cold:    click with an empty surface cache -> time of ``at.run()`` (coarse preview + full grid)
- cached:  click again with the same settings -> time of ``at.run()`` (answered by the cache)
- redraw:  switch the plot type to heatmap    -> time of ``at.run()`` (fragment, no compute)

Baseline in the same process: the bare ``surface.plane`` call the page makes (same model,
directions, grid, data and accuracy, the torch threads one worker gets), so the ratio shows
the page's overhead, the trip to a worker process included. The worker pool is started and
warmed up first, as the app does on the first visit; its start-up time is printed apart.
Targets (issue 5): cold < 2 s and cached < 0.3 s on this 2-core machine.

Run: ``python benchmarks/bench_landscape_page.py [--repeats 3]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streamlit.testing.v1 import AppTest  # noqa: E402

from landscape.core import directions  # noqa: E402
from landscape.engine import surface  # noqa: E402
from landscape.pipelines import presets  # noqa: E402
from landscape.training.loop import train  # noqa: E402
from landscape.ui import (  # noqa: E402
    common,  # noqa: E402
    workers,
)
from landscape.ui import landscape_page as ui  # noqa: E402
from landscape.ui import runs as ui_runs  # noqa: E402

RES = 41


def baseline(run) -> float:
    """The bare library call the page makes for the default 2D request, timed in a thread
    of its own with the torch threads one heavy job gets on the page (OpenMP's thread count
    is per thread, and AppTest runs the page script in a thread too)."""
    out = []
    worker = threading.Thread(target=lambda: out.append(_plane_seconds(run)))
    worker.start()
    worker.join()
    return out[0]


def _plane_seconds(run) -> float:
    torch.set_num_threads(getattr(workers.shared_pool(), "threads", common.MAX_THREADS))
    model, ds = run.model(), run.dataset()
    d1, d2 = directions.random_directions(model, 2, seed=0)
    grid = np.linspace(-1.0, 1.0, RES)
    t = time.perf_counter()
    surface.plane(
        model, run.loss_fn(), (ds.X_train, ds.y_train), d1, d2, grid, grid, run.accuracy_fn()
    )
    return time.perf_counter() - t


def timed_run(at: AppTest) -> float:
    t = time.perf_counter()
    at.run()
    elapsed = time.perf_counter() - t
    if at.exception:
        raise RuntimeError(at.exception)
    return elapsed


def page_times(run) -> tuple[float, float, float]:
    """(cold, cached, redraw) seconds for one fresh page session."""
    ui.clear()
    at = AppTest.from_file(
        str(ROOT / "landscape/ui/server/app_pages" / "loss_landscape.py"), default_timeout=300
    )
    at.session_state[ui_runs._SESSION_KEY] = {run.name: run}  # as if trained on the Train page
    at.run()
    assert at.slider(key="lp_nx2").value == RES and at.slider(key="lp_ny2").value == RES
    at.button(key="lp_go").click()
    cold = timed_run(at)
    assert at.get("plotly_chart"), "no chart after the click"
    at.button(key="lp_go").click()
    cached = timed_run(at)
    at.radio(key="lp_plot").set_value("heatmap")
    redraw = timed_run(at)
    return cold, cached, redraw


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5, help="repetitions; medians are printed")
    args = p.parse_args()
    run = train(presets.DEFAULT)
    pool = workers.shared_pool()
    t = time.perf_counter()
    pool.start()
    tiny = ui.pictures.SurfaceRequest.for_run(run, nx=3, ny=3)
    jobs = [  # one job at a time each: every worker has imported torch and traced the model
        threading.Thread(target=pool.call, args=(ui.pictures.compute, tiny, run))
        for _ in range(pool.size)
    ]
    for j in jobs:
        j.start()
    for j in jobs:
        j.join()
    warm = time.perf_counter() - t
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"run: {run.name} ({run.n_params} parameters), grid {RES}x{RES}")
    print(
        f"cores: {os.cpu_count()}, {type(pool).__name__} of {pool.size}, torch threads per "
        f"heavy job: {getattr(pool, 'threads', common.MAX_THREADS)}, worker start-up "
        f"{warm:.1f} s, load average: {load} (figures are noisy when the load exceeds the cores)"
    )
    baseline(run)  # warm-up: the fast path traces the model once per process
    base = [baseline(run) for _ in range(args.repeats)]
    pages = [page_times(run) for _ in range(args.repeats)]
    b = statistics.median(base)
    rows = [
        ("bare surface.plane (baseline)", b, None),
        ("page: click -> full contour (cold)", statistics.median(p[0] for p in pages), 2.0),
        ("page: same request again (cached)", statistics.median(p[1] for p in pages), 0.3),
        ("page: switch to heatmap (redraw)", statistics.median(p[2] for p in pages), None),
    ]
    print(f"{'case':40s} {'seconds':>8s} {'x baseline':>11s} {'target':>8s}")
    for name, sec, target in rows:
        tgt = f"< {target:g} s" if target else ""
        print(f"{name:40s} {sec:8.3f} {sec / b:11.2f} {tgt:>8s}")


if __name__ == "__main__":
    main()
