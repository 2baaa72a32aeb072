"""The command line's jobs: get the run, compute a surface (in one process or as one rank
under torchrun, resumably) and write its files."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

from landscape.cli import dirfile
from landscape.cli import store as cli_store
from landscape.cli.grammar import check_zmax, config_from_args, slice_request
from landscape.cli.output import ProgressBar, figure, out_paths, prepare_output
from landscape.core.files import write_atomic, write_together
from landscape.data import models
from landscape.engine import distributed as dist_
from landscape.engine.subject import Subject
from landscape.pipelines import slices
from landscape.storage import formats as store
from landscape.storage.formats import run_to_bytes


def read_run(path: str):

    return store.load_run(path)  # checked as hostile input; a run on a CSV carries its data


def train(config, quiet: bool, store: str | None = None):
    bar = ProgressBar("train", quiet)
    return cli_store.train(config, lambda info: bar(info["epoch"], info["epochs"]), store)


def get_run(args: argparse.Namespace, config=None, loaded=None, quiet=None, ctx=None):
    """The run to slice: ``loaded`` (or read from --load-run), or trained from ``config``
    (default: the flags); saved to --save-run when given (by rank 0 under torchrun)."""

    quiet = args.quiet if quiet is None else quiet
    if loaded is not None or args.load_run:
        run = loaded if loaded is not None else read_run(args.load_run)
    else:
        run = train(
            config if config is not None else config_from_args(args),
            quiet,
            getattr(args, "store", None),
        )
    if ctx is not None and not ctx.is_main:
        return run
    if args.save_run:
        write_atomic(args.save_run, run_to_bytes(run))
    if run.diverged:
        print(
            f"warning: the run diverged in epoch {run.diverged_epoch}; using its last sane weights",
            file=sys.stderr,
        )
    return run


# ----------------------------------------------------------------------------- surfaces


def evaluator_for(args, req: slices.SliceRequest, settings: dict, ctx=None, quiet=None, *,
                  inner=slices.evaluate, data_digest=None):  # fmt: skip
    """The evaluator of a line/plane command: ``landscape.engine.distributed.Evaluator``.

    The grid's points are shared among the ranks under torchrun (one process otherwise),
    written as they finish into the point store ``PREFIX.zarr`` beside --out, and resumed
    from it by the identical command. ``settings`` (JSON-able: the run's config, the model
    spec...) joins the request in the configuration a rerun must match. ``inner`` evaluates
    a block of points in this process; ``data_digest``: see ``distributed.Evaluator``.
    """
    return dist_.Evaluator(
        ctx if ctx is not None else dist_.Context(),
        str(out_paths(args.out)[0].with_suffix("")),
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
            ctx=None, given=None):  # fmt: skip
    """The surface (the main one of the pipeline's result) and its directions.

    With ``args`` (the command's flags) the points go through ``evaluator_for``; without,
    through ``slices.evaluate`` in this process. ``given``: the directions of --dir-file.
    """
    other = None if end_run is None else Subject.from_run(end_run)
    ev = slices.evaluate
    if args is not None:
        settings = {
            "run": run.config.to_dict(),
            "end_run": None if end_run is None else end_run.config.to_dict(),
            **dirfile.meta(args),
        }
        ev = evaluator_for(args, req, settings, ctx, quiet)
    result = slices.compute(req, Subject.from_run(run), other, evaluator=ev, given_directions=given)
    if args is not None:
        result.main.meta |= dirfile.meta(args)
    return result.main, result.directions


def run_surface(args) -> int:
    npz, _ = out_paths(args.out)
    check_zmax(args)
    req = slice_request(args)
    if args.save_run and Path(args.save_run).resolve() == npz.resolve():
        raise ValueError(f"--save-run {args.save_run} is also the surface file: pick another --out")
    # every flag and input file is checked before any training or computation
    config = None if args.load_run else config_from_args(args)
    loaded = read_run(args.load_run) if args.load_run else None
    end_run = read_run(args.end_run) if getattr(args, "end_run", None) else None
    extra = {Path(args.save_run): "--save-run"} if args.save_run else {}
    given = None
    if getattr(args, "dir_file", None):  # checked on the architecture, before any training
        shape = (
            loaded.model() if loaded is not None else models.build(config, config.make_dataset())
        )
        given = dirfile.read(args, shape)

    def start(ctx):
        return get_run(args, config, loaded, quiet=args.quiet or not ctx.is_main, ctx=ctx)

    def work(run, ctx):
        surf, dirs = compute(req, run, end_run, args.quiet, args=args, ctx=ctx, given=given)
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
    npz, html = out_paths(args.out)
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
            npz: lambda f: _save_surface(f, surf, dirs),
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


def _save_surface(f, surf, dirs) -> None:
    store.save_surface(f, surf, dirs)
    # the finished temporary file is held before its rename when a test asks (inert otherwise)
    dist_.test_hold("LANDSCAPE_TEST_HOLD_OUTPUT")


def run_train(args) -> int:

    config = config_from_args(args)
    out = Path(args.out)
    prepare_output({out: "--out"})
    run = train(config, args.quiet, args.store)
    write_atomic(out, run_to_bytes(run))
    h = run.history
    print(
        f"{run.name}: {run.epochs_done} epochs in {run.seconds:.2f}s; train loss "
        f"{h['train_loss'][-1]:.5g}, test loss {h['test_loss'][-1]:.5g}"
        + (" (diverged)" if run.diverged else "")
    )
    print(f"wrote {args.out}")
    return 0
