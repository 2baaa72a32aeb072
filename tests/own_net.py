"""A user's own model, data and loss for tests/test_own.py (copied into a temporary folder
and imported from there, as `--model-factory own_net:make_net` would be).

The net has what trips up generic slicers: a convolution, BatchNorm (running statistics
that are buffers), and a custom block holding a scalar nn.Parameter (a 0-d tensor).
"""

import numpy as np
import torch
from torch import nn


class Gate(nn.Module):
    """x -> relu(x) * scale + shift * x: a custom block with a scalar parameter."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(1.3))
        self.shift = nn.Parameter(torch.tensor(0.1))

    def forward(self, x):
        return torch.relu(x) * self.scale + self.shift * x


class Net(nn.Module):
    def __init__(self, width: int = 4, classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, width, 3, padding=1)
        self.bn = nn.BatchNorm2d(width)
        self.gate = Gate()
        self.head = nn.Linear(width * 6 * 6, classes)

    def forward(self, x):  # (N, 1, 6, 6)
        h = self.gate(self.bn(self.conv(x)))  # (N, width, 6, 6)
        return self.head(h.flatten(1))  # (N, classes)


def make_net(width: int = 4, classes: int = 3, seed: int = 0) -> Net:
    torch.manual_seed(seed)
    net = Net(width, classes)
    with torch.no_grad():  # non-trivial running statistics, as a trained net has
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 2.0)
    return net


def make_data(n: int = 40, classes: int = 3, seed: int = 0):
    gen = np.random.default_rng(seed)
    X = gen.normal(size=(n, 1, 6, 6)).astype(np.float32)
    y = gen.integers(0, classes, size=n).astype(np.int64)
    return X, y


def data_fn():
    X, y = make_data()
    return torch.from_numpy(X), torch.from_numpy(y)


class PairSet(torch.utils.data.Dataset):
    def __init__(self) -> None:
        self.X, self.y = make_data()

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return torch.from_numpy(self.X[i]), int(self.y[i])


def dataset_fn():
    return PairSet()


def my_loss(out, y):
    return torch.nn.functional.cross_entropy(out, y) + 0.5


def broken_factory(width: int = 4):
    raise RuntimeError("out of coffee")


class Evil:
    """Unpickling this would create MARKER: torch.load(weights_only=True) must never do it."""

    marker = ""

    def __reduce__(self):
        return (open, (self.marker, "w"))
