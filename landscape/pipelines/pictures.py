"""One picture of the Landscape page, as a frozen request: which run, which slice, how.

The Landscape page, its cache and its downloads all speak in ``SurfaceRequest``: a
``slices.SliceRequest`` (every slicing option) plus the identity of the run it is about and
the page's caps. The same request is

- the cache key (same request twice -> same numbers, answered from the cache),
- what ``compute`` hands to the slicing pipeline (``landscape.pipelines.slices``),
- what ``landscape.cli.reproduce`` prints as the equivalent ``python -m landscape ...`` command.

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
from collections.abc import Callable
from dataclasses import dataclass

from landscape.core import checks, directions
from landscape.data.config import Config
from landscape.engine.subject import SPLITS, Subject, fingerprint, same_architecture
from landscape.pipelines import slices
from landscape.pipelines.slices import (
    LINE_KINDS,
    PLANE_KINDS,
    SliceResult,
    path_share,
)
from landscape.storage import codec, datastore

__all__ = [
    "LINE_KINDS", "PLANE_KINDS", "SPLITS", "SurfaceRequest", "LandscapeResult", "compute",
    "fingerprint", "path_share", "same_architecture", "to_csv", "directions", "DEFAULT",
    "default_request", "store_key", "kept_or_computed",
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

#: The Landscape page's slice form as a first visitor finds it: its widgets take their
#: defaults from these fields (the fields' own defaults), so ``default_request`` is what
#: pressing Compute with them asks for.
DEFAULT = slices.SliceRequest()


def default_request(run) -> SurfaceRequest:
    """The slice of ``run`` the Landscape page computes when Compute is pressed with the
    form's defaults (or a link ``?run=<id>`` opens the run): a preset's default landscape."""
    return SurfaceRequest.for_run(run)


def store_key(req: SurfaceRequest) -> str:
    """Where the data folder keeps the result of ``req`` (kind "landscape")."""
    return datastore.object_key("landscape", dataclasses.asdict(req))


def kept_or_computed(
    store: datastore.Store | None, req: SurfaceRequest, compute: Callable[[], LandscapeResult]
) -> LandscapeResult:
    """The result of ``req`` from the data folder, else ``compute()`` kept there (tied to the
    centre run when that is stored); see ``datastore.stored_or_computed``. The Landscape page
    and the background warm-up (landscape.ui.warm) both go through here."""
    return datastore.stored_or_computed(
        store,
        "landscape",
        store_key(req),
        compute,
        accept=lambda found: isinstance(found, SliceResult) and found.request == req,
        rid=datastore.run_id(req.config),
    )


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
