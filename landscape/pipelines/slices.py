"""One slicing pipeline: a ``SliceRequest`` about a ``Subject`` -> a ``SliceResult``.

The command line, the Landscape page and the Compare page all slice through ``compute``; the
data split, the directions and the surfaces are made here and nowhere else::

    subject = Subject.from_run(run)                     # or Subject(...) for any nn.Module
    req = SliceRequest(dim=2, direction="random", nx=21, ny=21, split="test")
    result = compute(req, subject)
    result.main.loss                                    # (21, 21): loss[i, j] at xs[j], ys[i]

Pieces, each replaceable on its own:

- ``Subject``: what is sliced. A model builder holding the centre weights and buffers, the
  loss (and accuracy), the data of each split behind ``Subject.data(split)``, and optionally
  the training path (PCA directions), the initial net (interpolation) and a config (kept in
  the metadata). ``Subject.from_run`` adapts a trained ``Run``; a user's own module with its
  own data builds a Subject directly (``Subject.from_module``).
- ``SliceRequest``: every option, frozen and hashable. Option strings (``norm``,
  ``dir_type``, ``projection``, ``method``) are checked against the library's own tuples at
  construction and passed through to ``landscape.core.directions`` / ``landscape.engine.surface``.
- ``evaluate(subject, dirs, coords, ...)``: loss and accuracy at a list of coordinates.
  Every grid point of every slice goes through it; ``compute(..., evaluator=)`` takes a
  replacement with the same signature (e.g. one that splits the points among processes).

Kinds of slice (``direction``):

- 1D ``random``: ``n_lines`` seeded Gaussian directions (seeds ``seed, seed+1, ...``), each
  normalised (``norm``, ``ignore``); loss along ``theta* + t*d``.
- 1D ``interpolation``: from the subject's initial net (t=0) to its centre (t=1).
- 1D ``between``: from the subject (t=0) to ``other`` (t=1), a second subject whose parameters
  have the same names and shapes, evaluated on the subject's data.
- 2D ``random``: two seeded directions (optionally orthogonalised before normalising), plus
  ``lines`` 1D slices along the first ``lines`` directions of the same generator.
- 2D ``pca``: the two leading principal components of the training path (every parameter,
  unit norm); the path is projected onto the plane; ``auto_range`` frames the path.
- given directions (``compute(..., given_directions=[d])`` for a line, ``[d1, d2]`` for a
  plane): those, checked against the model's names and shapes (``check_given``), instead of
  the request's kind; e.g. the directions of an earlier surface file, so two nets share a
  plane (the original code's ``--dir_file``).
- 2D ``hessian``: the two top Hessian eigenvectors (``landscape.measures.curvature.top_eigen``),
  rescaled to the norm of the weights they move unless ``norm="none"``, so that a step of 1
  is as long as the weights, as for a filter-normalised direction.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from landscape.core import checks, directions
from landscape.engine import surface
from landscape.engine.subject import SPLITS, Subject, same_architecture
from landscape.engine.surface import Surface
from landscape.measures import curvature
from landscape.storage import codec

LINE_KINDS = ("random", "interpolation", "between")  # 1D slices
PLANE_KINDS = ("random", "pca", "hessian")  # 2D slices
MIN_RES = 2  # fewest points along one axis
MAX_LINES = 8  # 1D random directions overlaid, or lines beside a plane
MAX_RANGE = 1e4  # |coordinate| bound of a range
PATH_MARGIN = 0.25  # PCA auto range: path extent plus this fraction on each side
COARSE_RES = 11  # points per axis of the quick first picture
PREVIEW_FACTOR = 4  # a preview is drawn first when the grid has 4x the coarse points or more

Progress = Callable[[float, str], None] | None  # (fraction in [0, 1], text)
Preview = Callable[["SliceResult"], None] | None  # receives the coarse result
Evaluator = Callable[..., tuple[np.ndarray, np.ndarray | None, dict]]  # evaluate's signature


def dir_types() -> tuple[str, ...]:
    """Direction types the library accepts ("weights": buffers fixed; "states": they move)."""
    return getattr(directions, "DIR_TYPES", ("weights",))


def projections() -> tuple[str, ...]:
    """Path projections the library accepts ("cos": dot product; "lstsq": least squares)."""
    return getattr(directions, "PROJECTIONS", ("cos",))


# ----------------------------------------------------------------------------- request


@dataclass(frozen=True, kw_only=True)
class SliceRequest:
    """Every option of one slice; frozen and hashable (a cache key)."""

    dim: int = 2  # 1 (a line) or 2 (a plane)
    direction: str = "random"  # 1D: random | interpolation | between; 2D: random | pca | hessian
    seed: int = 0  # seed of the random directions / of the eigen-solver start, in [0, 2^31-1]
    n_lines: int = 1  # 1D random: directions overlaid (seeds seed..seed+n-1), in [1, 8]
    lines: int = 0  # 2D random: also slice along the first `lines` directions, in [0, 8]
    line_res: int = 41  # points of each of those lines (over xmin..xmax)
    orthogonal: bool = False  # 2D random: Gram-Schmidt the directions before normalising
    norm: str = "filter"  # one of directions.NORMS (random and hessian directions)
    ignore: str | None = "biasbn"  # "biasbn": biases/BN not perturbed; None: perturbed too
    dir_type: str = "weights"  # "weights": buffers fixed; "states": float buffers move too
    projection: str = "cos"  # PCA path projection: "cos" (dot product) | "lstsq"
    xmin: float = -1.0  # first coordinate along d1 (t for a line)
    xmax: float = 1.0  # last coordinate along d1, > xmin
    ymin: float = -1.0  # 2D: first coordinate along d2
    ymax: float = 1.0  # 2D: last coordinate along d2, > ymin
    nx: int = 41  # points along d1, in [2, surface.MAX_AXIS]
    ny: int = 41  # 2D: points along d2; nx * ny <= surface.MAX_POINTS
    split: str = "train"  # data the loss is measured on
    auto_range: bool = False  # 2D pca: frame the projected path instead of x/y min/max
    method: str = "auto"  # surface.METHODS: auto | loop | batched

    def __post_init__(self):
        if self.ignore == "none":
            object.__setattr__(self, "ignore", None)
        for name in ("xmin", "xmax", "ymin", "ymax"):
            value = getattr(self, name)
            if isinstance(value, int | float | np.number) and not isinstance(value, bool):
                object.__setattr__(self, name, float(value))
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first bad field, its value and the allowed values."""
        if self.dim not in (1, 2):
            raise checks.range_error("dim", self.dim, "1 (line) or 2 (plane)")
        kinds = LINE_KINDS if self.dim == 1 else PLANE_KINDS
        if self.direction not in kinds:
            raise ValueError(
                f"direction={self.direction!r} is not allowed for dim={self.dim}: "
                f"must be one of {list(kinds)}"
            )
        checks.choice("norm", self.norm, directions.NORMS)
        checks.choice("ignore", self.ignore, directions.IGNORES)
        checks.choice("dir_type", self.dir_type, dir_types())
        checks.choice("projection", self.projection, projections())
        checks.choice("method", self.method, surface.METHODS)
        for s in self.splits():
            checks.choice("split", s, SPLITS)
        checks.int_in("seed", self.seed, 0, 2**31 - 1)
        checks.int_in("n_lines", self.n_lines, 1, MAX_LINES)
        checks.int_in("lines", self.lines, 0, MAX_LINES)
        checks.int_in("line_res", self.line_res, MIN_RES, surface.MAX_AXIS)
        checks.int_in("nx", self.nx, MIN_RES, surface.MAX_AXIS)
        checks.interval("x", self.xmin, self.xmax, MAX_RANGE)
        if self.dim == 2:
            checks.int_in("ny", self.ny, MIN_RES, surface.MAX_AXIS)
            checks.interval("y", self.ymin, self.ymax, MAX_RANGE)
            if self.nx * self.ny > surface.MAX_POINTS:
                raise ValueError(
                    f"grid {self.nx}x{self.ny}={self.nx * self.ny} points is too large: "
                    f"must be at most {surface.MAX_POINTS} (201x201)"
                )

    def splits(self) -> tuple[str, ...]:
        """The splits sliced; the first is the main surface's."""
        return (self.split,)

    def replace(self, **kw) -> SliceRequest:
        return dataclasses.replace(self, **kw)

    def coarse(self) -> SliceRequest:
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

    def fields(self) -> dict:
        """The request as JSON-able fields (Config-valued fields as dicts)."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.to_dict() if hasattr(v, "to_dict") else v
        return out


# ----------------------------------------------------------------------------- result


codec.register("slice-request", SliceRequest)


@dataclass
class SliceResult:
    """The computed slice: surfaces plus what is needed to draw and explain them."""

    request: SliceRequest
    surfaces: dict[str, Surface]  # "train:0", "test:0", "train:1", ... (split:line index)
    directions: list[dict[str, Tensor]]  # 1D: one per line; 2D: [d1, d2, ...]
    lines: list[Surface] = field(default_factory=list)  # 2D with `lines`: along d1, d2, ...
    path: tuple[np.ndarray, np.ndarray] | None = None  # PCA: (xs, ys) of each checkpoint
    path_epochs: np.ndarray | None = None  # PCA: the epoch of each checkpoint
    explained: np.ndarray | None = None  # PCA: explained variance ratio of the two axes
    eigenvalues: np.ndarray | None = None  # Hessian: the top-2 eigenvalues
    cosine: float | None = None  # 2D: cosine between d1 and d2
    centre_loss: float | None = None  # the centre's own loss on the main split, when known
    path_share: float | None = None  # 2D: share of the path's squared distance in the plane
    seconds: float = 0.0  # time spent evaluating points
    notes: list[str] = field(default_factory=list)  # facts to tell the user

    @property
    def main(self) -> Surface:
        """The first surface: the plane, or the first split's line along the first direction."""
        return next(iter(self.surfaces.values()))

    def n_nonfinite(self) -> int:
        """Points whose loss is NaN or inf, over every surface (a diverging region or run)."""
        return int(sum((~np.isfinite(s.loss)).sum() for s in self.surfaces.values()))

    def n_total(self) -> int:
        return int(sum(s.loss.size for s in self.surfaces.values()))


# ----------------------------------------------------------------------------- evaluation


codec.register("slice-result", SliceResult)


def evaluate(
    subject: Subject,
    dirs: Sequence[dict[str, Tensor]],
    coords: np.ndarray,
    split: str = "train",
    *,
    centre: nn.Module | None = None,
    method: str = "auto",
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """Loss and accuracy at ``centre + sum_k coords[p, k] * dirs[k]`` for every row p.

    coords: (K, len(dirs)). ``centre`` defaults to ``subject.model()``. Returns float64
    ``losses (K,)``, ``accs (K,)`` or None, and facts (method, seconds, n_data, n_params).
    Points are independent: any subset of rows can be evaluated apart and put back in order.
    """
    model = subject.model() if centre is None else centre
    stream = subject.stream  # a user's data file, read in batches
    return surface.evaluate(
        model,
        subject.loss_fn,
        subject.data(split) if stream is None else stream(split),
        list(dirs),
        np.asarray(coords, dtype=np.float64),
        subject.accuracy_fn,
        progress,
        method,
        batch_size=subject.batch_size,
        device=subject.device,
    )


def _line_surface(evaluator, subject, centre, d, ts, split, req, cb, meta) -> Surface:
    losses, accs, info = evaluator(
        subject, [d], ts[:, None], split, centre=centre, method=req.method, progress=cb
    )
    return surface.line_surface(ts, losses, accs, info, meta)


def _plane_surface(evaluator, subject, centre, dirs, xs, ys, split, req, cb, meta) -> Surface:
    losses, accs, info = evaluator(
        subject, dirs[:2], surface.grid(xs, ys), split, centre=centre, method=req.method,
        progress=cb,
    )  # fmt: skip
    return surface.plane_surface(xs, ys, losses, accs, info, meta, dirs[0], dirs[1])


def _stage(progress: Progress, lo: float, hi: float, text: str):
    """A (done, total) callback mapped onto [lo, hi] of the overall bar."""
    if progress is None:
        return None
    return lambda done, total: progress(lo + (hi - lo) * done / max(total, 1), text)


def _meta(req: SliceRequest, subject: Subject, **extra) -> dict:
    """JSON-able facts kept in every Surface (and saved with it)."""
    return {
        "direction": req.direction,
        "norm": req.norm,
        "ignore": req.ignore,
        "dir_type": req.dir_type,
        "dir_seed": req.seed,
        "subject": subject.name,
        "config": subject.config_dict(),
        "request": req.fields(),
        **extra,
    }


# ----------------------------------------------------------------------------- directions


def _random(model, req: SliceRequest, n: int, seed: int) -> list[dict[str, Tensor]]:
    kw = {} if req.dir_type == "weights" else {"dir_type": req.dir_type}
    return directions.random_directions(
        model, n, req.norm, req.ignore, seed=seed, orthogonal=req.orthogonal, **kw
    )


def interpolation(start: nn.Module, end: nn.Module) -> tuple[nn.Module, dict[str, Tensor]]:
    """(centre, direction) of the line from ``start`` (t=0) to ``end`` (t=1).

    A ``states`` direction: BatchNorm statistics move with the weights, so each end is that
    net's own loss.
    """
    return start, directions.interpolation_direction(start, end, dir_type="states")


def _line_directions(req: SliceRequest, subject: Subject, other: Subject | None):
    """(centre model, [directions]) of a 1D request."""
    model = subject.model()
    if req.direction == "random":
        return model, [_random(model, req, 1, req.seed + k)[0] for k in range(req.n_lines)]
    if req.direction == "interpolation":
        if subject.initial is not None:
            start = subject.initial().eval()
        elif subject.trajectory is not None:
            start = copy.deepcopy(model)
            init = directions.unflatten(subject.trajectory[0], model)
            with torch.no_grad():
                for k, p in start.named_parameters():
                    p.copy_(init[k])
        else:
            raise ValueError("direction='interpolation' needs the initial weights")
        centre, d = interpolation(start, model)
        return centre, [d]
    if other is None:
        raise ValueError("direction='between' needs a second net")
    end = other.model()
    why = same_architecture(model, end)
    if why:
        raise ValueError(f"cannot interpolate between {subject.name!r} and {other.name!r}: {why}")
    centre, d = interpolation(model, end)
    return centre, [d]


def _weights_norm(model: nn.Module, ignore: str | None) -> float:
    """Norm of the weights a direction perturbs: multi-dim tensors (all under ignore=None)."""
    sq = sum(
        float(p.detach().double().pow(2).sum())
        for p in model.parameters()
        if ignore is None or p.ndim > 1
    )
    return math.sqrt(sq)


def _plane_directions(req: SliceRequest, subject: Subject, model: nn.Module, progress):
    """([d1, d2, ...], extras) of a 2D request."""
    if req.direction == "random":
        return _random(model, req, max(2, req.lines), req.seed), {}
    if req.direction == "pca":
        if subject.trajectory is None:
            raise ValueError("direction='pca' needs the training path (a trajectory)")
        d1, d2, ratio = directions.pca_directions(subject.trajectory, model, req.ignore)
        kw = {} if req.projection == "cos" else {"projection": req.projection}
        px, py = directions.project(subject.trajectory, model, d1, d2, **kw)
        epochs = None if subject.epochs is None else np.asarray(subject.epochs[: len(px)])
        return [d1, d2], {"path": (px, py), "path_epochs": epochs, "explained": ratio}

    if not all(torch.isfinite(p).all() for p in model.parameters()):
        raise ValueError("the weights are not finite (the run diverged): no Hessian to take")
    cb = _stage(progress, 0.0, 0.3, "top Hessian eigenvectors")
    params = "weights" if req.ignore == "biasbn" else "all"
    data = subject.data(req.split)
    eig = curvature.top_eigen(
        model, subject.loss_fn, data, k=2, seed=req.seed, params=params, progress=cb
    )
    scale = 1.0 if req.norm == "none" else _weights_norm(model, req.ignore)
    dirs = [{k: v * scale for k, v in vec.items()} for vec in eig.eigenvectors]
    return dirs, {"eigenvalues": np.asarray(eig.eigenvalues)}


def path_range(px: np.ndarray, py: np.ndarray) -> tuple[float, float, float, float]:
    """A box around the projected path and the origin, PATH_MARGIN wider on each side."""
    box = []
    for v in (px, py):
        v = np.asarray(v)[np.isfinite(v)]
        lo, hi = min(float(v.min(initial=0.0)), 0.0), max(float(v.max(initial=0.0)), 0.0)
        pad = max(hi - lo, 1e-3) * PATH_MARGIN
        box += [max(lo - pad, -MAX_RANGE), min(hi + pad, MAX_RANGE)]
    return box[0], box[1], box[2], box[3]


def path_share(trajectory: np.ndarray, final, d1: dict, d2: dict) -> float | None:
    """How much of the training path a plane sees: sum ||P r||^2 / sum ||r||^2.

    r runs over the checkpoints' offsets ``theta_epoch - theta_final`` and P projects
    orthogonally onto span(d1, d2). The PCA plane sees most of the path; a random plane in P
    dimensions sees about 2/P of it (Li et al. sec. 7). None if undefined (no movement,
    non-finite weights, degenerate directions).
    """
    weights = directions.weights_of(final)
    theta = directions.flatten(weights).double().numpy()
    rows = np.asarray(trajectory, dtype=np.float64) - theta[None, :]  # (E, P)
    # the path holds parameters only: a "states" direction's buffer entries are not in it
    basis = np.stack(
        [directions.flatten({k: d[k] for k in weights}).double().numpy() for d in (d1, d2)],
        axis=1,
    )
    if not (np.all(np.isfinite(rows)) and np.all(np.isfinite(basis))):
        return None
    total = float((rows**2).sum())
    q, r = np.linalg.qr(basis)  # (P, 2): orthonormal basis of the plane
    if total == 0.0 or np.min(np.abs(np.diag(r))) < 1e-12 * max(np.abs(r).max(), 1e-300):
        return None
    return float(((rows @ q) ** 2).sum() / total)


# ----------------------------------------------------------------------------- compute


def check_given(model: nn.Module, dirs: Sequence[dict[str, Tensor]], dim: int) -> None:
    """ValueError unless ``dirs`` are ``dim`` directions for ``model``: every parameter, each
    with the model's shape, and otherwise only its floating-point buffers (``states``)."""
    if len(dirs) != dim:
        kind = "a line needs 1" if dim == 1 else "a plane needs 2"
        raise ValueError(f"{len(dirs)} direction(s) given: {kind}")
    params = dict(model.named_parameters())
    states = {**params, **{n: b for n, b in model.named_buffers() if b.is_floating_point()}}
    for k, d in enumerate(dirs, 1):
        missing = [n for n in params if n not in d]
        if missing:
            raise ValueError(
                f"direction {k} has no tensor for the model's parameter {missing[0]!r}"
            )
        for n, t in d.items():
            if n not in states:
                raise ValueError(f"direction {k} has a tensor {n!r} that the model does not have")
            if tuple(t.shape) != tuple(states[n].shape):
                raise ValueError(
                    f"direction {k}[{n!r}] has shape {tuple(t.shape)}, the model's is "
                    f"{tuple(states[n].shape)}"
                )
            if not torch.isfinite(torch.as_tensor(t)).all():
                raise ValueError(f"direction {k}[{n!r}] is not finite")


def _given(model: nn.Module, dirs, dim: int) -> list[dict[str, Tensor]]:
    check_given(model, dirs, dim)
    ref = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    return [{n: torch.as_tensor(t).to(ref[n]) for n, t in d.items()} for d in dirs]


def _compute_line(req, subject, other, progress, evaluator, given=None) -> SliceResult:
    if given is not None:
        centre = subject.model()
        dirs = _given(centre, given, 1)
    else:
        centre, dirs = _line_directions(req, subject, other)
    ts = req.xs()
    jobs = [(split, k) for k in range(len(dirs)) for split in req.splits()]
    surfaces = {}
    for n, (split, k) in enumerate(jobs):
        text = f"line {k + 1}/{len(dirs)} on {split} data"
        cb = _stage(progress, n / len(jobs), (n + 1) / len(jobs), text)
        meta = _meta(req, subject, split=split, line=k)
        surfaces[f"{split}:{k}"] = _line_surface(
            evaluator, subject, centre, dirs[k], ts, split, req, cb, meta
        )
    return SliceResult(req, surfaces, dirs)


def _compute_plane(req, subject, progress, preview, evaluator, given=None) -> SliceResult:
    model = subject.model()
    if given is not None:
        dirs, extra = _given(model, given, 2), {}
    else:
        dirs, extra = _plane_directions(req, subject, model, progress)
    used = req
    meta_extra = {"split": req.split, "orthogonal": req.orthogonal}
    if "path" in extra:
        px, py = extra["path"]
        meta_extra["path"] = {"x": px.tolist(), "y": py.tolist()}
        meta_extra["explained_variance"] = np.asarray(extra["explained"]).tolist()
        if req.auto_range:
            x0, x1, y0, y1 = path_range(px, py)
            used = req.replace(xmin=x0, xmax=x1, ymin=y0, ymax=y1)
    share = None
    if subject.trajectory is not None:
        share = path_share(subject.trajectory, model, dirs[0], dirs[1])
    start = 0.3 if req.direction == "hessian" else 0.0
    end = 0.9 if req.lines else 1.0

    def result(r, surf, lines=()):
        return SliceResult(
            r, {f"{req.split}:0": surf}, dirs, list(lines), cosine=surf.meta.get("cosine"),
            path_share=share, **extra,
        )  # fmt: skip

    if preview is not None and req.n_points >= PREVIEW_FACTOR * req.coarse().n_points:
        small = used.coarse()
        cb = _stage(progress, start, start + 0.05, f"quick {small.nx}x{small.ny} preview")
        meta = _meta(small, subject, **meta_extra)
        surf = _plane_surface(
            evaluator, subject, model, dirs, small.xs(), small.ys(), req.split, req, cb, meta
        )
        preview(result(req.coarse(), surf))
        start += 0.05
    cb = _stage(progress, start, end, f"{req.nx}x{req.ny} grid on {req.split} data")
    meta = _meta(used, subject, **meta_extra)
    surf = _plane_surface(
        evaluator, subject, model, dirs, used.xs(), used.ys(), req.split, req, cb, meta
    )
    ts = np.linspace(used.xmin, used.xmax, req.line_res)
    lines = []
    for k in range(req.lines):
        cb = _stage(progress, end + (1 - end) * k / req.lines, end + (1 - end) * (k + 1) / req.lines,
                    f"line {k + 1}/{req.lines}")  # fmt: skip
        meta = _meta(req, subject, split=req.split, line=k)
        lines.append(
            _line_surface(evaluator, subject, model, dirs[k], ts, req.split, req, cb, meta)
        )
    return result(req, surf, lines)


def compute(
    req: SliceRequest,
    subject: Subject,
    other: Subject | None = None,
    progress: Progress = None,
    preview: Preview = None,
    evaluator: Evaluator = evaluate,
    given_directions: Sequence[dict[str, Tensor]] | None = None,
) -> SliceResult:
    """Compute the surfaces of ``req`` for ``subject`` (and ``other`` for a 'between' line).

    ``given_directions``: slice along these (one for a line, two for a plane; see
    ``check_given``) instead of making the request's kind of direction.

    ``progress(fraction, text)`` is called as points are evaluated. ``preview(result)``, for
    a plane of at least PREVIEW_FACTOR times COARSE_RES^2 points, first receives the same
    slice on a coarse grid (same directions, same range). ``evaluator`` evaluates every grid
    point (default ``evaluate``). Raises ValueError for a request the subject cannot answer
    (a mismatched second net, PCA without a path); a diverging region is a result: its points
    are NaN/inf in the surfaces.
    """
    given = given_directions
    if given is not None and (req.direction != "random" or req.n_lines != 1 or req.lines > 2):
        raise ValueError(
            "given_directions take the place of random ones: the request must have "
            "direction='random', n_lines=1 and lines <= 2"
        )
    if req.dim == 1:
        result = _compute_line(req, subject, other, progress, evaluator, given)
    else:
        result = _compute_plane(req, subject, progress, preview, evaluator, given)
    surfs = [*result.surfaces.values(), *result.lines]
    result.seconds = float(sum(s.meta.get("seconds", 0.0) for s in surfs))
    own = subject.own_loss.get(result.main.meta.get("split", req.split))
    result.centre_loss = None if own is None else float(own)
    if progress is not None:
        progress(1.0, "done")
    return result


def compute_own(
    model,
    req: SliceRequest,
    progress: Progress = None,
    preview: Preview = None,
    to=None,
    evaluator: Evaluator = evaluate,
    given_directions: Sequence[dict[str, Tensor]] | None = None,
) -> SliceResult:
    """``compute`` on a user's own model (``landscape.engine.own.OwnModel``, data streamed).

    ``to``: the weight file at t=1 of a ``between`` line; ``evaluator``: default ``evaluate``
    (the command line wraps it in ``landscape.engine.distributed``).
    """
    other = None if to is None else model.subject(to)
    result = compute(
        req, model.subject(), other, progress, preview, evaluator=evaluator,
        given_directions=given_directions,
    )  # fmt: skip
    for surf in [*result.surfaces.values(), *result.lines]:
        surf.meta["model"] = json.loads(json.dumps(model.spec))  # what this result is of
    return result
