"""Gallery: Li et al.'s headline picture, precomputed: ResNets with and without skips by depth.

Thin page: the slices shipped in landscape/gallery (built by `python -m landscape.pipelines.gallery`),
their measured roughness beside them, and what the small scale does and does not reproduce.
"""

import pandas as pd
import streamlit as st

from landscape.data import datasets as data
from landscape.pipelines import gallery
from landscape.plots import compare as cplots
from landscape.ui import gallery as ui
from landscape.ui.common import torch_threads
from landscape.ui.links import url

torch_threads()

HEIGHT = 420
ZMAX = ui.ZMAX  # colours clipped at loss 10, as in Li et al.'s plots (and on Landscape)


def _panel(col, entry: gallery.Entry, kind: str) -> None:
    with col:
        key = f"gal_{entry.n_layers}_{int(entry.skip)}"
        st.plotly_chart(ui.figure(entry, kind, HEIGHT), key=f"{key}_chart")
        st.caption(gallery.caption(entry))
        if st.button("Open in Landscape", key=f"{key}_open", icon=":material/open_in_new:"):
            ui.open_in_landscape(entry)


def _table(items: list[gallery.Entry]) -> None:
    rows = [
        {
            "layers": e.n_layers,
            "skips": "yes" if e.skip else "no",
            "looks": gallery.verdict(e.row),
            "low-loss regions": e.row["low_loss_regions"],
            "local minima": e.row["local_minima"],
            "turns per line": round(e.row["turns_per_line"], 2),
            "TV / range (log loss)": round(e.row["tv_ratio"], 1),
            "train loss": round(e.row["train_loss"], 3),
            "train accuracy": f"{e.row['train_acc']:.0%}",
            "test accuracy": f"{e.row['test_acc']:.0%}",
        }
        | (
            {
                "convexity mean": f"{e.row['convexity_mean']:.3f}",
                "convexity > 0.1": f"{e.row['convexity_share']:.0%}",
            }
            if "convexity_mean" in e.row
            else {"convexity mean": "–", "convexity > 0.1": "–"}  # no map at this depth
        )
        for e in items
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="gal_table")


def _convexity(pair: list[gallery.Entry]) -> None:
    """Li et al.'s Fig. 7 map for the pair, where it was computed for both nets."""
    if not pair or any(e.convexity is None for e in pair):
        return
    st.markdown(
        "**Convexity map** (Li et al. Fig. 7): at each point of a coarser grid on the same plane, "
        "the Hessian's most negative eigenvalue against its largest, max(−λmin, 0)/λmax (their "
        "|λmin/λmax| where λmin < 0): 0 where no direction of the full parameter space curves "
        "down (locally convex), larger where negative curvature is strong (non-convex)."
    )
    maps = [e.convexity.loss for e in pair]
    figs = cplots.convexity_panels(maps, pair[0].convexity.xs, [e.label for e in pair])
    for col, fig, e in zip(st.columns(len(pair)), figs, pair):
        with col:
            st.plotly_chart(fig, key=f"gal_{e.n_layers}_{int(e.skip)}_conv")
            st.caption(gallery.convexity_caption(e))


def _findings(items: list[gallery.Entry]) -> None:
    """Li et al.'s three claims, each checked against the shipped numbers."""
    by = {(e.n_layers, e.skip): gallery.verdict(e.row) for e in items}
    depths = sorted({e.n_layers for e in items})
    deepest = depths[-1]
    lines = []
    skip_smooth = all(by.get((n, True)) == "smooth" for n in depths)
    lines.append(
        ("Reproduced" if skip_smooth else "**Not reproduced here**")
        + ": with skips the slice stays smooth at every depth ("
        + ", ".join(f"{n}: {by.get((n, True))}" for n in depths)
        + ")."
    )
    deep = by.get((deepest, False))
    lines.append(
        ("Reproduced" if deep == "chaotic" else "**Not reproduced here**")
        + f": without skips the {deepest}-layer net's slice is chaotic (measured: {deep})."
    )
    deep_pair = {e.skip: e for e in items if e.n_layers == deepest and e.convexity is not None}
    if len(deep_pair) == 2:
        ok, text = gallery.convexity_finding(deep_pair[True], deep_pair[False])
        lines.append(("Reproduced" if ok else "**Not reproduced here**") + f": {text}.")
    ok, text = gallery.trained_finding(items)
    lines.append(("Reproduced" if ok else "**Not reproduced here**") + f": {text}.")
    ok, text = gallery.training_finding(items)
    lines.append(("Reproduced" if ok else "**Not reproduced here**") + f": {text}.")
    if 20 in depths:
        mild = by.get((20, False))
        lines.append(
            ("Reproduced" if mild != "chaotic" else "**Not reproduced here**")
            + f": at 20 layers the difference is mild (no skips, 20 layers: {mild})."
        )
    st.markdown("\n".join(f"- {line}" for line in lines))


st.title("Gallery")
items = ui.entries()
if not items:
    st.warning("No gallery files found: build them with `python -m landscape.pipelines.gallery`.")
    st.stop()
cfg, sl = items[0].config, items[0].surface.meta["slice"]
w = cfg.width
st.markdown(
    "Li et al. (2018, Fig. 5): without skip connections a deep ResNet's loss surface turns "
    "chaotic, while with skips it stays a smooth bowl. These slices were computed at CPU "
    f"scale and ship with the app, so they appear at once: ResNets of "
    f"{min(e.n_layers for e in items)} to {max(e.n_layers for e in items)} layers (stride-2 "
    f"stages of {w}, {2 * w} and {4 * w} channels, BatchNorm) trained on "
    f"{data.DATASETS[cfg.dataset].display.lower()}, each sliced over a plane of two "
    f"filter-normalised random directions, ±{sl['span']:g} along each. The contour lines are "
    f"Li et al.'s: loss {gallery.LEVELS[0]:g} to {gallery.LEVELS[1]:g} every "
    f"{gallery.LEVELS[2]:g}, blank above (the 3D view clips at {ZMAX:g}). A smooth net shows one "
    "set of rings; a chaotic one shows islands: closed lines apart from the main basin."
)
depths = sorted({e.n_layers for e in items})
c1, c2 = st.columns([2, 1])
depth = c1.segmented_control("Layers", depths, default=depths[-1], **url("gal_depth"))
kind = c2.segmented_control("Plot", ["contour", "3D"], default="contour", **url("gal_kind"))
depth = depth or depths[-1]
pair = [e for e in items if e.n_layers == depth]
pair = sorted(pair, key=lambda e: e.skip)
cols = st.columns(len(pair))
for col, entry in zip(cols, pair):
    _panel(col, entry, kind or "contour")
_convexity(pair)
st.subheader("What the numbers say")
_findings(items)
st.caption(
    "Low-loss regions: the most separate regions below any one drawn level (islands count "
    "apart). " + gallery.verdict_rule() + " "
    "Local minima: grid points lower than all 8 neighbours. Turns per line: how often the "
    "loss changes between rising and falling along a grid row or column (once for a bowl). "
    f"Losses on {sl['samples']} training images; the slices and the table come from one "
    "command (docs/gallery.md)."
)
_table(items)
