"""How much does drawing frames slow live training (the Train page's Play)?

    python benchmarks/bench_live.py [--seconds 4] [--repeats 3] [--threads 1]

Target (issue 14): at most 20% fewer optimiser steps per second than training without
drawing. Both arms run `landscape.training.live.LiveTrainer` on the same config for the same wall time,
interleaved (plain, framed, plain, framed, ...) in one process, with the script thread's torch
threads of the app (1). The framed arm does per frame what the page's fragment does on the
server: train one chunk sized by `FramePacer`, then evaluate the full-batch train/test loss,
compute the decision regions, build both Plotly figures and serialise them to JSON (what
`landscape.ui.livechart` sends). The browser's drawing happens on the client, in parallel, and is
not counted. Prints steps/s of each arm, the frame rate, and the slow-down.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root

from landscape.data.config import Config  # noqa: E402
from landscape.plots import training as plots  # noqa: E402
from landscape.training import live  # noqa: E402
from landscape.ui import livechart  # noqa: E402

CASES = {
    "moons MLP 2x32 (default)": Config(),
    "spiral3 MLP 4x64": Config(dataset="spiral3", depth=4, width=64),
    "sine MLP 2x32 (regression fit)": Config(dataset="sine", loss="mse"),
}


def plain(cfg: Config, seconds: float) -> float:
    t = live.LiveTrainer(cfg)
    end, n = time.perf_counter() + seconds, 0
    while time.perf_counter() < end:
        n += t.step(1)
    return n / seconds


def framed(cfg: Config, seconds: float) -> tuple[float, float, float]:
    """(steps/s, frames/s, mean drawing seconds per frame)."""
    t, pacer = live.LiveTrainer(cfg), live.FramePacer()
    t0 = time.perf_counter()
    end, n, frames, draw = t0 + seconds, 0, 0, 0.0
    while time.perf_counter() < end:
        n += t.run_for(min(pacer.train_seconds(), end - time.perf_counter()))
        d0 = time.perf_counter()
        t.evaluate()
        h = t.frames
        curve = plots.loss_curves({k: h[k] for k in ("epoch", "train_loss", "test_loss")},
                                  t.step_loss, steps_per_epoch=t.steps_per_epoch)  # fmt: skip
        kind, pic = t.picture()
        X, y = t.ds.X_train.numpy(), t.ds.y_train.numpy()
        fig = (
            plots.decision_boundary(*pic, X, y)
            if kind == "2d"
            else plots.regression_fit(*pic, X, y)
        )
        json.dumps(livechart.args(curve, "curve", t.steps))
        json.dumps(livechart.args(fig, "picture", t.steps))
        dt = time.perf_counter() - d0
        pacer.record_draw(dt)
        draw += dt
        frames += 1
    wall = time.perf_counter() - t0
    return n / wall, frames / wall, draw / max(1, frames)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; "
          f"{args.repeats} x {args.seconds:g} s per arm, interleaved")  # fmt: skip
    print("| case | steps/s plain | steps/s with frames | frames/s | draw ms/frame | slow-down |")
    print("|---|---|---|---|---|---|")
    for name, cfg in CASES.items():
        p, f, fps, dms = [], [], [], []
        for _ in range(args.repeats):
            p.append(plain(cfg, args.seconds))
            s, r, d = framed(cfg, args.seconds)
            f.append(s), fps.append(r), dms.append(d)
        mp, mf = statistics.median(p), statistics.median(f)
        print(f"| {name} | {mp:.0f} | {mf:.0f} | {statistics.median(fps):.1f} "
              f"| {1000 * statistics.median(dms):.0f} | {100 * (1 - mf / mp):.0f}% |")  # fmt: skip


if __name__ == "__main__":
    main()
