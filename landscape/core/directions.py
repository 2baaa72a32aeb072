"""Directions in weight space along which the loss surface is sliced.

A direction is a ``dict[str, Tensor]`` keyed like ``model.named_parameters()``, one tensor per
parameter with the parameter's shape. A point of a surface is ``theta* + a*d1 + b*d2``.

Why normalise (Li et al., NeurIPS 2018): a ReLU net is scale invariant. Multiplying the
weights of one layer by 10 and dividing the next by 10 leaves the function unchanged, but a
fixed-size random step is then 10x smaller relative to the first layer and 10x larger relative
to the second. Plots of two nets, or of two layers, are only comparable when each piece of a
random direction has the size of the weights it perturbs. Filter normalisation does this per
filter (a conv output channel, a Linear output row): ``d_j <- d_j * ||w_j|| / (||d_j|| + 1e-10)``.

Biases and BatchNorm scale/shift are one-dimensional; under ``ignore="biasbn"`` (the default)
the direction is zero there, so the plot shows the loss as a function of the weights only.
With ``ignore=None`` the direction equals the weights for those tensors, as in the original
code (a step of ``a`` rescales them by ``1 + a``).

Direction type (the original's ``--dir_type``): ``weights`` (default) moves the parameters
only, so BatchNorm keeps the centre net's running statistics at every point; ``states`` keys
the direction like the state dict, parameters and floating-point buffers (running mean and
variance), so they move too: a buffer's direction is a copy of the buffer (a step of ``a``
rescales it by ``1 + a``, the original's rule for one-dimensional entries), whatever
``ignore`` says, since ``ignore`` names biases and BatchNorm scale/shift, not statistics (the
original zeroes them under its ``biasbn``, which makes ``states`` the same as ``weights``).
Interpolating between two
nets with ``dir_type="states"`` moves the statistics with the weights, so both ends of the
line are each net's own function.

PCA directions (Li et al., section 7) are the two leading principal components of the
training path ``theta_epoch - theta_final``: the plane that explains most of how the weights
moved, where the path can be drawn on top of the contour plot.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

NORMS = ("filter", "layer", "weight", "dfilter", "dlayer", "none")  # allowed values of `norm`
DIR_TYPES = ("weights", "states")  # parameters only | parameters + floating-point buffers
PROJECTIONS = ("cos", "lstsq")  # how a checkpoint is placed in a plane (see `project`)
IGNORES = ("biasbn", None)  # allowed values of `ignore` ("none" is accepted as None)
EPS = 1e-10  # added to a direction's norm so zero-norm filters give 0, never NaN

Direction = dict[str, Tensor]


# ----------------------------------------------------------------------------- helpers


def weights_of(model_or_weights: nn.Module | dict[str, Tensor]) -> dict[str, Tensor]:
    """The parameters as a detached dict keyed like ``named_parameters()`` (no copy of data)."""
    if isinstance(model_or_weights, nn.Module):
        return {k: p.detach() for k, p in model_or_weights.named_parameters()}
    if isinstance(model_or_weights, dict):
        return {k: torch.as_tensor(v).detach() for k, v in model_or_weights.items()}
    raise ValueError(
        f"weights={type(model_or_weights).__name__} is not allowed: "
        "must be an nn.Module or a dict[str, Tensor]"
    )


def buffers_of(model: nn.Module) -> dict[str, Tensor]:
    """The floating-point buffers of the state dict (BatchNorm running mean and variance).

    Integer buffers (``num_batches_tracked``) and non-persistent ones are not state a line
    can move. Detached, no copy of data.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model={type(model).__name__} must be an nn.Module")
    keys = set(model.state_dict())
    return {k: b.detach() for k, b in model.named_buffers() if k in keys and b.is_floating_point()}


def states_of(model_or_states: nn.Module | dict[str, Tensor]) -> dict[str, Tensor]:
    """Parameters and floating-point buffers, in state-dict order (the ``states`` type).

    A dict is taken as a state dict: its floating-point entries, in its order.
    """
    if isinstance(model_or_states, nn.Module):
        params, bufs = weights_of(model_or_states), buffers_of(model_or_states)
        order = [k for k in model_or_states.state_dict() if k in params or k in bufs]
        order += [k for k in params if k not in order]  # parameters outside the state dict
        return {k: params[k] if k in params else bufs[k] for k in order}
    states = weights_of(model_or_states)
    return {k: v for k, v in states.items() if v.is_floating_point()}


def _of_type(model_or_dict, dir_type: str) -> dict[str, Tensor]:
    """``weights_of`` or ``states_of``, after checking ``dir_type``."""
    if dir_type not in DIR_TYPES:
        raise ValueError(f"dir_type={dir_type!r} is not allowed: must be one of {list(DIR_TYPES)}")
    return weights_of(model_or_dict) if dir_type == "weights" else states_of(model_or_dict)


def flatten(direction: dict[str, Tensor]) -> Tensor:
    """Concatenate the tensors of a dict, in its order, into one 1-D vector."""
    if not direction:
        return torch.zeros(0)
    return torch.cat([t.detach().reshape(-1) for t in direction.values()])


def unflatten(vector: Tensor | np.ndarray, like: nn.Module | dict[str, Tensor]) -> Direction:
    """Split a 1-D vector into tensors shaped and keyed like ``like``'s parameters.

    ``like`` is a model (its ``named_parameters()`` order, as in ``Run.trajectory``) or a dict.
    The result has ``like``'s dtype; the vector's length must equal the parameter count.
    """
    ref = weights_of(like)
    vec = torch.as_tensor(np.asarray(vector) if not isinstance(vector, Tensor) else vector)
    n = sum(t.numel() for t in ref.values())
    if vec.ndim != 1 or vec.numel() != n:
        raise ValueError(
            f"vector shape={tuple(vec.shape)} does not match the model: must be ({n},)"
        )
    out, i = {}, 0
    for k, t in ref.items():
        out[k] = vec[i : i + t.numel()].reshape(t.shape).to(t.dtype).clone()
        i += t.numel()
    return out


def cosine(d1: dict[str, Tensor], d2: dict[str, Tensor]) -> float:
    """Cosine of the angle between two directions (NaN if either is all zero)."""
    _check_keys(d1, d2, "d2")
    a, b = flatten(d1).double(), flatten(d2).double()
    na, nb = a.norm().item(), b.norm().item()
    if na == 0.0 or nb == 0.0:
        return math.nan
    return float(torch.dot(a, b).item() / (na * nb))


def _check_keys(ref: dict[str, Tensor], other: dict[str, Tensor], name: str) -> None:
    """Raise ValueError unless ``other`` has exactly ``ref``'s keys and shapes."""
    if list(ref) != list(other):
        missing = [k for k in ref if k not in other]
        extra = [k for k in other if k not in ref]
        raise ValueError(
            f"{name} keys do not match the model's parameters: "
            f"missing={missing[:5]} extra={extra[:5]}"
        )
    for k in ref:
        if tuple(ref[k].shape) != tuple(other[k].shape):
            raise ValueError(
                f"{name}[{k!r}] shape={tuple(other[k].shape)} must be {tuple(ref[k].shape)}"
            )


def _check_norm_ignore(norm: str, ignore: str | None) -> str | None:
    if norm not in NORMS:
        raise ValueError(f"norm={norm!r} is not allowed: must be one of {list(NORMS)}")
    if isinstance(ignore, str) and ignore.lower() == "none":
        ignore = None
    if ignore not in IGNORES:
        raise ValueError(f"ignore={ignore!r} is not allowed: must be 'biasbn' or None")
    return ignore


# ----------------------------------------------------------------------------- random


def _normalize_tensor(d: Tensor, w: Tensor, norm: str) -> Tensor:
    """Normalise one direction tensor (more than one dimension) against its weight."""
    if norm == "filter":  # each slice j along dim 0: a conv output channel, a Linear row
        dn = d.reshape(d.shape[0], -1).norm(dim=1)  # (out,)
        wn = w.reshape(w.shape[0], -1).norm(dim=1)  # (out,)
        scale = wn / (dn + EPS)
        return d * scale.reshape(-1, *([1] * (d.ndim - 1)))
    if norm == "layer":  # the whole tensor at once
        return d * (w.norm() / (d.norm() + EPS))
    if norm == "weight":  # elementwise: a step of a moves each weight by a fraction a*d of itself
        return d * w
    if norm == "dfilter":  # each filter of the direction to unit norm, whatever the weights
        dn = d.reshape(d.shape[0], -1).norm(dim=1)  # (out,)
        return d / (dn + EPS).reshape(-1, *([1] * (d.ndim - 1)))
    if norm == "dlayer":  # the whole tensor to unit norm
        return d / (d.norm() + EPS)
    return d.clone()  # "none": the raw direction, for teaching what normalisation changes


def normalize_direction(
    direction: dict[str, Tensor],
    weights: nn.Module | dict[str, Tensor],
    norm: str = "filter",
    ignore: str | None = "biasbn",
    dir_type: str = "weights",
    buffers: frozenset[str] = frozenset(),
) -> Direction:
    """Rescale ``direction`` to the size of ``weights``; returns a new dict (input untouched).

    norm: ``filter`` (per slice along dim 0, Li et al.), ``layer`` (per tensor), ``weight``
    (elementwise product with the weights), ``dfilter`` / ``dlayer`` (each filter / tensor
    of the direction to unit norm, ignoring the weights' size), ``none`` (unchanged).
    One-dimensional parameters (biases, BatchNorm scale/shift) become zero under
    ``ignore="biasbn"`` and a copy of the weights under ``ignore=None``, whatever ``norm`` is
    (the original code's behaviour). The entries named in ``buffers`` (running statistics of
    a ``dir_type="states"`` direction) are a copy of the buffer under either setting.
    """
    ignore = _check_norm_ignore(norm, ignore)
    w = _of_type(weights, dir_type)
    _check_keys(w, direction, "direction")
    out = {}
    for k, wk in w.items():
        d = direction[k].detach().to(wk.dtype)
        if k in buffers:
            out[k] = wk.clone()
        elif d.ndim <= 1:
            out[k] = torch.zeros_like(wk) if ignore == "biasbn" else wk.clone()
        else:
            out[k] = _normalize_tensor(d, wk, norm)
    return out


def _gaussian(weights: dict[str, Tensor], gen: torch.Generator) -> Direction:
    return {
        k: torch.randn(w.shape, generator=gen, dtype=torch.float32).to(w.dtype)
        for k, w in weights.items()
    }


def _remove_along(b: Tensor, a: Tensor) -> Tensor:
    """Gram-Schmidt on rows: remove from each row of b (R, n) its component along a's row."""
    aa, ab = (a * a).sum(1, keepdim=True), (a * b).sum(1, keepdim=True)  # (R, 1)
    return b - torch.where(aa > 0, ab / aa.clamp_min(1e-300), torch.zeros_like(ab)) * a


def _orthogonalize(g2: Direction, g1: Direction, w: dict[str, Tensor], norm: str) -> Direction:
    """Make Gaussian g2 orthogonal to g1 in the way that survives normalisation.

    ``filter`` rescales each filter on its own, so orthogonalise filter by filter (a filter
    with one entry cannot be, and is left alone); ``layer`` rescales whole tensors, so
    tensor by tensor; ``weight`` multiplies by w, so orthogonalise ``g*w`` globally; ``none``
    globally. One-dimensional tensors are skipped: normalisation overwrites them.
    """
    keys = [k for k in g1 if g1[k].ndim > 1]
    out = dict(g2)
    if norm in ("filter", "layer", "dfilter", "dlayer"):
        for k in keys:
            rows = g1[k].shape[0] if norm in ("filter", "dfilter") else 1
            a, b = g1[k].reshape(rows, -1).double(), g2[k].reshape(rows, -1).double()
            if a.shape[1] > 1:
                out[k] = _remove_along(b, a).reshape(g2[k].shape).to(g2[k].dtype)
        return out
    if not keys:
        return out
    scale = {k: w[k].double() if norm == "weight" else 1.0 for k in keys}
    a = torch.cat([(g1[k].double() * scale[k]).reshape(-1) for k in keys])
    b = torch.cat([(g2[k].double() * scale[k]).reshape(-1) for k in keys])
    aa = float(torch.dot(a, a))
    coef = float(torch.dot(a, b)) / aa if aa > 0 else 0.0
    for k in keys:
        out[k] = (g2[k].double() - coef * g1[k].double()).to(g2[k].dtype)
    return out


def random_directions(
    model: nn.Module | dict[str, Tensor],
    n: int = 2,
    norm: str = "filter",
    ignore: str | None = "biasbn",
    seed: int = 0,
    orthogonal: bool = False,
    dir_type: str = "weights",
) -> list[Direction]:
    """``n`` seeded Gaussian directions, normalised against the model's weights.

    ``dir_type="states"`` draws one Gaussian per entry of ``states_of(model)`` (parameters
    and floating-point buffers, in state-dict order) and normalises each like a weight.

    The Gaussians are drawn one after the other from one generator seeded with ``seed``, so
    ``random_directions(m, 2, seed=s)[0]`` equals ``random_direction(m, seed=s)``.
    ``orthogonal=True`` removes from each later Gaussian its components along the earlier
    ones before normalising (off by default, as in Li et al.; in high dimension random
    directions are nearly orthogonal anyway). It works per normalisation unit, so the result
    stays orthogonal after normalising, except where no step can be: filters with a single
    entry, and 1-D tensors under ``ignore=None`` (both directions equal the weights there).
    Report ``cosine(d1, d2)`` rather than assume it is zero.
    """
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 16:
        raise ValueError(f"n={n!r} is out of range: must be an integer in [1, 16]")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed={seed!r} must be an integer >= 0")
    ignore = _check_norm_ignore(norm, ignore)
    w = _of_type(model, dir_type)
    gen = torch.Generator().manual_seed(int(seed))
    raw = [_gaussian(w, gen) for _ in range(n)]
    if orthogonal:
        for i in range(1, n):
            for j in range(i):
                raw[i] = _orthogonalize(raw[i], raw[j], w, norm)
    moved = (
        frozenset(buffers_of(model))
        if dir_type == "states" and isinstance(model, nn.Module)
        else frozenset()
    )
    return [normalize_direction(d, w, norm, ignore, "states", moved) for d in raw]


def random_direction(
    model: nn.Module | dict[str, Tensor],
    norm: str = "filter",
    ignore: str | None = "biasbn",
    seed: int = 0,
    dir_type: str = "weights",
) -> Direction:
    """One seeded Gaussian direction, normalised (see ``normalize_direction``)."""
    return random_directions(model, 1, norm=norm, ignore=ignore, seed=seed, dir_type=dir_type)[0]


def interpolation_direction(
    start_weights: nn.Module | dict[str, Tensor],
    end_weights: nn.Module | dict[str, Tensor],
    dir_type: str = "weights",
) -> Direction:
    """``end - start``: the line ``start + t*d`` goes from ``start`` (t=0) to ``end`` (t=1).

    Goodfellow et al. (2015) plot the loss from the initialisation to the trained net; the
    same line between two trained nets shows whether a barrier separates them. Not
    normalised: t is the fraction of the way. Use ``dir_type="states"`` (models, or state
    dicts) for nets with BatchNorm: the running statistics then move with the weights and
    ``surface.line(start, ..., d)`` equals each net's own loss at t=0 and t=1. With
    ``weights`` every t uses the buffers of the model given to ``surface.line``.
    """
    a, b = _of_type(start_weights, dir_type), _of_type(end_weights, dir_type)
    _check_keys(a, b, "end_weights")
    return {k: (b[k] - a[k]).clone() for k in a}


# ----------------------------------------------------------------------------- PCA


def _diff_rows(trajectory: np.ndarray, final: nn.Module | dict[str, Tensor]) -> np.ndarray:
    """Rows ``theta_epoch - theta_final`` in float64, after checking the shape."""
    traj = np.asarray(trajectory)
    theta = flatten(weights_of(final)).double().numpy()
    if traj.ndim != 2 or traj.shape[1] != theta.shape[0]:
        raise ValueError(
            f"trajectory shape={traj.shape} does not match the model: "
            f"must be (checkpoints, {theta.shape[0]})"
        )
    return traj.astype(np.float64) - theta[None, :]


def _orient(v: np.ndarray, first_row: np.ndarray) -> np.ndarray:
    """Fix an eigenvector's sign so the start of the path has a coordinate <= 0."""
    return -v if float(first_row @ v) > 0 else v


def pca_directions(
    trajectory: np.ndarray,
    final: nn.Module | dict[str, Tensor],
    ignore: str | None = "biasbn",
) -> tuple[Direction, Direction, np.ndarray]:
    """The two leading principal components of the training path, as unit-norm directions.

    trajectory: (checkpoints, P) flattened parameters in ``named_parameters()`` order, as
    ``Run.trajectory`` (initialisation first). final: the centre model (or its weights).
    Rows ``theta_epoch - theta_final`` are centred and decomposed by SVD (the same as
    sklearn's PCA in the original code); returns ``(d1, d2, explained_variance_ratio)``
    where the ratio has two entries. ``ignore="biasbn"`` (the default, as for every other
    direction here) zeroes one-dimensional tensors in the rows first, the original's way;
    ``ignore=None`` keeps them. The sign of each axis is chosen so that the
    start of the path has non-positive coordinates: the path ends at the origin from the
    lower left.
    """
    if isinstance(ignore, str) and ignore.lower() == "none":
        ignore = None
    if ignore not in IGNORES:
        raise ValueError(f"ignore={ignore!r} is not allowed: must be 'biasbn' or None")
    rows = _diff_rows(trajectory, final)
    if rows.shape[0] < 3:
        raise ValueError(
            f"trajectory has {rows.shape[0]} checkpoints: must have at least 3 for two PCA axes"
        )
    if not np.all(np.isfinite(rows)):
        raise ValueError("trajectory contains NaN/inf: the run diverged, PCA is undefined")
    if ignore == "biasbn":
        mask = flatten(
            {k: torch.full(w.shape, float(w.ndim > 1)) for k, w in weights_of(final).items()}
        )
        rows = rows * mask.double().numpy()[None, :]
    centred = rows - rows.mean(axis=0, keepdims=True)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)  # (k,), (k, P)
    total = float((s**2).sum())
    if total == 0.0 or not math.isfinite(total):
        raise ValueError("trajectory does not move: every checkpoint is the same, PCA undefined")
    ratio = (s[:2] ** 2) / total
    d1v, d2v = (_orient(vt[i], rows[0]) for i in range(2))
    return unflatten(d1v, final), unflatten(d2v, final), ratio


def project(
    trajectory: np.ndarray,
    final: nn.Module | dict[str, Tensor],
    d1: dict[str, Tensor],
    d2: dict[str, Tensor],
    projection: str = "cos",
) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates of each checkpoint in the plane of ``d1, d2`` around ``final``.

    ``projection="cos"`` (default, the original's): ``x = <theta - theta_final, d1> / ||d1||``
    (likewise y), exact when d1, d2 are orthonormal, as PCA axes are. ``"lstsq"`` (the
    original's ``--proj_method lstsq``): the least-squares ``(x, y)`` with
    ``x*d1 + y*d2 ~ theta - theta_final``, the point of the plane's own coordinates nearest
    to the checkpoint, right for directions that are not orthonormal. The final model
    projects to (0, 0). Only the parameter entries of a ``states`` direction are used (the
    trajectory holds parameters). Returns two float64 arrays of length ``checkpoints``.
    """
    if projection not in PROJECTIONS:
        raise ValueError(
            f"projection={projection!r} is not allowed: must be one of {list(PROJECTIONS)}"
        )
    rows = _diff_rows(trajectory, final)  # non-finite checkpoints project to NaN
    w = weights_of(final)
    vecs = []
    for name, d in (("d1", d1), ("d2", d2)):
        d = {k: d[k] for k in w if k in d} if set(w) <= set(d) else d
        _check_keys(w, d, name)
        v = flatten(d).double().numpy()
        if float(np.linalg.norm(v)) == 0.0:
            raise ValueError(f"{name} is all zeros: cannot project onto it")
        vecs.append(v)
    if projection == "cos":
        return tuple(rows @ v / float(np.linalg.norm(v)) for v in vecs)
    A = np.stack(vecs, axis=1)  # (P, 2)
    good = np.all(np.isfinite(rows), axis=1)
    out = np.full((rows.shape[0], 2), np.nan)
    if good.any():
        out[good] = np.linalg.lstsq(A, rows[good].T, rcond=None)[0].T  # (checkpoints, 2)
    return out[:, 0], out[:, 1]
