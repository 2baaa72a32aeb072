"""Command line: ``python -m landscape {train,line,plane,...} ...`` (see ``--help`` of each).

``train`` trains a run from a configuration and saves it. ``line`` and ``plane`` train (or
load, with ``--load-run``) a run, compute a loss surface around its final weights with a
progress bar on stderr, and write ``OUT.npz`` (``landscape.store`` format: surface,
directions, metadata) and ``OUT.html`` (a self-contained Plotly figure that opens offline).
``export`` writes a plane surface file as a 3D mesh (ParaView .vtp, .obj, .stl).

Exit status: 0 on success; 2 on a bad flag or a bad value (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from tqdm import tqdm

from landscape import cli_own, cli_store, slices, store
from landscape import directions as D
from landscape import distributed as dist_
from landscape import surface as S

MIN_RES = slices.MIN_RES  # fewest points per axis

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
    g.add_argument(
        "--overwrite",
        action="store_true",
        help="discard the unfinished points of another configuration in PREFIX.zarr "
        "(without it such a run is refused; the points of the same command are resumed)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The full parser (public so tests can check that every flag is documented)."""
    p = _Parser(prog="python -m landscape", description=__doc__.split("\n\n")[1])
    sub = p.add_subparsers(
        dest="command",
        required=True,
        metavar="{train,line,plane,export,sharpness,connect,eos,spectrum,pin,unpin,runs}",
    )
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
        cli_own.add_flags(q, kind)
        cli_store.add_store_flag(q)
    cli_store.add_store_flag(t)
    cli_store.add_commands(sub)
    from landscape import export

    export.add_parser(sub)
    from landscape import cli_research  # sharpness, connect, eos, spectrum

    cli_research.register(sub, sys.modules[__name__])
    return p


# ----------------------------------------------------------------------------- progress


class ProgressBar:
    """A ``(done, total)`` progress callback drawn by tqdm on stderr (rate and ETA)."""

    def __init__(self, label: str, quiet: bool = False) -> None:
        self.label, self.quiet, self.bar = label, quiet, None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = progress_bar(self.label, total, self.quiet)
        self.bar.update(done - self.bar.n)
        if done >= total:
            self.bar.close()


def progress_bar(label: str, total: int, quiet: bool = False) -> tqdm:
    """One bar on stderr (tqdm: done/total, rate, ETA); the grid's bar lives in
    ``landscape.distributed`` (rank 0 draws it for the whole job)."""
    return tqdm(total=total, desc=label, file=sys.stderr, disable=quiet, dynamic_ncols=True)


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
    from landscape import store

    return store.load_run(path)  # checked as hostile input; a run on a CSV carries its data


def _train(config, quiet: bool, store: str | None = None):
    bar = ProgressBar("train", quiet)
    return cli_store.train(config, lambda info: bar(info["epoch"], info["epochs"]), store)


def get_run(args: argparse.Namespace, config=None, loaded=None, quiet=None, ctx=None):
    """The run to slice: ``loaded`` (or read from --load-run), or trained from ``config``
    (default: the flags); saved to --save-run when given (by rank 0 under torchrun)."""
    from landscape.training import run_to_bytes

    quiet = args.quiet if quiet is None else quiet
    if loaded is not None or args.load_run:
        run = loaded if loaded is not None else _read_run(args.load_run)
    else:
        run = _train(
            config if config is not None else config_from_args(args),
            quiet,
            getattr(args, "store", None),
        )
    if ctx is not None and not ctx.is_main:
        return run
    if args.save_run:
        write_together({Path(args.save_run): lambda f: f.write(run_to_bytes(run))})
    if run.diverged:
        print(
            f"warning: the run diverged in epoch {run.diverged_epoch}; using its last sane weights",
            file=sys.stderr,
        )
    return run


# ----------------------------------------------------------------------------- surfaces


def _res(flag: str, value: int) -> int:
    if not MIN_RES <= value <= S.MAX_AXIS:
        raise ValueError(f"{flag} {value} is out of range: must be in [{MIN_RES}, {S.MAX_AXIS}]")
    return value


def _range(flag: str, given) -> tuple[float, float] | None:
    if given is None:
        return None
    lo, hi = given
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"{flag} {lo:g} {hi:g}: must be two finite numbers MIN < MAX")
    if max(abs(lo), abs(hi)) > slices.MAX_RANGE:
        raise ValueError(
            f"{flag} {lo:g} {hi:g}: |MIN| and |MAX| must be at most {slices.MAX_RANGE:g}"
        )
    return float(lo), float(hi)


def slice_request(args) -> slices.SliceRequest:
    """The slice the flags ask for, checked (no run needed: called before any training)."""
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
        if args.dir == "interpolation":
            direction = "between" if args.end_run else "interpolation"
        lo, hi = xr or ((-0.5, 1.5) if args.dir == "interpolation" else (-1.0, 1.0))
        nx = _res("--res", args.res)
        return slices.SliceRequest(dim=1, direction=direction, xmin=lo, xmax=hi, nx=nx, **kw)
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
        direction=args.dir,
        orthogonal=args.orthogonal,
        projection=args.projection,
        auto_range=args.dir == "pca" and xr is None and yr is None,
        xmin=x0, xmax=x1, ymin=y0, ymax=y1, nx=nx, ny=ny,
        **kw,
    )  # fmt: skip


def evaluator_for(args, req: slices.SliceRequest, settings: dict, ctx=None, quiet=None, *,
                  inner=slices.evaluate, data_digest=None):  # fmt: skip
    """The evaluator of a line/plane command: ``landscape.distributed.Evaluator``.

    The grid's points are shared among the ranks under torchrun (one process otherwise),
    written as they finish into the point store ``PREFIX.zarr`` beside --out, and resumed
    from it by the identical command. ``settings`` (JSON-able: the run's config, the model
    spec...) joins the request in the configuration a rerun must match. ``inner`` evaluates
    a block of points in this process; ``data_digest``: see ``distributed.Evaluator``.
    """
    return dist_.Evaluator(
        ctx if ctx is not None else dist_.Context(),
        str(_out_paths(args.out)[0].with_suffix("")),
        inner,
        settings={
            "request": {k: v for k, v in dataclasses.asdict(req).items() if k != "method"},
            **settings,
        },
        label="line" if req.dim == 1 else "plane",
        quiet=args.quiet if quiet is None else quiet,
        overwrite=bool(getattr(args, "overwrite", False)),
        data_digest=data_digest,
    )


def compute(req: slices.SliceRequest, run, end_run=None, quiet: bool = False, *, args=None,
            ctx=None):  # fmt: skip
    """The surface (the main one of the pipeline's result) and its directions.

    With ``args`` (the command's flags) the points go through ``evaluator_for``; without,
    through ``slices.evaluate`` in this process.
    """
    other = None if end_run is None else slices.Subject.from_run(end_run)
    ev = slices.evaluate
    if args is not None:
        settings = {
            "run": run.config.to_dict(),
            "end_run": None if end_run is None else end_run.config.to_dict(),
        }
        ev = evaluator_for(args, req, settings, ctx, quiet)
    result = slices.compute(req, slices.Subject.from_run(run), other, evaluator=ev)
    return result.main, result.directions


def figure(surf: S.Surface, title: str, args: argparse.Namespace):
    """The HTML figure for a surface (the PCA plane gets its path drawn on top)."""
    from landscape.plots import surfaces as P

    if surf.kind == "line":
        if surf.meta.get("direction") in ("interpolation", "between"):
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


# ----------------------------------------------------------------------------- output files


def _out_paths(prefix: str) -> tuple[Path, Path]:
    base = Path(prefix[:-4] if prefix.endswith(".npz") else prefix)
    return base.with_name(base.name + ".npz"), base.with_name(base.name + ".html")


def prepare_output(outputs: dict[Path, str]) -> None:
    """Check that every output file ({path: flag}) can be written, then create the folders.

    Nothing is created unless every output passes, and all of it happens before any work.
    """
    for path, flag in outputs.items():
        where = f"{flag} {str(path)!r}"
        if path.is_dir():
            raise ValueError(f"{where} is a folder: give a file name")
        if path.exists() and not os.access(path, os.W_OK):
            raise ValueError(f"{where} exists and is not writable")
        existing = next(
            p for p in (path.parent.absolute(), *path.parent.absolute().parents) if p.exists()
        )
        if not existing.is_dir():
            raise ValueError(
                f"{where}: cannot create folder {str(path.parent)!r}: {str(existing)!r} is a file"
            )
        if not os.access(existing, os.W_OK | os.X_OK):
            raise ValueError(f"{where}: folder {str(existing)!r} is not writable")
    for path, flag in outputs.items():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ValueError(f"{flag} {str(path)!r}: cannot create folder: {e.strerror}") from None


def write_together(outputs: dict[Path, Callable[[BinaryIO], None]]) -> None:
    """Write each file to a temporary name in its folder, then rename them all.

    An interruption before the renames leaves the old files untouched (and no temporary
    ones); the renames run with Ctrl-C held back, so the files change together or not at all.
    """
    temps: dict[Path, Path] = {}
    try:
        for path, write in outputs.items():
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            temps[path] = Path(tmp)
            with os.fdopen(fd, "wb") as f:
                write(f)
        with _signals_held():
            for path, tmp in temps.items():
                os.replace(tmp, path)
    except OSError as e:
        raise ValueError(f"cannot write {e.filename or 'the output'}: {e.strerror}") from None
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _signals_held():
    """Ctrl-C (SIGINT) and SIGTERM wait until the block ends (POSIX main thread only)."""
    held = (signal.SIGINT, signal.SIGTERM)
    usable = (
        hasattr(signal, "pthread_sigmask") and threading.current_thread() is threading.main_thread()
    )
    if usable:
        signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        if usable:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, held)


def _check_zmax(args) -> None:
    zmax = getattr(args, "zmax", None)
    if zmax is not None and not (np.isfinite(zmax) and zmax > 0):
        raise ValueError(f"--zmax={zmax} must be a finite positive loss")


def run_surface(args) -> int:
    npz, _ = _out_paths(args.out)
    _check_zmax(args)
    req = slice_request(args)
    if args.save_run and Path(args.save_run).resolve() == npz.resolve():
        raise ValueError(f"--save-run {args.save_run} is also the surface file: pick another --out")
    # every flag and input file is checked before any training or computation
    config = None if args.load_run else config_from_args(args)
    loaded = _read_run(args.load_run) if args.load_run else None
    end_run = _read_run(args.end_run) if getattr(args, "end_run", None) else None
    extra = {Path(args.save_run): "--save-run"} if args.save_run else {}

    def start(ctx):
        return get_run(args, config, loaded, quiet=args.quiet or not ctx.is_main, ctx=ctx)

    def work(run, ctx):
        surf, dirs = compute(req, run, end_run, args.quiet, args=args, ctx=ctx)
        return surf, dirs, f"{run.name} · {args.split} loss · {args.dir}"

    return surface_job(args, start, work, extra)


def surface_job(args, start, work, extra_outputs=None) -> int:
    """A line/plane command's job, in one process or as one rank under torchrun.

    ``start(ctx)`` makes the subject (a built-in run is trained here by every rank with
    the one-process thread count, so it is the one-process run bit for bit); then the rank
    takes its share of the cores and ``work(subject, ctx)`` returns ``(surface, directions,
    title)`` (on rank 0; the other ranks' results are not used). Rank 0 alone creates the
    folders, writes PREFIX.npz and PREFIX.html and reports; the point store is removed once
    every rank is done. Every flag and file must have been checked before this is called.
    """
    npz, html = _out_paths(args.out)
    outputs = {npz: "--out", html: "--out", **(extra_outputs or {})}
    dist_.check_store_folder(dist_.store_path_for(npz.with_suffix("")))
    ctx = dist_.init()
    if ctx.is_main:
        prepare_output(outputs)
    subject = start(ctx)
    dist_.share_cores(ctx)
    surf, dirs, title = work(subject, ctx)
    if not ctx.is_main:
        dist_.barrier(ctx)  # rank 0 writes the files, then removes the finished point store
        dist_.shutdown(ctx)
        return 0
    fig = figure(surf, title, args)
    write_together(
        {
            npz: lambda f: store.save_surface(f, surf, dirs),
            html: lambda f: f.write(fig.to_html(include_plotlyjs=True).encode()),
        }
    )
    finite = np.isfinite(surf.loss)
    best = f"{np.nanmin(np.where(finite, surf.loss, np.nan)):.5g}" if finite.any() else "none"
    where = f", {surf.meta['device']}" if "device" in surf.meta else ""
    print(
        f"{surf.kind}: {surf.loss.size} points in {surf.meta['seconds']:.2f}s "
        f"({surf.meta['method']}{where}); min loss {best}; {int((~finite).sum())} non-finite"
    )
    print(f"wrote {npz}")
    print(f"wrote {html}")
    dist_.barrier(ctx)
    dist_.remove_store(dist_.store_path_for(npz.with_suffix("")))
    dist_.shutdown(ctx)
    return 0


def run_train(args) -> int:
    from landscape.training import run_to_bytes

    config = config_from_args(args)
    out = Path(args.out)
    prepare_output({out: "--out"})
    run = _train(config, args.quiet, args.store)
    write_together({out: lambda f: f.write(run_to_bytes(run))})
    h = run.history
    print(
        f"{run.name}: {run.epochs_done} epochs in {run.seconds:.2f}s; train loss "
        f"{h['train_loss'][-1]:.5g}, test loss {h['test_loss'][-1]:.5g}"
        + (" (diverged)" if run.diverged else "")
    )
    print(f"wrote {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command in cli_store.COMMANDS:
            return cli_store.run(args)
        if args.command == "export":
            from landscape import export

            return export.run(args)
        if hasattr(args, "handler"):  # subcommands of landscape.cli_research
            return args.handler(args)
        if args.command == "train":
            return run_train(args)
        if args.model_factory:
            return cli_own.run(args)
        cli_own.refuse_own_flags(args)
        return run_surface(args)
    except ValueError as e:
        message = " ".join(str(e).split())  # one line
        rank = int(os.environ.get("RANK", "0")) if dist_.launched() else 0
        if rank and isinstance(e, dist_.RankZeroError):
            parser.exit(2)  # rank 0 reports a refusal it decided for every rank
        where = f" (rank {rank})" if rank else ""
        parser.exit(2, f"{parser.prog} {args.command}: error{where}: {message}\n")


def _threads() -> None:
    """Bound torch's threads (LANDSCAPE_TORCH_THREADS, default 2): more only contend."""
    n = int(os.environ.get("LANDSCAPE_TORCH_THREADS", "2"))
    torch.set_num_threads(max(1, min(n, os.cpu_count() or 1)))


if __name__ == "__main__":
    _threads()
    sys.exit(main())
