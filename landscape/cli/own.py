"""The command line for your own model: ``python -m landscape plane|line --model-factory ...``.

``landscape/__main__.py`` adds these flags to ``line`` and ``plane`` and hands the parsed
arguments here when ``--model-factory`` is given. ``--batch-size`` and ``--loss`` are the
same flags as for built-in runs; with a model factory they mean the evaluation batch and the
loss of the user's outputs. Everything is checked by ``landscape.engine.own.open_model`` (one line,
exit 2) before a surface starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
from pathlib import Path

from landscape.cli import dirfile
from landscape.cli.grammar import check_zmax, config_fields, parse_loss_params, slice_request
from landscape.cli.jobs import evaluator_for, surface_job
from landscape.engine import own, surface
from landscape.engine.own import loading
from landscape.pipelines import slices

# Flags of built-in runs that mean nothing for a user's model (refused, not ignored).
_BUILTIN_ONLY = ("load_run", "save_run", "end_run", "preset", "store", "load_run_b", "seed_b")
_SHARED_CONFIG = ("batch_size", "loss", "loss_params")  # reused with their own meaning
# eos trains the user's net by full-batch GD: these training flags keep their meaning there
_EOS_TRAINING = ("optimizer", "lr", "momentum", "weight_decay", "epochs", "seed")


def add_flags(p: argparse.ArgumentParser, kind: str) -> None:
    """The own-model flags (names fixed by the command-line contract) of ``line``/``plane``
    and of the research measures that need no training: ``kind`` "measure" (sharpness,
    spectrum) or "connect" (``--to`` is the second net)."""
    g = p.add_argument_group(
        "your own model (with --model-factory; --batch-size is then the evaluation batch, by "
        f"default all samples in one pass when they fit {surface.STREAM_BYTES // 2**20} MiB, "
        "and --loss a zoo name or MODULE:FUNCTION)"
    )
    g.add_argument(
        "--model-factory",
        metavar="MODULE:FUNCTION",
        help="builds your nn.Module (the current folder is on the import path)",
    )
    g.add_argument(
        "--model-kwargs", metavar="JSON", help="keyword arguments of the factory, a JSON object"
    )
    g.add_argument(
        "--weights",
        metavar="FILE",
        help=".safetensors, or a .pt/.pth/.bin state dict (read with weights_only=True only)",
    )
    g.add_argument(
        "--data",
        metavar="SPEC",
        help=".npz with arrays X and y, a .csv (last column = target), or MODULE:FUNCTION "
        "returning a torch Dataset or (X, y)",
    )
    g.add_argument(
        "--device", default="auto", help="auto|cpu|cuda|cuda:N|mps (default: auto = CUDA if any)"
    )
    g.add_argument(
        "--max-samples", type=int, metavar="N", help="evaluate a fixed random subset of N samples"
    )
    g.add_argument(
        "--sample-seed", type=int, default=0, help="seed of the --max-samples subset (default: 0)"
    )
    if kind in ("line", "plane"):
        g.add_argument(
            "--accuracy",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="also record accuracy (default: on for integer targets)",
        )
    if kind == "plane":
        g.add_argument(
            "--checkpoints",
            nargs="+",
            metavar="FILE",
            help="weight files of the training path for PCA directions ('ckpt_*.safetensors', "
            "sorted naturally; the final point is --weights)",
        )
    elif kind == "line":
        g.add_argument(
            "--to",
            metavar="FILE",
            help="interpolate from --weights (t=0) to this weight file (t=1), buffers too",
        )
        g.add_argument(
            "--checkpoints",
            nargs="+",
            metavar="FILE",
            help="with --dir interpolation: the line from the first of these weight files "
            "(sorted naturally; t=0) to --weights (t=1), as a built-in run's line from its "
            "initialisation",
        )
    elif kind == "connect":
        g.add_argument(
            "--to", metavar="FILE", help="the second net: --weights' model with this weight file"
        )


def _refuse_builtin_flags(args) -> None:

    fields = config_fields()
    shared = _SHARED_CONFIG + (_EOS_TRAINING if args.command == "eos" else ())
    given = [
        f.name for f in fields if f.name not in shared and getattr(args, f.name, None) is not None
    ]
    given += [n for n in _BUILTIN_ONLY if getattr(args, n, None) is not None]
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise ValueError(
            f"{flag} is a flag of built-in runs: it does not apply with --model-factory"
        )
    if args.split != "train":
        raise ValueError("--split does not apply with --model-factory: --data is the set evaluated")
    _refuse_combinations(args)


def _refuse_combinations(args) -> None:
    """Direction flags that would be ignored for the slice asked for: an error, not a no-op."""
    if args.command not in ("line", "plane"):
        return  # the research measures have no direction flags
    to, checkpoints = getattr(args, "to", None), getattr(args, "checkpoints", None)
    if args.command == "line":
        if to and checkpoints:
            raise ValueError(
                "--to and --checkpoints: a line goes to --to or starts at the first checkpoint, "
                "not both"
            )
        if checkpoints and args.dir != "interpolation":
            raise ValueError("--checkpoints on a line is for --dir interpolation")
        if args.dir == "interpolation" and not (to or checkpoints):
            raise ValueError(
                "--dir interpolation with --model-factory needs --to OTHER_WEIGHTS or "
                "--checkpoints FIRST_WEIGHTS (the line's other end)"
            )
        if to or checkpoints:
            _random_only(args, "a line between two nets runs straight from one to the other")
        return
    if args.dir == "pca" and not checkpoints:
        raise ValueError("--dir pca with --model-factory needs --checkpoints FILES (the path)")
    if args.dir == "hessian" and checkpoints:
        raise ValueError("--checkpoints are the PCA path: they do not apply with --dir hessian")
    if args.dir == "pca" or checkpoints:
        _random_only(args, "PCA axes are the checkpoints' orthonormal principal directions")
    elif args.projection != "cos":
        raise ValueError(f"--projection {args.projection} is for PCA directions (--checkpoints)")


def _random_only(args, why: str) -> None:
    """Refuse the options of random directions (given with other values than the defaults)."""
    given = [
        f"--{name.replace('_', '-')} {value}"
        for name, value, default in (
            ("dir_seed", args.dir_seed, 0),
            ("norm", args.norm, "filter"),
            ("ignore", args.ignore, "biasbn"),
            ("dir_type", args.dir_type, "weights"),
        )
        if value != default
    ]
    if getattr(args, "orthogonal", False):
        given.append("--orthogonal")
    if given:
        raise ValueError(f"{given[0]} is for random directions: {why}")


def _checkpoint_files(patterns: list[str]) -> list[str]:
    files = []
    for pat in patterns:
        hits = glob.glob(pat)
        if not hits:
            raise ValueError(f"--checkpoints {pat!r} matched no file")
        files += hits
    return sorted(dict.fromkeys(files), key=loading.natural_key)


def open_from_args(args) -> own.OwnModel:
    """``own.open_model`` with the flags (every spec checked; ValueError on a bad one)."""
    for flag in ("weights", "data"):
        if not getattr(args, flag):
            raise ValueError(f"--{flag} is required with --model-factory")
    _refuse_builtin_flags(args)

    checkpoints = getattr(args, "checkpoints", None)
    files = _checkpoint_files(checkpoints) if checkpoints else ()
    final = Path(args.weights).resolve()
    if args.command == "plane" and files and len({Path(f).resolve() for f in files} - {final}) < 2:
        raise ValueError(
            f"--checkpoints gave {len(files)} file(s): PCA needs at least 2 besides --weights"
        )
    return own.open_model(
        args.model_factory,
        args.weights,
        args.data,
        kwargs=args.model_kwargs,
        loss=args.loss,
        device=args.device,
        batch_size=args.batch_size,  # None: from the data and memory
        max_samples=args.max_samples,
        sample_seed=args.sample_seed,
        accuracy=getattr(args, "accuracy", None),
        checkpoints=files,
        loss_params=parse_loss_params(args.loss_params),
    )


def compute(args, subject: own.OwnModel, ctx=None, given=None):
    """The surface and its directions, as the flags ask, through ``landscape.pipelines.slices``.

    The points go through the command's ``evaluator_for`` (shared among the ranks under
    torchrun, resumable from ``PREFIX.zarr``); the model spec (factory, kwargs, the weight
    and data files' sha256) is part of the configuration a rerun must match. ``line --to
    OTHER`` is the pipeline's ``between`` line: the BatchNorm statistics move with the
    weights, so each end is that net's own loss. ``given``: the directions of --dir-file.
    """

    to = getattr(args, "to", None)
    _refuse_combinations(args)
    req = slice_request(args)  # --checkpoints on a plane: PCA; --to on a line: between
    to_meta = {"to": str(to), "to_sha256": loading.file_sha256(to)} if to else {}
    to_meta |= dirfile.meta(args)
    settings = {"model": subject.spec, **to_meta, "batch_size": subject.batch_size}
    data = subject.data

    def data_digest(split):
        return data.digest(), len(data)

    ev = evaluator_for(args, req, settings, ctx, data_digest=data_digest)
    result = slices.compute_own(subject, req, to=to, evaluator=ev, given_directions=given)
    surf = result.main
    surf.meta |= {**to_meta, "device": str(subject.device)}
    return surf, result.directions, req


def run(args) -> int:
    """Check every spec, compute, write PREFIX.npz and PREFIX.html; 0 on success.

    Under torchrun each rank opens the model itself; ``--device auto`` is then the rank's
    device (``cuda:LOCAL_RANK``, or the CPU with the node's cores split between the ranks).
    """

    check_zmax(args)
    subject = open_from_args(args)
    given = dirfile.read(args, subject.model)

    def start(ctx):
        if ctx.distributed and args.device == "auto":
            return dataclasses.replace(subject, device=ctx.device)
        return subject

    def work(subject, ctx):
        surf, dirs, req = compute(args, subject, ctx, given)
        return (
            surf,
            dirs,
            f"{subject.spec['factory']} · {Path(args.weights).name} · {req.direction}",
        )

    return surface_job(args, start, work)


def open_for_measure(args) -> own.OwnModel:
    """``open_from_args`` for a research measure (sharpness, connect, spectrum, eos).

    The measures (Hessian-vector products, gradient ascent, GD) run on ``--device`` over the
    whole --data, in batches of ``--batch-size`` when given (an exact mean; without it, all
    at once); --max-samples bounds the data.
    """
    if args.command == "connect" and not args.to:
        raise ValueError("connect with --model-factory needs --to OTHER_WEIGHTS (the second net)")
    return open_from_args(args)


def refuse_own_flags(args) -> None:
    """Own-model flags given without --model-factory: an error, not silently ignored."""
    for name in ("model_kwargs", "weights", "data", "max_samples", "checkpoints", "to", "accuracy"):
        if getattr(args, name, None) is not None:
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"{flag} needs --model-factory MODULE:FUNCTION")
