"""Side-by-side comparisons: the numbers behind the Compare page, and its presets.

A comparison puts two to four trained nets (or one net seen two ways) next to each other and
measures each the same way, so that the pictures can be argued about with numbers:

- a 2D slice along two seeded random directions, and ``n_dirs`` 1D slices along the first
  ``n_dirs`` of the same directions (one ``landscape.pipelines.slices`` request);
- the sharpness of the minimum: the top Hessian eigenvalue and the Hessian trace
  (``landscape.measures.curvature``), and optionally the convexity map of Li et al. (Fig. 7);
- the flatness figure ``basin_width``, defined precisely there: how far one can walk from the
  trained weights along a filter-normalised random direction before the loss rises above a
  level, averaged over the directions.

All panels use the same direction seed, so nets with identical parameter shapes (with and
without skips, say) are sliced along the same raw Gaussian directions, each normalised to its
own weights: direction for direction, as Li et al. compare them.

The one-click comparisons of the Compare page (``PRESETS``), their stories and the numbers
that back them are ``landscape.pipelines.comparison_presets``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from landscape.core import checks, directions
from landscape.data import datasets as data
from landscape.data.config import Config
from landscape.engine.subject import Subject
from landscape.engine.surface import Surface
from landscape.measures import curvature
from landscape.measures.basin import basin_width
from landscape.pipelines import slices
from landscape.storage import codec
from landscape.training.loop import Run

Progress = Callable[[float, str], None] | None  # (fraction in [0, 1], text)
Trainer = Callable[[Config, Callable[[dict], None] | None], Run]

SPLITS = ("train", "test")
LEVEL_MODES = ("rise", "absolute")
MAX_PANELS = 4


# ---------------------------------------------------------------------------------------------
# settings, panels, presets


@dataclass(frozen=True)
class Settings:
    """How every panel of a comparison is measured; frozen and hashable (a cache key)."""

    span: float = 1.0  # slices cover [-span, span] along each direction (direction units), (0, 100]
    resolution: int = 21  # plane grid points per axis, in [5, 41]
    line_points: int = 41  # points of each 1D slice, odd so that t=0 is on it, in [11, 201]
    n_dirs: int = 3  # random directions for the 1D slices and the basin width, in [1, 8]
    level: float = 0.1  # basin level: rise above the centre loss, or a loss value, in (0, 1e6]
    level_mode: str = "rise"  # "rise": level = centre loss + level; "absolute": level as given
    split: str = "train"  # data every surface and curvature figure is measured on
    seed: int = 0  # seed of the random directions and the eigen solvers, in [0, 2^31 - 1]
    eig_tol: float = 1e-3  # relative residual tolerance of the top eigenpair, in (0, 0.5]
    eig_max_iter: int = 50  # Lanczos steps (Hessian-vector products), in [2, 300]
    trace_samples: int = 20  # Hutchinson samples for the trace, in [2, 500]
    convexity: int = 0  # convexity-map points per axis (0 = skip it; it is slow), 0 or [3, 9]

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        checks.number_in("span", self.span, 0.0, 100.0, open_lo=True)
        checks.int_in("resolution", self.resolution, 5, 41)
        checks.int_in("line_points", self.line_points, 11, 201)
        if self.line_points % 2 == 0:
            raise checks.range_error(
                "line_points", self.line_points, "odd (so that t=0 is a grid point)"
            )
        checks.int_in("n_dirs", self.n_dirs, 1, 8)
        checks.number_in("level", self.level, 0.0, 1e6, open_lo=True)
        if self.level_mode not in LEVEL_MODES:
            raise ValueError(
                f"level_mode={self.level_mode!r} is not valid: must be one of {LEVEL_MODES}"
            )
        if self.split not in SPLITS:
            raise ValueError(f"split={self.split!r} is not valid: must be one of {SPLITS}")
        checks.int_in("seed", self.seed, 0, 2**31 - 1)
        checks.number_in("eig_tol", self.eig_tol, 0.0, 0.5, open_lo=True)
        checks.int_in("eig_max_iter", self.eig_max_iter, 2, 300)
        checks.int_in("trace_samples", self.trace_samples, 2, 500)
        if self.convexity != 0:
            checks.int_in("convexity", self.convexity, 3, 9)

    def replace(self, **kw) -> Settings:
        return dataclasses.replace(self, **kw)

    def ts(self) -> np.ndarray:
        return np.linspace(-self.span, self.span, self.line_points)

    def grid(self) -> np.ndarray:
        return np.linspace(-self.span, self.span, self.resolution)


codec.register("comparison-settings", Settings)


@dataclass(frozen=True)
class Panel:
    """One side of a comparison: what to train and how to look at it."""

    label: str  # shown above the panel, in legends and in the table
    config: Config  # the run; identical configs in one preset are trained once
    norm: str = "filter"  # normalisation of the random directions: filter | layer | weight | none
    rescale: float = 1.0  # >0: first hidden layer x rescale, next layer / rescale (ReLU MLP only)

    def __post_init__(self):
        if self.norm not in directions.NORMS:
            raise ValueError(f"norm={self.norm!r} is not valid: must be one of {directions.NORMS}")
        checks.number_in("rescale", self.rescale, 0.0, 1e3, open_lo=True)
        if self.rescale != 1.0:
            c = self.config
            if c.model != "mlp" or c.activation != "relu" or c.batchnorm or c.depth < 2:
                raise ValueError(
                    f"rescale={self.rescale} needs a ReLU MLP with depth >= 2 and no BatchNorm "
                    f"(got model={c.model!r}, activation={c.activation!r}, depth={c.depth}, "
                    f"batchnorm={c.batchnorm}): only there is the rescaled net the same function"
                )


codec.register("comparison-panel", Panel)


# ---------------------------------------------------------------------------------------------
# measuring one panel


@dataclass
class PanelResult:
    label: str
    run: Run | None  # None: a model measured without a training run (measure_subject)
    norm: str  # normalisation of the directions
    rescale: float  # 1.0 unless the panel shows a rescaled copy of the net
    plane: Surface  # (res, res) slice along d1, d2
    lines: list[Surface]  # n_dirs slices; lines[0] is along the plane's d1
    level: float  # the loss level of the basin width (absolute)
    widths: list[float]  # basin width along each direction
    censored: bool  # some width hit the end of the slice (true width larger)
    top_eigenvalue: float  # NaN when the Hessian could not be taken (diverged run)
    eig_residual: float  # ||Hv - lambda v|| / |lambda| achieved
    trace: float
    trace_stderr: float
    convexity: tuple[np.ndarray, np.ndarray, np.ndarray] | None  # (ratio, lmax, lmin) or None
    seconds: float  # time to measure this panel (training excluded)
    notes: list[str] = field(default_factory=list)  # warnings to show (diverged, NaN...)
    extras: dict[str, float] = field(default_factory=dict)  # task-specific figures for the table
    loss: float | None = None  # the centre's loss on `split` (measure_subject)
    accuracy: float | None = None  # the centre's accuracy on `split`, None for regression
    split: str = "train"  # data the panel was measured on

    @property
    def basin_width(self) -> float:
        return float(np.mean(self.widths))

    @property
    def nonconvexity(self) -> float | None:
        """Mean of max(-lambda_min, 0) / lambda_max over the convexity map (None: not computed).

        0 when the Hessian is positive semi-definite at every point of the map.
        """
        if self.convexity is None:
            return None
        ratio = self.convexity[0]
        return float(np.nanmean(ratio)) if np.any(np.isfinite(ratio)) else math.nan


codec.register("comparison-panel-result", PanelResult)


@dataclass
class Comparison:
    panels: list[PanelResult]
    settings: Settings
    train_seconds: float  # training time of the runs trained for this comparison
    seconds: float  # total wall-clock time, training included


codec.register("comparison", Comparison)


def _rescaled(model: nn.Module, c: float) -> nn.Module:
    """A copy computing the same function with other weights (ReLU is positively homogeneous):
    the first Linear layer (weight and bias) times c, the second Linear's weight divided by c."""
    if c == 1.0:
        return model
    out = copy.deepcopy(model)
    linears = [m for m in out.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        linears[0].weight.mul_(c)
        linears[0].bias.mul_(c)
        linears[1].weight.div_(c)
    return out


#: Share of a panel's progress bar per stage (roughly its share of the time).
_STAGES = {
    "slices": 0.55,
    "top Hessian eigenvalue": 0.25,
    "trace": 0.2,
    "convexity map": 2.0,
}


def _stages(progress: Progress, convexity: bool):
    """stage(name) -> a (done, total) callback that moves the bar through that stage's share."""
    names = [n for n in _STAGES if convexity or n != "convexity map"]
    total = sum(_STAGES[n] for n in names)
    starts = dict(zip(names, np.cumsum([0.0] + [_STAGES[n] for n in names[:-1]]) / total))

    def stage(name: str):
        if progress is None or name not in starts:  # no bar, or a stage that is switched off
            return None
        lo, width = starts[name], _STAGES[name] / total
        return lambda done, n: progress(lo + width * done / max(n, 1), name)

    return stage


def measure(
    run: Run,
    settings: Settings = Settings(),
    label: str | None = None,
    norm: str = "filter",
    rescale: float = 1.0,
    progress: Progress = None,
) -> PanelResult:
    """Slices, curvature and basin width of one run, measured as ``settings`` say."""
    t0 = time.perf_counter()
    subject = Subject.from_run(run)
    if rescale != 1.0:
        subject = dataclasses.replace(
            subject, build=lambda: _rescaled(run.model(), rescale), key=None
        )
    panel = measure_subject(subject, settings, label or run.name, norm, progress)
    panel.run, panel.rescale = run, rescale
    if run.diverged:
        panel.notes.insert(
            0,
            f"training diverged in epoch {run.diverged_epoch}: the weights shown are the last "
            f"finite ones",
        )
    panel.extras = _extras(run, subject.model())
    panel.seconds = time.perf_counter() - t0
    return panel


def measure_subject(
    subject: Subject,
    settings: Settings = Settings(),
    label: str = "model",
    norm: str = "filter",
    progress: Progress = None,
    evaluator: slices.Evaluator = slices.evaluate,
) -> PanelResult:
    """``measure`` of any ``Subject`` (a user's own model): the same slices, basin
    width, curvature and convexity map; ``evaluator`` evaluates the slices' points (a model
    that streams its data passes its own). The panel has no run: its ``loss`` and
    ``accuracy`` are the centre's, read off the first line at t=0."""
    t0 = time.perf_counter()
    stage = _stages(progress, settings.convexity > 0)
    req = slices.SliceRequest(
        dim=2,
        direction="random",
        seed=settings.seed,
        norm=norm,
        ignore="biasbn",
        xmin=-settings.span,
        xmax=settings.span,
        ymin=-settings.span,
        ymax=settings.span,
        nx=settings.resolution,
        ny=settings.resolution,
        lines=settings.n_dirs,
        line_res=settings.line_points,
        split=settings.split,
    )
    cb = stage("slices")
    sliced = slices.compute(
        req,
        subject,
        progress=None if cb is None else lambda f, _: cb(f, 1),
        evaluator=evaluator,
    )
    plane, lines, dirs = sliced.main, sliced.lines, sliced.directions
    model, loss_fn, xy = subject.model(), subject.loss_fn, subject.data(settings.split)
    level, widths, censored = _widths(lines, settings)
    notes = _notes(plane)
    top, res, tr, tr_err = _curvature(model, loss_fn, xy, settings, stage, notes)
    conv = _convexity(model, loss_fn, xy, dirs, settings, stage("convexity map"), notes)
    mid = len(lines[0].xs) // 2  # t = 0: line_points is odd
    acc = lines[0].accuracy
    return PanelResult(
        label=label,
        run=None,
        norm=norm,
        rescale=1.0,
        plane=plane,
        lines=lines,
        level=level,
        widths=widths,
        censored=censored,
        top_eigenvalue=top,
        eig_residual=res,
        trace=tr,
        trace_stderr=tr_err,
        convexity=conv,
        seconds=time.perf_counter() - t0,
        notes=notes,
        loss=float(lines[0].loss[mid]),
        accuracy=None if acc is None else float(acc[mid]),
        split=settings.split,
    )


def _extras(run: Run, model: nn.Module) -> dict[str, float]:
    """On the line-with-outliers set: how far the fit is from the clean line under the data,
    a yardstick shared by every loss (each loss's own value is not comparable across losses)."""
    if run.config.dataset != "outliers":
        return {}
    X = run.dataset().X_test
    with torch.no_grad():
        fit = model(X).reshape(-1).double()
    clean = data.OUTLIER_SLOPE * X[:, 0].double() + data.OUTLIER_INTERCEPT
    return {"test error vs clean line": float((fit - clean).abs().mean())}


def _widths(lines: list[Surface], s: Settings) -> tuple[float, list[float], bool]:
    centre = float(lines[0].loss[len(lines[0].xs) // 2])
    level = centre + s.level if s.level_mode == "rise" else s.level
    out = [basin_width(ln.xs, ln.loss, level) for ln in lines]
    return level, [w for w, _ in out], any(c for _, c in out)


def _notes(plane: Surface) -> list[str]:
    notes = []
    bad = int(np.sum(~np.isfinite(plane.loss)))
    if bad:
        notes.append(f"{bad} of {plane.loss.size} points of the 2D slice are NaN/inf: masked")
    return notes


def _curvature(
    model, loss_fn, data, s: Settings, stage, notes
) -> tuple[float, float, float, float]:
    """Top eigenvalue (+ residual) and Hutchinson trace (+ stderr); NaN when not computable."""
    try:
        eig = curvature.top_eigen(
            model,
            loss_fn,
            data,
            k=1,
            tol=s.eig_tol,
            max_iter=s.eig_max_iter,
            seed=s.seed,
            progress=stage("top Hessian eigenvalue"),
        )
        tr, err = curvature.trace(
            model,
            loss_fn,
            data,
            n_samples=s.trace_samples,
            seed=s.seed,
            progress=stage("trace"),
        )
    except (RuntimeError, np.linalg.LinAlgError) as e:  # non-finite Hessian (diverged weights)
        notes.append(f"curvature not computable here: {e}")
        return math.nan, math.nan, math.nan, math.nan
    if not eig.converged:
        notes.append(
            f"top eigenvalue not converged in {eig.iterations} steps "
            f"(residual {eig.residuals[0]:.1e})"
        )
    return float(eig.eigenvalues[0]), float(eig.residuals[0]), tr, err


def _convexity(model, loss_fn, data, dirs, s: Settings, cb, notes):
    if s.convexity == 0:
        return None
    g = np.linspace(-s.span, s.span, s.convexity)
    try:
        return curvature.convexity_map(
            model,
            loss_fn,
            data,
            dirs[0],
            dirs[1],
            g,
            g,
            progress=cb,
            tol=1e-2,
            max_iter=40,
            seed=s.seed,
        )
    except (RuntimeError, np.linalg.LinAlgError) as e:
        notes.append(f"convexity map not computable: {e}")
        return None


# ---------------------------------------------------------------------------------------------
# whole comparisons


def compare(
    items: Sequence[tuple[Run, Panel | None]],
    settings: Settings = Settings(),
    progress: Progress = None,
) -> Comparison:
    """Measure already-trained runs side by side. ``items``: (run, panel) pairs; a panel of
    None means "this run, filter-normalised, labelled with its name"."""
    if not 1 <= len(items) <= MAX_PANELS:
        raise checks.range_error("panels", len(items), f"between 1 and {MAX_PANELS} runs")
    t0 = time.perf_counter()
    out = []
    for i, (run, panel) in enumerate(items):
        label = panel.label if panel else run.name
        cb = None if progress is None else panel_progress(progress, i, len(items), label)
        out.append(
            measure(
                run,
                settings,
                label,
                norm=panel.norm if panel else "filter",
                rescale=panel.rescale if panel else 1.0,
                progress=cb,
            )
        )
    return Comparison(out, settings, 0.0, time.perf_counter() - t0)


def panel_progress(progress: Progress, i: int, n: int, label: str) -> Progress:
    """Panel i of n fills the i-th n-th of the bar; its stage names are prefixed by its label."""
    return lambda f, text: progress((i + f) / n, f"{label}: {text}")


# ---------------------------------------------------------------------------------------------
# the table


def table(comp: Comparison) -> list[dict]:
    """One row per panel: final train/test loss and accuracy, curvature, basin width."""
    rows = []
    for p in comp.panels:
        if p.run is not None:
            h = p.run.history
            ends = {f"{s} {k}": h[f"{s}_{k}"][-1] for s in SPLITS for k in ("loss", "acc")}
        else:  # a model without a training history: its loss where it was measured
            ends = {f"{s} {k}": None for s in SPLITS for k in ("loss", "acc")}
            ends[f"{p.split} loss"], ends[f"{p.split} acc"] = p.loss, p.accuracy
        row = {
            "panel": p.label,
            **ends,
            "top eigenvalue": p.top_eigenvalue,
            "trace": p.trace,
            "trace ± (1 s.e.)": p.trace_stderr,
            "basin width": p.basin_width,
            "width censored": p.censored,
        }
        if p.nonconvexity is not None:
            row["non-convexity"] = p.nonconvexity
        row.update(p.extras)
        rows.append(row)
    return rows
