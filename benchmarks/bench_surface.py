"""How fast is a loss surface? Our fast path against the ways people compute one today.

Run from the repository root:  python benchmarks/bench_surface.py [--repeats 5] [--quick]

On one model, one data set and one pair of directions, in one process, it times
  (a) ``landscape.engine.batched.evaluate`` (the fast path) and ``landscape.engine.surface.plane`` (the public
      call: validation, then the fast path),
  (b) a plain in-place loop: copy the point's weights into the model, one full-batch forward,
      restore the weights at the end,
  (c) the original Li et al. way: per point, a loop over the data in batches of 128 that
      accumulates the loss (``evaluation.py`` of the loss-landscape repository),
  (d) ``loss_landscapes.random_plane`` (PyPI loss-landscapes 3.0.6, a dev-only dependency),
and prints seconds, speed-up over each baseline, and the FLOP/s we achieve as a fraction of this
machine's float32 matmul FLOP/s (a large ``torch.mm`` measured in the same process). FLOPs are
counted analytically: 2 * multiply-adds of every Conv2d and Linear, per sample, per point.

Each timing is the minimum over ``--repeats`` runs, the methods interleaved, so that a
machine shared with other work shows its quiet-time speed. The script also checks that the
fast path equals the plain loop (max relative difference), as the tests do.

Cases: MLP 2-64-64-2 on 2000 two-moons points, 41x41 grid; the small CNN of
``landscape.data.models`` (width 32: 38,282 parameters) on the 1797 scikit-learn digits, 21x21 grid.

``--sweep`` instead times ``surface.plane(method="auto")``, the plain in-place loop and
loss-landscapes side by side on MLPs with 3 inputs, 3 classes and 1500 Gaussian points, for
every activation (relu, tanh, gelu, sigmoid), width (``--widths``) and depth (``--depths``),
and prints a table of ratios (loss-landscapes / auto and loop / auto: above 1 means auto is
faster) with the method auto chose; auto's first run, which calibrates (later surfaces of
the same kind of model use the remembered winner), is shown in brackets. ``--held-out`` is the single shape 3-48-48-48-3 tanh on
a 31x31 grid. ``--cpu-time`` times by process CPU seconds instead of wall-clock, with
``--threads 1``: on a machine shared with other jobs it measures the work each method does,
not how long the scheduler made it wait (wall-clock min-of-N is the default).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from landscape.core.directions import random_directions  # noqa: E402
from landscape.engine import batched  # noqa: E402

THREADS = 2  # the machine the targets were set on has 2 cores


# ----------------------------------------------------------------------------- cases


def moons(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaved half circles with Gaussian noise 0.2 (like sklearn's make_moons)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    t = torch.rand(n, generator=g) * torch.pi
    x0 = torch.where(y == 0, torch.cos(t), 1 - torch.cos(t))
    x1 = torch.where(y == 0, torch.sin(t), 0.5 - torch.sin(t))
    X = torch.stack([x0, x1], 1) + 0.2 * torch.randn(n, 2, generator=g)
    return X.float(), y


def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """The 1797 8x8 scikit-learn digits, scaled to [0, 1], as (N, 1, 8, 8)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    X = torch.tensor(d.data, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
    return X, torch.tensor(d.target)


def mlp() -> nn.Module:
    return nn.Sequential(
        nn.Linear(2, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2)
    )


def cnn() -> nn.Module:
    """The digits CNN of landscape.data.models (width 32): 160 + 4,640 + 32,832 + 650 parameters."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),  # (B, 32 * 4 * 4)
        nn.Linear(512, 64),
        nn.ReLU(),
        nn.Linear(64, 10),
    )


def make_case(name: str, quick: bool):
    torch.manual_seed(0)
    if name == "mlp":
        model, (X, y), steps = mlp(), moons(2000), 41
    else:
        model, (X, y), steps = cnn(), digits(), 21
    if quick:
        steps = 7
    train(model, X, y)
    return model.eval(), X, y, steps


def train(model: nn.Module, X, y, epochs: int = 3) -> None:
    """A few epochs of Adam so the centre is a trained net, as in real use (seeded)."""
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for idx in torch.randperm(len(X), generator=g).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(X[idx]), y[idx]).backward()
            opt.step()


# ----------------------------------------------------------------------------- methods


def grid(steps: int) -> np.ndarray:
    """(steps^2, 2) coordinates in [-1, 1]^2, row-major in y like surface.plane."""
    xs = np.linspace(-1.0, 1.0, steps)
    gx, gy = np.meshgrid(xs, xs)
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def run_batched(model, loss_fn, X, y, d1, d2, coords):
    center = {k: p.detach().clone() for k, p in model.named_parameters()}
    losses, _ = batched.evaluate(model, loss_fn, X, y, center, [d1, d2], coords)
    return losses


def run_plane(model, loss_fn, X, y, d1, d2, coords):
    from landscape.engine import surface

    xs = np.unique(coords[:, 0])
    s = surface.plane(model, loss_fn, (X, y), d1, d2, xs, xs, method="auto")
    return s.loss.ravel()


@torch.no_grad()
def run_inplace_loop(model, loss_fn, X, y, d1, d2, coords):
    """The plain way: write each point's weights into the model, one full-batch forward."""
    params = dict(model.named_parameters())
    center = {k: p.detach().clone() for k, p in params.items()}
    out = np.empty(len(coords))
    try:
        for i, (a, b) in enumerate(coords):
            for k, p in params.items():
                p.copy_(center[k] + float(a) * d1[k] + float(b) * d2[k])
            out[i] = loss_fn(model(X), y).item()
    finally:
        for k, p in params.items():
            p.copy_(center[k])
    return out


@torch.no_grad()
def run_original(model, loss_fn, X, y, d1, d2, coords, batch_size: int = 128):
    """Li et al.'s loop: set weights, then the data in batches of 128, loss summed per batch."""
    params = dict(model.named_parameters())
    center = {k: p.detach().clone() for k, p in params.items()}
    out = np.empty(len(coords))
    try:
        for i, (a, b) in enumerate(coords):
            for k, p in params.items():
                p.data = center[k] + float(a) * d1[k] + float(b) * d2[k]
            total, n = 0.0, 0
            for xb, yb in zip(X.split(batch_size), y.split(batch_size)):
                total += loss_fn(model(xb), yb).item() * len(xb)
                n += len(xb)
            out[i] = total / n
    finally:
        for k, p in params.items():
            p.data = center[k]
    return out


def run_loss_landscapes(model, loss_fn, X, y, d1, d2, coords):
    """loss_landscapes.random_plane with its own (uniform, filter-normalised) directions."""
    import loss_landscapes
    from loss_landscapes.metrics import Loss

    steps = int(round(len(coords) ** 0.5))
    metric = Loss(loss_fn, X, y)
    with torch.no_grad():
        return loss_landscapes.random_plane(
            model, metric, distance=1, steps=steps, normalization="filter", deepcopy_model=True
        )


# ----------------------------------------------------------------------------- measures


def matmul_flops(n: int = 2048, repeats: int = 5) -> float:
    """This machine's float32 matmul rate (FLOP/s): best of ``repeats`` n x n x n products."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = min(_seconds(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * n**3 / best


def forward_flops(model: nn.Module, x1: torch.Tensor) -> int:
    """2 * multiply-adds of every Conv2d and Linear for one sample (from output shapes)."""
    macs = []

    def hook(mod, inp, out):
        if isinstance(mod, nn.Linear):
            macs.append(mod.in_features * mod.out_features)
        elif isinstance(mod, nn.Conv2d):
            k = mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
            macs.append(out.numel() // out.shape[0] * k)  # outputs x fan-in

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    with torch.no_grad():
        model(x1)
    for h in handles:
        h.remove()
    return 2 * sum(macs)


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_case(name: str, repeats: int, quick: bool, clock=time.perf_counter) -> dict:
    model, X, y, steps = make_case(name, quick)
    loss_fn = nn.CrossEntropyLoss()
    d1, d2 = random_directions(model, 2, norm="filter", ignore="biasbn", seed=1)
    coords = grid(steps)
    methods = {
        "batched.evaluate": run_batched,
        "surface.plane": run_plane,
        "plain in-place loop": run_inplace_loop,
        "original (batches of 128)": run_original,
        "loss_landscapes.random_plane": run_loss_landscapes,
    }
    if not _has_plane():
        del methods["surface.plane"]
    times = {k: [] for k in methods}
    results = {}
    for _ in range(repeats):
        for label, fn in methods.items():
            start = clock()
            results[label] = fn(model, loss_fn, X, y, d1, d2, coords)
            times[label].append(clock() - start)
    ref = results["plain in-place loop"]
    diff = np.max(np.abs(results["batched.evaluate"] - ref) / np.abs(ref))
    flops = forward_flops(model, X[:1]) * len(X) * len(coords)
    return {
        "name": name,
        "grid": f"{steps}x{steps}",
        "n": len(X),
        "params": sum(p.numel() for p in model.parameters()),
        "times": {k: min(v) for k, v in times.items()},
        "flops": flops,
        "max_rel_diff": float(diff),
    }


def _has_plane() -> bool:
    try:
        from landscape.engine import surface

        return hasattr(surface, "plane")
    except ImportError:
        return False


def table(case: dict, peak: float) -> str:
    t = case["times"]
    ours = t["batched.evaluate"]
    lines = [
        f"### {case['name']}: {case['params']:,} parameters, {case['n']} samples, "
        f"{case['grid']} grid, {case['flops'] / 1e9:.1f} GFLOP",
        "",
        "| method | seconds | batched.evaluate is faster by | GFLOP/s | % of matmul |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, s in t.items():
        rate = case["flops"] / s
        lines.append(
            f"| {label} | {s:.3f} | {s / ours:.2f}x | {rate / 1e9:.1f} | {100 * rate / peak:.0f}% |"
        )
    lines.append("")
    lines.append(f"max relative difference, batched vs plain loop: {case['max_rel_diff']:.1e}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- MLP sweep

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "sigmoid": nn.Sigmoid}


def sweep_mlp(act: str, width: int, depth: int, n: int = 1500, seed: int = 0):
    """3 inputs -> ``depth`` layers of ``width`` with ``act`` -> 3 classes; Gaussian data."""
    torch.manual_seed(seed)
    layers, fan_in = [], 3
    for _ in range(depth):
        layers += [nn.Linear(fan_in, width), ACTIVATIONS[act]()]
        fan_in = width
    model = nn.Sequential(*layers, nn.Linear(fan_in, 3)).eval()
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 3, generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    return model, X, y


def sweep_case(act, width, depth, steps, repeats, clock=time.perf_counter):
    """min-of-``repeats`` interleaved seconds of auto, the plain loop and loss-landscapes."""
    from landscape.engine import surface

    model, X, y = sweep_mlp(act, width, depth)
    loss_fn = nn.CrossEntropyLoss()
    d1, d2 = random_directions(model, 2, seed=1)
    coords = grid(steps)
    xs = np.linspace(-1.0, 1.0, steps)
    chosen = []

    def auto(*_):
        s = surface.plane(model, loss_fn, (X, y), d1, d2, xs, xs, method="auto")
        chosen.append(s.meta["method"])
        return s.loss.ravel()

    methods = {"auto": auto, "loop": run_inplace_loop, "ll": run_loss_landscapes}
    times = {k: [] for k in methods}
    for _ in range(repeats):
        for label, fn in methods.items():
            start = clock()
            fn(model, loss_fn, X, y, d1, d2, coords)
            times[label].append(clock() - start)
    best = {k: min(v) for k, v in times.items()}
    best["auto_first"] = times["auto"][0]  # the one run that calibrated (later ones remember)
    return best, max(set(chosen), key=chosen.count)


def sweep(args) -> None:
    clock = time.process_time if args.cpu_time else time.perf_counter
    what = "process CPU seconds" if args.cpu_time else "wall-clock seconds"
    print(f"MLP sweep: 3 inputs, 3 classes, 1500 points, {args.steps}x{args.steps} grid, "
          f"min of {args.repeats} interleaved runs, {what}, "
          f"{torch.get_num_threads()} threads; load average {_load()}")  # fmt: skip
    print()
    print("| activation | width | depth | auto s (first) | loop s | loss-landscapes s "
          "| loss-landscapes / auto | loop / auto (first) | auto chose |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for act in args.acts:
        for width in args.widths:
            for depth in args.depths:
                t, chose = sweep_case(act, width, depth, args.steps, args.repeats, clock)
                print(
                    f"| {act} | {width} | {depth} | {t['auto']:.3f} ({t['auto_first']:.3f}) | "
                    f"{t['loop']:.3f} | {t['ll']:.3f} | {t['ll'] / t['auto']:.2f}x | "
                    f"{t['loop'] / t['auto']:.2f}x ({t['loop'] / t['auto_first']:.2f}x) "
                    f"| {chose} |",
                    flush=True,
                )
    print(f"\nload average at the end: {_load()}")


def _load() -> str:
    """The 1/5/15-minute load averages: other jobs sharing the cores slow every method."""
    return " / ".join(f"{v:.1f}" for v in os.getloadavg())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per method; min is shown")
    parser.add_argument("--quick", action="store_true", help="7x7 grids (smoke run)")
    parser.add_argument("--case", choices=["mlp", "cnn", "all"], default="all")
    parser.add_argument("--sweep", action="store_true", help="the MLP sweep (see above)")
    parser.add_argument("--held-out", action="store_true", help="3-48x3 tanh, 31x31 grid")
    parser.add_argument("--acts", nargs="+", default=list(ACTIVATIONS), choices=ACTIVATIONS)
    parser.add_argument("--widths", nargs="+", type=int, default=[16, 64, 256])
    parser.add_argument("--depths", nargs="+", type=int, default=[1, 3, 6])
    parser.add_argument("--steps", type=int, default=15, help="sweep grid points per axis")
    parser.add_argument("--cpu-time", action="store_true", help="time by process CPU seconds")
    parser.add_argument("--threads", type=int, default=THREADS, help="torch threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.held_out:
        args.acts, args.widths, args.depths, args.steps = ["tanh"], [48], [3], 31
    if args.sweep or args.held_out:
        sweep(args)
        return
    peak = matmul_flops()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"float32 matmul (2048^3 torch.mm, best of 5): {peak / 1e9:.1f} GFLOP/s")
    clock = time.process_time if args.cpu_time else time.perf_counter
    what = "process CPU seconds" if args.cpu_time else "wall-clock seconds"
    print(f"timings: min over {args.repeats} interleaved runs, {what}; load average {_load()}\n")
    for name in ["mlp", "cnn"] if args.case == "all" else [args.case]:
        print(table(bench_case(name, args.repeats, args.quick, clock), peak))
        print()
    print(f"float32 matmul re-measured at the end: {matmul_flops() / 1e9:.1f} GFLOP/s")
    print(f"load average at the end: {_load()}")


if __name__ == "__main__":
    main()
