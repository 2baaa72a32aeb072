"""Command line: ``python -m landscape {train,line,plane,...} ...`` (see ``--help`` of each).

``train`` trains a run from a configuration and saves it. ``line`` and ``plane`` train (or
load, with ``--load-run``) a run, compute a loss surface around its final weights with a
progress bar on stderr, and write ``OUT.npz`` (``landscape.storage.formats`` format: surface,
directions, metadata) and ``OUT.html`` (a self-contained Plotly figure that opens offline).
``export`` writes a plane surface file as a 3D mesh (ParaView .vtp, .obj, .stl).

Exit status: 0 on success; 2 on a bad flag or a bad value (one line on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import os

import torch

from landscape.cli import dirfile
from landscape.cli import own as cli_own
from landscape.cli import research as cli_research
from landscape.cli import store as cli_store
from landscape.cli.grammar import Parser, add_config_flags, add_run_flags, add_surface_flags
from landscape.cli.jobs import run_surface, run_train
from landscape.engine import distributed as dist_
from landscape.storage import export


def build_parser() -> argparse.ArgumentParser:
    """The full parser (public so tests can check that every flag is documented)."""
    p = Parser(prog="python -m landscape", description=__doc__.split("\n\n")[1])
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
    export.add_parser(sub)
    cli_research.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command in cli_store.COMMANDS:
            return cli_store.run(args)
        if args.command == "export":
            return export.run(args)
        if hasattr(args, "handler"):  # subcommands of landscape.cli.research
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


def set_threads() -> None:
    """Bound torch's threads (LANDSCAPE_TORCH_THREADS, default 2): more only contend."""
    n = int(os.environ.get("LANDSCAPE_TORCH_THREADS", "2"))
    torch.set_num_threads(max(1, min(n, os.cpu_count() or 1)))
