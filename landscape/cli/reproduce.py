"""The pages' "Reproduce it": the command line that recomputes a result's main surface.

Every command is written by ``landscape.cli.grammar.request_argv`` (the grammar the command
line parses), from the result's request with the range and grid read from its surface, so an
automatic PCA range is reproduced exactly:

- ``landscape_command``: a result of the Landscape page (``landscape.pipelines.pictures``).
  The run is retrained from its config flags (training is deterministic, so the same weights
  come back); a run trained on uploaded data, which the command line cannot name, is loaded
  from the run file the page offers (a comment line says so); a 'between' line loads its
  second run from the file the page offers.
- ``own_model_command``: a slice of an operator's model (``landscape.pipelines.operator_models``),
  to run in the folder of the operator's file (paths relative to it).
"""

from __future__ import annotations

import os
import shlex

import numpy as np

from landscape.cli.grammar import ModelFlags, canonical, request_argv
from landscape.data import datasets
from landscape.pipelines import operator_models, slices

PROG = ("python", "-m", "landscape")


def needs_run_file(config) -> bool:
    """True when the run's data cannot be named on the command line (an upload): the
    command loads the run file instead of retraining."""
    return config.dataset not in datasets.DATASETS


def main_request(result) -> slices.SliceRequest:
    """The request of ``result``'s main surface as the command line carries it: the range and
    grid the surface was computed on, the split it was measured on."""
    req, surf = result.request, result.main
    if hasattr(req, "slice_request"):  # an operator model's OwnRequest
        req = req.slice_request()
    xs = np.asarray(surf.xs)
    kw = dict(xmin=float(xs[0]), xmax=float(xs[-1]), nx=int(xs.size), auto_range=False)
    if surf.ys is not None:
        ys = np.asarray(surf.ys)
        kw |= dict(ymin=float(ys[0]), ymax=float(ys[-1]), ny=int(ys.size))
    split = surf.meta.get("split", req.split)
    return canonical(slices.SliceRequest(**{**canonical(req).fields(), **kw, "split": split}))


def line(argv: list[str]) -> str:
    """``python -m landscape ARGV``, quoted for a POSIX shell."""
    return shlex.join([*PROG, *argv])


def landscape_command(result, end_run_file: str = "run_b.npz", run_file: str = "run.npz") -> str:
    """The command that recomputes the main surface of a Landscape page result."""
    config = result.request.config
    req = main_request(result)
    end = end_run_file if req.direction == "between" else None
    if needs_run_file(config):
        text = line(request_argv(None, req, load_run=run_file, end_run=end))
        return (
            "# This run was trained on uploaded data, which the command line cannot name: "
            f"download the run as {run_file} and load it.\n" + text
        )
    return line(request_argv(config, req, end_run=end))


def own_model_command(result) -> str:
    """The command that recomputes the main surface of an operator's model slice (a 1D slice
    of several random lines gives its first), run in the folder of the operator's file."""
    entry = operator_models.get(result.request.entry)

    def rel(path: str) -> str:
        return os.path.relpath(path, entry.folder) if os.path.isabs(path) else path

    model = ModelFlags(
        factory=entry.factory,
        weights=rel(entry.weights),
        data=rel(entry.data),
        kwargs=entry.kwargs,
        loss=entry.loss,
        device="cpu",
        max_samples=entry.max_samples,
        checkpoints=tuple(rel(c) for c in entry.checkpoints),
        to=rel(entry.to) if entry.to else None,
    )
    return line(request_argv(None, main_request(result), model=model))
