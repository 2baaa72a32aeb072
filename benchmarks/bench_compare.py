"""Time every Compare-page preset cold, and Lanczos against power iteration.

Usage:
    python benchmarks/bench_compare.py                 # every preset + the eigen-solver race
    python benchmarks/bench_compare.py --preset skip   # one preset (in this process)
    python benchmarks/bench_compare.py --no-eigen      # presets only
    python benchmarks/bench_compare.py --preset skip --convexity 5   # with the slow option

Each preset runs in a fresh subprocess, so nothing is cached: the time is what the first
click on the page costs (training included, imports excluded, the trips to the app's worker
processes not counted), with the torch threads one app worker has (LANDSCAPE_TORCH_THREADS
divided among LANDSCAPE_MAX_HEAVY_JOBS workers: 1 on a 2-core machine). The figures printed are the ones written
into ``landscape/presets_data/<key>.json`` (``measured_seconds``); the target is under 60 s per
preset on a 2-core machine. Timings are wall clock and noisy on a shared machine: run it on a
quiet one.

The eigen-solver race: on the two nets of the skip-connection preset, the top eigenvalue by
Lanczos (full reorthogonalisation) and by power iteration, both to the same relative residual
tolerance, counting Hessian-vector products and time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _threads() -> int:
    import torch

    from landscape.ui import workers

    n = max(1, workers.MAX_THREADS // workers.MAX_HEAVY_JOBS)  # what Pool gives one worker
    torch.set_num_threads(n)
    return n


def one_preset(key: str, convexity: int = 0) -> dict:
    """Run preset ``key`` cold in this process; a JSON-able summary."""
    threads = _threads()
    from landscape.pipelines import comparison_presets, comparisons

    preset = comparison_presets.get(key)
    settings = preset.settings.replace(convexity=convexity)
    t0 = time.perf_counter()
    comp = comparison_presets.run_preset(preset, settings)
    total = time.perf_counter() - t0
    return {
        "preset": key,
        "seconds": total,
        "train_seconds": comp.train_seconds,
        "threads": threads,
        "rows": comparisons.table(comp),
        "panel_seconds": [p.seconds for p in comp.panels],
    }


def run_all(keys: list[str], convexity: int = 0) -> list[dict]:
    out = []
    for key in keys:
        cmd = [sys.executable, __file__, "--preset", key, "--json", "--convexity", str(convexity)]
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True)
        out.append(json.loads(res.stdout.strip().splitlines()[-1]))
        r = out[-1]
        print(
            f"{key:6s} {r['seconds']:6.1f} s  (training {r['train_seconds']:5.1f} s, "
            f"measuring {r['seconds'] - r['train_seconds']:5.1f} s, {r['threads']} threads)",
            flush=True,
        )
    return out


def print_rows(result: dict) -> None:
    for row in result["rows"]:
        extras = {k: v for k, v in row.items() if k.startswith("test error")}
        print(
            f"    {row['panel']:32s} loss {row['train loss']:.4f}/{row['test loss']:.4f}  "
            f"acc {row['train acc']:.3f}/{row['test acc']:.3f}  λmax {row['top eigenvalue']:.4g}  "
            f"trace {row['trace']:.4g}±{row['trace ± (1 s.e.)']:.2g}  "
            f"width {'>=' if row['width censored'] else ''}{row['basin width']:.3f}  "
            + " ".join(f"{k} {v:.3f}" for k, v in extras.items())
            + (f"  non-convexity {row['non-convexity']:.3f}" if "non-convexity" in row else "")
        )


def eigen_race() -> None:
    _threads()
    from landscape.measures import curvature
    from landscape.pipelines import comparison_presets
    from landscape.training import loop as training

    preset = comparison_presets.get("skip")
    print("\nTop Hessian eigenpairs, Lanczos vs power iteration (nets of the skip preset):")
    for panel in preset.panels:
        run = training.train(panel.config)
        ds = run.dataset()
        data, model, loss_fn = (ds.X_train, ds.y_train), run.model(), run.loss_fn()
        for k, tol in ((1, 1e-3), (3, 1e-4)):
            for method in ("lanczos", "power"):
                t0 = time.perf_counter()
                res = curvature.top_eigen(
                    model, loss_fn, data, k=k, tol=tol, max_iter=300, method=method
                )
                dt = time.perf_counter() - t0
                vals = ", ".join(f"{v:.5g}" for v in res.eigenvalues)
                print(
                    f"  {panel.label:9s} k={k} tol={tol:g} {method:8s} HVPs {res.iterations:4d}  "
                    f"max residual {res.residuals.max():.1e}  converged {res.converged}  "
                    f"{dt:6.2f} s  λ = {vals}"
                )


def main() -> None:
    from landscape.pipelines import comparison_presets

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--preset", choices=list(comparison_presets.PRESETS), help="run one preset here"
    )
    ap.add_argument("--json", action="store_true", help="print the one-preset summary as JSON")
    ap.add_argument("--no-eigen", action="store_true", help="skip the eigen-solver race")
    ap.add_argument(
        "--convexity", type=int, default=0, help="convexity-map points per axis (0: off, 3-9)"
    )
    args = ap.parse_args()
    if args.preset:
        r = one_preset(args.preset, args.convexity)
        print(json.dumps(r) if args.json else r)
        return
    print(f"Cold time of each Compare preset (fresh process each; {os.cpu_count()} cores):")
    results = run_all(list(comparison_presets.PRESETS), args.convexity)
    print("\nWhat each preset measured:")
    for r in results:
        print(f"  {r['preset']}")
        print_rows(r)
    if not args.no_eigen:
        eigen_race()


if __name__ == "__main__":
    main()
