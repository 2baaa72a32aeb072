"""A plane of a tiny net through ``landscape.engine.distributed.Evaluator``, for tests under torchrun.

Usage: ``torchrun --nproc-per-node 2 tests/dist_job.py OUT [--seed S] [--res R] [--overwrite]
[--slow SECONDS] [--die-after K]``. Writes OUT.npz (loss, accuracy, xs, ys) on rank 0.
``--slow`` sleeps before each block is stored (so a test can kill the job midway);
``--die-after K`` makes rank 1 of the first attempt SIGKILL itself after storing K blocks
(so torchrun --max-restarts has a dead rank to restart).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

import numpy as np
import torch
from torch import nn

from landscape.core import directions as D
from landscape.core import files
from landscape.engine import distributed as dist_
from landscape.engine import surface as S
from landscape.engine.chunkstore import PointStore


def tiny(seed: int):
    """An MLP on 2-D data and its data, all seeded."""
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(64, 2, generator=g)
    y = (X[:, 0] * X[:, 1] > 0).long()
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2)).eval()
    return model, X, y


class TinySubject:
    def __init__(self, seed: int) -> None:
        self.net, self.X, self.y = tiny(seed)
        self.loss_fn = nn.functional.cross_entropy
        self.accuracy_fn = lambda out, y: float((out.argmax(1) == y).float().mean())

    def model(self):
        return self.net

    def data(self, split):
        return self.X, self.y


def inner(subject, dirs, coords, split="train", *, centre=None, method="loop", progress=None):
    X, y = subject.data(split)
    model = centre if centre is not None else subject.model()
    center = {k: p.detach().clone() for k, p in model.named_parameters()}
    losses, accs = S.loop_evaluate(
        model, subject.loss_fn, X, y, center, dirs, coords, subject.accuracy_fn
    )
    return losses, accs, {"method": "loop"}


def grid(res: int) -> np.ndarray:
    xs = np.linspace(-1, 1, res)
    ys = np.linspace(-1, 1, res + 1)
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--res", type=int, default=9)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--slow", type=float, default=0.0)
    p.add_argument("--die-after", type=int, default=-1)
    args = p.parse_args()
    ctx = dist_.init()
    dist_.share_cores(ctx)
    subject = TinySubject(0)
    dirs = D.random_directions(subject.model(), 2, seed=args.seed)
    write, stored = PointStore.write, []

    def write_slowly(self, c, loss, accuracy=None):
        time.sleep(args.slow)
        write(self, c, loss, accuracy)
        stored.append(c)
        first_attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
        if ctx.rank == 1 and first_attempt and len(stored) == args.die_after:
            os.kill(os.getpid(), signal.SIGKILL)

    PointStore.write = write_slowly
    ev = dist_.Evaluator(ctx, args.out, inner, quiet=True, overwrite=args.overwrite)
    try:
        losses, accs, info = ev(subject, dirs, grid(args.res), "train", method="loop")
    except dist_.RankZeroError as e:
        if ctx.is_main:
            print(f"error: {e}", file=sys.stderr)
        return 2
    if ctx.is_main:
        files.write_atomic(
            args.out + ".npz",
            lambda f: np.savez(f, loss=losses, accuracy=accs, ranks=ctx.world_size),
        )
    dist_.shutdown(ctx)
    return 0


if __name__ == "__main__":
    sys.exit(main())
