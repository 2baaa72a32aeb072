"""How long `landscape.training.loop.train` takes, against a plain DataLoader loop of the same run.

    python benchmarks/bench_training.py [--threads 2] [--repeats 3] [--quick]

Targets (issue 3): the default run (MLP 2x32 relu on 1000 moons, batch 64, 100 epochs) under
2 s and the digits CNN default (38,282 parameters, 1797 digits, 100 epochs) under 20 s on two
cores. The baseline is what a tutorial would write: TensorDataset + DataLoader(shuffle=True)
for the steps, and a DataLoader pass in batches for the per-epoch train/test loss; it does not
record the trajectory. Both use the same model, optimiser and seed. Timings are the median of
--repeats runs after one warm-up; the machine load is printed because shared cores make any
figure noisy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

from landscape.data import models
from landscape.data.config import Config
from landscape.training import loop as training


def baseline(config: Config) -> float:
    """The same run as a textbook DataLoader loop; returns the final train loss."""
    ds = config.make_dataset()
    model = models.build(config, ds)
    loss_fn = training.make_loss_fn(config, ds)
    opt = training.make_optimizer(config, model)
    g = torch.Generator().manual_seed(config.seed)
    train_dl = DataLoader(
        TensorDataset(ds.X_train, ds.y_train),
        batch_size=config.batch_size,
        shuffle=True,
        generator=g,
    )
    eval_dls = [
        DataLoader(TensorDataset(X, y), batch_size=256)
        for X, y in ((ds.X_train, ds.y_train), (ds.X_test, ds.y_test))
    ]
    loss = float("nan")
    for _ in range(config.epochs):
        model.train()
        for xb, yb in train_dl:
            out = loss_fn(model(xb), yb)
            opt.zero_grad()
            out.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            losses = [
                sum(float(loss_fn(model(xb), yb)) * len(yb) for xb, yb in dl) / len(dl.dataset)
                for dl in eval_dls
            ]
        loss = losses[0]
    return loss


def timed(fn, repeats: int) -> float:
    fn()  # warm-up: imports, allocator, dataset cache
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="10 epochs each (a smoke test)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__} · {torch.get_num_threads()} thread(s) · {os.cpu_count()} cores · "
        f"load average {os.getloadavg()[0]:.2f} · OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}"
    )
    cases = {
        "default run (MLP 2x32 on moons, 100 epochs)": (Config(), 2.0),
        "digits CNN default (38,282 params, 100 epochs)": (
            Config(dataset="digits", n_samples=1797, model="cnn"),
            20.0,
        ),
    }
    for label, (cfg, target) in cases.items():
        if args.quick:
            cfg = cfg.replace(epochs=10)
        ours = timed(lambda c=cfg: training.train(c), args.repeats)
        base = timed(lambda c=cfg: baseline(c), args.repeats)
        verdict = (
            ""
            if args.quick
            else f" · target < {target:g} s: {'met' if ours < target else 'MISSED'}"
        )
        print(
            f"{label}: train() {ours:.2f} s · DataLoader baseline {base:.2f} s · "
            f"baseline / ours = {base / ours:.2f}x{verdict}"
        )


if __name__ == "__main__":
    main()
