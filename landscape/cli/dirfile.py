"""``--dir-file PREFIX.npz`` of ``line`` and ``plane``: slice along the directions saved in an
earlier surface file (the original code's ``--dir_file``), so two nets, or two checkpoints of
one, are drawn over one and the same line or plane.

The file is read as hostile input (``landscape.storage.formats.load_directions``) and checked
against the model (``landscape.pipelines.slices.check_given``: names, shapes, how many
directions) before any work; flags that would make other directions are refused, not ignored.
"""

from __future__ import annotations

import argparse

from torch import Tensor, nn

from landscape.engine import own
from landscape.pipelines import slices
from landscape.storage import formats

# options of random directions: with --dir-file they would be ignored, so they are refused
_RANDOM_OPTIONS = (("dir_seed", 0), ("norm", "filter"), ("ignore", "biasbn"),
                   ("dir_type", "weights"), ("orthogonal", False))  # fmt: skip


def add_flag(p: argparse.ArgumentParser, kind: str) -> None:
    need = "its one direction" if kind == "line" else "its two directions"
    p.add_argument(
        "--dir-file",
        metavar="PREFIX.npz",
        help=f"slice along the directions saved in this earlier {kind} file ({need}; the "
        "original code's --dir_file), so two nets or checkpoints share one "
        f"{kind}; its parameter names and shapes must be this model's",
    )


def refuse_conflicts(args) -> None:
    """Flags that make directions of their own: an error beside --dir-file."""
    if args.dir != "random":
        raise ValueError(f"--dir-file gives the directions: --dir {args.dir} does not apply")
    for name in ("to", "checkpoints", "end_run"):
        if getattr(args, name, None):
            raise ValueError(f"--dir-file gives the directions: --{name.replace('_', '-')} "
                             "does not apply")  # fmt: skip
    for name, default in _RANDOM_OPTIONS:
        value = getattr(args, name, default)
        if value != default:
            flag = f"--{name.replace('_', '-')}" + ("" if isinstance(value, bool) else f" {value}")
            raise ValueError(f"{flag} is for random directions: --dir-file gives the directions")


def read(args, model: nn.Module) -> list[dict[str, Tensor]] | None:
    """The directions of --dir-file checked against ``model`` (None without the flag)."""
    path = getattr(args, "dir_file", None)
    if not path:
        return None
    refuse_conflicts(args)
    try:
        dirs = formats.load_directions(path)
    except OSError as e:
        raise ValueError(f"--dir-file {path!r}: cannot read it: {e.strerror}") from None
    if not dirs:
        raise ValueError(f"--dir-file {path!r} holds no directions (it was saved without them)")
    try:
        slices.check_given(model, dirs, 1 if args.command == "line" else 2)
    except ValueError as e:
        raise ValueError(f"--dir-file {path!r} does not fit this model: {e}") from None
    return dirs


def meta(args) -> dict:
    """What a result made with --dir-file records (empty without it)."""
    path = getattr(args, "dir_file", None)
    return {"dir_file": str(path), "dir_file_sha256": own.file_sha256(path)} if path else {}
