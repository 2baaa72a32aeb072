"""One picture of the Landscape page, as a frozen request: which run, which slice, how.

The Landscape page, its cache and its downloads all speak in ``SurfaceRequest``: a
``slices.SliceRequest`` (every slicing option) plus the identity of the run it is about and
the page's caps. The same request is

- the cache key (same request twice -> same numbers, answered from the cache),
- what ``compute`` hands to the slicing pipeline (``landscape.pipelines.slices``),
- what ``command`` prints as the equivalent ``python -m landscape ...`` command line.

No Streamlit here: this module is the page's logic, testable and usable from a notebook::

    req = SurfaceRequest.for_run(run, dim=2, direction="random", nx=21, ny=21)
    result = compute(req, run)
    result.main.loss        # (21, 21), loss[i, j] at xs[j]*d1 + ys[i]*d2

The kinds of slice are those of ``landscape.pipelines.slices``; a 1D picture shows its lines on the
train and the test split.
"""

from __future__ import annotations

import dataclasses
import io
import shlex
from collections.abc import Callable
from dataclasses import dataclass

from landscape.core import checks, directions
from landscape.data import datasets as data
from landscape.data.config import Config
from landscape.engine.subject import SPLITS, Subject, fingerprint, same_architecture
from landscape.engine.surface import Surface
from landscape.pipelines import slices
from landscape.pipelines.slices import (
    LINE_KINDS,
    PLANE_KINDS,
    SliceResult,
    path_share,
)
from landscape.storage import codec

__all__ = [
    "LINE_KINDS", "PLANE_KINDS", "SPLITS", "SurfaceRequest", "LandscapeResult", "compute",
    "fingerprint", "path_share", "same_architecture", "to_csv", "command", "directions",
]  # fmt: skip

MAX_RES = 101  # most points along one axis on the page (101 x 101 = 10201 points)
MIN_RES = 3  # fewest points along one axis
DEFAULT_RES = 41
COARSE_RES = slices.COARSE_RES  # the quick first picture
MAX_LINES = 5  # random 1D directions overlaid
PREVIEW_FACTOR = slices.PREVIEW_FACTOR

Progress = slices.Progress
Preview = Callable[["LandscapeResult"], None] | None  # receives the coarse result
LandscapeResult = SliceResult  # the page's result is the pipeline's


@dataclass(frozen=True, kw_only=True)
class SurfaceRequest(slices.SliceRequest):
    """A slice of one run as the page asks for it; frozen, hashable: a cache key."""

    run_key: str  # fingerprint of the centre run's weights (see ``fingerprint``)
    config: Config  # the centre run's training config (what the command line retrains)
    auto_range: bool = True  # 2D pca: the range is set from the projected path
    other_key: str | None = None  # 1D between: fingerprint of the second run
    other_config: Config | None = None  # 1D between: the second run's training config

    def validate(self) -> None:
        """The pipeline's checks, then the page's caps (points per axis, lines)."""
        super().validate()
        checks.int_in("n_lines", self.n_lines, 1, MAX_LINES)
        checks.int_in("nx", self.nx, MIN_RES, MAX_RES)
        checks.int_in("ny", self.ny, MIN_RES, MAX_RES)
        if self.direction == "between" and (self.other_key is None or self.other_config is None):
            raise ValueError("direction='between' needs a second run: other_key and other_config")

    def splits(self) -> tuple[str, ...]:
        """2D: the chosen split; 1D lines are drawn on both."""
        return SPLITS if self.dim == 1 else (self.split,)

    @classmethod
    def for_run(cls, run, other=None, **kw) -> SurfaceRequest:
        """A request about ``run`` (and ``other`` for a 'between' line); other fields from kw."""
        if other is not None:
            kw.update(other_key=fingerprint(other), other_config=other.config)
        return cls(run_key=fingerprint(run), config=run.config, **kw)

    def label(self) -> str:
        """A short human description, e.g. '2D random (filter, seed 0) 41x41 on train'."""
        if self.dim == 1:
            what = {"random": f"random x{self.n_lines}", "interpolation": "init -> trained"}
            kind = what.get(self.direction, "between two runs")
            grid = f"{self.nx} points"
        else:
            kind = {"random": "random", "pca": "PCA of the path", "hessian": "Hessian top-2"}[
                self.direction
            ]
            grid = f"{self.nx}x{self.ny} on {self.split}"
        norm = f" ({self.norm}, seed {self.seed})" if self.direction == "random" else ""
        return f"{self.dim}D {kind}{norm} {grid}"


codec.register("surface-request", SurfaceRequest)


def compute(
    req: SurfaceRequest,
    run,
    other=None,
    progress: Progress = None,
    preview: Preview = None,
) -> LandscapeResult:
    """Compute the surfaces of ``req`` for ``run`` (and ``other`` for a 'between' line).

    See ``slices.compute``; this checks that the runs are the ones the request names.
    """
    if fingerprint(run) != req.run_key:
        raise ValueError("the run does not match the request's run_key: pass the same run")
    if req.direction == "between" and (other is None or fingerprint(other) != req.other_key):
        raise ValueError("direction='between' needs the second run whose fingerprint is other_key")
    second = None if other is None else Subject.from_run(other)
    return slices.compute(req, Subject.from_run(run), second, progress, preview)


# ----------------------------------------------------------------------------- exports


def to_csv(result: LandscapeResult) -> str:
    """Every surface in long format: one row per point, columns x, y, loss, accuracy, split, line.

    y is empty for lines; accuracy is empty without an accuracy (regression). Values are
    written with ``repr`` so they round-trip exactly (nan and inf included).
    """
    buf = io.StringIO()
    buf.write("x,y,loss,accuracy,split,line\n")
    for key, s in result.surfaces.items():
        split, line = key.split(":")
        acc = s.accuracy
        if s.ys is None:
            for j, x in enumerate(s.xs):
                a = "" if acc is None else repr(float(acc[j]))
                buf.write(f"{x!r},,{float(s.loss[j])!r},{a},{split},{line}\n")
            continue
        for i, y in enumerate(s.ys):
            for j, x in enumerate(s.xs):
                a = "" if acc is None else repr(float(acc[i, j]))
                buf.write(f"{float(x)!r},{float(y)!r},{float(s.loss[i, j])!r},{a},{split},{line}\n")
    return buf.getvalue()


def command(
    result: LandscapeResult, end_run_file: str = "run_b.npz", run_file: str = "run.npz"
) -> str:
    """The ``python -m landscape ...`` command line that recomputes the main surface.

    The run is retrained from its config flags (training is deterministic, so the same
    weights come back); a 'between' line loads the second run from ``end_run_file`` (the
    page offers it as a download). Ranges are written out, so an automatic PCA range is
    reproduced exactly. A run trained on uploaded data is loaded from ``run_file`` instead,
    with a comment saying so. Hessian directions have no command line: a Python snippet is
    returned instead.
    """
    req, s = result.request, result.main
    if req.direction == "hessian":
        built_in = dataset_is_built_in(req.config.dataset)
        return _hessian_snippet(req, s, None if built_in else run_file)
    sub = "line" if req.dim == 1 else "plane"
    registered = not dataset_is_built_in(req.config.dataset)
    run_flags = ["--load-run", run_file] if registered else _config_flags(req.config)
    args = ["python", "-m", "landscape", sub, *run_flags]
    args += _slice_flags(req, s, end_run_file)
    args += ["--out", f"landscape-{sub}"]
    line = " ".join(shlex.quote(str(a)) for a in args)
    if registered:  # the command line has no name for data uploaded to the server
        return (
            "# This run was trained on uploaded data, which the command line cannot name: "
            f"download the run as {run_file} and load it.\n" + line
        )
    return line


def dataset_is_built_in(name: str) -> bool:
    return name in data.DATASETS


def _config_flags(config) -> list[str]:
    """Flags that retrain the run (only the fields that differ from the defaults)."""
    default = type(config)()
    flags = []
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if value == getattr(default, f.name):
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.name == "loss_params":
            for k, v in value:
                flags += ["--loss-param", f"{k}={v!r}"]
        elif isinstance(value, bool):
            flags.append(flag if value else "--no-" + f.name.replace("_", "-"))
        else:
            flags += [flag, repr(value) if isinstance(value, float) else value]
    return flags


def _slice_flags(req: SurfaceRequest, s: Surface, end_run_file: str) -> list[str]:
    """Surface flags of ``python -m landscape line|plane`` (ranges read from the surface)."""
    kind = {"between": "interpolation"}.get(req.direction, req.direction)
    flags = ["--dir", kind]
    if req.direction == "random":
        flags += ["--dir-seed", req.seed, "--norm", req.norm, "--ignore", req.ignore or "none"]
        if req.dir_type != "weights":
            flags += ["--dir-type", req.dir_type]
    if req.direction == "pca" and req.projection != "cos":
        flags += ["--projection", req.projection]
    if req.direction == "between":
        flags += ["--end-run", end_run_file]
    flags += ["--xrange", repr(float(s.xs[0])), repr(float(s.xs[-1]))]
    if s.ys is None:
        return flags + ["--res", s.xs.size, "--split", "train"]
    flags += ["--yrange", repr(float(s.ys[0])), repr(float(s.ys[-1]))]
    flags += ["--xres", s.xs.size, "--yres", s.ys.size, "--split", req.split]
    if req.orthogonal and req.direction == "random":
        flags.append("--orthogonal")
    return flags


def _hessian_snippet(req: SurfaceRequest, s: Surface, run_file: str | None = None) -> str:
    """Python that recomputes a Hessian-direction plane (the command line has no such flag);
    with ``run_file`` (a run on uploaded data) the run is loaded from that saved file."""
    cfg = ", ".join(
        f"{k}={v!r}"
        for k, v in req.config.to_dict().items()
        if v != getattr(type(req.config)(), k) and k != "loss_params"
    )
    lp = dict(req.config.loss_params)
    cfg += f", loss_params={lp!r}" if lp else ""
    return "\n".join(
        [
            "# The command line has no Hessian directions; this Python does the same.",
            "import numpy as np",
            "from landscape import pictures",
            *(
                ["from landscape import store", f"run = store.load_run({run_file!r})"]
                if run_file
                else [
                    "from landscape.training.loop import Config, train",
                    f"run = train(Config({cfg}))",
                ]
            ),
            "req = pictures.SurfaceRequest.for_run(",
            f"    run, dim=2, direction='hessian', seed={req.seed}, norm={req.norm!r},",
            f"    ignore={req.ignore!r}, xmin={float(s.xs[0])!r}, xmax={float(s.xs[-1])!r},",
            f"    ymin={float(s.ys[0])!r}, ymax={float(s.ys[-1])!r}, nx={s.xs.size}, "
            f"ny={s.ys.size}, split={req.split!r})",
            "result = pictures.compute(req, run)",
            "print(result.eigenvalues, np.nanmin(result.main.loss))",
        ]
    )
