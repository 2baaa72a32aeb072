"""Datasets made in code or shipped with scikit-learn, deterministic by seed.

Three families, small enough to train on in seconds on a laptop CPU:

- 2D classification (TF-Playground style): moons, circles, spiral2, spiral3, xor, blobs. Points
  live roughly in [-1.5, 1.5]^2 so they need no standardising and the decision boundary can be
  drawn in the same coordinates as the data. `noise` is the standard deviation of the Gaussian
  jitter in those units (for blobs: the cluster spread, see `_blobs`).
- 1D regression: `sine` (a smooth function plus noise) and `outliers` (a straight line with a
  few points pushed far away, the robust-loss story; made by `landscape.core.robust`).
- `shapes`: a CIFAR-like image set made in code, (N, 3, 16, 16) colour images in 10 classes,
  five outlines (disk, square, triangle, cross, ring) each plain or striped, at a random place,
  size, rotation and colour, with Gaussian pixel noise `noise`; standardised per pixel with the
  training split's statistics. Hard enough that a deep net needs many epochs, the setting of
  Li et al.'s depth comparison (see `_shapes`).
- Real small data shipped inside scikit-learn (nothing is downloaded): digits as (N, 1, 8, 8)
  images scaled to [0, 1] (or standardised), and iris, wine, breast_cancer standardised with
  the training split's mean and standard deviation (never the test split's: no leakage).

Every set is split into train and test by `test_fraction`, stratified by class for
classification so both splits keep the class balance. `make` is cached (small LRU keyed by its
arguments) because the landscape pages ask for the same data many times; the returned tensors
are shared, so treat them as read-only.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch

from landscape.core import checks, robust


# scikit-learn is imported when a set is first made, not with this module: it takes about a
# second to import, and a command on your own model (or a mistyped flag) never needs it.
def train_test_split(*args, **kwargs):
    """sklearn.model_selection.train_test_split (the one split of every data set here)."""
    from sklearn.model_selection import train_test_split as split

    return split(*args, **kwargs)


def _sklearn_datasets():
    from sklearn import datasets

    return datasets


#: Bounds on the arguments of `make` (Config uses the same): keep every set small and fast.
MIN_SAMPLES, MAX_SAMPLES = 20, 5000
MAX_NOISE = 2.0
MIN_TEST_FRACTION, MAX_TEST_FRACTION = 0.05, 0.5
MAX_OUTLIERS = 1000
MAX_OUTLIER_SCALE = 100.0


@dataclass(frozen=True, eq=False)
class Dataset:
    name: str  # registry key, e.g. "moons"
    task: str  # "classification" | "regression"
    X_train: torch.Tensor  # (N, D) float32, or (N, 1, 8, 8) for digits
    y_train: torch.Tensor  # (N,) long class index, or (N,) float32 regression target
    X_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int  # 0 for regression
    input_shape: tuple[int, ...]  # X.shape[1:]
    feature_names: tuple[str, ...]
    description: str

    @property
    def n_train(self) -> int:
        return len(self.y_train)

    @property
    def n_test(self) -> int:
        return len(self.y_test)


@dataclass(frozen=True)
class DatasetInfo:
    display: str  # name shown in the UI
    task: str  # "classification" | "regression"
    kind: str  # "2d" | "1d" | "image" | "tabular"
    n_classes: int  # 0 for regression
    description: str
    input_shape: tuple[int, ...]  # one example's shape, e.g. (2,) or (1, 8, 8)
    size: int | None = None  # rows the set has (shipped and uploaded sets); None: generated


DATASETS: dict[str, DatasetInfo] = {  # the built-in sets; registered ones: see info()
    "moons": DatasetInfo(
        "Two moons", "classification", "2d", 2, "Two interleaving half circles.", (2,)
    ),
    "circles": DatasetInfo(
        "Circles", "classification", "2d", 2, "A small circle inside a large one.", (2,)
    ),
    "spiral2": DatasetInfo(
        "Spiral (2 arms)", "classification", "2d", 2, "Two interleaved spiral arms.", (2,)
    ),
    "spiral3": DatasetInfo(
        "Spiral (3 arms)", "classification", "2d", 3, "Three interleaved spiral arms.", (2,)
    ),
    "xor": DatasetInfo(
        "XOR", "classification", "2d", 2, "Quadrants: the class is the sign of x*y.", (2,)
    ),
    "blobs": DatasetInfo(
        "Gaussian blobs",
        "classification",
        "2d",
        3,
        "Three Gaussian clusters; noise = spread.",
        (2,),
    ),
    "sine": DatasetInfo(
        "Noisy sine", "regression", "1d", 0, "y = sin(2x) + 0.3x + Gaussian noise on [-2, 2].", (1,)
    ),
    "outliers": DatasetInfo(
        "Line with outliers",
        "regression",
        "1d",
        0,
        "A straight line with noise, plus some points pushed far off it.",
        (1,),
    ),
    "digits": DatasetInfo(
        "Digits (8x8 images)",
        "classification",
        "image",
        10,
        "scikit-learn's 1797 handwritten digits, 8x8 pixels, 10 classes.",
        (1, 8, 8),
        1797,
    ),
    "shapes": DatasetInfo(
        "Shapes (16x16 colour images)",
        "classification",
        "image",
        10,
        "Made in code: 5 shapes x plain/striped = 10 classes, random place, size, rotation "
        "and colours, noise = pixel noise.",
        (3, 16, 16),
    ),
    "iris": DatasetInfo(
        "Iris", "classification", "tabular", 3, "150 flowers, 4 features.", (4,), 150
    ),
    "wine": DatasetInfo(
        "Wine", "classification", "tabular", 3, "178 wines, 13 features.", (13,), 178
    ),
    "breast_cancer": DatasetInfo(
        "Breast cancer", "classification", "tabular", 2, "569 tumours, 30 features.", (30,), 569
    ),
}


#: (C, H, W) of every built-in image set.
IMAGE_SHAPES = {k: v.input_shape for k, v in DATASETS.items() if v.kind == "image"}


# ----------------------------------------------------------------------------- registry
# Sets made elsewhere (a CSV upload, say) are registered here under a name of their own and
# then used like the built-ins: info(name), make(name), Config(dataset=name). The registry
# is process-wide and bounded (least recently used leave first).

REGISTRY_SIZE = 32  # registered sets kept per process (each at most a few MB of tensors)
_registry: OrderedDict[str, tuple[Dataset, DatasetInfo]] = OrderedDict()
_registry_lock = threading.Lock()


def register(ds: Dataset, info: DatasetInfo) -> str:
    """Keep ``ds`` (described by ``info``) under ``ds.name``; returns the name (idempotent)."""
    if ds.name in DATASETS:
        raise ValueError(f"dataset name {ds.name!r} is taken by a built-in set")
    with _registry_lock:
        _registry[ds.name] = (ds, info)
        _registry.move_to_end(ds.name)
        while len(_registry) > REGISTRY_SIZE:
            _registry.popitem(last=False)
    return ds.name


def _registered(name: str) -> tuple[Dataset, DatasetInfo] | None:
    with _registry_lock:
        entry = _registry.get(name)
        if entry is not None:
            _registry.move_to_end(name)
    return entry


def registered() -> list[str]:
    """Names of the registered sets, least recently used first."""
    with _registry_lock:
        return list(_registry)


def is_registered(name) -> bool:
    with _registry_lock:
        return isinstance(name, str) and name in _registry


def registered_set(name: str) -> Dataset:
    """The registered set ``name``; ValueError when it is not (or no longer) kept here."""
    entry = _registered(name) if isinstance(name, str) else None
    if entry is None:
        raise ValueError(f"dataset={name!r} is no longer on the server; upload it again")
    return entry[0]


def forget_registered() -> None:
    """Forget every registered set (tests)."""
    with _registry_lock:
        _registry.clear()


def info(name: str) -> DatasetInfo:
    """What is known about set ``name`` without making it: built-in or registered."""
    if isinstance(name, str) and name in DATASETS:
        return DATASETS[name]
    entry = _registered(name) if isinstance(name, str) else None
    if entry is None:
        raise ValueError(
            f"dataset={name!r} is unknown: must be one of {sorted(DATASETS)} or an upload "
            "still on the server"
        )
    return entry[1]


def known(name) -> bool:
    return isinstance(name, str) and (name in DATASETS or is_registered(name))


# ----------------------------------------------------------------------------- 2D sets


def _class_counts(n: int, k: int) -> list[int]:
    """Split n points into k classes as evenly as possible."""
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def _moons(n, noise, rng):
    X, y = _sklearn_datasets().make_moons(n, noise=noise, random_state=rng.integers(2**31))
    return X - np.array([0.5, 0.25]), y  # centre the pair of moons on the origin


def _circles(n, noise, rng):
    X, y = _sklearn_datasets().make_circles(
        n, noise=noise, factor=0.5, random_state=rng.integers(2**31)
    )
    return X, y


def _spiral(n, noise, rng, arms):
    """Arms k = 0..K-1: radius r in [0.05, 1.5], angle 2*pi*k/K + 1.75 turns * r/1.5."""
    Xs, ys = [], []
    for k, m in enumerate(_class_counts(n, arms)):
        r = 1.5 * (0.05 + 0.95 * rng.random(m) ** 0.75)  # more points far out, where arms part
        theta = 2 * np.pi * k / arms + 1.75 * 2 * np.pi * r / 1.5
        pts = np.stack([r * np.cos(theta), r * np.sin(theta)], 1)
        Xs.append(pts + 0.5 * noise * rng.standard_normal((m, 2)))
        ys.append(np.full(m, k))
    return np.concatenate(Xs), np.concatenate(ys)


def _xor(n, noise, rng):
    """Uniform in [-1.5, 1.5]^2 away from the axes; class = sign(x*y) > 0; then jitter."""
    X = rng.uniform(0.1, 1.5, (n, 2)) * rng.choice([-1.0, 1.0], (n, 2))
    y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)
    return X + noise * rng.standard_normal((n, 2)), y


def _blobs(n, noise, rng):
    """Three clusters on a circle of radius 1; cluster standard deviation = 2 * noise."""
    angles = np.pi / 2 + 2 * np.pi * np.arange(3) / 3
    centres = np.stack([np.cos(angles), np.sin(angles)], 1)
    Xs, ys = [], []
    for k, m in enumerate(_class_counts(n, 3)):
        Xs.append(centres[k] + 2 * noise * rng.standard_normal((m, 2)))
        ys.append(np.full(m, k))
    return np.concatenate(Xs), np.concatenate(ys)


_MAKERS_2D = {
    "moons": _moons,
    "circles": _circles,
    "spiral2": functools.partial(_spiral, arms=2),
    "spiral3": functools.partial(_spiral, arms=3),
    "xor": _xor,
    "blobs": _blobs,
}

# ----------------------------------------------------------------------------- images


def _shape_masks(u: np.ndarray, v: np.ndarray) -> list[np.ndarray]:
    """The five outlines in a shape's own unit frame (u, v): disk, square, triangle, cross, ring."""
    r = np.hypot(u, v)
    return [
        r <= 1.0,
        np.maximum(np.abs(u), np.abs(v)) <= 0.8,
        (v >= -0.7) & (v <= 0.8) & (np.abs(u) <= 0.6 * (v + 0.7)),
        ((np.abs(u) <= 0.3) & (np.abs(v) <= 1.0)) | ((np.abs(v) <= 0.3) & (np.abs(u) <= 1.0)),
        (r >= 0.55) & (r <= 1.0),
    ]


def _shapes(n, noise, rng):
    """Class k: outline k % 5, striped when k >= 5; everything else random per image.

    Centre in [5, 11]^2 px, radius 3.5-6 px, rotation, background and two shape colours in
    [0, 1]^3 (the shape differs from the background by at least 0.35 in some channel), stripes
    of period 3-5 px at a random angle and phase, then N(0, noise^2) on every pixel."""
    size = DATASETS["shapes"].input_shape[1]
    y = np.concatenate([np.full(m, k) for k, m in enumerate(_class_counts(n, 10))])
    yy, xx = np.mgrid[0:size, 0:size] + 0.5  # pixel centres (H, W)
    cx, cy = rng.uniform(5, 11, (2, n, 1, 1))
    radius = rng.uniform(3.5, 6.0, (n, 1, 1))
    turn = rng.uniform(0, 2 * np.pi, (n, 1, 1))
    dx, dy = (xx - cx) / radius, (yy - cy) / radius  # (N, H, W)
    u = dx * np.cos(turn) + dy * np.sin(turn)
    v = -dx * np.sin(turn) + dy * np.cos(turn)
    masks = np.stack(_shape_masks(u, v), 1)  # (N, 5, H, W)
    inside = masks[np.arange(n), y % 5]  # (N, H, W)
    period = rng.uniform(3.0, 5.0, (n, 1, 1))
    phi, phase = rng.uniform(0, np.pi, (2, n, 1, 1))
    stripe = np.sin(2 * np.pi * (xx * np.cos(phi) + yy * np.sin(phi)) / period + 3 * phase) > 0
    stripe &= (y >= 5)[:, None, None]
    bg = rng.uniform(0, 1, (n, 3))
    shift = rng.uniform(-1, 1, (n, 3))
    shift *= 0.35 / np.maximum(np.abs(shift).max(1, keepdims=True), 1e-9)  # max channel 0.35
    shift += 0.3 * rng.uniform(-1, 1, (n, 3))
    fg = np.clip(bg + shift, 0, 1)
    fg2 = np.clip(fg + rng.choice([-0.5, 0.5], (n, 1)), 0, 1)
    img = np.where(inside[:, None], np.where(stripe[:, None], fg2[..., None, None],
                                             fg[..., None, None]), bg[..., None, None])  # fmt: skip
    img = img + noise * rng.standard_normal(img.shape)  # (N, 3, H, W)
    return img.reshape(n, -1), y


# ----------------------------------------------------------------------------- 1D regression


def _sine(n, noise, rng):
    x = rng.uniform(-2, 2, n)
    y = np.sin(2 * x) + 0.3 * x + noise * rng.standard_normal(n)
    return x[:, None], y


#: The line under the outliers set: y = OUTLIER_SLOPE * x + OUTLIER_INTERCEPT (+ noise).
OUTLIER_SLOPE, OUTLIER_INTERCEPT = 1.5, 0.5


def _outlier_line(n, noise, seed, outliers, outlier_scale):

    out = robust.make_outlier_line(
        n,
        n_outliers=outliers,
        outlier_offset=outlier_scale,
        slope=OUTLIER_SLOPE,
        intercept=OUTLIER_INTERCEPT,
        noise=noise,
        seed=seed,
    )
    x, y = (np.asarray(a, dtype=np.float64) for a in out[:2])
    return x.reshape(-1, 1), y.reshape(-1)


# ----------------------------------------------------------------------------- shipped sets

_LOADERS = {  # sklearn.datasets loaders
    "digits": "load_digits",
    "iris": "load_iris",
    "wine": "load_wine",
    "breast_cancer": "load_breast_cancer",
}


@functools.lru_cache(maxsize=8)
def _load_shipped(name: str):
    bunch = getattr(_sklearn_datasets(), _LOADERS[name])()
    names = tuple(str(f) for f in bunch.feature_names)
    return bunch.data.astype(np.float64), bunch.target.astype(np.int64), names


def _standardise(X_train, X_test):
    """Scale each feature by the training split's statistics (constant features stay 0)."""
    mu, sd = X_train.mean(0), X_train.std(0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    return (X_train - mu) / sd, (X_test - mu) / sd


# ----------------------------------------------------------------------------- make

_EXTRA_DEFAULTS = {"outliers": 0, "outlier_scale": 5.0, "digits_scale": "unit"}


def make(name, n_samples=1000, noise=0.2, test_fraction=0.2, seed=0, **extra) -> Dataset:
    """Make dataset `name` (a key of DATASETS), split into train and test, deterministic by seed.

    n_samples: points generated for synthetic sets; for shipped sets, at most this many are
      used (a stratified subset when fewer than the whole set).
    noise: jitter for synthetic sets (ignored for shipped sets).
    extra: outliers (int, how many, "outliers" set only), outlier_scale (how far, in units of
      the target), digits_scale ("unit": pixels / 16 in [0, 1]; "standard": per-pixel z-score).
    """
    if isinstance(name, str) and name not in DATASETS and is_registered(name):
        return registered_set(name)  # split (and standardised) once, when it was made
    unknown = set(extra) - set(_EXTRA_DEFAULTS)
    if unknown:
        raise ValueError(
            f"unknown make() argument(s) {sorted(unknown)}: allowed {sorted(_EXTRA_DEFAULTS)}"
        )
    opts = {**_EXTRA_DEFAULTS, **extra}
    _validate(name, n_samples, noise, test_fraction, seed, opts)
    return _make_cached(
        name,
        int(n_samples),
        float(noise),
        float(test_fraction),
        int(seed),
        int(opts["outliers"]),
        float(opts["outlier_scale"]),
        str(opts["digits_scale"]),
    )


def _validate(name, n_samples, noise, test_fraction, seed, opts) -> None:
    if name not in DATASETS:
        info(name)  # ValueError naming the sets there are
    checks.number_in("n_samples", n_samples, MIN_SAMPLES, MAX_SAMPLES)
    checks.number_in("noise", noise, 0.0, MAX_NOISE)
    checks.number_in("test_fraction", test_fraction, MIN_TEST_FRACTION, MAX_TEST_FRACTION)
    checks.number_in("seed", seed, 0, 2**31 - 1)
    checks.number_in("outliers", opts["outliers"], 0, min(MAX_OUTLIERS, n_samples // 2))
    checks.number_in("outlier_scale", opts["outlier_scale"], 0.0, MAX_OUTLIER_SCALE)
    if opts["digits_scale"] not in ("unit", "standard"):
        raise ValueError(f"digits_scale={opts['digits_scale']!r} must be 'unit' or 'standard'")


@functools.lru_cache(maxsize=32)
def _make_cached(name, n, noise, test_fraction, seed, outliers, outlier_scale, digits_scale):
    info = DATASETS[name]
    rng = np.random.default_rng(seed)
    if info.kind == "2d":
        X, y = _MAKERS_2D[name](n, noise, rng)
        names = ("x1", "x2")
    elif name == "sine":
        X, y = _sine(n, noise, rng)
        names = ("x",)
    elif name == "shapes":
        X, y = _shapes(n, noise, rng)
        names = ()
    elif name == "outliers":
        X, y = _outlier_line(n, noise, seed, outliers, outlier_scale)
        names = ("x",)
    else:
        X, y, names = _load_shipped(name)
        if n < len(y):  # stratified subset of the shipped set
            X, _, y, _ = train_test_split(X, y, train_size=n, stratify=y, random_state=seed)
    stratify = y if info.task == "classification" else None
    Xtr, Xte, ytr, yte = train_test_split(
        X, y, test_size=test_fraction, stratify=stratify, random_state=seed
    )
    standard = name == "shapes" or digits_scale == "standard"
    if info.kind == "tabular" or (info.kind == "image" and standard):
        Xtr, Xte = _standardise(Xtr, Xte)
    elif info.kind == "image":
        Xtr, Xte = Xtr / 16.0, Xte / 16.0  # digits pixels are integers 0..16
    return _to_dataset(name, info, Xtr, Xte, ytr, yte, names)


def _to_dataset(name, info, Xtr, Xte, ytr, yte, names) -> Dataset:
    def xt(a):
        a = torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32)
        return a.reshape(-1, *info.input_shape) if info.kind == "image" else a  # (N, C, H, W)

    ydtype = torch.long if info.task == "classification" else torch.float32
    X_train, X_test = xt(Xtr), xt(Xte)
    return Dataset(
        name=name,
        task=info.task,
        X_train=X_train,
        y_train=torch.as_tensor(ytr, dtype=ydtype),
        X_test=X_test,
        y_test=torch.as_tensor(yte, dtype=ydtype),
        n_classes=info.n_classes,
        input_shape=tuple(X_train.shape[1:]),
        feature_names=names
        if info.kind != "image"
        else tuple(f"pixel_{i}" for i in range(int(np.prod(X_train.shape[1:])))),
        description=info.description,
    )


def class_balance(y: torch.Tensor, n_classes: int) -> np.ndarray:
    """Fraction of each class in y (n_classes,), for previews and sanity checks."""
    counts = torch.bincount(y, minlength=n_classes).double()
    return (counts / max(1, len(y))).numpy()
