"""Time every research measure on the default run and on the digits CNN, and the overhead of
tracking λmax during full-batch GD (the edge of stability).

Usage:
    python benchmarks/bench_research.py                # both nets + the edge-of-stability overhead
    python benchmarks/bench_research.py --net default  # one net ("default" or "cnn")
    python benchmarks/bench_research.py --no-measures  # the overhead only

Every time is also printed as a ratio to one full-batch loss + gradient evaluation of the same
net in the same process (the baseline), so the figures carry over to other machines. One
torch thread, as in one app worker on a 2-core machine. Training time is not counted
(except for the edge of stability, where it is the baseline). Wall clock, min of --repeat
runs; noisy on a shared machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from landscape.core.hessian import FlatLoss  # noqa: E402
from landscape.data.config import Config  # noqa: E402
from landscape.measures import connectivity, curvature, sharpness, spectrum, stability  # noqa: E402
from landscape.pipelines import presets  # noqa: E402
from landscape.training.loop import train  # noqa: E402

NETS = {"default": Config(), "cnn": presets.get("CNN on digits")}


def _best(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def measures(name: str, repeat: int) -> None:
    cfg = NETS[name]
    run_a, run_b = train(cfg), train(cfg.replace(seed=1))
    ds = run_a.dataset()
    data = (ds.X_train, ds.y_train)
    model, loss_fn = run_a.model(), run_a.loss_fn()
    F = FlatLoss(model, loss_fn, data)
    base, _ = _best(lambda: F.value_and_grad(F.x0), max(5, repeat))
    s = sharpness.PanelSettings()
    print(f"\n{run_a.name}: {F.numel:,} parameters, {len(data[0])} training points")
    print(f"  baseline: one loss + gradient {1000 * base:.1f} ms")
    jobs = {
        "λmax (Lanczos, tol 1e-3)": lambda: curvature.top_eigen(
            model, loss_fn, data, tol=s.eig_tol
        ),
        "trace (Hutchinson, 20 draws)": lambda: curvature.trace(
            model, loss_fn, data, s.trace_samples
        ),
        "ε-sharpness (20 ascent steps)": lambda: sharpness.eps_sharpness(model, loss_fn, data),
        "ρ-sharpness (20 ascent steps)": lambda: sharpness.rho_sharpness(model, loss_fn, data),
        "adaptive sharpness (20 steps)": lambda: sharpness.adaptive_sharpness(model, loss_fn, data),
        "basin width (3 lines x 41)": lambda: sharpness.basin_width(model, loss_fn, data, s),
        "SLQ density (5 x 60 Lanczos) + top-3": lambda: spectrum.density(model, loss_fn, data),
        "connect: line 41 + Bezier 300 steps + plane 21x21": lambda: connectivity.for_runs(
            run_a, run_b
        ),
    }
    for label, job in jobs.items():
        t, _ = _best(job, repeat)
        print(f"  {label:<52} {t:7.2f} s  ({t / base:6.0f} x baseline)")


def eos_overhead(repeat: int) -> None:
    cfg = presets.get(presets.EOS_PRESET)
    print(f"\nedge of stability: {presets.EOS_PRESET}, {cfg.epochs} GD steps, λmax every 5 steps")
    stability.track(cfg, steps=2)  # warm-up: the first optimiser imports torch._dynamo
    plain, _ = _best(lambda: stability.track(cfg, track_sharpness=False), repeat)
    for warm in (True, False):
        t, r = _best(lambda warm=warm: stability.track(cfg, every=5, warm=warm), repeat)
        print(
            f"  {'warm' if warm else 'cold'} start: total {t:.2f} s vs {plain:.2f} s untracked "
            f"({t / plain:.2f}x); tracking {r.seconds_track:.2f} s = {100 * r.overhead:.0f}% of "
            f"training; {r.hvps.mean():.1f} HVPs per measurement; λmax max {r.sharpness.max():.3g}"
            f" vs 2/η = {r.threshold:.3g}"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--net", choices=[*NETS, "all"], default="all")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--no-measures", action="store_true")
    p.add_argument("--no-eos", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    np.set_printoptions(precision=4)
    if not args.no_eos:
        eos_overhead(args.repeat)
    if not args.no_measures:
        for name in NETS if args.net == "all" else [args.net]:
            measures(name, args.repeat)


if __name__ == "__main__":
    main()
