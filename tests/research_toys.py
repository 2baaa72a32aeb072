"""Toy "models" whose loss landscapes are known exactly, for the research-measure tests."""

from __future__ import annotations

import torch
from torch import nn

DATA = (torch.zeros(1, 1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64))


def loss_of_output(out, y):
    """The toy modules return their loss as the output."""
    return out


class Quadratic(nn.Module):
    """L(w) = 1/2 (w - c)^T A (w - c): Hessian A, gradient A (w - c)."""

    def __init__(self, A: torch.Tensor, c: torch.Tensor, w0: torch.Tensor):
        super().__init__()
        self.w = nn.Parameter(w0.clone().double())
        self.register_buffer("A", A.double())
        self.register_buffer("c", c.double())

    def forward(self, X):
        d = self.w - self.c
        return 0.5 * d @ self.A @ d


class TwoWells(nn.Module):
    """L(x, y) = (x^2 + y^2 - 1)^2 + 0.1 y^2: minima at (+-1, 0) with loss 0; the straight
    line between them crosses (0, 0) with loss 1, while the arc near the unit circle through
    (0, +-1) never rises above 0.1."""

    def __init__(self, x: float, y: float):
        super().__init__()
        self.p = nn.Parameter(torch.tensor([x, y], dtype=torch.float64))

    def forward(self, X):
        x, y = self.p
        return (x * x + y * y - 1) ** 2 + 0.1 * y * y


def relu_mlp(seed: int = 0, sizes=(3, 6, 5, 2)) -> nn.Module:
    torch.manual_seed(seed)
    layers = []
    for i in range(len(sizes) - 1):
        layers += [nn.Linear(sizes[i], sizes[i + 1]), nn.ReLU()]
    return nn.Sequential(*layers[:-1]).double()


def relu_data(seed: int = 0, n: int = 40, d: int = 3, k: int = 2):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randint(0, k, (n,), generator=g)
    return X, y
