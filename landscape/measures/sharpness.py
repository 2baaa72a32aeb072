"""Sharpness measures side by side, and the rescaling that fools most of them.

"A flatter minimum generalises better" is argued with several different numbers; this module
computes them all at one point ``w`` of one net so they can be read together:

- ``lambda_max`` and ``trace`` of the Hessian (``landscape.measures.curvature``): local curvature.
- **ε-sharpness** (Keskar et al., ICLR 2017): the largest loss increase in the box
  ``|δ_i| <= ε (|w_i| + 1)``, ``max L(w + δ) - L(w)``. Keskar et al. report it as a percentage
  of ``1 + L(w)``; ``SharpnessResult.keskar_percent`` gives that form.
- **ρ-sharpness** (SAM, Foret et al., ICLR 2021): the largest increase in the L2 ball
  ``||δ||_2 <= ρ``.
- **Adaptive sharpness** (ASAM, Kwon et al., ICML 2021): the largest increase in the ball
  ``||δ / |w| ||_2 <= ρ`` (elementwise), i.e. the L2 ball in coordinates scaled by each
  weight's size. A ReLU net whose layer k is multiplied by α and layer k+1 by 1/α computes the
  same function (Dinh et al., ICML 2017); this ball moves with the weights, so the measure is
  unchanged, whereas λmax, the trace and the ρ- and ε-sharpness all change.
- the **filter-normalised basin width** of the Compare page (``landscape.pipelines.comparisons``):
  invariant to that rescaling for the same reason (directions scaled to each filter's norm).

All maxima are found by projected gradient ascent, every iterate feasible, so the value
reported is the best loss actually reached: a lower bound of the true maximum, exact on a
convex quadratic in the tests. One engine serves the three constrained measures: with
``δ = s ⊙ u`` the constraint is a ball (``||u||_2 <= r``) or a box (``|u_i| <= r``) in ``u``;
``s = 1`` (SAM), ``s = |w|`` (ASAM), ``s = |w| + 1`` with a box (Keskar).

Every loss, gradient and Hessian-vector product goes through ``landscape.core.hessian.FlatLoss``
on the model's device; with ``batch_size`` the data is read in batches weighted ``n_b / N``,
which is exactly the mean over the whole set (a data set too large for one forward pass).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from landscape.core import checks, directions
from landscape.core.hessian import FlatLoss, LossFn
from landscape.engine import surface
from landscape.measures import basin, curvature

MEASURES = ("lambda_max", "trace", "eps", "rho", "asam", "basin_width")
LABELS = {
    "lambda_max": "λmax (top Hessian eigenvalue)",
    "trace": "Hessian trace",
    "eps": "ε-sharpness (Keskar, box)",
    "rho": "ρ-sharpness (SAM, L2 ball)",
    "asam": "adaptive sharpness (ASAM)",
    "basin_width": "basin width (filter-normalised)",
}
#: Which measures a function-preserving rescaling of a ReLU net leaves unchanged, in theory.
INVARIANT = {
    "lambda_max": False,
    "trace": False,
    "eps": False,
    "rho": False,
    "asam": True,
    "basin_width": True,
}
MAX_STEPS = 1000
MAX_RESTARTS = 64


@dataclass
class SharpnessResult:
    """The outcome of one constrained maximisation of the loss around ``w``."""

    value: float  # max L(w + δ) - L(w) found (>= 0)
    loss0: float  # L(w)
    delta: dict[str, Tensor]  # the best δ, keyed like named_parameters
    kind: str  # "eps" | "rho" | "asam"
    radius: float  # ε or ρ
    evaluations: int  # loss + gradient evaluations used
    seconds: float

    @property
    def keskar_percent(self) -> float:
        """Keskar et al.'s normalisation: 100 * increase / (1 + L(w))."""
        return keskar_percent(self.value, self.loss0)


def keskar_percent(increase: float, loss0: float) -> float:
    """Keskar et al.'s form of a sharpness: 100 (max L(w + δ) - L(w)) / (1 + L(w))."""
    return 100.0 * increase / (1.0 + loss0)


def _ascent(
    F: FlatLoss,
    scale: Tensor,
    radius: float,
    geometry: str,
    steps: int,
    step_size: float,
    restarts: int,
    seed: int,
) -> tuple[float, float, Tensor, int]:
    """max L(x0 + scale ⊙ u) over ||u||_2 <= radius ("ball") or |u|_inf <= radius ("box").

    Ball: normalised gradient steps of ``step_size * radius`` then projection onto the ball.
    Box: sign steps (the steepest ascent for the L∞ norm) then clipping; the maximum of a
    convex function over a box is at a vertex, and sign steps reach vertices. Restart 0
    starts from the gradient's own direction (SAM's first step); the others from seeded
    random points on the boundary. Returns (best loss, L(x0), best u, evaluations).
    """
    x0 = F.x0
    loss0, g0 = F.value_and_grad(x0)
    evals = 1
    best, best_u = loss0, torch.zeros_like(x0)
    gen = torch.Generator().manual_seed(seed)

    def project(u: Tensor) -> Tensor:
        if geometry == "box":
            return u.clamp(-radius, radius)
        n = float(u.norm())
        return u if n <= radius else u * (radius / n)

    def step_dir(gu: Tensor) -> Tensor:
        if geometry == "box":
            return torch.sign(gu)
        n = float(gu.norm())
        return gu / n if n > 0 else gu

    for r in range(restarts):
        if r == 0 and float((scale * g0).norm()) > 0:
            u = step_dir(scale * g0) * radius
        elif geometry == "box":
            u = (torch.randint(0, 2, x0.shape, generator=gen) * 2 - 1).to(x0) * radius
        else:  # drawn on the CPU (the same on every device), then moved to x0's
            u = torch.randn(x0.shape, generator=gen, dtype=torch.float64).to(x0)
            u = u * (radius / float(u.norm()))
        u = project(u)
        for _ in range(steps):
            value, g = F.value_and_grad(x0 + scale * u)
            evals += 1
            if np.isfinite(value) and value > best:
                best, best_u = value, u.clone()
            d = step_dir(scale * g)
            if not torch.isfinite(d).all() or float(d.abs().max()) == 0:
                break
            u = project(u + step_size * radius * d)
        value = F.loss(x0 + scale * u)
        evals += 1
        if np.isfinite(value) and value > best:
            best, best_u = value, u.clone()
    return best, loss0, best_u, evals


def _measure(
    model, loss_fn, data, kind, radius, steps, step_size, restarts, seed, params, batch_size=None
):
    checks.number_in(
        {"eps": "eps", "rho": "rho", "asam": "rho"}[kind], radius, 0.0, 1e3, open_lo=True
    )
    checks.int_in("steps", steps, 1, MAX_STEPS)
    checks.number_in("step_size", step_size, 0.0, 1.0, open_lo=True)
    checks.int_in("restarts", restarts, 1, MAX_RESTARTS)
    checks.int_in("seed", seed, 0, 2**63 - 1)
    t0 = time.perf_counter()
    F = FlatLoss(model, loss_fn, data, params, batch_size=batch_size)
    absw = F.x0.abs()
    scale = {"eps": absw + 1.0, "rho": torch.ones_like(absw), "asam": absw}[kind]
    geometry = "box" if kind == "eps" else "ball"
    best, loss0, u, evals = _ascent(F, scale, radius, geometry, steps, step_size, restarts, seed)
    return SharpnessResult(
        value=max(best - loss0, 0.0),
        loss0=loss0,
        delta=F.to_dict(scale * u),
        kind=kind,
        radius=float(radius),
        evaluations=evals,
        seconds=time.perf_counter() - t0,
    )


def eps_sharpness(
    model: nn.Module,
    loss_fn: LossFn,
    data,
    eps: float = 1e-3,
    steps: int = 20,
    step_size: float = 0.5,
    restarts: int = 1,
    seed: int = 0,
    params: str = "all",
    batch_size: int | None = None,
) -> SharpnessResult:
    """Keskar et al.'s ε-sharpness: max L(w + δ) - L(w) over |δ_i| <= ε (|w_i| + 1)."""
    return _measure(
        model, loss_fn, data, "eps", eps, steps, step_size, restarts, seed, params, batch_size
    )


def rho_sharpness(
    model: nn.Module,
    loss_fn: LossFn,
    data,
    rho: float = 0.05,
    steps: int = 20,
    step_size: float = 0.5,
    restarts: int = 1,
    seed: int = 0,
    params: str = "all",
    batch_size: int | None = None,
) -> SharpnessResult:
    """SAM's ρ-sharpness: max L(w + δ) - L(w) over ||δ||_2 <= ρ."""
    return _measure(
        model, loss_fn, data, "rho", rho, steps, step_size, restarts, seed, params, batch_size
    )


def adaptive_sharpness(
    model: nn.Module,
    loss_fn: LossFn,
    data,
    rho: float = 0.5,
    steps: int = 20,
    step_size: float = 0.5,
    restarts: int = 1,
    seed: int = 0,
    params: str = "all",
    batch_size: int | None = None,
) -> SharpnessResult:
    """ASAM's adaptive sharpness: max L(w + δ) - L(w) over ||δ / |w| ||_2 <= ρ (elementwise).

    Kwon et al. add a small η to |w| so biases at zero can move; it is left out here because
    with it the measure is no longer exactly invariant to rescaling (a weight of exactly 0
    then stays put, which costs nothing for trained nets).
    """
    return _measure(
        model, loss_fn, data, "asam", rho, steps, step_size, restarts, seed, params, batch_size
    )


# ---------------------------------------------------------------------------------------------
# function-preserving rescaling (Dinh et al. 2017)


def rescale_relu(model: nn.Module, alpha: float, layer: int = 0) -> nn.Module:
    """A copy computing the same function: Linear/conv layer ``layer`` (weight and bias) times
    ``alpha``, the next one's weight divided by ``alpha``.

    ReLU is positively homogeneous (relu(a z) = a relu(z) for a > 0), so this holds for a
    plain ReLU MLP/CNN without BatchNorm between the two layers; ValueError otherwise. The
    Hessian becomes ``S^-1 H S^-1`` with ``S`` = alpha on the first layer, 1/alpha on the
    second: its block for the first layer shrinks by alpha^2, the second grows by alpha^2.
    """
    alpha = checks.number_in("alpha", alpha, 0.0, 1e4, open_lo=True)
    mods = list(model.modules())
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in mods):
        raise ValueError("rescale needs a net without BatchNorm (it would undo the scaling)")
    acts = [m for m in mods if isinstance(m, (nn.Tanh, nn.Sigmoid, nn.GELU))]
    if acts:
        raise ValueError(
            f"rescale needs a ReLU net: {type(acts[0]).__name__} is not positively homogeneous"
        )
    layers = [m for m in mods if isinstance(m, (nn.Linear, nn.Conv2d))]
    if not 0 <= layer < len(layers) - 1:
        raise ValueError(
            f"layer={layer} is out of range: this net has {len(layers)} layers, so layer must "
            f"be in [0, {len(layers) - 2}] (a layer and the next one are rescaled)"
        )
    out = copy.deepcopy(model)
    layers = [m for m in out.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    with torch.no_grad():
        layers[layer].weight.mul_(alpha)
        if layers[layer].bias is not None:
            layers[layer].bias.mul_(alpha)
        layers[layer + 1].weight.div_(alpha)
    return out


# ---------------------------------------------------------------------------------------------
# the panel: every measure at one point


@dataclass(frozen=True)
class PanelSettings:
    eps: float = 1e-3  # Keskar's box size (relative), Keskar et al. used 1e-3 and 5e-4
    rho: float = 0.05  # SAM's ball radius (the SAM paper's default)
    asam_rho: float = 0.5  # ASAM's radius in |w|-scaled units (Kwon et al.'s default)
    steps: int = 20  # gradient-ascent steps per restart
    step_size: float = 0.5  # step length as a fraction of the radius
    eig_tol: float = 1e-3  # Lanczos tolerance for λmax
    trace_samples: int = 20  # Hessian-vector products of the trace estimate (--probes)
    trace_method: str = "hutchinson"  # or "hutchpp" (curvature.TRACE_METHODS)
    n_dirs: int = 3  # random filter-normalised directions for the basin width
    level: float = 0.1  # basin width: rise of the loss that ends the basin
    span: float = 1.0  # basin width: lines over [-span, span]
    line_points: int = 41
    seed: int = 0
    batch_size: int | None = None  # data per forward pass (None: all at once); exact mean

    def __post_init__(self):
        checks.number_in("eps", self.eps, 0.0, 1.0, open_lo=True)
        checks.number_in("rho", self.rho, 0.0, 100.0, open_lo=True)
        checks.number_in("asam_rho", self.asam_rho, 0.0, 100.0, open_lo=True)
        checks.int_in("steps", self.steps, 1, MAX_STEPS)
        checks.number_in("step_size", self.step_size, 0.0, 1.0, open_lo=True)
        checks.number_in("eig_tol", self.eig_tol, 0.0, 1.0, open_lo=True)
        lo = 2 if self.trace_method == "hutchinson" else 4
        checks.int_in("trace_samples", self.trace_samples, lo, 10_000)
        checks.choice("trace_method", self.trace_method, curvature.TRACE_METHODS)
        checks.int_in("n_dirs", self.n_dirs, 1, 16)
        checks.number_in("level", self.level, 0.0, 1e4, open_lo=True)
        checks.number_in("span", self.span, 0.0, 100.0, open_lo=True)
        checks.int_in("line_points", self.line_points, 5, 401)
        checks.int_in("seed", self.seed, 0, 2**31 - 1)
        if self.batch_size is not None:
            checks.int_in("batch_size", self.batch_size, 1, 10**9)


@dataclass
class Panel:
    """Every sharpness measure of one net at one point, with the time each took."""

    label: str
    values: dict[str, float]  # keyed by MEASURES
    seconds: dict[str, float]  # time of each measure
    loss: float
    notes: list[str] = field(default_factory=list)
    censored: bool = False  # the basin width reached the end of a line
    errors: dict[str, float] = field(default_factory=dict)  # standard errors of estimates

    def row(self) -> dict:
        return {"net": self.label, "loss": self.loss, **self.values}


def basin_width(model, loss_fn, data, s: PanelSettings) -> tuple[float, bool]:
    """The Compare page's flatness figure: mean over ``n_dirs`` random filter-normalised
    directions of the width of the interval around t = 0 where the loss stays within
    ``level`` of the centre (``landscape.measures.basin.basin_width``).

    With ``s.batch_size`` the points are losses of ``FlatLoss`` (the data in batches, exact
    mean); without, of the surface engine (its fast batched path when it applies). The
    directions are drawn on the CPU, so they are the same on any device.
    """

    cpu = copy.deepcopy(model).cpu()
    dirs = directions.random_directions(
        cpu, max(2, s.n_dirs), norm="filter", ignore="biasbn", seed=s.seed
    )
    ts = np.linspace(-s.span, s.span, s.line_points)
    F = None if s.batch_size is None else FlatLoss(model, loss_fn, data, batch_size=s.batch_size)
    widths, censored = [], False
    for d in dirs[: s.n_dirs]:
        if F is None:
            dev = {k: v.to(next(iter(model.parameters())).device) for k, v in d.items()}
            loss = surface.line(model, loss_fn, data, dev, ts).loss
        else:
            v = F.from_dict(d, "direction")
            loss = np.array([F.loss(F.x0 + float(t) * v) for t in ts])
        level = float(loss[len(ts) // 2]) + s.level
        w, c = basin.basin_width(ts, loss, level)
        widths.append(w)
        censored = censored or c
    return float(np.mean(widths)), censored


def panel(
    model: nn.Module,
    loss_fn: LossFn,
    data,
    settings: PanelSettings = PanelSettings(),
    label: str = "net",
    progress=None,
) -> Panel:
    """All of MEASURES for ``model`` at its own weights (``progress(done, total, name)``)."""
    s = settings
    values, seconds, notes, errors = {}, {}, [], {}
    kw = dict(steps=s.steps, step_size=s.step_size, seed=s.seed, batch_size=s.batch_size)
    jobs = {
        "lambda_max": lambda: float(
            curvature.top_eigen(
                model, loss_fn, data, k=1, tol=s.eig_tol, seed=s.seed, batch_size=s.batch_size
            ).eigenvalues[0]
        ),
        "trace": lambda: curvature.trace(
            model,
            loss_fn,
            data,
            s.trace_samples,
            seed=s.seed,
            batch_size=s.batch_size,
            method=s.trace_method,
        ),  # fmt: skip
        "eps": lambda: eps_sharpness(model, loss_fn, data, s.eps, **kw).value,
        "rho": lambda: rho_sharpness(model, loss_fn, data, s.rho, **kw).value,
        "asam": lambda: adaptive_sharpness(model, loss_fn, data, s.asam_rho, **kw).value,
        "basin_width": lambda: basin_width(model, loss_fn, data, s),
    }
    censored = False
    for i, (name, job) in enumerate(jobs.items()):
        t0 = time.perf_counter()
        out = job()
        seconds[name] = time.perf_counter() - t0
        if name == "trace":
            out, errors["trace"] = out
        if name == "basin_width":
            out, censored = out
            if censored:
                notes.append("basin width reached the end of a line: it is a lower bound")
        values[name] = float(out)
        if progress is not None:
            progress(i + 1, len(jobs), name)
    flat = FlatLoss(model, loss_fn, data, batch_size=s.batch_size)
    loss = flat.loss(flat.x0)
    return Panel(label, values, seconds, loss, notes, censored, errors)


def rescaling_demo(
    model: nn.Module,
    loss_fn: LossFn,
    data,
    alphas=(1.0, 5.0),
    settings: PanelSettings = PanelSettings(),
    layer: int = 0,
    progress=None,
) -> list[Panel]:
    """Panels of the same ReLU function under each rescaling alpha (Dinh et al. 2017)."""
    out = []
    for i, a in enumerate(alphas):
        m = rescale_relu(model, a, layer)

        def cb(done, total, name, i=i):
            if progress is not None:
                progress(i * total + done, total * len(alphas), name)

        out.append(panel(m, loss_fn, data, settings, f"α = {a:g}", cb))
    return out


def run_panels(
    runs, settings: PanelSettings = PanelSettings(), split: str = "train", progress=None
):
    """Panels for ``[(label, Run, rescale), ...]`` (the Compare page's panels), one job;
    ``progress(fraction, text)``."""
    out = []
    for i, (label, run, rescale) in enumerate(runs):
        ds = run.dataset()
        data = (ds.X_train, ds.y_train) if split == "train" else (ds.X_test, ds.y_test)
        model = run.model()
        if rescale != 1.0:
            model = rescale_relu(model, rescale)

        def cb(done, total, name, i=i, label=label):
            if progress is not None:
                progress((i * total + done) / (total * len(runs)), f"{label}: {name}")

        out.append(panel(model, run.loss_fn(), data, settings, label, cb))
    return out


def rescaling_for_run(
    run, alphas=(1.0, 5.0), settings: PanelSettings = PanelSettings(), split="train", progress=None
) -> list[Panel]:
    """``rescaling_demo`` on a Run's net (a ReLU MLP/CNN without BatchNorm); ``progress(frac,
    text)``."""
    ds = run.dataset()
    data = (ds.X_train, ds.y_train) if split == "train" else (ds.X_test, ds.y_test)

    def cb(done, total, name):
        if progress is not None:
            progress(done / total, name)

    return rescaling_demo(run.model(), run.loss_fn(), data, alphas, settings, progress=cb)
