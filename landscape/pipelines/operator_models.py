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

``OwnRequest`` -> ``compute`` is the app's slice of such a model, with the options of the
built-in runs: random planes (weights or states, orthogonal or not), the PCA plane of the
checkpoints (cos or least-squares projection of the path), the top-2 Hessian plane; random
lines (several seeds overlaid), the line from the first checkpoint to the net
(``interpolation``) and from the net to ``to`` (``between``). ``compare`` measures entries
as the Compare page measures built-in runs (``landscape.pipelines.comparisons.measure_subject``). No
Streamlit here.
"""

from __future__ import annotations

import glob
import math
import os
import subprocess
import sys
import threading
import time
import tomllib
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from landscape.core import directions as D
from landscape.engine import own
from landscape.engine.own import loading
from landscape.measures import sharpness
from landscape.pipelines import comparisons, slices

ENV = "LANDSCAPE_MODELS"
MAX_ENTRIES = 100
APP_MAX_SAMPLES = 2000  # samples an app slice evaluates unless the entry says fewer (or more)
HARD_MAX_SAMPLES = 50_000  # the most an entry may ask for: one app slice must stay bounded
MIN_RES, MAX_RES = 3, 101  # points per axis, as for built-in runs
MAX_RANGE = 1e4
OPEN_CACHE = 4  # opened models kept per process (each holds its weights and data)
IMPORT_SECONDS = 60.0  # an entry's modules must import within this, in a child process first
KEYS = {"name", "factory", "kwargs", "weights", "data", "loss", "checkpoints", "to", "max_samples"}
MAX_LINES = 5  # random 1D directions overlaid, as for built-in runs
LINE_KINDS = ("random", "interpolation", "between")  # interpolation: first checkpoint -> net
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
        """The directions this entry offers: the line from the first checkpoint needs
        ``checkpoints``, PCA two of them, the line to another net ``to``."""
        if dim == 1:
            need = {"interpolation": bool(self.checkpoints), "between": bool(self.to)}
            return tuple(k for k in LINE_KINDS if need.get(k, True))
        return PLANE_KINDS if len(self.checkpoints) >= 2 else ("random", "hessian")


def _err(where: str, text: str) -> ValueError:
    return ValueError(f"{ENV} file {where}: {text}")


def _path(folder: Path, value, where: str, field_name: str) -> str:
    if not isinstance(value, str) or not value:
        raise _err(where, f"{field_name} must be a non-empty string")
    if loading.SPEC_RE.match(value) and field_name == "data":
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
    if not isinstance(raw["factory"], str) or not loading.SPEC_RE.match(raw["factory"]):
        raise _err(where, f"factory={raw['factory']!r} must look like MODULE:FUNCTION")
    kwargs = raw.get("kwargs", {})
    if not isinstance(kwargs, dict):
        raise _err(where, "kwargs must be a table, e.g. kwargs = { width = 64 }")
    loss = raw.get("loss")
    if loss is not None and not isinstance(loss, str):
        raise _err(where, "loss must be a string")
    cks = raw.get("checkpoints", [])
    if isinstance(cks, str):  # a glob pattern, relative to the file
        cks = sorted(glob.glob(str(folder / cks)), key=loading.natural_key)
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
    except RecursionError:  # the parser's depth bound: the interpreter's recursion limit
        raise _err(str(path), "is nested too deeply: arrays and tables are shallow") from None
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


_import_verdicts: dict = {}  # (folder, module, its file's mtime) -> None (imports) or why not


def _module_stamp(folder: str, module: str) -> int:
    base = Path(folder, *module.split("."))
    for f in (base.with_suffix(".py"), base / "__init__.py"):
        if f.is_file():
            return f.stat().st_mtime_ns
    return 0


def check_imports(entry: Entry) -> None:
    """Import the entry's modules (factory, and data or loss given as MODULE:FUNCTION) in a
    child process with a time limit, before this process imports them: a module that never
    finishes importing would hang the page or worker that opens it. ValueError naming the
    model and why it is unavailable; a module that fails outright is left to the import
    (its own error names it). Verdicts are kept until the module's file changes."""
    specs = [
        entry.factory,
        *(x for x in (entry.data, entry.loss) if x and loading.SPEC_RE.match(x)),
    ]
    for module in dict.fromkeys(spec.partition(":")[0] for spec in specs):
        key = (entry.folder, module, _module_stamp(entry.folder, module))
        if key not in _import_verdicts:
            code = "import importlib, sys; sys.path.insert(0, sys.argv[1]); "
            code += "importlib.import_module(sys.argv[2])"
            try:
                subprocess.run(
                    [sys.executable, "-c", code, entry.folder, module],
                    cwd=entry.folder or None,
                    capture_output=True,
                    timeout=IMPORT_SECONDS,
                )
                _import_verdicts[key] = None
            except subprocess.TimeoutExpired:
                _import_verdicts[key] = (
                    f"importing {module!r} did not finish within {IMPORT_SECONDS:g} s"
                )
        if _import_verdicts[key]:
            raise ValueError(f"model {entry.name!r} is unavailable: {_import_verdicts[key]}")


def open_entry(entry: Entry) -> own.OwnModel:
    """The entry's model, weights and data, on the CPU; a small per-process LRU."""
    key = (entry, file_stamp(entry))
    with _lock:
        if key in _opened:
            _opened.move_to_end(key)
            return _opened[key]
    check_imports(entry)
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
    direction: str = "random"  # 1D: random | interpolation | between; 2D: random | pca | hessian
    seed: int = 0  # random directions / eigen-solver start
    n_lines: int = 1  # 1D random: directions overlaid (seeds seed, seed+1, ...)
    norm: str = "filter"
    ignore: str | None = "biasbn"
    dir_type: str = "weights"  # random directions: weights | states (BatchNorm buffers too)
    orthogonal: bool = False
    projection: str = "cos"  # pca: how the checkpoints are placed in the plane (cos | lstsq)
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
        if self.projection not in D.PROJECTIONS:
            raise ValueError(f"projection={self.projection!r} must be one of {list(D.PROJECTIONS)}")
        n = self.n_lines
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_LINES:
            raise ValueError(f"n_lines={n!r} is out of range: must be in [1, {MAX_LINES}]")
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
        if self.dim == 1 and self.direction == "random" and self.n_lines > 1:
            what = f"{self.n_lines} lines"
        return f"{self.entry} · {what} · {self.direction}"

    def slice_request(self):
        """The same slice as a ``landscape.pipelines.slices.SliceRequest`` (every option passed on)."""

        return slices.SliceRequest(
            dim=self.dim, direction=self.direction, seed=self.seed,
            n_lines=self.n_lines if self.dim == 1 and self.direction == "random" else 1,
            norm=self.norm, ignore=self.ignore, dir_type=self.dir_type,
            orthogonal=self.orthogonal, projection=self.projection,
            xmin=self.xmin, xmax=self.xmax, ymin=self.ymin, ymax=self.ymax, nx=self.nx,
            ny=self.ny, auto_range=self.direction == "pca" and self.auto_range,
        )  # fmt: skip


def compute(req: OwnRequest, progress=None):
    """The slice ``req`` asks for, of the operator's model it names: a
    ``landscape.pipelines.slices.SliceResult`` whose ``request`` is ``req``.

    Every slice goes through ``landscape.pipelines.slices.compute`` and the same evaluator
    as the built-in runs' slices (the model's data streamed); the lines of a 1D slice are keyed
    ``"train:0"``, ``"train:1"``... (the model's data is its one split).
    """
    start = time.perf_counter()
    entry = get(req.entry)
    if req.direction not in entry.kinds(req.dim):
        need = "'to'" if req.direction == "between" else "checkpoints"
        raise ValueError(
            f"model {entry.name!r} offers {list(entry.kinds(req.dim))} for this slice: "
            f"add {need} to its entry"
        )
    subject = open_entry(entry)
    cb = None if progress is None else (lambda f, _: progress(round(1000 * f), 1000))
    to = entry.to if req.direction == "between" else None
    result = slices.compute_own(subject, req.slice_request(), cb, to=to)
    for surf in [*result.surfaces.values(), *result.lines]:
        surf.meta["run_name"] = entry.name
    centre, _, _ = slices.evaluate(subject.subject(), [result.directions[0]], np.zeros((1, 1)))
    result.request = req
    result.centre_loss = float(centre[0])
    result.seconds = time.perf_counter() - start
    return result


def compare(names, settings, norm: str = "filter", progress=None):
    """Entries measured side by side as the Compare page measures built-in runs: slices,
    basin width, top Hessian eigenvalue, trace and (when ``settings.convexity``) the
    convexity map, each from ``comparisons.measure_subject`` on the model's own data."""

    names = list(names)
    if not 1 <= len(names) <= comparisons.MAX_PANELS:
        raise ValueError(
            f"models={len(names)} is out of range: compare 1 to {comparisons.MAX_PANELS}"
        )
    start = time.perf_counter()
    used = settings if settings.split == "train" else settings.replace(split="train")
    panels = []
    for i, name in enumerate(names):
        subject = open_entry(get(name))
        cb = None if progress is None else comparisons.panel_progress(progress, i, len(names), name)
        panel = comparisons.measure_subject(subject.subject(), used, name, norm=norm, progress=cb)
        if settings.split != "train":
            panel.notes.append("measured on the model's data (an operator's model has one set)")
        panels.append(panel)
    return comparisons.Comparison(panels, used, 0.0, time.perf_counter() - start)


def sharpness_panels(names, progress=None):
    """The Compare page's sharpness measures (``landscape.measures.sharpness.panel``: λmax, trace, ε-,
    ρ- and adaptive sharpness, basin width) of each entry on its own data, one job;
    ``progress(fraction, text)``."""

    out = []
    for i, name in enumerate(names):
        subject = open_entry(get(name))

        def cb(done, total, what, i=i, name=name):
            if progress is not None:
                progress((i * total + done) / (total * len(names)), f"{name}: {what}")

        data = subject.data.all()
        out.append(sharpness.panel(subject.model, subject.loss, data, label=name, progress=cb))
    return out
