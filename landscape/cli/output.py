"""The command line's output: progress bars on stderr, figures, and checked output paths
(written all or nothing by ``landscape.core.files.write_together``)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tqdm import tqdm

from landscape.engine import surface as S
from landscape.plots import surfaces as P
from landscape.plots.landscape_page import plane_figure


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
    ``landscape.engine.distributed`` (rank 0 draws it for the whole job)."""
    return tqdm(total=total, desc=label, file=sys.stderr, disable=quiet, dynamic_ncols=True)


# ----------------------------------------------------------------------------- runs


def figure(surf: S.Surface, title: str, args: argparse.Namespace):
    """The HTML figure for a surface (the PCA plane gets its path drawn on top)."""

    if surf.kind == "line":
        if surf.meta.get("direction") in ("interpolation", "between"):
            x_title, marks = "t (0 = start, 1 = end)", {"start": 0.0, "end": 1.0}
        else:
            x_title, marks = "step along d1", {"trained": 0.0}
        names = [surf.meta.get("split", "")]
        return P.line_figure(surf, names, args.log, title=title, x_title=x_title, marks=marks)
    path = surf.meta.get("path")
    return plane_figure(
        surf,
        title=title,
        zmax=args.zmax,
        log=False if args.linear else None,
        path=None if path is None else (path["x"], path["y"]),
        explained=surf.meta.get("explained_variance"),
    )


# ----------------------------------------------------------------------------- output files


def out_paths(prefix: str) -> tuple[Path, Path]:
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
