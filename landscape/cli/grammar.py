"""The command line's grammar: flags <-> ``Config`` and ``SliceRequest``.

One parser builder per group of flags (configuration, run, surface) and the functions that
read them back into library objects, checked before any work starts. Every command that
slices (``line``, ``plane``, own models, torchrun) reads its flags through here, and every
command line the library prints (the pages' "Reproduce it", ``landscape.cli.reproduce``) is
written by ``request_argv`` here, so the two directions cannot drift apart::

    argv = request_argv(config, request)               # ["plane", "--epochs", "8", ...]
    args = build_parser().parse_args(argv)             # landscape.cli.main
    config_from_args(args) == config and slice_request(args) == canonical(request)

``canonical(request)`` is the part of a ``SliceRequest`` the command line carries: the main
surface of the slice (one line, no extra lines beside a plane) with the options that apply to
its direction; the others are at their defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

import numpy as np

from landscape.core import checks, losses
from landscape.core import directions as D
from landscape.data import datasets, models
from landscape.data.config import Config
from landscape.engine import surface as S
from landscape.pipelines import presets, slices
from landscape.training import loop as training

MIN_RES = slices.MIN_RES  # fewest points per axis
LINE_RES = 51  # default points of a random line (t=0, the centre, is the middle one)
BETWEEN_RES = 41  # of a line between two nets: (-0.5, 1.5) in steps of 0.05 holds t=0 and 1

# Help for each Config field (the flag is the field name with "-" for "_"); the lists of
# names are filled in from the registries when the parser is built.


CONFIG_HELP = {
    "dataset": "dataset name: {datasets}",
    "n_samples": "number of points before the train/test split",
    "noise": "jitter of synthetic sets, in data units",
    "test_fraction": "share of the points held out for the test split",
    "outliers": "number of outlier points (dataset 'outliers' only)",
    "outlier_scale": "how far the outliers sit off the line, in target units",
    "model": "architecture: {models}",
    "depth": "hidden layers (mlp) or residual blocks (resmlp, rescnn)",
    "width": "hidden units (mlp) or channel scale (cnn)",
    "activation": "activation: {activations}",
    "skip": "keep the skip connections of residual nets (--no-skip removes them)",
    "batchnorm": "BatchNorm after hidden layers",
    "loss": "loss from the loss zoo: {losses}",
    "optimizer": "optimiser: {optimizers}",
    "lr": "learning rate",
    "momentum": "momentum of the 'momentum' optimiser",
    "batch_size": "examples per optimiser step",
    "epochs": "passes over the training set",
    "weight_decay": "L2 (sgd/adam) or decoupled (adamw) weight decay",
    "schedule": "learning-rate schedule after the warm-up: constant or cosine (decays to 0)",
    "warmup_epochs": "epochs over which the learning rate rises linearly to --lr",
    "seed": "seed of the data, the initial weights and the batch order",
}


def _names() -> dict[str, str]:

    return {
        "datasets": ", ".join(datasets.DATASETS),
        "models": ", ".join(models.MODELS),
        "activations": ", ".join(models.ACTIVATIONS),
        "losses": ", ".join(losses.names()),
        "optimizers": ", ".join(training.OPTIMIZERS),
    }


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block) and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


# ----------------------------------------------------------------------------- parser


def config_fields():

    return dataclasses.fields(Config)


def add_config_flags(p: argparse.ArgumentParser) -> None:
    """One flag per Config field; unset flags keep the preset's (or Config's) default."""
    fields = config_fields()
    names = _names()
    g = p.add_argument_group("training configuration (ignored with --load-run)")
    g.add_argument(
        "--preset",
        default=None,
        help="start from a named preset of landscape.pipelines.presets (quote names with spaces); "
        "the flags below override its fields",
    )
    for f in fields:
        flag = "--" + f.name.replace("_", "-")
        default = f.default
        text = CONFIG_HELP.get(f.name, "Config." + f.name).format(**names)
        text = f"{text} (default: {default!r})"
        if f.name == "loss_params":
            g.add_argument(
                "--loss-param",
                dest="loss_params",
                action="append",
                metavar="NAME=VALUE",
                default=None,
                help="a parameter of the loss, e.g. delta=1.0 for huber; repeat for several",
            )
        elif isinstance(default, bool):
            g.add_argument(
                flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=text
            )
        else:
            kind = type(default) if isinstance(default, int | float | str) else str
            g.add_argument(flag, dest=f.name, type=kind, default=None, help=text)


def add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--load-run", metavar="PATH", help="use a run saved by 'train' instead of training"
    )
    p.add_argument("--save-run", metavar="PATH", help="also save the trained run to PATH (.npz)")
    p.add_argument("--quiet", action="store_true", help="no progress bars on stderr")


def add_surface_flags(p: argparse.ArgumentParser, kind: str) -> None:
    choices = ["random", "pca", "hessian"] if kind == "plane" else ["random", "interpolation"]
    g = p.add_argument_group("surface")
    g.add_argument(
        "--dir",
        choices=choices,
        default="random",
        help="directions: random = seeded Gaussian, normalised (Li et al. 2018); "
        + (
            "pca = the two leading principal components of the training path, path drawn on "
            "top; hessian = the two top Hessian eigenvectors of the loss on --split, scaled "
            "to the norm of the weights unless --norm none (--dir-seed seeds the solver)"
            if kind == "plane"
            else "interpolation = from the initial weights (t=0) to the trained net (t=1), "
            "Goodfellow et al. 2015; BatchNorm statistics of the trained net"
        )
        + " (default: random)",
    )
    g.add_argument(
        "--norm",
        choices=list(D.NORMS),
        default="filter",
        help="normalisation of random directions (default: filter)",
    )
    g.add_argument(
        "--ignore",
        choices=["biasbn", "none"],
        default="biasbn",
        help="biasbn: no step on biases and BatchNorm scale/shift; none: step them in "
        "proportion to themselves, as the original code (default: biasbn)",
    )
    g.add_argument(
        "--dir-type",
        choices=list(slices.dir_types()),
        default="weights",
        help="random directions: weights = BatchNorm statistics stay fixed; states = the "
        "floating-point buffers move too, when the library offers it (default: weights)",
    )
    if kind == "plane":
        g.add_argument(
            "--projection",
            choices=list(slices.projections()),
            default="cos",
            help="pca: how checkpoints are projected onto the plane (default: cos)",
        )
        g.add_argument(
            "--orthogonal",
            action="store_true",
            help="make the second random direction orthogonal to the first",
        )
    if kind == "line":
        g.add_argument(
            "--end-run",
            metavar="PATH",
            help="interpolation only: end at this saved run's trained net instead",
        )
    rng = "(-1, 1); " + (
        "(-0.5, 1.5) for interpolation" if kind == "line" else "for pca: the path plus a margin"
    )
    g.add_argument(
        "--xrange",
        nargs=2,
        type=float,
        metavar=("MIN", "MAX"),
        help=f"coordinate range along the first direction (default: {rng})",
    )
    if kind == "plane":
        g.add_argument(
            "--yrange",
            nargs=2,
            type=float,
            metavar=("MIN", "MAX"),
            help="range along the second direction (default: like --xrange)",
        )
    default_res = 51 if kind == "line" else 21
    res_help = f"points per axis (default: {default_res})"
    if kind == "line":  # None: chosen in slice_request (an interpolation line puts t=0, 1 on it)
        default_res = None
        res_help = (
            f"points (default: {LINE_RES}; {BETWEEN_RES} for a line between two nets, step "
            "0.05 over (-0.5, 1.5), so that t=0 and t=1, the two nets, are grid points)"
        )
    g.add_argument("--res", type=int, default=default_res, help=res_help)
    if kind == "plane":
        g.add_argument("--xres", type=int, help="points along the first direction (default: --res)")
        g.add_argument(
            "--yres", type=int, help="points along the second direction (default: --res)"
        )
    g.add_argument(
        "--split",
        choices=["train", "test"],
        default="train",
        help="data the loss is measured on (default: train)",
    )
    g.add_argument(
        "--dir-seed", type=int, default=0, help="seed of the random directions (default: 0)"
    )
    g.add_argument(
        "--method",
        choices=list(S.METHODS),
        default="auto",
        help="auto: fast batched path when it supports the model; loop: reference (default: auto)",
    )
    if kind == "line":
        g.add_argument("--log", action="store_true", help="draw the loss on a log-scale axis")
    else:
        g.add_argument(
            "--linear",
            action="store_true",
            help="linear contour levels (default: log-spaced when every loss is positive)",
        )
        g.add_argument(
            "--zmax",
            type=float,
            help="clip the colour range at this loss (the figure says how many points)",
        )
    g.add_argument(
        "--out",
        metavar="PREFIX",
        default=f"landscape-{kind}",
        help=f"write PREFIX.npz and PREFIX.html (default: landscape-{kind})",
    )
    g.add_argument(
        "--overwrite",
        action="store_true",
        help="discard the unfinished points of another configuration in PREFIX.zarr "
        "(without it such a run is refused; the points of the same command are resumed)",
    )


def parse_loss_params(items: list[str] | None) -> dict[str, float] | None:
    if not items:
        return None
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise ValueError(f"--loss-param {item!r} must look like NAME=VALUE, e.g. delta=1.0")
    return out


def config_from_args(args: argparse.Namespace):
    """The Config the flags describe: preset (or defaults) with the given fields replaced."""
    fields = config_fields()
    base = Config()
    if args.preset is not None:
        base = presets.get(args.preset)
    changes = {f.name: getattr(args, f.name) for f in fields if getattr(args, f.name) is not None}
    if "loss_params" in changes:
        changes["loss_params"] = parse_loss_params(changes["loss_params"])
    return base.replace(**changes) if changes else base


def _res(flag: str, value: int) -> int:
    return checks.int_in(flag, value, MIN_RES, S.MAX_AXIS)


def _range(flag: str, given) -> tuple[float, float] | None:
    return None if given is None else checks.flag_range(flag, *given, slices.MAX_RANGE)


def slice_request(args) -> slices.SliceRequest:
    """The slice the flags ask for, checked (no run needed: called before any training).

    A line's ``--dir interpolation`` with ``--end-run`` (or an own model's ``--to``) is the
    ``between`` line; an own model's plane with ``--checkpoints`` is the PCA plane.
    """
    to, checkpoints = getattr(args, "to", None), getattr(args, "checkpoints", None)
    if args.command == "line" and args.end_run and args.dir != "interpolation":
        raise ValueError("--end-run needs --dir interpolation")
    kw = {
        "seed": args.dir_seed,
        "norm": args.norm,
        "ignore": None if args.ignore == "none" else args.ignore,
        "dir_type": args.dir_type,
        "split": args.split,
        "method": args.method,
    }
    xr = _range("--xrange", args.xrange)
    if args.command == "line":
        direction = args.dir
        if args.dir == "interpolation" or to:
            direction = "between" if (args.end_run or to) else "interpolation"
        interpolating = direction != "random"
        lo, hi = xr or ((-0.5, 1.5) if interpolating else (-1.0, 1.0))
        default = BETWEEN_RES if interpolating else LINE_RES
        nx = _res("--res", default if args.res is None else args.res)
        req = slices.SliceRequest(dim=1, direction=direction, xmin=lo, xmax=hi, nx=nx, **kw)
        if interpolating:
            missing = ends_missing(req.xs())
            if missing:
                print(f"note: the grid has no point at t={' or t='.join(missing)} (a net's own "
                      f"loss); e.g. --res {BETWEEN_RES} with the default --xrange has both",
                      file=sys.stderr)  # fmt: skip
        return req
    direction = "pca" if checkpoints and args.dir == "random" else args.dir
    yr = _range("--yrange", args.yrange) or xr
    nx = _res("--xres" if args.xres else "--res", args.xres or args.res)
    ny = _res("--yres" if args.yres else "--res", args.yres or args.res)
    if nx * ny > S.MAX_POINTS:
        raise ValueError(
            f"--xres/--yres {nx}x{ny} = {nx * ny} points is too large: at most {S.MAX_POINTS} (201x201)"
        )
    (x0, x1), (y0, y1) = xr or (-1.0, 1.0), yr or (-1.0, 1.0)
    return slices.SliceRequest(
        dim=2,
        direction=direction,
        orthogonal=args.orthogonal,
        projection=args.projection,
        auto_range=direction == "pca" and xr is None and yr is None,
        xmin=x0, xmax=x1, ymin=y0, ymax=y1, nx=nx, ny=ny,
        **kw,
    )  # fmt: skip


def ends_missing(ts: np.ndarray) -> list[str]:
    """Which of t=0 and t=1 (the two nets of an interpolation line) are not grid points
    (within 1e-9 of the step)."""
    tol = 1e-9 * (float(ts[-1] - ts[0]) / max(len(ts) - 1, 1))
    return [name for name, t in (("0", 0.0), ("1", 1.0)) if not np.any(np.abs(ts - t) <= tol)]


# ----------------------------------------------------------------------------- writing argv

# The options of SliceRequest that apply to each direction (the rest are at their defaults
# in a canonical request): random directions are seeded and normalised; the Hessian's
# eigen-solver is seeded, its vectors rescaled unless norm "none", biases skipped by ignore.
_APPLIES = {
    "random": ("seed", "norm", "ignore", "dir_type", "orthogonal"),
    "hessian": ("seed", "norm", "ignore"),
    "pca": ("projection", "auto_range"),
    "interpolation": (),
    "between": (),
}
_BASE = ("dim", "direction", "xmin", "xmax", "nx", "split", "method")
_PLANE = ("ymin", "ymax", "ny")


def canonical(request: slices.SliceRequest) -> slices.SliceRequest:
    """The plain ``SliceRequest`` the command line carries for ``request``'s main surface.

    Kept: the direction, range, grid, split and method, and the options that apply to the
    direction (``_APPLIES``); a PCA plane with ``auto_range`` keeps no range (the path sets
    it). Everything else (several lines, lines beside a plane, a page's own fields) is dropped.
    """
    keep = set(_BASE) | set(_APPLIES[request.direction])
    if request.dim == 2:
        keep |= set(_PLANE)
    else:
        keep.discard("orthogonal")
    if request.direction == "pca" and request.auto_range:
        keep -= {"xmin", "xmax", "ymin", "ymax"}
    kw = {f.name: getattr(request, f.name) for f in dataclasses.fields(slices.SliceRequest)}
    return slices.SliceRequest(**{k: v for k, v in kw.items() if k in keep})


@dataclasses.dataclass(frozen=True)
class ModelFlags:
    """The flags of an own model (``landscape.cli.own``): what is sliced instead of a run."""

    factory: str  # MODULE:FUNCTION
    weights: str
    data: str
    kwargs: tuple = ()  # sorted (key, value) pairs of the JSON object
    loss: str | None = None
    device: str = "auto"
    max_samples: int | None = None
    checkpoints: tuple[str, ...] = ()  # the PCA path, or the first one: a line's start
    to: str | None = None  # a line's end (between)

    @classmethod
    def from_args(cls, args) -> ModelFlags:
        kwargs = json.loads(args.model_kwargs) if args.model_kwargs else {}
        return cls(
            factory=args.model_factory, weights=args.weights, data=args.data,
            kwargs=tuple(sorted(kwargs.items())), loss=args.loss, device=args.device,
            max_samples=args.max_samples, checkpoints=tuple(getattr(args, "checkpoints", None) or ()),
            to=getattr(args, "to", None),
        )  # fmt: skip

    def used_by(self, direction: str) -> ModelFlags:
        """The flags a slice in ``direction`` carries: the whole path for PCA, its first file
        (the start) for an interpolation line, ``to`` for a between line, neither otherwise."""
        cks = {"pca": self.checkpoints, "interpolation": self.checkpoints[:1]}.get(direction, ())
        to = self.to if direction == "between" else None
        return dataclasses.replace(self, checkpoints=cks, to=to)

    def argv(self) -> list[str]:
        out = ["--model-factory", self.factory]
        if self.kwargs:
            out += ["--model-kwargs", json.dumps(dict(self.kwargs))]
        out += ["--weights", self.weights, "--data", self.data]
        out += ["--loss", self.loss] if self.loss else []
        out += ["--device", self.device] if self.device != "auto" else []
        out += ["--max-samples", str(self.max_samples)] if self.max_samples is not None else []
        out += ["--checkpoints", *self.checkpoints] if self.checkpoints else []
        return out + (["--to", self.to] if self.to else [])


def number(x: float) -> str:
    """A float as a command-line word that parses back to the same float.

    Positional digits, never an exponent: argparse takes ``-1e-05`` for an option but
    ``-0.00001`` for a number.
    """
    return np.format_float_positional(float(x), unique=True, trim="-")


def config_argv(config: Config) -> list[str]:
    """Flags that make ``config`` (only the fields that differ from ``Config()``)."""
    default = Config()
    flags: list[str] = []
    for f in config_fields():
        value = getattr(config, f.name)
        if value == getattr(default, f.name):
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.name == "loss_params":
            flags += [w for k, v in value for w in ("--loss-param", f"{k}={number(v)}")]
        elif isinstance(value, bool):
            flags.append(flag if value else "--no-" + f.name.replace("_", "-"))
        elif isinstance(value, float):
            flags += [flag, number(value)]
        else:
            flags += [flag, str(value)]
    return flags


def request_argv(
    config: Config | None,
    request: slices.SliceRequest,
    *,
    load_run: str | None = None,
    end_run: str | None = None,
    model: ModelFlags | None = None,
    out: str | None = None,
) -> list[str]:
    """The argv of ``python -m landscape line|plane`` that computes ``canonical(request)``.

    The subject is a built-in run trained from ``config`` (deterministic: the same weights
    come back), or the saved run ``load_run``, or an own model (``model``); a ``between``
    line ends at the saved run ``end_run`` (or at ``model.to``). ``out`` is the --out PREFIX.
    Ranges are written out in full, so a range read from a result is reproduced exactly.
    """
    if sum(x is not None for x in (config, load_run, model)) != 1:
        raise ValueError("request_argv needs exactly one of config, load_run and model")
    req = canonical(request)
    sub = "line" if req.dim == 1 else "plane"
    argv = [sub]
    if model is not None:
        argv += model.used_by(req.direction).argv()
    elif load_run is not None:
        argv += ["--load-run", load_run]
    else:
        argv += config_argv(config)
    argv += _direction_argv(req, end_run, model)
    d = slices.SliceRequest(dim=req.dim, direction=req.direction)
    for name, flag in (("seed", "--dir-seed"), ("norm", "--norm"), ("dir_type", "--dir-type"),
                       ("projection", "--projection"), ("split", "--split"),
                       ("method", "--method")):  # fmt: skip
        if getattr(req, name) != getattr(d, name):
            argv += [flag, str(getattr(req, name))]
    if req.ignore != d.ignore:
        argv += ["--ignore", req.ignore or "none"]
    if req.orthogonal:
        argv.append("--orthogonal")
    if not req.auto_range:
        argv += ["--xrange", number(req.xmin), number(req.xmax)]
        if req.dim == 2:
            argv += ["--yrange", number(req.ymin), number(req.ymax)]
    if req.dim == 1 or req.nx == req.ny:
        argv += ["--res", str(req.nx)]
    else:
        argv += ["--xres", str(req.nx), "--yres", str(req.ny)]
    return argv + ["--out", out or f"landscape-{sub}"]


def _direction_argv(req: slices.SliceRequest, end_run, model: ModelFlags | None) -> list[str]:
    """--dir (and a between line's end) of a canonical request; an own model's files are
    checked to be there (``ModelFlags.used_by`` writes them)."""
    if model is not None:
        need = {"pca": (len(model.checkpoints) >= 2, "at least 2 checkpoints (the path)"),
                "interpolation": (bool(model.checkpoints), "a checkpoint (the line's start)"),
                "between": (bool(model.to), "to (the line's end)")}  # fmt: skip
        ok, what = need.get(req.direction, (True, ""))
        if not ok:
            raise ValueError(f"direction={req.direction!r} of an own model needs {what}")
    if req.direction == "random":
        return []
    if req.direction == "between":
        if model is not None:
            return ["--dir", "interpolation"]
        if not end_run:
            raise ValueError("direction='between' needs end_run: the saved run at t=1")
        return ["--dir", "interpolation", "--end-run", end_run]
    return ["--dir", req.direction]


def check_zmax(args) -> None:
    zmax = getattr(args, "zmax", None)
    if zmax is not None and not (np.isfinite(zmax) and zmax > 0):
        raise ValueError(f"--zmax={zmax} must be a finite positive loss")
