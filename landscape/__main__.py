"""Command line: ``python -m landscape {train,line,plane,export} ...`` (see ``--help`` of each).

``train`` trains a run from a configuration and saves it. ``line`` and ``plane`` train (or
load, with ``--load-run``) a run, compute a loss surface around its final weights with a
progress bar on stderr, and write ``OUT.npz`` (``landscape.store`` format: surface,
directions, metadata) and ``OUT.html`` (a self-contained Plotly figure that opens offline).
``export`` writes a plane surface file as a 3D mesh (ParaView .vtp, .obj, .stl).

Exit status: 0 on success; 2 on a bad flag or a bad value (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from landscape import directions as D
from landscape import store
from landscape import surface as S

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
    "seed": "seed of the data, the initial weights and the batch order",
}


def _names() -> dict[str, str]:
    from landscape import data, losses, models, training

    return {
        "datasets": ", ".join(data.DATASETS),
        "models": ", ".join(models.MODELS),
        "activations": ", ".join(models.ACTIVATIONS),
        "losses": ", ".join(losses.names()),
        "optimizers": ", ".join(training.OPTIMIZERS),
    }


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block) and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


# ----------------------------------------------------------------------------- parser


def _config_fields():
    from landscape.training import Config

    return Config, dataclasses.fields(Config)


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    """One flag per Config field; unset flags keep the preset's (or Config's) default."""
    Config, fields = _config_fields()
    names = _names()
    g = p.add_argument_group("training configuration (ignored with --load-run)")
    g.add_argument(
        "--preset",
        default=None,
        help="start from a named preset of landscape.presets (quote names with spaces); "
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


def _add_run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--load-run", metavar="PATH", help="use a run saved by 'train' instead of training"
    )
    p.add_argument("--save-run", metavar="PATH", help="also save the trained run to PATH (.npz)")
    p.add_argument("--quiet", action="store_true", help="no progress bars on stderr")


def _add_surface_flags(p: argparse.ArgumentParser, kind: str) -> None:
    choices = ["random", "pca"] if kind == "plane" else ["random", "interpolation"]
    g = p.add_argument_group("surface")
    g.add_argument(
        "--dir",
        choices=choices,
        default="random",
        help="directions: random = seeded Gaussian, normalised (Li et al. 2018); "
        + (
            "pca = the two leading principal components of the training path, path drawn on top"
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
    if kind == "plane":
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
    g.add_argument(
        "--res", type=int, default=default_res, help=f"points per axis (default: {default_res})"
    )
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


def build_parser() -> argparse.ArgumentParser:
    """The full parser (public so tests can check that every flag is documented)."""
    p = _Parser(prog="python -m landscape", description=__doc__.split("\n\n")[1])
    sub = p.add_subparsers(dest="command", required=True, metavar="{train,line,plane,export}")
    t = sub.add_parser(
        "train",
        help="train a run and save it",
        description="Train a run and save it (.npz, no pickles).",
    )
    _add_config_flags(t)
    t.add_argument(
        "--out", metavar="PATH", default="run.npz", help="where to save the run (default: run.npz)"
    )
    t.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    for kind, text in (
        ("line", "loss along a line (1-D slice)"),
        ("plane", "loss over a plane (2-D slice)"),
    ):
        q = sub.add_parser(kind, help=text, description=f"Compute the {text} around a trained net.")
        _add_run_flags(q)
        _add_config_flags(q)
        _add_surface_flags(q, kind)
    from landscape import export

    export.add_parser(sub)
    return p


# ----------------------------------------------------------------------------- progress


class ProgressBar:
    """A text progress bar on stderr: ``label [#####-----] 12/40 3.1s``, redrawn in place."""

    def __init__(self, label: str, quiet: bool = False, width: int = 30) -> None:
        self.label, self.quiet, self.width = label, quiet, width
        self.start, self.last = time.perf_counter(), 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if self.quiet or (done < total and now - self.last < 0.1):
            return
        self.last = now
        fill = int(self.width * done / max(total, 1))
        bar = "#" * fill + "-" * (self.width - fill)
        end = "\n" if done >= total else ""
        sys.stderr.write(f"\r{self.label} [{bar}] {done}/{total} {now - self.start:.1f}s{end}")
        sys.stderr.flush()


# ----------------------------------------------------------------------------- runs


def _parse_loss_params(items: list[str] | None) -> dict[str, float] | None:
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
    Config, fields = _config_fields()
    base = Config()
    if args.preset is not None:
        from landscape import presets

        base = presets.get(args.preset)
    changes = {f.name: getattr(args, f.name) for f in fields if getattr(args, f.name) is not None}
    if "loss_params" in changes:
        changes["loss_params"] = _parse_loss_params(changes["loss_params"])
    return base.replace(**changes) if changes else base


def _read_run(path: str):
    from landscape.training import run_from_bytes

    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read run file {path!r}: {e.strerror}") from None
    return run_from_bytes(data)


def _train(config, quiet: bool):
    from landscape.training import train

    bar = ProgressBar("train", quiet)
    return train(config, progress=lambda info: bar(info["epoch"], info["epochs"]))


def get_run(args: argparse.Namespace):
    """The run to slice: loaded from --load-run, or trained from the flags (and --save-run)."""
    from landscape.training import run_to_bytes

    run = _read_run(args.load_run) if args.load_run else _train(config_from_args(args), args.quiet)
    if args.save_run:
        Path(args.save_run).write_bytes(run_to_bytes(run))
    if run.diverged:
        print(
            f"warning: the run diverged in epoch {run.diverged_epoch}; using its last sane weights",
            file=sys.stderr,
        )
    return run


# ----------------------------------------------------------------------------- surfaces


def _axis(name: str, given, default, res: int) -> np.ndarray:
    lo, hi = given if given is not None else default
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"--{name}={lo} {hi}: must be two finite numbers MIN < MAX")
    if not 2 <= res <= S.MAX_AXIS:
        raise ValueError(
            f"resolution={res} for {name} is out of range: must be in [2, {S.MAX_AXIS}]"
        )
    return np.linspace(lo, hi, res)


def _path_range(p: np.ndarray) -> tuple[float, float]:
    """The extent of a projected path (origin included) plus a quarter on each side."""
    lo, hi = min(float(p.min()), 0.0), max(float(p.max()), 0.0)
    pad = 0.25 * (hi - lo) if hi > lo else 1.0
    return lo - pad, hi + pad


def _data(run, split: str):
    ds = run.dataset()
    return (ds.X_train, ds.y_train) if split == "train" else (ds.X_test, ds.y_test)


def _meta(args, run, **extra) -> dict:
    return {
        "direction": args.dir,
        "norm": args.norm,
        "ignore": None if args.ignore == "none" else args.ignore,
        "dir_seed": args.dir_seed,
        "split": args.split,
        "run_name": run.name,
        "config": run.config.to_dict(),
        **extra,
    }


def _with_buffers_of(model, source):
    """``model`` with ``source``'s buffers (BatchNorm running statistics) copied in."""
    buffers = dict(source.named_buffers())
    model.load_state_dict({**model.state_dict(), **buffers})
    return model


def compute_line(args, run):
    """The line surface and its direction, as the flags ask."""
    ignore = None if args.ignore == "none" else args.ignore
    if args.dir == "interpolation":
        end = _read_run(args.end_run).model() if args.end_run else run.model()
        center = run.model() if args.end_run else run.initial_model()
        center = _with_buffers_of(center, end)
        d = D.interpolation_direction(center, end)
        default = (-0.5, 1.5)
    else:
        if args.end_run:
            raise ValueError("--end-run needs --dir interpolation")
        center = run.model()
        d = D.random_direction(center, norm=args.norm, ignore=ignore, seed=args.dir_seed)
        default = (-1.0, 1.0)
    ts = _axis("xrange", args.xrange, default, args.res)
    bar = ProgressBar("line", args.quiet)
    surf = S.line(
        center,
        run.loss_fn(),
        _data(run, args.split),
        d,
        ts,
        run.accuracy_fn(),
        bar,
        args.method,
        _meta(args, run),
    )
    return surf, [d], {}


def compute_plane(args, run):
    """The plane surface and its directions (plus the projected path for PCA)."""
    ignore = None if args.ignore == "none" else args.ignore
    model = run.model()
    extra = {"orthogonal": bool(args.orthogonal)}
    if args.dir == "pca":
        d1, d2, ratio = D.pca_directions(run.trajectory, model)
        px, py = D.project(run.trajectory, model, d1, d2)
        extra |= {
            "explained_variance": ratio.tolist(),
            "path": {"x": px.tolist(), "y": py.tolist()},
        }
        xdef, ydef = _path_range(px), _path_range(py)
    else:
        d1, d2 = D.random_directions(model, 2, args.norm, ignore, args.dir_seed, args.orthogonal)
        xdef = ydef = (-1.0, 1.0)
    xs = _axis("xrange", args.xrange, xdef, args.xres or args.res)
    ys = _axis(
        "yrange",
        args.yrange,
        args.xrange if args.yrange is None and args.xrange else ydef,
        args.yres or args.res,
    )
    bar = ProgressBar("plane", args.quiet)
    surf = S.plane(
        model,
        run.loss_fn(),
        _data(run, args.split),
        d1,
        d2,
        xs,
        ys,
        run.accuracy_fn(),
        bar,
        args.method,
        _meta(args, run, **extra),
    )
    return surf, [d1, d2], extra


def figure(surf: S.Surface, title: str, args: argparse.Namespace):
    """The HTML figure for a surface (the PCA plane gets its path drawn on top)."""
    from landscape.plots import surfaces as P

    if surf.kind == "line":
        if surf.meta.get("direction") == "interpolation":
            x_title, marks = "t (0 = start, 1 = end)", {"start": 0.0, "end": 1.0}
        else:
            x_title, marks = "step along d1", {"trained": 0.0}
        names = [surf.meta.get("split", "")]
        return P.line_figure(surf, names, args.log, title=title, x_title=x_title, marks=marks)
    kw = {"title": title, "zmax": args.zmax, "log": False if args.linear else None}
    if "path" in surf.meta:
        path = surf.meta["path"]
        ratio = surf.meta.get("explained_variance")
        return P.trajectory_figure(surf, path["x"], path["y"], ratio, **kw)
    return P.contour_figure(surf, **kw)


def _out_paths(prefix: str) -> tuple[Path, Path]:
    base = Path(prefix[:-4] if prefix.endswith(".npz") else prefix)
    return base.with_name(base.name + ".npz"), base.with_name(base.name + ".html")


def run_surface(args) -> int:
    npz, html = _out_paths(args.out)
    zmax = getattr(args, "zmax", None)
    if zmax is not None and not (np.isfinite(zmax) and zmax > 0):
        raise ValueError(f"--zmax={zmax} must be a finite positive loss")
    if args.save_run and Path(args.save_run).resolve() == npz.resolve():
        raise ValueError(f"--save-run {args.save_run} is also the surface file: pick another --out")
    run = get_run(args)
    surf, dirs, _ = (compute_line if args.command == "line" else compute_plane)(args, run)
    store.save_surface(npz, surf, dirs)
    title = f"{run.name} · {args.split} loss · {args.dir}"
    figure(surf, title, args).write_html(html, include_plotlyjs=True)
    finite = np.isfinite(surf.loss)
    best = f"{np.nanmin(np.where(finite, surf.loss, np.nan)):.5g}" if finite.any() else "none"
    print(
        f"{surf.kind}: {surf.loss.size} points in {surf.meta['seconds']:.2f}s ({surf.meta['method']}); min loss {best}; {int((~finite).sum())} non-finite"
    )
    print(f"wrote {npz}")
    print(f"wrote {html}")
    return 0


def run_train(args) -> int:
    from landscape.training import run_to_bytes

    run = _train(config_from_args(args), args.quiet)
    Path(args.out).write_bytes(run_to_bytes(run))
    h = run.history
    print(
        f"{run.name}: {run.epochs_done} epochs in {run.seconds:.2f}s; train loss {h['train_loss'][-1]:.5g}, test loss {h['test_loss'][-1]:.5g}"
        + (" (diverged)" if run.diverged else "")
    )
    print(f"wrote {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "export":
            from landscape import export

            return export.run(args)
        return run_train(args) if args.command == "train" else run_surface(args)
    except ValueError as e:
        message = " ".join(str(e).split())  # one line
        parser.exit(2, f"{parser.prog} {args.command}: error: {message}\n")


def _threads() -> None:
    """Bound torch's threads (LANDSCAPE_TORCH_THREADS, default 2): more only contend."""
    n = int(os.environ.get("LANDSCAPE_TORCH_THREADS", "2"))
    torch.set_num_threads(max(1, min(n, os.cpu_count() or 1)))


if __name__ == "__main__":
    _threads()
    sys.exit(main())
