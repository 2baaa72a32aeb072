"""Your own model, four kinds: the tool against a plain full-batch loop and loss-landscapes.

Run from the repository root:  python benchmarks/bench_models.py [--steps 7] [--repeats 5]

Four small nets with random weights (seed 0) and random data, defined below: a one-layer
``nn.TransformerEncoderLayer`` classifier on token sequences, a Conv1d + BatchNorm + GRU net
(neither of which the surface fast path supports), a CNN and an MLP (which it does). For each,
in one process, interleaved (the order rotated each run), ``--repeats`` runs of a
``--steps`` x ``--steps`` plane of cross-entropy on [-1, 1]^2:

  (a) the tool: ``landscape.engine.own.open_model("bench_models:<net>", weights, data)``, then
      ``.plane(...)`` (timed; opening is not), the path the command line takes, with the
      batch size it chooses from the data and memory (no --batch-size); and again with
      ``batch_size=256`` (the former default) for comparison;
  (b) a plain loop written in ten lines: copy each point's weights into the model in place,
      one full-batch forward, ``F.cross_entropy``;
  (c) ``loss_landscapes.random_plane`` (PyPI loss-landscapes 3.0.6, filter normalisation;
      its normalisation divides by every bias entry, so zero biases, such as attention's,
      get a small random value first).

Ratios are the other method's CPU seconds over the tool's (above 1: the tool is faster), as
two figures: of the minima over the runs, and the median of the per-run ratios (the two
methods of one run share the machine's load, so the paired figure is the steadier). It also
checks that (a) equals (b) along the same directions (max relative difference).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_models:<factory>

from bench_own_model import _seconds, run_loss_landscapes, run_plain_loop  # noqa: E402

VOCAB, SEQ, CLASSES = 50, 16, 4


# ----------------------------------------------------------------------------- the models


class Transformer(nn.Module):
    """Token embedding + one TransformerEncoderLayer + mean pooling + a linear head."""

    def __init__(self, d_model: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, d_model)
        self.pos = nn.Parameter(torch.randn(SEQ, d_model) * 0.1)
        self.layer = nn.TransformerEncoderLayer(d_model, 4, 64, dropout=0.1, batch_first=True)
        self.head = nn.Linear(d_model, CLASSES)

    def forward(self, x):
        return self.head(self.layer(self.embed(x) + self.pos).mean(1))


class GRUNet(nn.Module):
    """Conv1d + BatchNorm1d + ReLU, a GRU over the sequence, a linear head on its last state."""

    def __init__(self, channels: int = 4, hidden: int = 24) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, 16, 3, padding=1)
        self.bn = nn.BatchNorm1d(16)
        self.gru = nn.GRU(16, hidden, batch_first=True)
        self.head = nn.Linear(hidden, CLASSES)

    def forward(self, x):
        h = torch.relu(self.bn(self.conv(x))).transpose(1, 2)
        return self.head(self.gru(h)[0][:, -1])


def transformer() -> nn.Module:
    return Transformer()


def gru() -> nn.Module:
    return GRUNet()


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(16 * 4 * 4, CLASSES),
    )  # fmt: skip


def mlp() -> nn.Module:
    return nn.Sequential(
        nn.Linear(20, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, CLASSES)
    )


def data_for(name: str, n: int, g: torch.Generator):
    if name == "transformer":
        X = torch.randint(0, VOCAB, (n, SEQ), generator=g)
    elif name == "gru":
        X = torch.randn(n, 4, 32, generator=g)
    elif name == "cnn":
        X = torch.randn(n, 1, 16, 16, generator=g)
    else:
        X = torch.randn(n, 20, generator=g)
    return X, torch.randint(0, CLASSES, (n,), generator=g)


MODELS = {"transformer": transformer, "gru": gru, "cnn": cnn, "mlp": mlp}


def build(name: str) -> nn.Module:
    torch.manual_seed(0)
    net = MODELS[name]()
    with torch.no_grad():
        for m in net.modules():  # BatchNorm statistics that are not the identity
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
        for p in net.parameters():  # loss-landscapes divides by each bias entry's norm
            if p.ndim == 1 and not bool(p.all()):
                p.add_(torch.randn(p.shape) * 0.01)
    return net.eval()


# ----------------------------------------------------------------------------- methods


def open_tool(name, folder: Path, batch_size=None):
    from landscape.engine import own

    return own.open_model(
        f"bench_models:{name}",
        folder / f"{name}.safetensors",
        str(folder / f"{name}.npz"),
        device="cpu",
        batch_size=batch_size,
    )


def run_tool(m, d1, d2, xs):
    """The plane of an opened model (files read and checked before: not timed)."""
    s = m.plane(d1, d2, xs, xs)
    return s.loss.ravel(), s.meta


def measure(name, folder, model, X, y, d1, d2, xs, args):
    """Each method ``args.repeats`` times, interleaved, the order rotated every repeat (no
    method always runs first): {method: [(wall, cpu), ...]} in repeat order, and the tool's
    and the plain loop's losses (the last run)."""
    times: dict[str, list] = {k: [] for k in ("tool", "tool256", "plain", "ll")}
    out = {}

    def tool(m):
        out["ours"], out["meta"] = run_tool(m, d1, d2, xs)

    def plain():
        out["plain"] = run_plain_loop(model, X, y, d1, d2, xs)

    for r in range(args.repeats):
        opened = {"tool": open_tool(name, folder), "tool256": open_tool(name, folder, 256)}
        runs = {
            "tool": lambda m=opened["tool"]: tool(m),
            "tool256": lambda m=opened["tool256"]: run_tool(m, d1, d2, xs),
            "plain": plain,
            "ll": lambda: run_loss_landscapes(model, X, y, args.steps),
        }
        order = list(runs)
        for k in order[r % len(order) :] + order[: r % len(order)]:
            times[k].append(_seconds(runs[k])[0])
    return times, out["ours"], out["meta"], out["plain"]


def ratios(times: dict, other: str) -> str:
    """``other``'s CPU seconds over the tool's: of the two minima, and the median of the
    per-repeat ratios (each repeat runs both under the same load)."""
    low = min(t[1] for t in times[other]) / min(t[1] for t in times["tool"])
    paired = float(np.median([o[1] / t[1] for o, t in zip(times[other], times["tool"])]))
    return f"{low:.2f}x / {paired:.2f}x"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5, help="runs of each method (default: 5)")
    p.add_argument("--steps", type=int, default=7, help="grid points per axis (default: 7)")
    p.add_argument("--samples", type=int, default=2048, help="samples per net (default: 2048)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from safetensors.torch import save_file

    from landscape.core.directions import random_directions
    from landscape.engine import batched

    xs = np.linspace(-1.0, 1.0, args.steps)
    print(
        f"{args.samples} samples per net, {args.steps}x{args.steps} grid, {args.threads} "
        f"thread(s), {args.repeats} interleaved runs (order rotated); ratios = other's CPU s / "
        "tool's: of the minima / median of the per-run ratios"
    )
    print(
        "| net | parameters | fast path | tool path, batch | tool s | plain loop | "
        "vs plain | vs plain at --batch-size 256 | loss-landscapes s | vs loss-landscapes | "
        "max rel. diff |"
    )
    print("|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in args.models:
            model = build(name)
            X, y = data_for(name, args.samples, torch.Generator().manual_seed(1))
            save_file(model.state_dict(), folder / f"{name}.safetensors")
            np.savez(folder / f"{name}.npz", X=X.numpy(), y=y.numpy())
            d1, d2 = random_directions(model, 2, seed=0)
            times, ours, meta, plain = measure(name, folder, model, X, y, d1, d2, xs, args)
            cpu = {k: min(t[1] for t in v) for k, v in times.items()}
            rel = float(np.max(np.abs(ours - plain) / np.maximum(np.abs(plain), 1e-12)))
            n_params = sum(p.numel() for p in model.parameters())
            print(
                f"| {name} | {n_params:,} | {batched.supports(model)} | {meta['method']}, "
                f"{meta['batch_size']} | {cpu['tool']:.2f} | {cpu['plain']:.2f} | "
                f"{ratios(times, 'plain')} | {cpu['plain'] / cpu['tool256']:.2f}x | "
                f"{cpu['ll']:.2f} | {ratios(times, 'll')} | {rel:.1e} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
