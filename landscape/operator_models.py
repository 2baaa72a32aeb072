"""The operator's models: ``LANDSCAPE_MODELS=models.toml`` lists own models the app can slice.

Uploading code to a shared server is never allowed, so a user's model reaches the app only
through a file the person running the server wrote. It is read from the path in the
environment variable, never from an upload. Format (paths relative to the file's folder,
which is also put on the import path for the factories)::

    [[model]]
    name = "ResNet on my data"            # shown in the app; unique
    factory = "my_models:make_net"       # MODULE:FUNCTION
    kwargs = { width = 64 }              # optional, keyword arguments of the factory
    weights = "net.safetensors"          # or a weights_only .pt/.pth/.bin state dict
    data = "data.npz"                    # .npz (X, y), .csv, or MODULE:FUNCTION
    loss = "cross_entropy"               # optional: zoo name or MODULE:FUNCTION
    checkpoints = ["ckpt_1.safetensors", "ckpt_2.safetensors"]  # optional: the PCA plane
    to = "other.safetensors"             # optional: the line to another net
    max_samples = 2000                   # optional: samples evaluated (default and cap below)

``OwnRequest`` -> ``compute`` is the app's slice of such a model: random (weights or states),
PCA and Hessian planes, random and interpolation lines. No Streamlit here.
"""

from __future__ import annotations

import glob
import math
import os
import sys
import threading
import time
import tomllib
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from landscape import directions as D
from landscape import own

ENV = "LANDSCAPE_MODELS"
MAX_ENTRIES = 100
APP_MAX_SAMPLES = 2000  # samples an app slice evaluates unless the entry says fewer (or more)
HARD_MAX_SAMPLES = 50_000  # the most an entry may ask for: one app slice must stay bounded
MIN_RES, MAX_RES = 3, 101  # points per axis, as for built-in runs
MAX_RANGE = 1e4
OPEN_CACHE = 4  # opened models kept per process (each holds its weights and data)
KEYS = {"name", "factory", "kwargs", "weights", "data", "loss", "checkpoints", "to", "max_samples"}
LINE_KINDS = ("random", "interpolation")
PLANE_KINDS = ("random", "pca", "hessian")


@dataclass(frozen=True)
class Entry:
    """One model of the operator's file (paths absolute)."""

    name: str
    factory: str
    kwargs: tuple = ()  # sorted (key, value) pairs of the JSON kwargs (hashable)
    weights: str = ""
    data: str = ""
    loss: str | None = None
    checkpoints: tuple[str, ...] = ()
    to: str | None = None
    max_samples: int = APP_MAX_SAMPLES
    folder: str = ""  # the file's folder: relative paths and imports start here

    def kinds(self, dim: int) -> tuple[str, ...]:
        """The directions this entry offers (PCA needs checkpoints, interpolation ``to``)."""
        if dim == 1:
            return LINE_KINDS if self.to else LINE_KINDS[:1]
        return PLANE_KINDS if self.checkpoints else ("random", "hessian")


def _err(where: str, text: str) -> ValueError:
    return ValueError(f"{ENV} file {where}: {text}")


def _path(folder: Path, value, where: str, field_name: str) -> str:
    if not isinstance(value, str) or not value:
        raise _err(where, f"{field_name} must be a non-empty string")
    if own.SPEC_RE.match(value) and field_name == "data":
        return value  # MODULE:FUNCTION
    return str((folder / value).resolve())


def _entry(raw, folder: Path, i: int) -> Entry:
    where = f"model #{i + 1}"
    if not isinstance(raw, dict):
        raise _err(where, "must be a table ([[model]])")
    unknown = sorted(set(raw) - KEYS)
    if unknown:
        raise _err(where, f"unknown keys {unknown}: allowed {sorted(KEYS)}")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 80:
        raise _err(where, "name must be a string of 1 to 80 characters")
    where = f"model {name!r}"
    for key in ("factory", "weights", "data"):
        if key not in raw:
            raise _err(where, f"{key} is required")
    if not isinstance(raw["factory"], str) or not own.SPEC_RE.match(raw["factory"]):
        raise _err(where, f"factory={raw['factory']!r} must look like MODULE:FUNCTION")
    kwargs = raw.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise _err(where, "kwargs must be a table, e.g. kwargs = { width = 64 }")
    loss = raw.get("loss")
    if loss is not None and not isinstance(loss, str):
        raise _err(where, "loss must be a string")
    cks = raw.get("checkpoints", [])
    if isinstance(cks, str):  # a glob pattern, relative to the file
        cks = sorted(glob.glob(str(folder / cks)), key=own.natural_key)
        if not cks:
            raise _err(where, f"checkpoints {raw['checkpoints']!r} matched no file")
    if not isinstance(cks, list):
        raise _err(where, "checkpoints must be a list of files or a glob pattern")
    n = raw.get("max_samples", APP_MAX_SAMPLES)
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= HARD_MAX_SAMPLES:
        raise _err(where, f"max_samples={n!r} must be an integer in [1, {HARD_MAX_SAMPLES}]")
    return Entry(
        name=name.strip(),
        factory=raw["factory"],
        kwargs=tuple(sorted(kwargs.items())),
        weights=_path(folder, raw["weights"], where, "weights"),
        data=_path(folder, raw["data"], where, "data"),
        loss=loss,
        checkpoints=tuple(_path(folder, c, where, "checkpoints") for c in cks),
        to=_path(folder, raw["to"], where, "to") if raw.get("to") else None,
        max_samples=n,
        folder=str(folder),
    )


def load(path: str | os.PathLike) -> dict[str, Entry]:
    """Every entry of the operator's TOML file, checked, by name (file order)."""
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise _err(str(path), f"cannot be read: {e.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise _err(str(path), f"is not valid TOML: {e}") from None
    models = raw.get("model", [])
    if not isinstance(models, list) or len(models) > MAX_ENTRIES:
        raise _err(str(path), f"'model' must be at most {MAX_ENTRIES} [[model]] tables")
    out: dict[str, Entry] = {}
    for i, m in enumerate(models):
        e = _entry(m, p.resolve().parent, i)
        if e.name in out:
            raise _err(str(path), f"two models are named {e.name!r}")
        out[e.name] = e
    return out


_lock = threading.Lock()
_loaded: dict = {}  # {"key": (path, mtime), "entries": {...}}


def entries() -> dict[str, Entry]:
    """The entries of ``$LANDSCAPE_MODELS`` ({} when unset); re-read when the file changes."""
    path = os.environ.get(ENV)
    if not path:
        return {}
    try:
        key = (path, Path(path).stat().st_mtime_ns)
    except OSError as e:
        raise _err(path, f"cannot be read: {e.strerror}") from None
    with _lock:
        if _loaded.get("key") != key:
            _loaded.update(key=key, entries=load(path))
        return _loaded["entries"]


def get(name: str) -> Entry:
    found = entries().get(name)
    if found is None:
        raise ValueError(f"model {name!r} is not in the operator's {ENV} file")
    return found


_opened: OrderedDict = OrderedDict()


def open_entry(entry: Entry) -> own.OwnModel:
    """The entry's model, weights and data, on the CPU; a small per-process LRU."""
    key = (entry, file_stamp(entry))
    with _lock:
        if key in _opened:
            _opened.move_to_end(key)
            return _opened[key]
    if entry.folder not in sys.path:
        sys.path.insert(0, entry.folder)  # the operator's modules sit beside the file
    subject = own.open_model(
        entry.factory,
        entry.weights,
        entry.data,
        kwargs=dict(entry.kwargs),
        loss=entry.loss,
        device="cpu",
        max_samples=entry.max_samples,
        checkpoints=entry.checkpoints,
    )
    with _lock:
        _opened[key] = subject
        while len(_opened) > OPEN_CACHE:
            _opened.popitem(last=False)
    return subject


def file_stamp(entry: Entry) -> tuple:
    """Modification times of the entry's files: a changed file is a new cache key."""
    files = [entry.weights, entry.data, *entry.checkpoints, entry.to or ""]
    return tuple(os.stat(f).st_mtime_ns if os.path.isfile(f) else 0 for f in files)


# ----------------------------------------------------------------------------- slices


@dataclass(frozen=True)
class OwnRequest:
    """One slice of an operator's model; frozen and hashable (the app's cache key)."""

    entry: str  # the model's name in the file
    dim: int = 2  # 1 line | 2 plane
    direction: str = "random"  # 1D: random | interpolation; 2D: random | pca | hessian
    seed: int = 0  # random directions / eigen-solver start
    norm: str = "filter"
    ignore: str | None = "biasbn"
    dir_type: str = "weights"  # random directions: weights | states (BatchNorm buffers too)
    orthogonal: bool = False
    xmin: float = -1.0
    xmax: float = 1.0
    ymin: float = -1.0
    ymax: float = 1.0
    nx: int = 41
    ny: int = 41
    auto_range: bool = True  # pca: frame the projected path
    stamp: tuple = field(default=(), compare=True)  # file mtimes: a changed file recomputes

    def __post_init__(self):
        if self.ignore == "none":
            object.__setattr__(self, "ignore", None)
        self.validate()

    def validate(self) -> None:
        if self.dim not in (1, 2):
            raise ValueError(f"dim={self.dim!r} is out of range: must be 1 or 2")
        kinds = LINE_KINDS if self.dim == 1 else PLANE_KINDS
        if self.direction not in kinds:
            raise ValueError(f"direction={self.direction!r} must be one of {list(kinds)}")
        if self.norm not in D.NORMS:
            raise ValueError(f"norm={self.norm!r} must be one of {list(D.NORMS)}")
        if self.ignore not in D.IGNORES:
            raise ValueError(f"ignore={self.ignore!r} must be 'biasbn' or None")
        if self.dir_type not in own.DIR_TYPES:
            raise ValueError(f"dir_type={self.dir_type!r} must be one of {list(own.DIR_TYPES)}")
        for n in ("nx", "ny"):
            v = getattr(self, n)
            if isinstance(v, bool) or not isinstance(v, int) or not MIN_RES <= v <= MAX_RES:
                raise ValueError(f"{n}={v!r} is out of range: must be in [{MIN_RES}, {MAX_RES}]")
        for a, b in (("xmin", "xmax"), ("ymin", "ymax")):
            lo, hi = getattr(self, a), getattr(self, b)
            ok = all(math.isfinite(v) and abs(v) <= MAX_RANGE for v in (lo, hi)) and lo < hi
            if not ok:
                raise ValueError(f"{a}={lo}, {b}={hi}: must be finite, |v| <= 1e4, {a} < {b}")

    def replace(self, **kw) -> OwnRequest:
        return replace(self, **kw)

    def label(self) -> str:
        what = "line" if self.dim == 1 else f"{self.nx}x{self.ny} plane"
        return f"{self.entry} · {what} · {self.direction}"


@dataclass(eq=False)
class OwnResult:
    request: OwnRequest
    surface: object  # landscape.surface.Surface
    directions: list
    path: tuple | None = None  # pca: projected checkpoints (xs, ys)
    explained: np.ndarray | None = None
    eigenvalues: np.ndarray | None = None
    centre_loss: float | None = None
    seconds: float = 0.0


def compute(req: OwnRequest, progress=None) -> OwnResult:
    """The slice ``req`` asks for, of the operator's model it names.

    Every slice goes through ``landscape.slices.compute`` with the model's streaming
    evaluator (``landscape.own`` makes the directions itself only if the library's
    direction types lack the requested one).
    """
    from landscape import slices

    start = time.perf_counter()
    entry = get(req.entry)
    if req.direction not in entry.kinds(req.dim):
        raise ValueError(
            f"model {entry.name!r} offers {list(entry.kinds(req.dim))} for this slice: "
            + (
                "add checkpoints to its entry"
                if req.direction == "pca"
                else "add 'to' to its entry"
            )
        )
    subject = open_entry(entry)
    meta = {"direction": req.direction, "dir_type": req.dir_type, "run_name": entry.name}
    xs, ys = np.linspace(req.xmin, req.xmax, req.nx), np.linspace(req.ymin, req.ymax, req.ny)
    extra: dict = {}
    if req.dir_type not in slices.dir_types():  # states: buffers move (landscape.own)
        meta |= {"norm": req.norm, "ignore": req.ignore, "dir_seed": req.seed}
        n = 1 if req.dim == 1 else 2
        dirs = subject.directions(n, req.norm, req.ignore, req.seed, req.orthogonal, req.dir_type)
        if req.dim == 1:
            surf = subject.line(dirs[0], xs, progress, meta=meta)
        else:
            surf = subject.plane(dirs[0], dirs[1], xs, ys, progress, meta=meta)
    else:
        between = req.direction == "interpolation"  # to the entry's other net
        sreq = slices.SliceRequest(
            dim=req.dim, direction="between" if between else req.direction, seed=req.seed, norm=req.norm,
            ignore=req.ignore, dir_type=req.dir_type, orthogonal=req.orthogonal,
            xmin=req.xmin, xmax=req.xmax, ymin=req.ymin, ymax=req.ymax, nx=req.nx, ny=req.ny,
            auto_range=req.direction == "pca" and req.auto_range,
        )  # fmt: skip
        cb = None if progress is None else (lambda f, _: progress(round(1000 * f), 1000))
        result = subject.compute(sreq, cb, to=entry.to if between else None)
        surf, dirs = result.main, result.directions
        extra = {"path": result.path, "explained": result.explained}
        extra["eigenvalues"] = result.eigenvalues
    centre, _, _ = subject.evaluate([dirs[0]], np.zeros((1, 1)))
    return OwnResult(
        req, surf, dirs, centre_loss=float(centre[0]), seconds=time.perf_counter() - start, **extra
    )
