"""The command line for your own model: ``python -m landscape plane|line --model-factory ...``.

``landscape/__main__.py`` adds these flags to ``line`` and ``plane`` and hands the parsed
arguments here when ``--model-factory`` is given. ``--batch-size`` and ``--loss`` are the
same flags as for built-in runs; with a model factory they mean the evaluation batch and the
loss of the user's outputs. Everything is checked by ``landscape.own.open_model`` (one line,
exit 2) before a surface starts.
"""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

import numpy as np

from landscape import own, store

# Flags of built-in runs that mean nothing for a user's model (refused, not ignored).
_BUILTIN_ONLY = ("load_run", "save_run", "end_run", "preset", "store")
_SHARED_CONFIG = ("batch_size", "loss", "loss_params")  # reused with their own meaning


def add_flags(p: argparse.ArgumentParser, kind: str) -> None:
    """The own-model flags of ``line``/``plane`` (names fixed by the command-line contract)."""
    g = p.add_argument_group(
        "your own model (with --model-factory; --batch-size is then the evaluation batch and "
        "--loss a zoo name or MODULE:FUNCTION)"
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
    else:
        g.add_argument(
            "--to",
            metavar="FILE",
            help="interpolate from --weights (t=0) to this weight file (t=1), buffers too",
        )


def _refuse_builtin_flags(args) -> None:
    from landscape.__main__ import _config_fields

    _, fields = _config_fields()
    given = [
        f.name
        for f in fields
        if f.name not in _SHARED_CONFIG and getattr(args, f.name, None) is not None
    ]
    given += [n for n in _BUILTIN_ONLY if getattr(args, n, None) is not None]
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise ValueError(
            f"{flag} is a flag of built-in runs: it does not apply with --model-factory"
        )
    if args.split != "train":
        raise ValueError("--split does not apply with --model-factory: --data is the set evaluated")
    if args.command == "line" and args.dir == "interpolation" and not getattr(args, "to", None):
        raise ValueError("--dir interpolation with --model-factory needs --to OTHER_WEIGHTS")


def _checkpoint_files(patterns: list[str]) -> list[str]:
    files = []
    for pat in patterns:
        hits = glob.glob(pat)
        if not hits:
            raise ValueError(f"--checkpoints {pat!r} matched no file")
        files += hits
    return sorted(dict.fromkeys(files), key=own.natural_key)


def open_from_args(args) -> own.OwnModel:
    """``own.open_model`` with the flags (every spec checked; ValueError on a bad one)."""
    for flag in ("weights", "data"):
        if not getattr(args, flag):
            raise ValueError(f"--{flag} is required with --model-factory")
    _refuse_builtin_flags(args)
    from landscape.__main__ import _parse_loss_params

    checkpoints = getattr(args, "checkpoints", None)
    if checkpoints and args.dir not in ("random", "pca"):
        raise ValueError("--checkpoints is for --dir pca")
    return own.open_model(
        args.model_factory,
        args.weights,
        args.data,
        kwargs=args.model_kwargs,
        loss=args.loss,
        device=args.device,
        batch_size=own.DEFAULT_BATCH if args.batch_size is None else args.batch_size,
        max_samples=args.max_samples,
        sample_seed=args.sample_seed,
        accuracy=args.accuracy,
        checkpoints=_checkpoint_files(checkpoints) if checkpoints else (),
        loss_params=_parse_loss_params(args.loss_params),
    )


def compute(args, subject: own.OwnModel):
    """The surface and its directions, as the flags ask, through ``landscape.slices``.

    ``line --to OTHER`` is the pipeline's ``between`` line: the BatchNorm statistics move
    with the weights, so each end is that net's own loss.
    """
    from landscape.__main__ import ProgressBar, slice_request

    if getattr(args, "checkpoints", None) and args.dir == "random":
        args.dir = "pca"
    to = getattr(args, "to", None)
    if args.command == "line" and args.dir == "interpolation" and not to:
        raise ValueError("--dir interpolation with --model-factory needs --to OTHER_WEIGHTS")
    if to:
        args.dir = "interpolation"
    req = slice_request(args)
    if to:
        req = req.replace(direction="between")
    bar = ProgressBar(args.command, args.quiet)
    total = len(subject.data)
    result = subject.compute(req, lambda f, _: bar(round(f * total), total), to=to)
    surf = result.main
    if to:
        surf.meta |= {"to": str(to), "to_sha256": own.file_sha256(to)}
    return surf, result.directions


def run(args) -> int:
    """Check every spec, compute, write PREFIX.npz and PREFIX.html; 0 on success."""
    from landscape.__main__ import _check_zmax, _out_paths, figure, prepare_output, write_together

    npz, html = _out_paths(args.out)
    _check_zmax(args)
    subject = open_from_args(args)
    prepare_output({npz: "--out", html: "--out"})
    surf, dirs = compute(args, subject)
    title = f"{subject.spec['factory']} · {Path(args.weights).name} · {args.dir}"
    fig = figure(surf, title, args)
    write_together(
        {
            npz: lambda f: store.save_surface(f, surf, dirs),
            html: lambda f: f.write(fig.to_html(include_plotlyjs=True).encode()),
        }
    )
    finite = np.isfinite(surf.loss)
    best = f"{np.nanmin(np.where(finite, surf.loss, np.nan)):.5g}" if finite.any() else "none"
    print(
        f"{surf.kind}: {surf.loss.size} points in {surf.meta['seconds']:.2f}s "
        f"({surf.meta['method']}, {surf.meta.get('device', 'cpu')}); min loss {best}; "
        f"{int((~finite).sum())} non-finite"
    )
    print(f"wrote {npz}")
    print(f"wrote {html}")
    return 0


def refuse_own_flags(args) -> None:
    """Own-model flags given without --model-factory: an error, not silently ignored."""
    for name in ("model_kwargs", "weights", "data", "max_samples", "checkpoints", "to", "accuracy"):
        if getattr(args, name, None) is not None:
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"{flag} needs --model-factory MODULE:FUNCTION")
