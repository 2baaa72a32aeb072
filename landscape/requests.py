"""One landscape picture, as a frozen request: what to slice, how, and with which run.

The Landscape page, its cache and its downloads all speak in ``SurfaceRequest``: a frozen,
hashable dataclass holding everything that determines the numbers of one picture (the run,
the kind of slice, seeds, normalisation, range, resolution, data split). The same request is

- the cache key (same request twice -> same numbers, answered from the cache),
- what ``compute`` turns into surfaces (``landscape.directions`` + ``landscape.surface``),
- what ``command`` prints as the equivalent ``python -m landscape ...`` command line.

No Streamlit here: this module is the page's logic, testable and usable from a notebook::

    req = SurfaceRequest.for_run(run, dim=2, direction="random", nx=21, ny=21)
    result = compute(req, run)
    result.main.loss        # (21, 21), loss[i, j] at xs[j]*d1 + ys[i]*d2

Kinds of slice:

- 1D ``random``: ``n_lines`` seeded Gaussian directions (seeds ``seed, seed+1, ...``), each
  normalised (``norm``, ``ignore``); loss along ``theta* + t*d``.
- 1D ``interpolation``: from the initial weights (t=0) to the trained ones (t=1),
  Goodfellow et al. (2015); the BatchNorm statistics move with the weights (``states``), so
  each end is that net's own loss.
- 1D ``between``: from this run (t=0) to another run with the same parameter shapes (t=1),
  evaluated on this run's data: a barrier between two solutions shows as a bump. As for
  ``interpolation`` (and as the command line does), the statistics move with the weights.
- 2D ``random``: two seeded directions (optionally orthogonalised before normalising).
- 2D ``pca``: the two leading principal components of the training path (Li et al. sec. 7),
  over every parameter (unit vectors, not normalised: ``norm``/``ignore`` do not apply);
  the path is projected onto the plane and drawn on it; the range follows the path.
- 2D ``hessian``: the two top Hessian eigenvectors (``landscape.curvature.top_eigen``), the
  sharpest directions of the minimum. Unit eigenvectors are rescaled to the norm of the
  weights they perturb (unless ``norm="none"``) so that the range means what it means for a
  filter-normalised random direction: a step of 1 is as long as the weights themselves.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import math
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from landscape import directions, surface
from landscape.surface import Surface
from landscape.training import Config

LINE_KINDS = ("random", "interpolation", "between")  # 1D slices
PLANE_KINDS = ("random", "pca", "hessian")  # 2D slices
SPLITS = ("train", "test")
MAX_RES = 101  # most points along one axis on the page (101 x 101 = 10201 points)
MIN_RES = 3  # fewest points along one axis
DEFAULT_RES = 41
COARSE_RES = 11  # the quick first picture
MAX_LINES = 5  # random 1D directions overlaid
MAX_RANGE = 1e4  # |coordinate| bound of a range
PATH_MARGIN = 0.25  # PCA auto range: path extent plus this fraction on each side

PREVIEW_FACTOR = 4  # a coarse preview is drawn first when the grid has 4x its points or more

Progress = Callable[[float, str], None] | None  # (fraction in [0, 1], text)
Preview = Callable[["LandscapeResult"], None] | None  # receives the coarse result


def _range_error(name: str, value, allowed: str) -> ValueError:
    return ValueError(f"{name}={value!r} is out of range: must be {allowed}")


@dataclass(frozen=True)
class SurfaceRequest:
    """Everything that determines the numbers of one picture; frozen, hashable: a cache key."""

    run_key: str  # fingerprint of the centre run's weights (see ``fingerprint``)
    config: Config  # the centre run's training config (what the command line retrains)
    dim: int = 2  # 1 (a line) or 2 (a plane)
    direction: str = "random"  # 1D: random | interpolation | between; 2D: random | pca | hessian
    seed: int = 0  # seed of the random directions / of the eigen-solver start, in [0, 2^31-1]
    n_lines: int = 1  # 1D random: directions overlaid (seeds seed..seed+n-1), in [1, 5]
    orthogonal: bool = False  # 2D random: Gram-Schmidt d2 against d1 before normalising
    norm: str = "filter"  # filter | layer | weight | none (random and hessian directions)
    ignore: str | None = "biasbn"  # "biasbn": biases/BN not perturbed; None: perturbed too
    xmin: float = -1.0  # first coordinate along d1 (t for a line), |x| <= 1e4
    xmax: float = 1.0  # last coordinate along d1, > xmin
    ymin: float = -1.0  # 2D: first coordinate along d2
    ymax: float = 1.0  # 2D: last coordinate along d2, > ymin
    nx: int = DEFAULT_RES  # points along d1, in [3, 101]
    ny: int = DEFAULT_RES  # 2D: points along d2, in [3, 101]
    split: str = "train"  # 2D: data the loss is measured on (1D lines show train and test)
    auto_range: bool = True  # 2D pca: the range is set from the projected path, not x/y min/max
    other_key: str | None = None  # 1D between: fingerprint of the second run
    other_config: Config | None = None  # 1D between: the second run's training config

    def __post_init__(self):
        if self.ignore == "none":
            object.__setattr__(self, "ignore", None)
        for name in ("xmin", "xmax", "ymin", "ymax"):
            object.__setattr__(self, name, float(getattr(self, name)))
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first bad field, its value and the allowed values."""
        if self.dim not in (1, 2):
            raise _range_error("dim", self.dim, "1 (line) or 2 (plane)")
        kinds = LINE_KINDS if self.dim == 1 else PLANE_KINDS
        if self.direction not in kinds:
            raise ValueError(
                f"direction={self.direction!r} is not allowed for dim={self.dim}: "
                f"must be one of {list(kinds)}"
            )
        if self.norm not in directions.NORMS:
            raise ValueError(
                f"norm={self.norm!r} is not allowed: must be one of {directions.NORMS}"
            )
        if self.ignore not in directions.IGNORES:
            raise ValueError(f"ignore={self.ignore!r} is not allowed: must be 'biasbn' or None")
        if self.split not in SPLITS:
            raise ValueError(f"split={self.split!r} is not allowed: must be one of {list(SPLITS)}")
        _check_int("seed", self.seed, 0, 2**31 - 1)
        _check_int("n_lines", self.n_lines, 1, MAX_LINES)
        _check_int("nx", self.nx, MIN_RES, MAX_RES)
        _check_int("ny", self.ny, MIN_RES, MAX_RES)
        _check_interval("x", self.xmin, self.xmax)
        if self.dim == 2:
            _check_interval("y", self.ymin, self.ymax)
        if self.direction == "between" and (self.other_key is None or self.other_config is None):
            raise ValueError("direction='between' needs a second run: other_key and other_config")

    # --- conveniences -------------------------------------------------------------------

    @classmethod
    def for_run(cls, run, other=None, **kw) -> SurfaceRequest:
        """A request about ``run`` (and ``other`` for a 'between' line); other fields from kw."""
        if other is not None:
            kw.update(other_key=fingerprint(other), other_config=other.config)
        return cls(run_key=fingerprint(run), config=run.config, **kw)

    def replace(self, **kw) -> SurfaceRequest:
        return dataclasses.replace(self, **kw)

    def coarse(self) -> SurfaceRequest:
        """The same slice on at most COARSE_RES points per axis: the quick first picture."""
        return self.replace(nx=min(self.nx, COARSE_RES), ny=min(self.ny, COARSE_RES))

    @property
    def n_points(self) -> int:
        """Grid points to evaluate (1D: per line and split)."""
        return self.nx * self.ny if self.dim == 2 else self.nx

    def xs(self) -> np.ndarray:
        return np.linspace(self.xmin, self.xmax, self.nx)

    def ys(self) -> np.ndarray:
        return np.linspace(self.ymin, self.ymax, self.ny)

    def label(self) -> str:
        """A short human description, e.g. '2D random (filter, seed 0) 41x41 on train'."""
        if self.dim == 1:
            what = {"random": f"random x{self.n_lines}", "interpolation": "init -> trained"}
            kind = what.get(self.direction, "between two runs")
            grid = f"{self.nx} points"
        else:
            kind = {"random": "random", "pca": "PCA of the path", "hessian": "Hessian top-2"}[
                self.direction
            ]
            grid = f"{self.nx}x{self.ny} on {self.split}"
        norm = f" ({self.norm}, seed {self.seed})" if self.direction == "random" else ""
        return f"{self.dim}D {kind}{norm} {grid}"

    def meta(self) -> dict:
        """JSON-able facts kept in every Surface this request makes (and in the .npz)."""
        return {
            "request": {
                f.name: getattr(self, f.name)
                for f in dataclasses.fields(self)
                if f.name not in ("config", "other_config")
            },
            "config": self.config.to_dict(),
            "other_config": None if self.other_config is None else self.other_config.to_dict(),
        }


def _check_int(name: str, value, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not lo <= value <= hi:
        raise _range_error(name, value, f"an integer in [{lo}, {hi}]")


def _check_interval(axis: str, lo: float, hi: float) -> None:
    for name, v in ((f"{axis}min", lo), (f"{axis}max", hi)):
        if not math.isfinite(v) or abs(v) > MAX_RANGE:
            raise _range_error(name, v, f"finite with |{name}| <= {MAX_RANGE:g}")
    if not hi > lo:
        raise ValueError(f"{axis}max={hi!r} must be greater than {axis}min={lo!r}")


def fingerprint(run) -> str:
    """A short hash of a run's final weights, buffers and trajectory: which net this is.

    Two runs with the same config trained twice have the same fingerprint (training is
    deterministic); an uploaded run whose weights differ does not share cache entries.
    """
    h = hashlib.sha1()
    for k, t in run.state_dict.items():
        h.update(k.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    h.update(np.ascontiguousarray(run.trajectory).tobytes())
    return h.hexdigest()[:16]


def same_architecture(a: nn.Module, b: nn.Module) -> str | None:
    """None when a and b have identical parameter names and shapes, else why not (a sentence)."""
    pa = {k: tuple(p.shape) for k, p in a.named_parameters()}
    pb = {k: tuple(p.shape) for k, p in b.named_parameters()}
    if list(pa) != list(pb):
        return (
            f"the two nets have different layers ({len(pa)} vs {len(pb)} parameter tensors): "
            "interpolating between them needs the same architecture"
        )
    for k in pa:
        if pa[k] != pb[k]:
            return (
                f"parameter {k!r} has shape {pa[k]} in one net and {pb[k]} in the other: "
                "interpolating between them needs the same architecture"
            )
    return None


# ----------------------------------------------------------------------------- result


@dataclass
class LandscapeResult:
    """The computed picture: surfaces plus what is needed to draw and explain them."""

    request: SurfaceRequest
    surfaces: dict[str, Surface]  # "train:0", "test:0", "train:1", ... (split:line index)
    directions: list[dict[str, Tensor]]  # 1D: one per line; 2D: [d1, d2]
    path: tuple[np.ndarray, np.ndarray] | None = None  # PCA: (xs, ys) of each checkpoint
    path_epochs: np.ndarray | None = None  # PCA: the epoch of each checkpoint
    explained: np.ndarray | None = None  # PCA: explained variance ratio of the two axes
    eigenvalues: np.ndarray | None = None  # Hessian: the top-2 eigenvalues
    cosine: float | None = None  # 2D: cosine between d1 and d2
    centre_loss: float | None = None  # the trained net's own loss on the main surface's split
    path_share: float | None = None  # 2D: share of the path's squared distance in the plane
    seconds: float = 0.0  # time spent evaluating points
    notes: list[str] = field(default_factory=list)  # facts to tell the user (e.g. clipping)

    @property
    def main(self) -> Surface:
        """The first surface: the 2D plane, or the train line along the first direction."""
        return next(iter(self.surfaces.values()))

    def n_nonfinite(self) -> int:
        """Points whose loss is NaN or inf, over every surface (a diverging region or run)."""
        return int(sum((~np.isfinite(s.loss)).sum() for s in self.surfaces.values()))

    def n_total(self) -> int:
        return int(sum(s.loss.size for s in self.surfaces.values()))


# ----------------------------------------------------------------------------- compute


def _data(run, split: str) -> tuple[Tensor, Tensor]:
    ds = run.dataset()
    return (ds.X_train, ds.y_train) if split == "train" else (ds.X_test, ds.y_test)


def _with_params(model: nn.Module, params: dict[str, Tensor]) -> nn.Module:
    """``model`` with its parameters replaced by ``params`` (buffers kept), in eval mode."""
    with torch.no_grad():
        for k, p in model.named_parameters():
            p.copy_(params[k])
    return model.eval()


def _weights_norm(model: nn.Module, ignore: str | None) -> float:
    """Norm of the weights a direction perturbs: multi-dim tensors (all under ignore=None)."""
    sq = sum(
        float(p.detach().double().pow(2).sum())
        for p in model.parameters()
        if ignore is None or p.ndim > 1
    )
    return math.sqrt(sq)


def _stage(progress: Progress, lo: float, hi: float, text: str):
    """A surface progress callback (done, total) mapped onto [lo, hi] of the overall bar."""
    if progress is None:
        return None
    return lambda done, total: progress(lo + (hi - lo) * done / max(total, 1), text)


def _line_directions(req: SurfaceRequest, run, other, model: nn.Module):
    """(centre model, [directions]) for a 1D request."""
    if req.direction == "random":
        dirs = [
            directions.random_direction(model, req.norm, req.ignore, seed=req.seed + k)
            for k in range(req.n_lines)
        ]
        return model, dirs
    if req.direction == "interpolation":
        init = directions.unflatten(run.trajectory[0], model)  # the real start, as trained
        start = _with_params(run.initial_model(), init)  # initial statistics too
        return start, [directions.interpolation_direction(start, model, dir_type="states")]
    if other is None:
        raise ValueError("direction='between' needs a second run")
    other_model = other.model()
    why = same_architecture(model, other_model)
    if why:
        raise ValueError(f"cannot interpolate between {run.name!r} and {other.name!r}: {why}")
    return model, [directions.interpolation_direction(model, other_model, dir_type="states")]


def _compute_line(req: SurfaceRequest, run, other, progress: Progress) -> LandscapeResult:
    model = run.model()
    centre, dirs = _line_directions(req, run, other, model)
    loss_fn, acc_fn = run.loss_fn(), run.accuracy_fn()
    meta, ts = req.meta(), req.xs()
    jobs = [(split, k) for k in range(len(dirs)) for split in SPLITS]
    surfaces = {}
    for n, (split, k) in enumerate(jobs):
        text = f"line {k + 1}/{len(dirs)} on {split} data"
        cb = _stage(progress, n / len(jobs), (n + 1) / len(jobs), text)
        m = {**meta, "split": split, "line": k}
        surfaces[f"{split}:{k}"] = surface.line(
            centre, loss_fn, _data(run, split), dirs[k], ts, acc_fn, cb, meta=m
        )
    return LandscapeResult(req, surfaces, dirs)


def _plane_directions(req: SurfaceRequest, run, model: nn.Module, data, progress: Progress):
    """([d1, d2], extras dict) for a 2D request."""
    if req.direction == "random":
        d = directions.random_directions(
            model, 2, req.norm, req.ignore, seed=req.seed, orthogonal=req.orthogonal
        )
        return d, {}
    if req.direction == "pca":
        d1, d2, ratio = directions.pca_directions(run.trajectory, model)  # every parameter
        px, py = directions.project(run.trajectory, model, d1, d2)
        epochs = np.asarray(run.history["epoch"][: len(px)])
        return [d1, d2], {"path": (px, py), "path_epochs": epochs, "explained": ratio}
    from landscape import curvature  # the Hessian only when asked for

    if not all(torch.isfinite(p).all() for p in model.parameters()):
        raise ValueError("the run's weights are not finite (it diverged): no Hessian to take")
    cb = _stage(progress, 0.0, 0.3, "top Hessian eigenvectors")
    params = "weights" if req.ignore == "biasbn" else "all"
    eig = curvature.top_eigen(
        model, run.loss_fn(), data, k=2, seed=req.seed, params=params, progress=cb
    )
    scale = 1.0 if req.norm == "none" else _weights_norm(model, req.ignore)
    dirs = [{k: v * scale for k, v in vec.items()} for vec in eig.eigenvectors]
    return dirs, {"eigenvalues": np.asarray(eig.eigenvalues)}


def _path_range(px: np.ndarray, py: np.ndarray) -> tuple[float, float, float, float]:
    """A box around the projected path and the origin, PATH_MARGIN wider on each side."""
    fx, fy = px[np.isfinite(px)], py[np.isfinite(py)]
    box = []
    for v in (fx, fy):
        lo, hi = min(float(v.min(initial=0.0)), 0.0), max(float(v.max(initial=0.0)), 0.0)
        pad = max(hi - lo, 1e-3) * PATH_MARGIN
        box += [max(lo - pad, -MAX_RANGE), min(hi + pad, MAX_RANGE)]
    return box[0], box[1], box[2], box[3]


def _plane_result(req, surf, dirs, extra, share) -> LandscapeResult:
    return LandscapeResult(
        req,
        {f"{req.split}:0": surf},
        dirs,
        cosine=surf.meta.get("cosine"),
        path_share=share,
        **extra,
    )


def _compute_plane(
    req: SurfaceRequest, run, progress: Progress, preview: Preview
) -> LandscapeResult:
    model = run.model()
    data = _data(run, req.split)
    dirs, extra = _plane_directions(req, run, model, data, progress)
    if req.direction == "pca" and req.auto_range:
        x0, x1, y0, y1 = _path_range(*extra["path"])
        used = req.replace(xmin=x0, xmax=x1, ymin=y0, ymax=y1)
    else:
        used = req
    share = path_share(run.trajectory, model, dirs[0], dirs[1])
    fns = (run.loss_fn(), run.accuracy_fn())
    start = 0.3 if req.direction == "hessian" else 0.0
    if preview is not None and req.n_points >= PREVIEW_FACTOR * req.coarse().n_points:
        small = used.coarse()
        cb = _stage(progress, start, start + 0.05, f"quick {small.nx}x{small.ny} preview")
        surf = _plane(model, fns, data, dirs, small, req.split, cb)
        preview(_plane_result(req.coarse(), surf, dirs, extra, share))
        start += 0.05
    cb = _stage(progress, start, 1.0, f"{req.nx}x{req.ny} grid on {req.split} data")
    surf = _plane(model, fns, data, dirs, used, req.split, cb)
    return _plane_result(req, surf, dirs, extra, share)


def _plane(model, fns, data, dirs, req: SurfaceRequest, split: str, cb) -> Surface:
    """``surface.plane`` over ``req``'s grid, with the request kept in the metadata."""
    loss_fn, acc_fn = fns
    meta = {**req.meta(), "split": split}
    return surface.plane(
        model, loss_fn, data, dirs[0], dirs[1], req.xs(), req.ys(), acc_fn, cb, meta=meta
    )


def path_share(trajectory: np.ndarray, final: nn.Module, d1: dict, d2: dict) -> float | None:
    """How much of the training path a plane sees: sum ||P r||^2 / sum ||r||^2.

    r runs over the checkpoints' offsets ``theta_epoch - theta_final`` and P projects
    orthogonally onto span(d1, d2). The PCA plane sees most of the path; a random plane in P
    dimensions sees about 2/P of it (Li et al. sec. 7). None if undefined (no movement,
    non-finite weights, degenerate directions).
    """
    theta = directions.flatten(directions.weights_of(final)).double().numpy()
    rows = np.asarray(trajectory, dtype=np.float64) - theta[None, :]  # (E, P)
    basis = np.stack([directions.flatten(d).double().numpy() for d in (d1, d2)], axis=1)
    if not (np.all(np.isfinite(rows)) and np.all(np.isfinite(basis))):
        return None
    total = float((rows**2).sum())
    q, r = np.linalg.qr(basis)  # (P, 2): orthonormal basis of the plane
    if total == 0.0 or np.min(np.abs(np.diag(r))) < 1e-12 * max(np.abs(r).max(), 1e-300):
        return None
    return float(((rows @ q) ** 2).sum() / total)


def compute(
    req: SurfaceRequest,
    run,
    other=None,
    progress: Progress = None,
    preview: Preview = None,
) -> LandscapeResult:
    """Compute the surfaces of ``req`` for ``run`` (and ``other`` for a 'between' line).

    ``progress(fraction, text)`` is called as points are evaluated. ``preview(result)``, for
    a plane of at least PREVIEW_FACTOR times COARSE_RES^2 points, first receives the same
    slice on a coarse grid (same directions, same range): the first picture, fast. Raises ValueError for a
    request that does not fit the run (a mismatched second run, PCA of a path too short);
    a diverging region or run is a result: its points are NaN/inf in the surfaces.
    """
    if fingerprint(run) != req.run_key:
        raise ValueError("the run does not match the request's run_key: pass the same run")
    if req.direction == "between" and (other is None or fingerprint(other) != req.other_key):
        raise ValueError("direction='between' needs the second run whose fingerprint is other_key")
    if req.dim == 1:
        result = _compute_line(req, run, other, progress)
    else:
        result = _compute_plane(req, run, progress, preview)
    result.seconds = float(sum(s.meta.get("seconds", 0.0) for s in result.surfaces.values()))
    result.centre_loss = _trained_loss(run, result.main.meta.get("split", "train"))
    if progress is not None:
        progress(1.0, "done")
    return result


def _trained_loss(run, split: str) -> float | None:
    """The trained net's own loss on ``split`` (full batch, eval mode, as the surfaces)."""
    values = run.history.get(f"{split}_loss") or []
    return float(values[-1]) if values else None


# ----------------------------------------------------------------------------- exports


def to_csv(result: LandscapeResult) -> str:
    """Every surface in long format: one row per point, columns x, y, loss, accuracy, split, line.

    y is empty for lines; accuracy is empty without an accuracy (regression). Values are
    written with ``repr`` so they round-trip exactly (nan and inf included).
    """
    buf = io.StringIO()
    buf.write("x,y,loss,accuracy,split,line\n")
    for key, s in result.surfaces.items():
        split, line = key.split(":")
        acc = s.accuracy
        if s.ys is None:
            for j, x in enumerate(s.xs):
                a = "" if acc is None else repr(float(acc[j]))
                buf.write(f"{x!r},,{float(s.loss[j])!r},{a},{split},{line}\n")
            continue
        for i, y in enumerate(s.ys):
            for j, x in enumerate(s.xs):
                a = "" if acc is None else repr(float(acc[i, j]))
                buf.write(f"{float(x)!r},{float(y)!r},{float(s.loss[i, j])!r},{a},{split},{line}\n")
    return buf.getvalue()


def command(result: LandscapeResult, end_run_file: str = "run_b.npz") -> str:
    """The ``python -m landscape ...`` command line that recomputes the main surface.

    The run is retrained from its config flags (training is deterministic, so the same
    weights come back); a 'between' line loads the second run from ``end_run_file`` (the
    page offers it as a download). Ranges are written out, so an automatic PCA range is
    reproduced exactly. Hessian directions have no command line: a Python snippet is
    returned instead.
    """
    req, s = result.request, result.main
    if req.direction == "hessian":
        return _hessian_snippet(req, s)
    sub = "line" if req.dim == 1 else "plane"
    args = ["python", "-m", "landscape", sub, *_config_flags(req.config)]
    args += _slice_flags(req, s, end_run_file)
    args += ["--out", f"landscape-{sub}"]
    return " ".join(shlex.quote(str(a)) for a in args)


def _config_flags(config) -> list[str]:
    """Flags that retrain the run (only the fields that differ from the defaults)."""
    default = type(config)()
    flags = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if value == getattr(default, f.name):
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.name == "loss_params":
            for k, v in value:
                flags += ["--loss-param", f"{k}={v!r}"]
        elif isinstance(value, bool):
            flags.append(flag if value else "--no-" + f.name.replace("_", "-"))
        else:
            flags += [flag, repr(value) if isinstance(value, float) else value]
    return flags


def _slice_flags(req: SurfaceRequest, s: Surface, end_run_file: str) -> list[str]:
    """Surface flags of ``python -m landscape line|plane`` (ranges read from the surface)."""
    kind = {"between": "interpolation"}.get(req.direction, req.direction)
    flags = ["--dir", kind]
    if req.direction == "random":
        flags += ["--dir-seed", req.seed, "--norm", req.norm, "--ignore", req.ignore or "none"]
    if req.direction == "between":
        flags += ["--end-run", end_run_file]
    flags += ["--xrange", repr(float(s.xs[0])), repr(float(s.xs[-1]))]
    if s.ys is None:
        return flags + ["--res", s.xs.size, "--split", "train"]
    flags += ["--yrange", repr(float(s.ys[0])), repr(float(s.ys[-1]))]
    flags += ["--xres", s.xs.size, "--yres", s.ys.size, "--split", req.split]
    if req.orthogonal and req.direction == "random":
        flags.append("--orthogonal")
    return flags


def _hessian_snippet(req: SurfaceRequest, s: Surface) -> str:
    """Python that recomputes a Hessian-direction plane (the command line has no such flag)."""
    cfg = ", ".join(
        f"{k}={v!r}"
        for k, v in req.config.to_dict().items()
        if v != getattr(type(req.config)(), k) and k != "loss_params"
    )
    lp = dict(req.config.loss_params)
    cfg += f", loss_params={lp!r}" if lp else ""
    return "\n".join(
        [
            "# The command line has no Hessian directions; this Python does the same.",
            "import numpy as np",
            "from landscape import requests",
            "from landscape.training import Config, train",
            f"run = train(Config({cfg}))",
            "req = requests.SurfaceRequest.for_run(",
            f"    run, dim=2, direction='hessian', seed={req.seed}, norm={req.norm!r},",
            f"    ignore={req.ignore!r}, xmin={float(s.xs[0])!r}, xmax={float(s.xs[-1])!r},",
            f"    ymin={float(s.ys[0])!r}, ymax={float(s.ys[-1])!r}, nx={s.xs.size}, "
            f"ny={s.ys.size}, split={req.split!r})",
            "result = requests.compute(req, run)",
            "print(result.eigenvalues, np.nanmin(result.main.loss))",
        ]
    )
