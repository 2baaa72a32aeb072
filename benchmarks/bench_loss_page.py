"""How fast does the Loss shapes page answer a slider move? (target: < 150 ms)

Prints, all measured in this process:
- baseline: median AppTest rerun of a page holding one slider and nothing else, after that
  slider moves (Streamlit's own floor for a rerun);
- the Loss shapes page: median AppTest rerun after a slider move, per slider and overall, and
  its ratio to the baseline. Every move goes to a value not seen before, so the page's
  caches miss and the numbers include the computing. AppTest reruns the WHOLE page on every
  move; in the browser `st.fragment` reruns only the moved slider's section, so these are
  upper bounds;
- the time to build the page's figures (library numerics + Plotly figures + JSON, as
  st.plotly_chart serialises them) for the default state, split into numerics and figures.

Run from the repository root:  python benchmarks/bench_loss_page.py [--moves 12]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import plotly.io as pio  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from landscape.core import losses, robust  # noqa: E402
from landscape.plots import losses as plots  # noqa: E402
from landscape.ui.common import torch_threads  # noqa: E402

PAGE = ROOT / "landscape/ui/server/app_pages" / "loss_shapes.py"
TARGET_MS = 150.0

BASELINE = """
import streamlit as st  # noqa: E402
st.slider("x", 0.0, 1000.0, 0.0, key="x")
"""


def _values(key: str, n: int) -> list:
    """n distinct new values for slider `key` (never its default, never repeated)."""
    grids = {
        "reg_huber_delta": np.linspace(0.2, 4.9, n),
        "reg_barron_alpha": np.linspace(-9.5, 3.9, n),
        "reg_range": [(-5.0 - 0.5 * i, 5.0 + 0.5 * i) for i in range(1, n + 1)],
        "bin_focal_gamma": np.linspace(0.1, 4.9, n),
        "ce_smoothing": np.linspace(0.01, 0.49, n),
        "out_offset": np.linspace(0.5, 29.5, n),
        "out_delta": np.linspace(0.2, 4.9, n),
    }
    vals = grids[key]
    return [tuple(v) if isinstance(v, tuple) else round(float(v), 2) for v in vals]


def time_moves(at: AppTest, key: str, values: list) -> list[float]:
    times = []
    for v in values:
        at.slider(key=key).set_value(v)
        t0 = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - t0)
        assert not at.exception, at.exception
    return times


def baseline(moves: int) -> float:
    at = AppTest.from_string(BASELINE, default_timeout=60)
    at.run()
    times = time_moves(at, "x", [float(i + 1) for i in range(moves * 3)])
    return statistics.median(times)


def page(moves: int) -> dict[str, float]:
    at = AppTest.from_file(str(PAGE), default_timeout=60)
    at.run()
    at.run()  # warm: imports and first compiles are not a slider move
    keys = [
        "reg_huber_delta",
        "reg_barron_alpha",
        "reg_range",
        "bin_focal_gamma",
        "ce_smoothing",
        "out_offset",
        "out_delta",
    ]
    return {k: time_moves(at, k, _values(k, moves)) for k in keys}


def build_figures() -> tuple[float, float]:
    """(numerics seconds, figures + JSON seconds) for the page's default state."""
    t0 = time.perf_counter()
    r = np.linspace(-4, 4, 401)
    reg = {"mse": {}, "mae": {}, "huber": {"delta": 1.0}, "barron": {"alpha": 1.0, "c": 1.0}}
    curves = {n: losses.regression_curves(n, r, **p) for n, p in reg.items()}
    m = np.linspace(-3, 3, 401)
    binary = ["zero_one", "hinge", "logistic", "exponential", "focal"]
    margins = {n: losses.margin_curve(n, m) for n in binary}
    p = np.linspace(0.002, 0.998, 401)
    ce = {e: losses.cross_entropy_curve(p, 10, e) for e in (0.0, 0.1)}
    x, y, out = robust.make_outlier_line(n=40, n_outliers=5, outlier_offset=10.0)
    fits = {
        "mse": ("MSE", *robust.fit_line(x, y, "mse")),
        "mae": ("L1", *robust.fit_line(x, y, "mae")),
        "huber": ("Huber", *robust.fit_line(x, y, "huber", delta=1.0)),
        "barron": ("Cauchy", *robust.fit_line(x, y, "barron", alpha=0.0, c=1.0)),
    }
    t1 = time.perf_counter()
    figs = [
        f(r, {n: (n, curves[n][k]) for n in reg})
        for k, f in (
            ("rho", plots.loss_figure),
            ("psi", plots.influence_figure),
            ("weight", plots.weight_figure),
        )
    ]
    figs.append(plots.margin_figure(m, {n: (n, v) for n, v in margins.items()}, 5.0))
    figs.append(
        plots.cross_entropy_figure(
            p,
            {"ce_plain": ("0", ce[0.0]), "ce_smooth": ("0.1", ce[0.1])},
            {"ce_plain": 0.998, "ce_smooth": float(p[np.argmin(ce[0.1])])},
        )
    )
    figs.append(plots.outlier_figure(x, y, out, fits, (2.0, 1.0)))
    for f in figs:
        pio.to_json(f.to_dict(), validate=False)  # what st.plotly_chart does
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--moves", type=int, default=12, help="slider moves per slider")
    args = ap.parse_args()
    torch_threads()  # as lab.py does
    ms = 1e3

    base = baseline(args.moves)
    per_key = page(args.moves)
    all_moves = [t for ts in per_key.values() for t in ts]
    med = statistics.median(all_moves)
    builds = [build_figures() for _ in range(max(5, args.moves))]
    num = statistics.median(b[0] for b in builds)
    fig = statistics.median(b[1] for b in builds)

    print(f"baseline: one-slider page, median AppTest rerun after a move: {base * ms:.1f} ms")
    print("Loss shapes page, median AppTest rerun after a slider move (whole page):")
    print("  (min: the same move when nothing else competed for the CPU)")
    for k, ts in per_key.items():
        print(
            f"  {k:18s} median {statistics.median(ts) * ms:7.1f} ms   min {min(ts) * ms:6.1f} ms"
            f"   ({len(ts)} moves)"
        )
    print(
        f"  {'ALL':18s} median {med * ms:7.1f} ms   min {min(all_moves) * ms:6.1f} ms"
        f"   = {med / base:.1f}x baseline (median); target < {TARGET_MS:.0f} ms: "
        f"{'met' if med * ms < TARGET_MS else 'NOT met'}"
    )
    print(
        f"figures of the default page, from scratch (median of {len(builds)}): numerics "
        f"{num * ms:.1f} ms + Plotly figures and JSON {fig * ms:.1f} ms = {(num + fig) * ms:.1f} ms"
        f" ({(num + fig) / base:.1f}x baseline); a slider move recomputes one section only"
    )


if __name__ == "__main__":
    main()
