"""Command line: ``python -m landscape {train,line,plane,...} ...`` (see ``--help`` of each).

``train`` trains a run from a configuration and saves it. ``line`` and ``plane`` train (or
load, with ``--load-run``) a run, compute a loss surface around its final weights with a
progress bar on stderr, and write ``OUT.npz`` (``landscape.storage.formats`` format: surface,
directions, metadata) and ``OUT.html`` (a self-contained Plotly figure that opens offline).
``export`` writes a plane surface file as a 3D mesh (ParaView .vtp, .obj, .stl). ``app``
starts the web app.

Exit status: 0 on success; 2 on a bad flag or a bad value (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import errno
import os
import sqlite3

import torch

from landscape.cli import app as cli_app
from landscape.cli import dirfile
from landscape.cli import export as cli_export
from landscape.cli import own as cli_own
from landscape.cli import research as cli_research
from landscape.cli import store as cli_store
from landscape.cli.grammar import Parser, add_config_flags, add_run_flags, add_surface_flags
from landscape.cli.jobs import run_surface, run_train
from landscape.core import allocator
from landscape.engine import distributed as dist_


def build_parser() -> argparse.ArgumentParser:
    """The full parser (public so tests can check that every flag is documented)."""
    p = Parser(prog="python -m landscape", description=__doc__.split("\n\n")[1])
    sub = p.add_subparsers(
        dest="command",
        required=True,
        metavar="{app,train,line,plane,export,sharpness,connect,eos,spectrum,pin,unpin,runs}",
    )
    t = sub.add_parser(
        "train",
        help="train a run and save it",
        description="Train a run and save it (.npz, no pickles).",
    )
    add_config_flags(t)
    t.add_argument(
        "--out", metavar="PATH", default="run.npz", help="where to save the run (default: run.npz)"
    )
    t.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    for kind, text in (
        ("line", "loss along a line (1-D slice)"),
        ("plane", "loss over a plane (2-D slice)"),
    ):
        q = sub.add_parser(kind, help=text, description=f"Compute the {text} around a trained net.")
        add_run_flags(q)
        add_config_flags(q)
        add_surface_flags(q, kind)
        dirfile.add_flag(q, kind)
        cli_own.add_flags(q, kind)
        cli_store.add_store_flag(q)
    cli_store.add_store_flag(t)
    cli_store.add_commands(sub)
    cli_export.add_parser(sub)
    cli_research.register(sub)
    cli_app.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if args.command == "app":
        args.streamlit_args = unknown  # Streamlit's options, for `streamlit run`
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")  # as parse_args says it
    try:
        if args.command in cli_store.COMMANDS:
            return cli_store.run(args)
        if args.command == "export":
            return cli_export.run(args)
        if hasattr(args, "handler"):  # subcommands of landscape.cli.research
            return args.handler(args)
        if args.command == "train":
            return run_train(args)
        if args.model_factory:
            return cli_own.run(args)
        cli_own.refuse_own_flags(args)
        return run_surface(args)
    except (ValueError, OSError, sqlite3.Error) as e:
        message = _one_line(e)
        rank = int(os.environ.get("RANK", "0")) if dist_.launched() else 0
        if rank and isinstance(e, dist_.RankZeroError):
            parser.exit(2)  # rank 0 reports a refusal it decided for every rank
        where = f" (rank {rank})" if rank else ""
        parser.exit(2, f"{parser.prog} {args.command}: error{where}: {message}\n")


def _one_line(e: Exception) -> str:
    """The error as one line; a file system error names its (shortened) path and why."""
    if isinstance(e, OSError) and e.strerror and e.filename is not None:
        name = str(e.filename)
        shown = (
            repr(name)
            if len(name) <= 80
            else f"{name[:40]!r}...{name[-30:]!r} ({len(name)} characters)"
        )
        why = e.strerror
        if e.errno == errno.ENAMETOOLONG:
            why += " (a file name may have 255 bytes, a path 4096)"
        return f"{shown}: {why}"
    return " ".join(str(e).split())


def set_threads() -> None:
    """Bound torch's threads (LANDSCAPE_TORCH_THREADS, default 2): more only contend."""
    n = int(os.environ.get("LANDSCAPE_TORCH_THREADS", "2"))
    torch.set_num_threads(max(1, min(n, os.cpu_count() or 1)))
    allocator.keep_freed_memory()  # training steps and surface points reuse their blocks
