"""Does a slice scale out? 1 process against N processes under torchrun, side by side.

Run from the repository root:  python benchmarks/bench_scale.py [--ranks 2] [--repeats 2]
[--case cnn|big|all] [--quick]

For each case it starts ``torchrun --standalone --nproc-per-node=1`` and ``--nproc-per-node=N``
in turn (``--repeats`` times each, interleaved so that both see the same background load),
each running this file's worker: it builds the model and data (seeded) as a
``Subject`` and computes the plane with ``slices.compute`` and
``landscape.engine.distributed.Evaluator`` into a fresh point store, the path
``torchrun -m landscape plane`` takes. The worker reports the seconds of
the evaluation alone (process start-up, imports and the process-group handshake are left
out: they do not grow with the grid). On the CPU every rank gets ``--threads-per-rank`` torch
threads (default 1: a rank is one core here as it is one GPU elsewhere, so the efficiency is
the usual strong-scaling figure); with ``--threads-per-rank 0`` each rank gets
``cores // N`` threads instead, so the 1-process run uses all the cores as threads.

Printed per case: seconds (best of the repeats) for 1 and N processes, speed-up, the
scaling efficiency ``T1 / (N * TN)``, and the CPU efficiency: the CPU seconds of the
1-process run over those of all N ranks together (1 would mean splitting the job adds no
work; it is what wall-clock efficiency tends to on an idle machine, and it is far less
disturbed by other work than wall-clock time is); and the load average before and after,
because a machine shared with other work measures less than it would alone. Where CUDA exists it also
prints the time per point of a 1-process run on ``cuda:0``.

Cases:
- ``cnn``: the small CNN of ``landscape.data.models`` (width 32: 38,282 parameters) on the 1797
  scikit-learn digits (the 1437 of the train split), 21x21 grid (the fast batched path).
- ``big``: an own-model-like net, an MLP 256-1024-1024-10 (1.3 M parameters) on 2048 seeded
  Gaussian inputs, 11x11 grid (per point: a full-batch forward of a net too big to batch).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from landscape.engine import distributed as dist_  # noqa: E402
from landscape.engine.subject import Subject  # noqa: E402
from landscape.pipelines import slices  # noqa: E402

CASES = ("cnn", "big")


# ----------------------------------------------------------------------------- the worker


def accuracy(out: torch.Tensor, y: torch.Tensor) -> float:
    return float((out.argmax(1) == y).float().mean())


def build(case: str, quick: bool):
    """(subject, grid resolution) of a case; everything seeded."""
    torch.manual_seed(0)
    if case == "cnn":
        from landscape.data import datasets as data
        from landscape.data import models
        from landscape.data.config import Config

        config = Config(dataset="digits", model="cnn", width=32, n_samples=1797)
        ds = data.make("digits", n_samples=1797, seed=0)
        net = models.build(config, ds)
        return subject_of(net, ds.X_train, ds.y_train), 7 if quick else 21
    g = torch.Generator().manual_seed(0)
    X = torch.randn(2048, 256, generator=g)
    y = torch.randint(0, 10, (2048,), generator=g)
    net = nn.Sequential(
        nn.Linear(256, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10)
    )
    return subject_of(net, X, y), 5 if quick else 11


def subject_of(net: nn.Module, X: torch.Tensor, y: torch.Tensor) -> Subject:
    return Subject.from_module(
        net, nn.functional.cross_entropy, {"train": (X, y)}, accuracy_fn=accuracy
    )


def worker(case: str, out: str, quick: bool) -> None:
    ctx = dist_.init()
    subject, res = build(case, quick)
    dist_.share_cores(ctx)
    if "LANDSCAPE_TORCH_THREADS" in os.environ:  # a fixed number of threads per rank
        torch.set_num_threads(max(1, int(os.environ["LANDSCAPE_TORCH_THREADS"])))
    req = slices.SliceRequest(dim=2, nx=res, ny=res, seed=0)
    ev = dist_.Evaluator(ctx, out, slices.evaluate, quiet=True, overwrite=True)
    cpu = time.process_time()
    result = slices.compute(req, subject, evaluator=ev)
    cpu = torch.tensor([time.process_time() - cpu], dtype=torch.float64)
    if ctx.distributed:
        torch.distributed.all_reduce(cpu)  # CPU seconds of every rank together
    losses, info = result.main.loss, result.main.meta
    if ctx.is_main:
        facts = {
            "seconds": info["seconds"],
            "cpu_seconds": float(cpu.item()),
            "points": int(losses.size),
            "ranks": ctx.world_size,
            "threads": torch.get_num_threads(),
            "device": str(ctx.device),
            "method": info["method"],
            "n_params": info["n_params"],
            "checksum": float(np.nansum(losses)),
        }
        print("RESULT " + json.dumps(facts), flush=True)
    dist_.shutdown(ctx)


# ----------------------------------------------------------------------------- the driver


def launch(case: str, ranks: int, quick: bool, env: dict) -> dict:
    tmp = tempfile.mkdtemp(prefix="bench_scale_")
    try:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        cmd += [f"--nproc-per-node={ranks}", __file__, "--worker", case, f"{tmp}/p"]
        cmd += ["--quick"] if quick else []
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        lines = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
        if r.returncode != 0 or not lines:
            raise SystemExit(f"{case} with {ranks} ranks failed:\n{r.stderr[-3000:]}")
        return json.loads(lines[-1][len("RESULT ") :])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ranks", type=int, default=2, help="processes to compare with 1")
    p.add_argument("--repeats", type=int, default=4, help="runs of each, interleaved (best counts)")
    p.add_argument("--case", choices=[*CASES, "all"], default="all")
    p.add_argument("--quick", action="store_true", help="small grids: a smoke run")
    p.add_argument(
        "--threads-per-rank",
        type=int,
        default=1,
        help="torch threads of every rank, 1 process and N alike (1: each rank is one core, "
        "as each is one GPU elsewhere); 0: the cores shared out, so 1 process gets them all",
    )
    p.add_argument("--worker", nargs=2, metavar=("CASE", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1], args.quick)
        return
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("LANDSCAPE_TORCH_THREADS", None)
    if args.threads_per_rank > 0:
        env["LANDSCAPE_TORCH_THREADS"] = str(args.threads_per_rank)
    env["CUDA_VISIBLE_DEVICES"] = ""  # the scaling table is about CPU processes
    cores = len(os.sched_getaffinity(0))
    threads = (
        f"{args.threads_per_rank} torch thread(s) per rank"
        if args.threads_per_rank > 0
        else f"{cores} cores shared out (1 process: {cores} threads; {args.ranks}: "
        f"{max(1, cores // args.ranks)} each)"
    )
    print(f"cores: {cores}; {threads}; load average before: {os.getloadavg()[0]:.2f}")
    print(f"{'case':6} {'points':>6} {'1 proc s':>9} {f'{args.ranks} procs s':>10} "
          f"{'speed-up':>8} {'efficiency':>10} {'CPU eff.':>10}")  # fmt: skip
    cases = CASES if args.case == "all" else (args.case,)
    for case in cases:
        best = {1: float("inf"), args.ranks: float("inf")}
        cpu = {1: float("inf"), args.ranks: float("inf")}
        sums = set()
        for _ in range(args.repeats):
            for n in (1, args.ranks):
                r = launch(case, n, args.quick, env)
                best[n] = min(best[n], r["seconds"])
                cpu[n] = min(cpu[n], r["cpu_seconds"])
                sums.add(round(r["checksum"], 3))
        t1, tn = best[1], best[args.ranks]
        print(
            f"{case:6} {r['points']:>6} {t1:>9.2f} {tn:>10.2f} {t1 / tn:>8.2f} "
            f"{t1 / (args.ranks * tn):>10.0%} {cpu[1] / cpu[args.ranks]:>10.0%}   "
            f"({r['method']}, {r['n_params']:,} params; same losses: {len(sums) == 1})"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f} (1 min)")
    if torch.cuda.is_available():
        gpu_env = {k: v for k, v in env.items() if k != "CUDA_VISIBLE_DEVICES"}
        for case in cases:
            r = launch(case, 1, args.quick, gpu_env)
            per = 1000 * r["seconds"] / r["points"]
            print(f"GPU {torch.cuda.get_device_name(0)}: {case} {per:.2f} ms per point")
    else:
        print("GPU: none here (run this script where CUDA exists for the time per point)")


if __name__ == "__main__":
    main()
