"""Paths between two minima (mode connectivity).

Two runs of one architecture from different seeds end in different minima. Along the
straight line between them the loss usually rises (a *barrier*); Garipov et al. (NeurIPS
2018) and Draxler et al. (ICML 2018) found that a simple curve joins them with almost no
rise. This module measures both:

- ``straight_line``: the loss at ``w(t) = w_a + t (w_b - w_a)``, t in [0, 1].
- the **barrier height**, as Frankle et al. (ICML 2020) define their instability measure:
  ``max_t L(w(t)) - (L(w_a) + L(w_b)) / 2`` (the peak above the *mean* of the endpoint
  losses; they use the error, we report it for the loss). ``barrier_interp`` is the variant
  against the linear interpolation of the endpoint losses, ``max_t [L(w(t)) - ((1-t) L_a +
  t L_b)]`` (Entezari et al. 2022); the two agree when the endpoints have equal loss.
- ``fit_curve``: Garipov et al.'s curve with one trainable point θ, a quadratic Bezier
  ``φ(t) = (1-t)^2 w_a + 2t(1-t) θ + t^2 w_b`` or a polygonal chain ``w_a -> θ -> w_b``,
  trained by minimising ``E_{t~U(0,1)} L(φ(t))`` with Adam (one t per step, seeded), θ
  starting at the midpoint plus a small seeded perturbation (at the exact midpoint a
  symmetric problem has zero gradient across the line).
- the plane through ``w_a``, ``w_b`` and θ, where both paths lie exactly: ``w_a`` at the
  origin, ``w_b`` on the first axis, coordinates in parameter-space distance.

BatchNorm: floating-point buffers are interpolated linearly in t between the two nets' own
buffers (so each endpoint is exactly that net), the curve included; the plane uses ``w_a``'s.

Every loss and gradient is ``landscape.core.hessian.FlatLoss``'s, on the models' device; with
``batch_size`` the data is read in batches weighted ``n_b / N`` (exactly the whole-set mean),
and a curve step back-propagates one batch at a time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from landscape.core import checks
from landscape.core.hessian import FlatLoss, LossFn
from landscape.engine import surface

CURVES = ("bezier", "chain")
MAX_POINTS = 201
MAX_CURVE_STEPS = 5000
MAX_PLANE_RES = 41


def _check_pair(model_a: nn.Module, model_b: nn.Module) -> None:
    a = {n: p.shape for n, p in model_a.named_parameters()}
    b = {n: p.shape for n, p in model_b.named_parameters()}
    if a != b:
        diff = sorted(set(a.items()) ^ set(b.items()), key=str)[:1]
        raise ValueError(
            f"the two nets must have the same architecture (parameter names and shapes); "
            f"they differ at {diff[0][0]!r}"
        )


class _Pair:
    """Both endpoints as flat vectors over every parameter, buffers interpolated in t."""

    def __init__(self, model_a, model_b, loss_fn, data, batch_size=None):
        _check_pair(model_a, model_b)
        self.Fa = FlatLoss(model_a, loss_fn, data, batch_size=batch_size)
        self.wa = self.Fa.x0
        named_b = dict(model_b.named_parameters())  # the same names in the same order as A's
        self.wb = torch.cat([named_b[n].detach().reshape(-1) for n in self.Fa.names]).to(self.wa)
        self.bufa = dict(model_a.named_buffers())
        self.bufb = {n: b.to(self.bufa[n].device) for n, b in model_b.named_buffers()}

    def _buffers(self, t: float) -> dict[str, Tensor]:
        out = {}
        for n, ba in self.bufa.items():
            bb = self.bufb[n]
            out[n] = ba + t * (bb - ba) if ba.is_floating_point() else ba
        return out

    def loss(self, x: Tensor, t: float) -> float:
        self.Fa.buffers = self._buffers(t)
        return self.Fa.loss(x)


def curve_point(kind: str, wa: Tensor, theta: Tensor, wb: Tensor, t: float) -> Tensor:
    """φ(t) of a Bezier curve or a polygonal chain with middle point θ."""
    if kind == "bezier":
        return (1 - t) ** 2 * wa + 2 * t * (1 - t) * theta + t**2 * wb
    if kind == "chain":
        return wa + 2 * t * (theta - wa) if t <= 0.5 else theta + (2 * t - 1) * (wb - theta)
    raise ValueError(f"curve={kind!r} is not valid: must be one of {', '.join(CURVES)}")


def barrier(ts, losses) -> tuple[float, float]:
    """(Frankle et al.'s barrier: max L(t) - mean of the endpoints, the interpolated variant)."""
    ts, losses = np.asarray(ts, float), np.asarray(losses, float)
    la, lb = losses[0], losses[-1]
    frankle = float(np.max(losses) - 0.5 * (la + lb))
    interp = float(np.max(losses - ((1 - ts) * la + ts * lb)))
    return frankle, interp


def straight_line(model_a, model_b, loss_fn, data, points: int = 21, batch_size=None):
    """(ts, loss along w_a + t (w_b - w_a)); t = 0 and 1 are the two nets exactly."""
    checks.int_in("points", points, 3, MAX_POINTS)
    pair = _Pair(model_a, model_b, loss_fn, data, batch_size)
    ts = np.linspace(0.0, 1.0, points)
    d = pair.wb - pair.wa
    return ts, np.array([pair.loss(pair.wa + float(t) * d, float(t)) for t in ts])


def _fit(pair: _Pair, kind, steps, lr, seed, progress) -> tuple[Tensor, list[float]]:
    gen = torch.Generator().manual_seed(seed)
    wa, wb = pair.wa, pair.wb
    dist = float((wb - wa).norm())
    noise = torch.randn(wa.shape, generator=gen, dtype=torch.float64).to(wa)
    noise = noise / max(float(noise.norm()), 1e-30) * 0.05 * max(dist, 1e-3)
    theta = (0.5 * (wa + wb) + noise).requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=lr)
    ts = torch.rand(steps, generator=gen, dtype=torch.float64)
    history = []
    for i in range(steps):
        t = float(ts[i])
        opt.zero_grad()
        # dL/dφ batch by batch (the memory of one batch), then through φ(t) to θ
        pair.Fa.buffers = pair._buffers(t)
        with torch.enable_grad():
            x = curve_point(kind, wa, theta, wb, t)
            value, g = pair.Fa.value_and_grad(x.detach())
            x.backward(g)
        opt.step()
        history.append(value)
        if progress is not None and (i + 1) % max(1, steps // 50) == 0:
            progress(i + 1, steps)
    return theta.detach(), history


def fit_curve(
    model_a,
    model_b,
    loss_fn,
    data,
    kind="bezier",
    steps=300,
    lr=0.01,
    seed=0,
    progress=None,
    batch_size=None,
) -> tuple[dict[str, Tensor], list[float]]:
    """The trained middle point θ (dict keyed like named_parameters) and the loss per step."""
    curve_point(kind, torch.zeros(1), torch.zeros(1), torch.zeros(1), 0.0)  # validates kind
    checks.int_in("steps", steps, 1, MAX_CURVE_STEPS)
    checks.number_in("lr", lr, 0.0, 10.0, open_lo=True)
    checks.int_in("seed", seed, 0, 2**63 - 1)
    pair = _Pair(model_a, model_b, loss_fn, data, batch_size)
    theta, hist = _fit(pair, kind, steps, lr, seed, progress)
    return pair.Fa.to_dict(theta), hist


@dataclass
class ConnectivityResult:
    ts: np.ndarray  # (n,) path parameter in [0, 1]
    line_loss: np.ndarray  # (n,) along the straight line
    curve_loss: np.ndarray  # (n,) along the learned curve
    barrier: float  # Frankle et al.: max line loss - mean of the endpoint losses
    barrier_interp: float  # max of line loss - linear interpolation of the endpoint losses
    curve_barrier: float  # the same as `barrier` along the learned curve
    curve_barrier_interp: float
    kind: str  # "bezier" | "chain"
    distance: float  # ||w_b - w_a||
    history: list[float]  # curve training loss per step
    plane: surface.Surface | None  # loss over the plane through w_a, w_b, θ
    line_xy: np.ndarray  # (2, n) the straight line in plane coordinates
    curve_xy: np.ndarray  # (2, n) the curve in plane coordinates
    points_xy: np.ndarray  # (3, 2) w_a, w_b, θ in plane coordinates
    theta: dict[str, Tensor]
    seconds: dict[str, float]  # "line", "curve", "plane"


def connect(
    model_a: nn.Module,
    model_b: nn.Module,
    loss_fn: LossFn,
    data,
    kind: str = "bezier",
    steps: int = 300,
    lr: float = 0.01,
    points: int = 41,
    plane_res: int = 21,
    margin: float = 0.2,
    seed: int = 0,
    progress=None,
    batch_size: int | None = None,
) -> ConnectivityResult:
    """Straight line, learned curve and the plane through both, for two nets of one
    architecture. ``progress(fraction, text)``; ``plane_res=0`` skips the plane;
    ``batch_size``: data per forward pass (the mean stays exact)."""
    curve_point(kind, torch.zeros(1), torch.zeros(1), torch.zeros(1), 0.0)
    checks.int_in("points", points, 3, MAX_POINTS)
    checks.int_in("plane_res", plane_res, 0, MAX_PLANE_RES)
    checks.number_in("margin", margin, 0.0, 10.0, open_lo=False)
    checks.int_in("steps", steps, 1, MAX_CURVE_STEPS)
    checks.number_in("lr", lr, 0.0, 10.0, open_lo=True)
    say = progress or (lambda f, s: None)
    secs = {}
    t0 = time.perf_counter()
    pair = _Pair(model_a, model_b, loss_fn, data, batch_size)
    wa, wb = pair.wa, pair.wb
    ts = np.linspace(0.0, 1.0, points)
    line = np.array([pair.loss(wa + float(t) * (wb - wa), float(t)) for t in ts])
    secs["line"] = time.perf_counter() - t0
    say(0.05, "straight line")
    t0 = time.perf_counter()
    theta, hist = _fit(pair, kind, steps, lr, seed, lambda d, n: say(0.05 + 0.6 * d / n, "curve"))
    path = [curve_point(kind, wa, theta, wb, float(t)) for t in ts]
    curve = np.array([pair.loss(x, float(t)) for x, t in zip(path, ts)])
    secs["curve"] = time.perf_counter() - t0
    # the plane through w_a, w_b and θ: orthonormal basis e1 (towards w_b), e2
    t0 = time.perf_counter()
    u = wb - wa
    dist = float(u.norm())
    e1 = u / dist if dist > 0 else torch.zeros_like(u)
    v = theta - wa - float((theta - wa) @ e1) * e1
    e2 = v / float(v.norm()) if float(v.norm()) > 0 else torch.zeros_like(v)
    coords = lambda x: [float((x - wa) @ e1), float((x - wa) @ e2)]  # noqa: E731
    line_xy = np.array([coords(wa + float(t) * u) for t in ts]).T
    curve_xy = np.array([coords(x) for x in path]).T
    pts = np.array([coords(wa), coords(wb), coords(theta)])
    plane = None
    if plane_res and dist > 0 and float(v.norm()) > 0:
        span_x = pts[:, 0].max() - pts[:, 0].min()
        span_y = max(pts[:, 1].max() - pts[:, 1].min(), 1e-6)
        pad = margin * max(span_x, span_y)
        xs = np.linspace(pts[:, 0].min() - pad, pts[:, 0].max() + pad, plane_res)
        ys = np.linspace(min(pts[:, 1].min(), curve_xy[1].min()) - pad,
                         max(pts[:, 1].max(), curve_xy[1].max()) + pad, plane_res)  # fmt: skip
        pair.Fa.buffers = pair._buffers(0.0)
        cb = lambda d, n: say(0.7 + 0.3 * d / n, "plane")  # noqa: E731
        if batch_size is None:  # the surface engine (its fast batched path when it applies)
            plane = surface.plane(model_a, loss_fn, data, pair.Fa.to_dict(e1),
                                  pair.Fa.to_dict(e2), xs, ys, progress=cb)  # fmt: skip
        else:  # the batched mean, one point at a time
            loss = np.empty((len(ys), len(xs)))  # loss[i, j] at xs[j] e1 + ys[i] e2
            for i, yv in enumerate(ys):
                for j, xv in enumerate(xs):
                    loss[i, j] = pair.Fa.loss(wa + float(xv) * e1 + float(yv) * e2)
                cb(i + 1, len(ys))
            meta = {"kind": "plane", "method": "loop", "batch_size": batch_size}
            plane = surface.Surface("plane", xs, ys, loss, None, meta)
    secs["plane"] = time.perf_counter() - t0
    b, bi = barrier(ts, line)
    cb, cbi = barrier(ts, curve)
    return ConnectivityResult(
        ts, line, curve, b, bi, cb, cbi, kind, dist, hist, plane, line_xy, curve_xy, pts,
        pair.Fa.to_dict(theta), secs,
    )  # fmt: skip


def for_runs(run_a, run_b, split: str = "train", **kw) -> ConnectivityResult:
    """``connect`` for two Runs of one architecture on run_a's data (train or test split)."""
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r} is not valid: must be train or test")
    ds = run_a.dataset()
    data = (ds.X_train, ds.y_train) if split == "train" else (ds.X_test, ds.y_test)
    return connect(run_a.model(), run_b.model(), run_a.loss_fn(), data, **kw)
