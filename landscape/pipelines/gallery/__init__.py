"""The gallery: precomputed loss slices of ResNets with and without skips, at several depths.

Li et al. (2018, Fig. 5) show that without skip connections a deep CIFAR ResNet's loss surface
turns chaotic while the same net with skips stays a smooth bowl, and that at 20 layers the
difference is mild. `build` measures that depth sweep at CPU scale: for each depth N in
`DEPTHS` and skip on/off it trains `config_for(N, skip)` (the stride-2 `resnet` of
`landscape.data.models` on scikit-learn's digits; `--dataset shapes` for the made-in-code colour
images), slices the loss over a plane of two
filter-normalised random directions, measures how rough the slice is (`landscape.measures.roughness`),
optionally maps Li et al.'s convexity ratio max(-lambda_min, 0) / lambda_max on a coarse grid,
and writes each slice as a surface file (`landscape.storage.formats`, no directions: a few KB each) with
everything measured in its metadata.

The files ship in this folder, so the Gallery page shows them instantly. Rebuild them with
``python -m landscape.pipelines.gallery`` (see ``--help``; the full sweep takes tens of minutes on two
cores). `entries()` reads whatever is in the folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from landscape.core import directions as D
from landscape.data.config import Config
from landscape.engine import surface as S
from landscape.measures import curvature, roughness
from landscape.pipelines import pictures
from landscape.storage import formats as store
from landscape.storage.formats import run_to_bytes
from landscape.training.loop import Run, train

HERE = Path(__file__).parent
DEPTHS = (8, 20, 32, 56)  # conv + linear layers, 6 * blocks_per_stage + 2 (ResNet-N)
#: The contour lines the gallery draws: Li et al.'s (their plot_2D.py draws loss 0.1 to 10 every
#: 0.5). Their chaotic pictures are closed lines (islands) below 10 on a well-trained net.
LEVELS = (0.1, 9.6, 0.5)  # (first, last, step), loss units
# the shipped training settings (config_for's and the command line's defaults)
EPOCHS, LR, WARMUP_EPOCHS = 200, 1e-3, 5
OPTIMIZER, WEIGHT_DECAY = "adam", 0.0


@dataclass(frozen=True)
class Slice:
    """How every gallery slice is made (the same for all depths, so the numbers compare)."""

    span: float = 1.0  # the plane is [-span, span]^2 in filter-normalised units (Li et al.'s)
    res: int = 51  # points per axis (Li et al.'s 51)
    samples: int = 256  # training images the loss is averaged over (the first of the split)
    dir_seed: int = 0  # seed of the two Gaussian directions
    convexity: int = 7  # points per axis of the convexity map (0: none; it costs Lanczos runs)
    convexity_layers: int = 56  # the map is made for nets of at least this many layers only

    def __post_init__(self):
        checks = [
            ("span", self.span, 0.05, 10.0),
            ("res", self.res, 3, 101),
            ("samples", self.samples, 10, 5000),
            ("dir_seed", self.dir_seed, 0, 2**31 - 1),
            ("convexity", self.convexity, 0, 21),
            ("convexity_layers", self.convexity_layers, 8, 56),
        ]
        for name, v, lo, hi in checks:
            if not lo <= v <= hi:
                raise ValueError(f"{name}={v!r} is out of range: must be in [{lo}, {hi}]")


def config_for(n_layers: int, skip: bool, epochs: int = EPOCHS, **kw) -> Config:
    """ResNet-`n_layers` (8/16/32 channels, BatchNorm) on all 1,797 of scikit-learn's digits,
    every net trained the same way: Adam (OPTIMIZER, WEIGHT_DECAY) with a peak lr of LR after
    WARMUP_EPOCHS of linear warm-up, then cosine decay, batch 64, EPOCHS epochs. Li et al.
    train with SGD + momentum; at this scale that left the 56-layer net without skips at 78.5%
    training accuracy (80 epochs, lr 0.01), where Adam brings it to 95.7%: a converged net, so
    the slice shows its architecture's landscape, not an unfinished one. `kw` overrides Config
    fields (dataset="shapes", optimizer="momentum", lr, ...)."""
    if (n_layers - 2) % 6 or not 8 <= n_layers <= 56:
        raise ValueError(f"n_layers={n_layers!r} must be 6k + 2 in [8, 56] (8, 14, 20, ..., 56)")
    base = dict(
        dataset="digits",
        n_samples=1797,
        noise=0.1,
        model="resnet",
        depth=(n_layers - 2) // 6,
        width=8,
        batchnorm=True,
        skip=skip,
        optimizer=OPTIMIZER,
        lr=LR,
        weight_decay=WEIGHT_DECAY,
        schedule="cosine",
        warmup_epochs=min(WARMUP_EPOCHS, epochs),
        batch_size=64,
        epochs=epochs,
        seed=0,
    )
    return Config(**{**base, **kw})


def file_name(n_layers: int, skip: bool) -> str:
    return f"resnet{n_layers}_{'skip' if skip else 'noskip'}.npz"


def _cached_run(config: Config, runs_dir: Path | None, progress) -> Run:
    path = None
    if runs_dir is not None:
        key = hashlib.sha1(config.to_json().encode()).hexdigest()[:12]
        path = runs_dir / f"run_{key}.npz"
        if path.exists():
            # the runs folder is the builder's own: read with the command line's size cap
            # (a 56-layer run's training path is over the upload cap)
            run = store.load_run(path)
            if run.config == config:
                return run
    run = train(config, progress=progress)
    if path is not None:
        runs_dir.mkdir(parents=True, exist_ok=True)
        path.write_bytes(run_to_bytes(run))
    return run


def convexity_ratio(lam_max: np.ndarray, lam_min: np.ndarray) -> np.ndarray:
    """Li et al.'s map: max(-lambda_min, 0) / lambda_max (NaN where lambda_max <= 0)."""
    lam_max, lam_min = np.asarray(lam_max, float), np.asarray(lam_min, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.maximum(-lam_min, 0.0) / lam_max
    return np.where(lam_max > 0, r, np.nan)


def measure(run: Run, sl: Slice, progress: Callable[[str], None] | None = None):
    """The slice of `run` and its roughness: (Surface, convexity Surface or None, metrics)."""
    model, ds = run.model(), run.dataset()
    data = (ds.X_train[: sl.samples], ds.y_train[: sl.samples])
    loss_fn, acc_fn = run.loss_fn(), run.accuracy_fn()
    d1, d2 = D.random_directions(model, 2, norm="filter", ignore="biasbn", seed=sl.dir_seed)
    axis = np.linspace(-sl.span, sl.span, sl.res)
    t0 = time.perf_counter()
    surf = S.plane(model, loss_fn, data, d1, d2, axis, axis, accuracy_fn=acc_fn)
    metrics = {**roughness.summary(surf.loss), "slice_seconds": time.perf_counter() - t0}
    metrics.update(regions(surf.loss))
    finite = surf.loss[np.isfinite(surf.loss)]
    metrics["loss_min"], metrics["loss_max"] = float(finite.min()), float(finite.max())
    metrics["centre_loss"] = float(surf.loss[sl.res // 2, sl.res // 2])
    conv = None
    if sl.convexity:
        if progress:
            progress("convexity map")
        cax = np.linspace(-sl.span, sl.span, sl.convexity)
        t0 = time.perf_counter()
        _, lmax, lmin = curvature.convexity_map(
            model, loss_fn, data, d1, d2, cax, cax, tol=1e-2, max_iter=30, params="weights"
        )
        ratio = convexity_ratio(lmax, lmin)
        conv = S.Surface("plane", cax, cax.copy(), ratio, None, {"field": "convexity"})
        metrics.update(roughness.convexity_summary(ratio))
        metrics["convexity_seconds"] = time.perf_counter() - t0
    return surf, conv, metrics


def levels() -> np.ndarray:
    """The values of ``LEVELS``, one per drawn contour line."""
    first, last, step = LEVELS
    return np.arange(first, last + step / 2, step)


def regions(loss) -> dict:
    """How many separate low-loss regions the drawn lines enclose: the most regions below any
    one level of ``LEVELS`` (1 for a bowl), and that level."""
    n, level = roughness.low_loss_regions(loss, levels())
    return {"low_loss_regions": n, "regions_level": level}


def build(
    out_dir: Path = HERE,
    depths=DEPTHS,
    sl: Slice = Slice(),
    epochs: int = EPOCHS,
    runs_dir: Path | None = None,
    log: Callable[[str], None] = print,
    skips=(True, False),
    **config_kw,
) -> list[dict]:
    """Train, slice and measure every (depth, skip) pair; write one surface file per pair.

    Returns one row of numbers per pair (also stored in each file's metadata)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in depths:
        for skip in skips:
            config = config_for(n, skip, epochs, **config_kw)

            def progress(info, n=n, skip=skip):
                log(
                    f"  N={n} skip={skip} epoch {info['epoch']}: train loss {info['train_loss']:.4g}"
                )

            run = _cached_run(config, runs_dir, progress)
            this = sl if n >= sl.convexity_layers else dataclasses.replace(sl, convexity=0)
            surf, conv, metrics = measure(run, this, log)
            h = run.history
            row = {
                "n_layers": n,
                "skip": skip,
                "n_params": run.n_params,
                "epochs": run.epochs_done,
                "diverged": run.diverged,
                "train_loss": h["train_loss"][-1],
                "train_acc": h["train_acc"][-1],
                "test_acc": h["test_acc"][-1],
                "train_seconds": run.seconds,  # of the training itself, also when reused
                **metrics,
            }
            meta = {
                **surf.meta,
                "gallery": row,
                "slice": dataclasses.asdict(sl),
                "config": config.to_dict(),
            }
            surf = dataclasses.replace(surf, meta=meta)
            store.save_surface(out_dir / file_name(n, skip), surf)
            if conv is not None:
                conv.meta.update({"gallery": row, "slice": dataclasses.asdict(sl)})
                store.save_surface(
                    out_dir / file_name(n, skip).replace(".npz", "_convexity.npz"), conv
                )
            rows.append(row)
            log(json.dumps(row))
    return rows


@dataclass(frozen=True)
class Entry:
    """One shipped slice: its surface, the convexity map when there is one, and the numbers."""

    n_layers: int
    skip: bool
    surface: S.Surface
    convexity: S.Surface | None
    row: dict
    config: Config

    @property
    def label(self) -> str:
        return f"ResNet-{self.n_layers}, {'with' if self.skip else 'no'} skips"


def entries(folder: Path = HERE) -> list[Entry]:
    """The slices in `folder`, by depth then skip first."""
    out = []
    for n in DEPTHS:
        for skip in (True, False):
            path = Path(folder) / file_name(n, skip)
            if not path.exists():
                continue
            surf = store.load_surface(path)
            row = {**surf.meta["gallery"], **regions(surf.loss)}  # files of 0.1 lack them
            cpath = path.with_name(path.stem + "_convexity.npz")
            conv = store.load_surface(cpath) if cpath.exists() else None
            out.append(Entry(n, skip, surf, conv, row, Config.from_dict(surf.meta["config"])))
    return out


def table(rows: list[dict]) -> str:
    """The sweep as a Markdown table (README)."""
    head = (
        "| N | skips | params | train loss | train acc | test acc | local minima | turns/line "
        "| TV/range | max/min | convexity mean | convexity > 0.1 | train s | slice s |"
    )
    lines = [head, "|" + "---|" * 14]
    for r in rows:
        cm, cs = r.get("convexity_mean", math.nan), r.get("convexity_share", math.nan)
        lines.append(
            f"| {r['n_layers']} | {'yes' if r['skip'] else 'no'} | {r['n_params']:,} "
            f"| {r['train_loss']:.3f} | {r['train_acc']:.3f} | {r['test_acc']:.3f} "
            f"| {r['local_minima']} | {r['turns_per_line']:.2f} | {r['tv_ratio']:.1f} "
            f"| {r['loss_max'] / max(r['loss_min'], 1e-30):.1e} "
            f"| {'-' if math.isnan(cm) else f'{cm:.2f}'} "
            f"| {'-' if math.isnan(cs) else f'{cs:.0%}'} "
            f"| {r['train_seconds']:.0f} | {r['slice_seconds']:.0f} |"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------- reading

#: Verdicts from measured figures of the drawn picture. A bowl encloses one low-loss region at
#: every drawn level and turns about once per grid line; islands are separate regions.
SMOOTH_MAX_REGIONS, SMOOTH_MAX_TURNS = 1, 1.5
CHAOTIC_MIN_REGIONS = 3


def verdict(row: dict) -> str:
    """ "smooth", "chaotic" or "rough (in between)" from a row's low-loss regions (below one
    drawn level) and turns per grid line, by the thresholds above."""
    n = row["low_loss_regions"]
    if n >= CHAOTIC_MIN_REGIONS:
        return "chaotic"
    if n <= SMOOTH_MAX_REGIONS and row["turns_per_line"] <= SMOOTH_MAX_TURNS:
        return "smooth"
    return "rough (in between)"


def verdict_rule() -> str:
    """The thresholds of ``verdict`` in words (shown beside the pictures)."""
    first, last, step = LEVELS
    return (
        f"smooth: one low-loss region below every drawn level and at most {SMOOTH_MAX_TURNS:g} "
        f"slope turns per grid line; chaotic: {CHAOTIC_MIN_REGIONS} or more separate regions "
        f"below one level (islands); rough: in between. Levels: loss {first:g} to {last:g} "
        f"every {step:g}."
    )


def caption(entry: Entry) -> str:
    """One line of measured numbers for the picture of `entry`."""
    r = entry.row
    return (
        f"{verdict(r)}: {r['low_loss_regions']} separate low-loss "
        f"region{'' if r['low_loss_regions'] == 1 else 's'} inside the drawn lines"
        + (f" (below loss {r['regions_level']:g})" if r["low_loss_regions"] > 1 else "")
        + f", {r['local_minima']} local minim{'um' if r['local_minima'] == 1 else 'a'} on the "
        f"{entry.surface.loss.shape[0]}x{entry.surface.loss.shape[1]} grid, "
        f"{r['turns_per_line']:.1f} slope turns per grid "
        f"line, loss {r['loss_min']:.3g} to {r['loss_max']:.3g}. Trained: train loss "
        f"{r['train_loss']:.3f}, train accuracy {r['train_acc']:.0%}, test accuracy "
        f"{r['test_acc']:.0%}."
    )


def convexity_caption(entry: Entry) -> str:
    """One line of numbers for the convexity map of `entry` (which must have one)."""
    r, k = entry.row, entry.convexity.loss.shape
    return (
        f"Convexity map on a {k[0]}x{k[1]} grid: mean max(−λmin, 0)/λmax "
        f"{r['convexity_mean']:.3f}; clearly non-convex (ratio > 0.1) at "
        f"{r['convexity_share']:.0%} of the points."
    )


def convexity_finding(skip: Entry, noskip: Entry) -> tuple[bool, str]:
    """Li et al.'s Fig. 7 claim for one depth: without skips the map shows more negative
    curvature than with (both its mean and its share of points above 0.1 are higher)."""
    a, b = noskip.row, skip.row
    ok = a["convexity_mean"] > b["convexity_mean"] and a["convexity_share"] > b["convexity_share"]
    return ok, (
        f"without skips the {noskip.n_layers}-layer net's convexity map shows more negative "
        f"curvature than with skips (mean max(−λmin, 0)/λmax {a['convexity_mean']:.3f} vs "
        f"{b['convexity_mean']:.3f}; points above 0.1: {a['convexity_share']:.0%} vs "
        f"{b['convexity_share']:.0%})"
    )


def training_finding(items: list[Entry]) -> tuple[bool, str]:
    """Li et al.'s training claim: without skips the deepest net trains worst (highest train
    loss of the no-skip nets, and above its skip twin's) in the same number of epochs."""
    noskip = {e.n_layers: e.row["train_loss"] for e in items if not e.skip}
    skip = {e.n_layers: e.row["train_loss"] for e in items if e.skip}
    deepest = max(noskip)
    ok = noskip[deepest] == max(noskip.values()) and noskip[deepest] > skip.get(deepest, math.inf)
    losses = ", ".join(f"{n}: {v:.3g}" for n, v in sorted(noskip.items()))
    twin = f"{skip[deepest]:.3g}" if deepest in skip else "not built"
    return ok, (
        f"without skips the deepest net trains worst in the same {items[0].config.epochs} epochs "
        f"(train loss by depth, {losses}; with skips at {deepest} layers: {twin})"
    )


#: A net counts as trained (its picture shows a minimum, not an unfinished net) from here.
TRAINED_ACC = 0.95


def trained_finding(items: list[Entry]) -> tuple[bool, str]:
    """Li et al. slice nets trained to a low training loss: is every shipped net trained?"""
    low = [e for e in items if e.row["train_acc"] < TRAINED_ACC]
    if not low:
        return True, f"every net reached at least {TRAINED_ACC:.0%} training accuracy"
    names = ", ".join(f"{e.label} {e.row['train_acc']:.0%}" for e in low)
    return False, (
        f"every net reached at least {TRAINED_ACC:.0%} training accuracy (below it: {names}; "
        "part of such a slice's roughness is that of an unfinished net)"
    )


def as_landscape_result(entry: Entry):
    """The entry as a `landscape.pipelines.pictures.LandscapeResult`, so the Landscape page can draw it
    with all its views (the request reproduces it from the command line, on every training
    point rather than the gallery's subset)."""

    s, sl = entry.surface, entry.surface.meta["slice"]
    req = pictures.SurfaceRequest(
        run_key=f"gallery-{entry.n_layers}-{int(entry.skip)}",
        config=entry.config,
        dim=2,
        seed=int(sl["dir_seed"]),
        xmin=float(s.xs[0]),
        xmax=float(s.xs[-1]),
        ymin=float(s.ys[0]),
        ymax=float(s.ys[-1]),
        nx=len(s.xs),
        ny=len(s.ys),
    )
    return pictures.LandscapeResult(
        request=req,
        surfaces={"train:0": s},
        directions=[],
        cosine=s.meta.get("cosine"),
        centre_loss=entry.row["centre_loss"],
        seconds=entry.row["slice_seconds"],
    )
