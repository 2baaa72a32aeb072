"""Compare: two to four loss landscapes side by side, on one scale, with sharpness figures.

Thin page: a preset button or two picked runs -> ``landscape.ui.compare`` (bounded cache,
heavy slot, progress) -> ``landscape.pipelines.comparisons`` numbers -> ``landscape.plots.compare``
figures. The last result lives in ``st.session_state``; the display controls redraw inside a
fragment without computing anything again.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import streamlit as st

from landscape.core import directions
from landscape.pipelines import comparison_presets, comparisons, gallery
from landscape.pipelines.comparisons import Comparison, Settings
from landscape.plots import compare as plots
from landscape.storage import datastore
from landscape.ui import compare as ui
from landscape.ui import gallery as ui_gallery
from landscape.ui import library, links
from landscape.ui import own_models as ui_own
from landscape.ui import research as ui_research
from landscape.ui import runs as ui_runs
from landscape.ui.common import md_escape, plot_text, show_error, torch_threads
from landscape.ui.links import url

torch_threads()

RESULT = "cmp_result"  # session key: {"title", "preset", "comparison"} of the last comparison
REQUEST = "cmp_request"  # session key: what produced it (to recompute with new settings)
SETTINGS = "cmp_settings"  # session key: the current Settings

RESOLUTIONS = [11, 15, 21, 25, 31, 41]
SPANS = [0.25, 0.5, 1.0, 1.5, 2.0, 3.0]


# ----------------------------------------------------------------------------- settings


def _settings() -> Settings:
    if SETTINGS not in st.session_state:
        st.session_state[SETTINGS] = Settings()
    return st.session_state[SETTINGS]


def _settings_form() -> bool:
    """The measurement settings; True when the user applied new ones."""
    s = Settings()  # the widgets' defaults: fixed, so a link keeps what differs from them
    with st.expander("Measurement settings (apply to every panel)"), st.form("cmp_settings_form"):
        c1, c2, c3 = st.columns(3)
        span = c1.select_slider(
            "Range ±",
            SPANS,
            value=s.span,
            **url("cmp_span"),
            help="Slices cover [-range, range] along each direction.",
        )
        res = c1.select_slider("2D resolution", RESOLUTIONS, value=s.resolution, **url("cmp_res"))
        n_dirs = c2.slider(
            "Random directions (1D + basin width)", 1, 8, s.n_dirs, **url("cmp_ndirs")
        )
        mode = c2.radio(
            "Basin level",
            comparisons.LEVEL_MODES,
            **url("cmp_level_mode"),
            index=comparisons.LEVEL_MODES.index(s.level_mode),
            horizontal=True,
            format_func={"rise": "rise above the minimum", "absolute": "absolute loss"}.get,
        )
        level = c2.number_input(
            "Level (loss units)", 1e-4, 1e4, s.level, **url("cmp_level"), format="%.4g"
        )
        split = c3.radio(
            "Data",
            comparisons.SPLITS,
            index=comparisons.SPLITS.index(s.split),
            **url("cmp_split"),
            horizontal=True,
        )
        seed = c3.number_input("Direction seed", 0, 2**31 - 1, s.seed, **url("cmp_seed"))
        conv = c3.checkbox(
            "Convexity map (Li et al. Fig. 7; slow)", s.convexity > 0, **url("cmp_conv")
        )
        pressed = st.form_submit_button("Apply (recomputes the comparison shown)", key="cmp_apply")
    # A link with settings applies them at once, as if Apply had been pressed.
    if not (pressed or (links.first_run() and links.opened_with_prefix("cmp_"))):
        return False
    try:
        new = s.replace(
            span=span,
            resolution=res,
            n_dirs=n_dirs,
            level_mode=mode,
            level=level,
            split=split,
            seed=int(seed),
            convexity=5 if conv else 0,
        )
    except ValueError as e:
        show_error(e)
        return False
    st.session_state[SETTINGS] = new
    return True


# ----------------------------------------------------------------------------- choosing


def _preset_buttons() -> dict | None:
    st.caption("One click trains the runs and measures them (cached: a second click is instant).")
    cols = st.columns(len(comparison_presets.PRESETS))
    chosen = None
    for col, (key, p) in zip(cols, comparison_presets.PRESETS.items()):
        if col.button(p.button, key=f"cmp_preset_{key}", help=p.title, width="stretch"):
            chosen = {"kind": "preset", "key": key}
        secs = p.measured_seconds
        text = (
            f"{secs:.0f} s cold on a quiet 2-core server; several times that when it is busy"
            if secs
            else "time not measured yet"
        )
        col.caption(text, help=f"Measured on {p.measured_on}. A bar shows progress.")
    return chosen


def _runs_picker() -> dict | None:
    runs = ui_runs.get_runs()
    if len(runs) < 1:
        st.info(
            "No trained runs in this session yet: train some on the Train page, or use a preset."
        )
        return None
    c1, c2 = st.columns(2)
    with c1:
        a = library.run_picker("Left run", "cmp_run_a")
        na = st.selectbox("Directions", directions.NORMS, **url("cmp_norm_a"))
    with c2:
        b = library.run_picker("Right run", "cmp_run_b")
        nb = st.selectbox("Directions", directions.NORMS, **url("cmp_norm_b"))
    if a is None or b is None or not st.button("Compare these runs", key="cmp_go_runs"):
        return None
    return {
        "kind": "runs",
        "names": [ui_runs.run_name_of(a), ui_runs.run_name_of(b)],
        "norms": [na, nb],
    }


# ----------------------------------------------------------------------------- computing


def _compute(request: dict, settings: Settings) -> None:
    bar = st.progress(0.0, text="starting")

    def progress(frac: float, text: str) -> None:
        bar.progress(min(max(frac, 0.0), 1.0), text=text)

    try:
        if request["kind"] == "preset":
            comp = ui.preset(request["key"], settings, progress)
            p = comparison_presets.get(request["key"])
            title = p.title
        elif request["kind"] == "operator":  # the operator's models (LANDSCAPE_MODELS)
            comp = ui_own.compare_models(request["names"], request["norm"], settings, progress)
            title = " vs ".join(request["names"])
        else:
            runs = ui_runs.get_runs()
            missing = [n for n in request["names"] if n not in runs]
            if missing:
                raise ValueError(f"run {missing[0]!r} is no longer in this session's list")
            labels = request["names"]
            if labels[0] == labels[1]:  # one run against itself (e.g. two normalisations)
                labels = [f"{labels[0]} (left)", f"{labels[1]} (right)"]
            named = [(lab, runs[n]) for lab, n in zip(labels, request["names"])]
            comp = ui.runs(named, request["norms"], settings, progress)
            title = " vs ".join(request["names"])
    except (ValueError, RuntimeError) as e:
        show_error(e)
        return
    except Exception as e:  # last resort: a message, never a traceback on the page
        show_error(e, prefix="The comparison failed: ")
        return
    finally:
        bar.empty()
    if request["kind"] == "preset":
        for panel in comp.panels:  # the preset's runs join the session: pick them elsewhere
            ui_runs.add_run(panel.run)
    st.session_state[REQUEST] = request
    st.session_state[RESULT] = {"title": title, "preset": request.get("key"), "comparison": comp}
    _keep_in_url(request)


def _keep_in_url(request: dict) -> None:
    """The comparison shown, in the address: ?preset=<key>, or ?runs=<id>~<id>."""
    if request["kind"] == "preset":
        st.query_params.pop("runs", None)
        st.query_params["preset"] = request["key"]
        return
    if request["kind"] == "operator":  # no link names an operator's model
        st.query_params.pop("preset", None)
        st.query_params.pop("runs", None)
        return
    runs = ui_runs.get_runs()
    ids = [datastore.run_id(runs[n].config) for n in request["names"] if n in runs]
    st.query_params.pop("preset", None)
    st.query_params["runs"] = "~".join(ids)


def linked_request() -> dict | None:
    """The comparison a link names (preset key or two stored runs), or None."""
    links.handled("preset")
    links.handled("runs")
    if not links.first_run():
        return None
    key = st.query_params.get("preset")
    if key is not None:
        if key in comparison_presets.PRESETS:
            return {"kind": "preset", "key": key}
        st.caption(f"ℹ️ The link's preset {key[:40]!r} is not one of this page's presets.")
        return None
    ids = (st.query_params.get("runs") or "").split("~")
    if len(ids) != 2 or not all(datastore.RUN_ID_RE.fullmatch(i) for i in ids):
        return None
    loaded = [library.load_into_session(i) for i in ids]
    if None in loaded:
        st.caption("ℹ️ A run of the link is not in this server's data folder.")
        return None
    return {
        "kind": "runs",
        "names": [ui_runs.run_name_of(r) for r in loaded],
        "norms": [st.session_state.get("cmp_norm_a", "filter"),
                  st.session_state.get("cmp_norm_b", "filter")],
    }  # fmt: skip


# ----------------------------------------------------------------------------- showing


def _fmt(x, pct: bool = False) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return f"{100 * x:.1f} %" if pct else f"{x:.4g}"


def _table(comp: Comparison) -> pd.DataFrame:
    rows = comparisons.table(comp)
    s = comp.settings
    level = "rise of" if s.level_mode == "rise" else "loss"
    out = {}
    for row, p in zip(rows, comp.panels):
        width = ("≥ " if row["width censored"] else "") + _fmt(row["basin width"])
        col = {
            "directions": p.norm + (f", net rescaled x{p.rescale:g}" if p.rescale != 1 else ""),
            "train loss": _fmt(row["train loss"]),
            "test loss": _fmt(row["test loss"]),
            "train accuracy": _fmt(row["train acc"], pct=True),
            "test accuracy": _fmt(row["test acc"], pct=True),
            "top Hessian eigenvalue λmax": _fmt(row["top eigenvalue"]),
            "Hessian trace (± s.e.)": f"{_fmt(row['trace'])} ± {_fmt(row['trace ± (1 s.e.)'])}",
            f"basin width (loss {level} {s.level:g})": width,
        }
        if "non-convexity" in row:
            col["non-convexity: mean max(−λmin, 0)/λmax"] = _fmt(row["non-convexity"])
        for k, v in p.extras.items():
            col[k] = _fmt(v)
        out[p.label] = col
    return pd.DataFrame(out)


def _story(result: dict) -> None:
    comp: Comparison = result["comparison"]
    st.subheader(md_escape(result["title"]))  # run names are user text
    if result["preset"]:
        p = comparison_presets.get(result["preset"])
        c1, c2 = st.columns(2)
        c1.markdown(f"**What the literature found.** {p.literature}")
        c2.markdown(f"**What this run shows.** {p.shows}")
        if comparison_presets.scale_from_env() < 1:
            st.caption(
                f"Scaled-down preset (scale {comparison_presets.scale_from_env():g}): numbers differ from the text."
            )
        if p.claims:  # the text's figures as this run measured them (the table's numbers)
            st.caption("Measured in this run: " + "; ".join(comparison_presets.measured(p, comp)))
        if p.key == "skip":
            _deep_pair()
    st.caption(
        f"Computed in {comp.seconds:.1f} s on this server (training {comp.train_seconds:.1f} s); "
        f"repeats are answered from the cache."
    )
    for panel in comp.panels:
        for note in panel.notes:
            st.warning(md_escape(f"{panel.label}: {note}"))


def _deep_pair() -> None:
    """The lesson at depth: the Gallery's deepest pair, drawn as the Gallery draws it."""
    items = ui_gallery.entries()
    if not items:
        return
    deepest = max(e.n_layers for e in items)
    pair = sorted((e for e in items if e.n_layers == deepest), key=lambda e: not e.skip)
    said = [
        f"{'with' if e.skip else 'without'} skips {gallery.verdict(e.row)} "
        f"({e.row['low_loss_regions']} separate low-loss region"
        f"{'s' if e.row['low_loss_regions'] != 1 else ''} inside the drawn lines, "
        f"{e.row['train_acc']:.0%} training accuracy)"
        for e in pair
    ]
    st.markdown(
        f"**At {deepest} layers** (the Gallery's ResNets on the digits, all trained the same "
        f"way; islands are closed contour lines apart from the main basin): "
        + "; ".join(said)
        + "."
    )
    for col, entry in zip(st.columns(len(pair)), pair):
        col.plotly_chart(ui_gallery.figure(entry, height=360), key=f"cmp_deep_{int(entry.skip)}")
        col.caption(gallery.caption(entry))


@st.fragment
def _charts(comp: Comparison) -> None:
    names = [plot_text(p.label) for p in comp.panels]
    c1, c2, c3 = st.columns(3)
    log_curves = c1.checkbox("Log-scale loss axes", value=False, **url("cmp_log_y"))
    log_colour = c2.checkbox("Log colour scale (2D)", value=True, **url("cmp_log_colour"))
    clip = c3.number_input(
        "Clip colour scale at loss (0: no clip)", 0.0, 1e9, 0.0, **url("cmp_clip"), format="%.4g"
    )
    trained = all(p.run is not None for p in comp.panels)  # operator's models: no history
    left, right = st.columns(2) if trained else (None, st.container())
    if trained:
        _loss_curves(comp, left, log_curves)
    norms = {p.norm for p in comp.panels}
    x_title = (
        "t (filter-normalised step)" if norms == {"filter"} else "t (step along the direction)"
    )
    right.plotly_chart(
        plots.line_overlay(
            [p.lines[0] for p in comp.panels],
            names,
            [p.level for p in comp.panels],
            log_curves,
            x_title,
        ),
        key="cmp_lines",
    )
    st.markdown("**2D slices on one colour scale** (same range and contour levels in every panel)")
    try:
        figs = plots.contour_panels(
            [p.plane for p in comp.panels], names, log=log_colour, zmax=clip if clip > 0 else None
        )
    except ValueError as e:
        show_error(e)
        return
    _grid(figs, "cmp_plane")
    conv = [p.convexity for p in comp.panels]
    if all(c is not None for c in conv):
        st.markdown(
            "**Convexity map**: max(−λmin, 0)/λmax of the Hessian at each point (Li et al. "
            "Fig. 7): 0 where no direction curves down, larger where negative curvature is strong"
        )
        xs = np.linspace(-comp.settings.span, comp.settings.span, comp.settings.convexity)
        _grid(plots.convexity_panels([c[0] for c in conv], xs, names), "cmp_conv")


def _loss_curves(comp: Comparison, where, log_curves: bool) -> None:
    runs: dict[int, tuple[list[str], object]] = {}  # a run shown in several panels: one curve
    for p in comp.panels:
        runs.setdefault(id(p.run), ([], p.run))[0].append(p.label)
    curve_names = [
        "every panel (one run)" if len(labs) == len(comp.panels) > 1 else " = ".join(labs)
        for labs, _ in runs.values()
    ]
    hists = [r.history for _, r in runs.values()]
    # runs of different lengths (20 vs 500 epochs): compare them by optimiser step
    spe = None
    if len({len(h["epoch"]) for h in hists}) > 1:
        spe = [-(-r.dataset().n_train // min(r.config.batch_size, r.dataset().n_train))
               for _, r in runs.values()]  # fmt: skip
    where.plotly_chart(plots.loss_curves(hists, curve_names, log_curves, spe), key="cmp_curves")


def _grid(figs: list, key: str) -> None:
    per_row = 2 if len(figs) == 4 else len(figs)
    for start in range(0, len(figs), per_row):
        cols = st.columns(per_row)
        for k, (col, fig) in enumerate(zip(cols, figs[start : start + per_row])):
            col.plotly_chart(fig, key=f"{key}_{start + k}")


def _notice() -> None:
    with st.expander("What to notice"):
        st.markdown(
            "- **One colour scale.** A colour means the same loss in every panel, so a tight "
            "ring of contours really is a steeper wall.\n"
            "- **Sharpness in numbers.** λmax is the curvature of the steepest direction of the "
            "bowl, the trace the sum over all directions; the basin width is how far you can "
            "walk along a random filter-normalised direction (1 = a step as large as the weights) "
            "before the loss rises by the chosen level, averaged over the directions.\n"
            "- **Scale matters.** λmax and the trace change when a ReLU net is rescaled without "
            "changing its function (see *Normalisation matters*); the filter-normalised basin "
            "width does not."
        )


# ----------------------------------------------------------------------------- page

st.title("Compare")
st.markdown(
    "Put loss landscapes side by side on **one colour scale** and measure how sharp each "
    "minimum is: skip connections or none, small or large batches, filter normalisation or "
    "none, MSE or Huber, SGD or Adam."
)
applied = _settings_form()
operators = ui_own.available()
tabs = st.tabs(
    ["Presets", "Your runs", "Surface files"] + (["Operator's models"] * bool(operators))
)
with tabs[0]:
    request = _preset_buttons()
with tabs[1]:
    request = _runs_picker() or request
with tabs[2]:
    ui_own.surface_files("cmp")
if operators:
    with tabs[3]:
        request = ui_own.operator_compare("cmp") or request
if request is None and RESULT not in st.session_state:
    request = linked_request()  # ?preset=<key> or ?runs=<id>~<id> of a link
if request is None and applied and REQUEST in st.session_state:
    request = st.session_state[REQUEST]  # new settings: measure the shown comparison again
if request is not None:
    _compute(request, _settings())

result = st.session_state.get(RESULT)
if result is None:
    st.info("Pick a preset above (or two of your runs) to see them side by side.")
else:
    # A page switch leaves the page's own parameters behind: the comparison shown goes back
    # into the address on every run, so Copy link and a reload name it.
    _keep_in_url(st.session_state.get(REQUEST, {"kind": "operator"}))
    _story(result)
    st.dataframe(_table(result["comparison"]), key="cmp_table", width="stretch")
    _charts(result["comparison"])
    comp = result["comparison"]
    if all(p.run is not None for p in comp.panels):
        ui_research.sharpness_section(comp, _settings().split)
    else:  # the operator's models: measured on their own data
        ui_research.sharpness_section(comp, "train", ui_own.sharpness_panels)
    _notice()
