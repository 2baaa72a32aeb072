"""Your own model at ResNet-18 size: our own-model path against loss-landscapes and a plain loop.

Run from the repository root:  python benchmarks/bench_own_model.py [--repeats 2] [--quick]

A torchvision-style ResNet-18 (BasicBlocks [2, 2, 2, 2], 7x7 stem + max-pool, 10 classes,
11.2 M parameters) defined below, random weights (seed 0), 512 random 3x32x32 inputs with
random labels, an 11x11 plane of cross-entropy on [-1, 1]^2. In one process, interleaved,
minimum over ``--repeats``:

  (a) ours: ``landscape.engine.own.open_model("bench_own_model:resnet18", weights.safetensors,
      data.npz).plane(...)``, the path the command line takes (the batch size chosen from the
      data and memory, on the surface fast path when it supports the model and wins the race);
  (b) a plain loop: copy each point's weights into the model in place, one full-batch forward;
  (c) ``loss_landscapes.random_plane`` (PyPI loss-landscapes 3.0.6, filter normalisation).

It also checks that (a) equals (b) along the same directions (max relative difference).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_own_model:resnet18

THREADS = 2  # the machine the figures in README were taken on has 2 cores
N_SAMPLES, STEPS = 512, 11


# ----------------------------------------------------------------------------- the model


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample=None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    """torchvision.models.ResNet with BasicBlocks (torchvision itself is not installed)."""

    def __init__(self, layers=(2, 2, 2, 2), num_classes: int = 10) -> None:
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._layer(64, layers[0])
        self.layer2 = self._layer(128, layers[1], 2)
        self.layer3 = self._layer(256, layers[2], 2)
        self.layer4 = self._layer(512, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _layer(self, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        down = None
        if stride != 1 or self.inplanes != planes:
            down = nn.Sequential(
                nn.Conv2d(self.inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )
        layers = [BasicBlock(self.inplanes, planes, stride, down)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):  # (N, 3, 32, 32)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (N, 64, 8, 8)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (N, 512, 1, 1)
        return self.fc(torch.flatten(self.avgpool(x), 1))  # (N, 10)


def resnet18(num_classes: int = 10, seed: int = 0) -> ResNet:
    """Random weights; BatchNorm scale, shift and statistics random too, as after training
    (loss-landscapes divides by zero filter-normalising a fresh BatchNorm's all-zero bias)."""
    torch.manual_seed(seed)
    net = ResNet((2, 2, 2, 2), num_classes)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return net


# ----------------------------------------------------------------------------- methods


def run_ours(folder: Path, d1, d2, xs):
    from landscape.engine import own

    m = own.open_model(
        "bench_own_model:resnet18",
        folder / "resnet18.safetensors",
        str(folder / "data.npz"),
        device="cpu",
    )
    s = m.plane(d1, d2, xs, xs)
    return s.loss.ravel(), s.meta["method"]


@torch.no_grad()
def run_plain_loop(model, X, y, d1, d2, xs):
    """Write each point's weights into the model in place, one full-batch forward."""
    params = dict(model.named_parameters())
    center = {k: p.detach().clone() for k, p in params.items()}
    out = []
    try:
        for b in xs:
            for a in xs:
                for k, p in params.items():
                    p.copy_(center[k] + float(a) * d1[k] + float(b) * d2[k])
                out.append(nn.functional.cross_entropy(model(X), y).item())
    finally:
        for k, p in params.items():
            p.copy_(center[k])
    return np.array(out)


def run_loss_landscapes(model, X, y, steps: int):
    import loss_landscapes
    from loss_landscapes.metrics import Loss

    metric = Loss(nn.functional.cross_entropy, X, y)
    with torch.no_grad():
        return loss_landscapes.random_plane(
            model, metric, distance=1, steps=steps, normalization="filter", deepcopy_model=True
        )


def _seconds(fn):
    """(wall seconds, CPU seconds of this process, result): on a machine shared with other
    jobs the CPU time is the steadier figure (the wall time includes waiting for a core)."""
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return (time.perf_counter() - start, time.process_time() - cpu), out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=2, help="runs of each method (default: 2)")
    p.add_argument("--quick", action="store_true", help="5x5 grid, 128 samples (a smoke run)")
    p.add_argument("--samples", type=int, default=N_SAMPLES, help="inputs (default: 512)")
    p.add_argument("--steps", type=int, default=STEPS, help="grid points per axis (default: 11)")
    p.add_argument("--threads", type=int, default=THREADS, help="torch threads (default: 2)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    from safetensors.torch import save_file

    from landscape.core.directions import random_directions
    from landscape.engine import batched

    n, steps = (128, 5) if args.quick else (args.samples, args.steps)
    model = resnet18().eval()
    g = torch.Generator().manual_seed(0)
    X = torch.randn(n, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    d1, d2 = random_directions(model, 2, seed=0)
    xs = np.linspace(-1.0, 1.0, steps)
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"ResNet-18 ({n_params:,} parameters), {n} samples of 3x32x32, {steps}x{steps} grid, "
        f"{args.threads} threads; batched.supports: {batched.supports(model)}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        save_file(model.state_dict(), folder / "resnet18.safetensors")
        np.savez(folder / "data.npz", X=X.numpy(), y=y.numpy())
        times = {"ours (landscape.engine.own)": [], "plain loop": [], "loss-landscapes 3.0.6": []}
        for r in range(args.repeats):
            t, (ours, method) = _seconds(lambda: run_ours(folder, d1, d2, xs))
            times["ours (landscape.engine.own)"].append(t)
            t, plain = _seconds(lambda: run_plain_loop(model, X, y, d1, d2, xs))
            times["plain loop"].append(t)
            t, _ = _seconds(lambda: run_loss_landscapes(model, X, y, steps))
            times["loss-landscapes 3.0.6"].append(t)
            print(
                f"  repeat {r + 1}: "
                + ", ".join(f"{k} {v[-1][0]:.2f}s (CPU {v[-1][1]:.2f}s)" for k, v in times.items())
            )
    rel = np.max(np.abs(ours - plain) / np.maximum(np.abs(plain), 1e-12))
    wall = {k: min(t[0] for t in v) for k, v in times.items()}
    cpu = {k: min(t[1] for t in v) for k, v in times.items()}
    base_w, base_c = wall["ours (landscape.engine.own)"], cpu["ours (landscape.engine.own)"]
    print(f"\nours used the {method} path; max relative difference to the plain loop: {rel:.1e}")
    print("| method | wall s (min) | vs ours | CPU s (min) | vs ours |")
    print("|---|---:|---:|---:|---:|")
    for k in times:
        print(
            f"| {k} | {wall[k]:.2f} | {wall[k] / base_w:.2f}x | {cpu[k]:.2f} | "
            f"{cpu[k] / base_c:.2f}x |"
        )


if __name__ == "__main__":
    main()
