"""Landscape: the loss around a trained net, along lines and over planes of weight space.

Thin page: widgets -> ``landscape.pipelines.pictures.SurfaceRequest`` -> the bounded cache in
``landscape.ui.landscape_page`` -> figures from ``landscape.plots``. The computed result
lives in ``st.session_state``, so switching plot type, colour range or log scale redraws the
picture inside a fragment without computing anything again.
"""

from __future__ import annotations

import numpy as np
import streamlit as st

from landscape.cli import reproduce
from landscape.pipelines import pictures, presets
from landscape.plots import landscape_page as page_plots
from landscape.plots import surfaces as plots
from landscape.storage import formats as store
from landscape.ui import charts, library, links
from landscape.ui import gallery as ui_gallery
from landscape.ui import landscape_page as ui
from landscape.ui import own_models as ui_own
from landscape.ui import runs as ui_runs
from landscape.ui.common import md_escape, show_error, torch_threads
from landscape.ui.links import url

torch_threads()

RESULT = "lp_result"  # session key: the last computed LandscapeResult
RUN_PICK = "run__pick"  # the run picker (its choice is ?run=<short id>)
VIEW_OF = "lp_view_of"  # session key: the result the picture widgets were set up for
RESULT_WIDGETS = ("lp_crange", "lp_epoch")  # their options come from the result
RESULT_RUNS = "lp_result_runs"  # session key: (centre run, other run or None) of that result
UPLOADED = "lp_uploaded"  # session key: file ids of uploads already added as runs
PLANE_HEIGHT = 600  # px: planes need room for the colour bar and the legend
#: The form's defaults (a 2D random plane): what Compute asks for before anything is changed,
#: and what the background warm-up computes for every preset (landscape.ui.warm).
DEFAULT = pictures.DEFAULT

LINE_LABELS = {
    "random": "Random direction(s), filter-normalised",
    "interpolation": "Initialisation → trained net",
    "between": "Between this run and another run",
}
PLANE_LABELS = {
    "random": "Two random directions, filter-normalised",
    "pca": "PCA plane of the training path",
    "hessian": "Top-2 Hessian eigenvectors (sharpest directions)",
}
NORM_HELP = (
    "filter: each filter (conv channel / Linear row) of the direction gets the norm of the "
    "matching weight filter (Li et al.); layer: the same per whole tensor; weight: each entry "
    "scaled by its weight; none: the raw Gaussian."
)
FILTER_WHY = (
    "**Why filter normalisation?** A ReLU net computes the same function when one layer is "
    "scaled up and the next one down, so a random step means something only relative to the "
    "size of the weights it moves: scaling each filter of the direction to the norm of its "
    "weight filter makes pictures of different nets comparable (a sharp-looking minimum is "
    "then really sharp, not just small weights)."
)


# ----------------------------------------------------------------------------- 1. the net


def _train_preset() -> None:
    """Train one of the ready presets here, with a progress bar; it joins the session."""
    name = st.selectbox("Preset", list(presets.PRESETS), **url("lp_preset"))
    st.caption(presets.PRESETS[name][1])
    if not st.button("Train this preset", key="lp_train_preset"):
        return
    config = presets.get(name)
    bar = st.progress(0.0, text="training")

    def progress(info: dict) -> None:
        frac = info["epoch"] / max(info["epochs"], 1)
        bar.progress(min(frac, 1.0), text=f"epoch {info['epoch']}/{info['epochs']}")

    try:
        run = ui_runs.train_cached(config, progress)  # in a heavy slot of its own
    except (ValueError, RuntimeError) as e:  # a bad config, or the server too busy
        show_error(e)
        return
    finally:
        bar.empty()
    ui_runs.select_run(ui_runs.add_run(run), key=RUN_PICK)
    st.rerun()


def _load_saved() -> None:
    """Upload a run saved by the Train page (.npz); it is read without unpickling."""
    file = st.file_uploader("Saved run (.npz)", type=["npz"], key="lp_upload")
    if file is None:
        return
    done = st.session_state.setdefault(UPLOADED, set())
    if file.file_id in done:
        return
    try:  # checked as hostile input: sizes before inflating, every field against its config
        run = store.run_from_bytes(file.getvalue(), name=file.name)
    except ValueError as e:  # the one error a bad file gives; the rest of the page stays
        show_error(e)
        return
    done.add(file.file_id)
    ui_runs.select_run(ui_runs.add_run(run), key=RUN_PICK)
    st.rerun()


def choose_run():
    """Section 1: the session's runs, or a preset trained here, or a saved run; the run."""
    st.subheader("1 · A trained network")
    run = library.run_picker("Run", RUN_PICK, param="run")  # ?run=<short id>, from the store
    runs = ui_runs.get_runs()
    if run is not None and st.button("Open in Train", key="lp_open_train"):
        library.open_in_train(run.config)
    shown = ui_gallery.of_result(st.session_state.get(RESULT))
    if shown is not None:
        st.caption(
            f"The picture below is the Gallery's {shown.label} slice, computed when the app was "
            "built; its weights do not ship with the app. To slice that net anew, open it in "
            "Train and train it (minutes on a CPU), or pick a run of this session."
        )
        if st.button("Open the Gallery's net in Train", key="lp_gallery_train"):
            library.open_in_train(shown.config)
    elif not runs:
        st.info(
            "No trained network in this session yet. Train one on the **Train** page and come "
            "back, train one of the ready presets below (a few seconds), or load a run you "
            "saved earlier."
        )
    with st.expander("Train a ready preset here", expanded=not runs):
        _train_preset()
    with st.expander("Load a saved run", expanded=False, key="lp_load_open"):  # stays open
        _load_saved()
    if run is not None and run.diverged:
        st.warning(
            f"This run diverged in epoch {run.diverged_epoch} (last finite loss "
            f"{run.last_finite_loss:.3g}); its landscape is around the last sane weights "
            "and may be mostly NaN/inf."
        )
    return run


# ----------------------------------------------------------------------------- 2. the slice


def _range_inputs(prefix: str, axis: str, lo: float, hi: float) -> tuple[float, float]:
    c1, c2 = st.columns(2)
    a = c1.number_input(f"{axis} from", value=lo, format="%g", **url(f"{prefix}_{axis}0"))
    b = c2.number_input(f"{axis} to", value=hi, format="%g", **url(f"{prefix}_{axis}1"))
    return float(a), float(b)


def _line_form(run, kind: str) -> dict:
    """Widgets of a 1D slice (inside the form); returns SurfaceRequest fields."""
    kw: dict = {"dim": 1, "direction": kind}
    if kind == "random":
        c1, c2 = st.columns(2)
        kw["seed"] = int(c1.number_input("Seed", 0, 2**31 - 1, 0, **url("lp_seed1")))
        kw["n_lines"] = c2.slider(
            "Directions overlaid",
            1,
            pictures.MAX_LINES,
            1,
            **url("lp_nlines"),
            help="Several random directions (seeds seed, seed+1, ...) show how much one "
            "random slice can vary.",
        )
        kw.update(_norm_inputs("lp1"))
    if kind == "between":
        others = {name: r for name, r in ui_runs.get_runs().items() if r is not run}
        if not others:
            st.info("Train or load a second run to interpolate to.")
        pick = st.selectbox("Second run (t = 1)", list(others), key="lp_other")
        kw["other"] = others.get(pick)
    default = (-0.5, 1.5) if kind != "random" else (-1.0, 1.0)
    kw["xmin"], kw["xmax"] = _range_inputs(f"lp1{kind}", "t", *default)
    kw["nx"] = st.slider("Points", pictures.MIN_RES, pictures.MAX_RES, 41, **url("lp_nx1"))
    return kw


def _norm_inputs(prefix: str) -> dict:
    c1, c2 = st.columns(2)
    norms = pictures.directions.NORMS
    norm = c1.selectbox(
        "Normalisation",
        norms,
        norms.index(DEFAULT.norm),
        **url(f"{prefix}_norm"),
        help=NORM_HELP,
    )
    ignores = ["biasbn", "none"]
    ignore = c2.radio(
        "Biases and BatchNorm",
        ignores,
        ignores.index(DEFAULT.ignore or "none"),
        format_func={"biasbn": "not moved", "none": "moved too"}.get,
        **url(f"{prefix}_ignore"),
        horizontal=True,
        help="One-dimensional tensors: with 'not moved' the direction is zero there (Li et "
        "al.'s default); 'moved too' steps them in proportion to themselves.",
    )
    return {"norm": norm, "ignore": ignore}


def _plane_form(kind: str) -> dict:
    """Widgets of a 2D slice (inside the form); returns SurfaceRequest fields."""
    kw: dict = {"dim": 2, "direction": kind}
    if kind in ("random", "hessian"):
        c1, c2 = st.columns(2)
        seed = c1.number_input("Seed", 0, 2**31 - 1, DEFAULT.seed, **url(f"lp_seed2{kind}"))
        kw["seed"] = int(seed)
        if kind == "random":
            kw["orthogonal"] = c2.checkbox(
                "Make d2 orthogonal to d1",
                DEFAULT.orthogonal,
                **url("lp_orth"),
                help="Gram-Schmidt before normalising.",
            )
        kw.update(_norm_inputs(f"lp2{kind}"))
    if kind == "pca":
        kw["auto_range"] = st.checkbox(
            "Range from the training path",
            True,
            **url("lp_auto"),
            help="Unit PCA axes: the range is in weight units; by default it frames the "
            "whole path.",
        )
        st.caption("The x/y ranges below apply when the range is not taken from the path.")
    kw["xmin"], kw["xmax"] = _range_inputs(f"lp2{kind}", "x", DEFAULT.xmin, DEFAULT.xmax)
    kw["ymin"], kw["ymax"] = _range_inputs(f"lp2{kind}", "y", DEFAULT.ymin, DEFAULT.ymax)
    c1, c2 = st.columns(2)
    lo, hi = pictures.MIN_RES, pictures.MAX_RES
    kw["nx"] = c1.slider("Points along x", lo, hi, DEFAULT.nx, **url("lp_nx2"))
    kw["ny"] = c2.slider("Points along y", lo, hi, DEFAULT.ny, **url("lp_ny2"))
    splits = pictures.SPLITS
    kw["split"] = st.radio(
        "Data", splits, splits.index(DEFAULT.split), **url("lp_split"), horizontal=True
    )
    return kw


def slice_form(run):
    """Section 2: what to slice. Returns (request, other run) when submitted, else None."""
    st.subheader("2 · The slice")
    c1, c2 = st.columns([1, 2])
    dims = ["2D plane", "1D line"]
    dim = c1.radio("Slice", dims, 2 - DEFAULT.dim, **url("lp_dim"), horizontal=True)
    labels = PLANE_LABELS if dim == "2D plane" else LINE_LABELS
    first = list(labels).index(DEFAULT.direction) if DEFAULT.direction in labels else 0
    kind = c2.selectbox(
        "Directions", list(labels), first, format_func=labels.get, **url(f"lp_kind{dim[0]}")
    )
    if kind in ("random", "hessian"):
        st.caption(FILTER_WHY)
    with st.form("lp_form", border=True):
        kw = _plane_form(kind) if dim == "2D plane" else _line_form(run, kind)
        pressed = st.form_submit_button(
            "Compute landscape", type="primary", disabled=run is None, key="lp_go"
        )
    # A link naming a run draws its picture at once (from the store when it was computed).
    auto = links.opened_with("run") and RESULT not in st.session_state
    if not (pressed or auto) or run is None:
        return None
    other = kw.pop("other", None)
    try:
        return pictures.SurfaceRequest.for_run(run, other, **kw), other
    except ValueError as e:
        show_error(e)
        return None


# ----------------------------------------------------------------------------- compute


def _preview(slot):
    """A callback drawing the quick coarse picture into ``slot`` while the full grid runs."""

    def draw(coarse) -> None:
        titles = {**_axis_titles(coarse), "title": "quick preview"}
        if coarse.path is not None:
            fig = plots.trajectory_figure(coarse.main, *coarse.path, coarse.explained, **titles)
        else:
            fig = plots.contour_figure(coarse.main, **titles)
        with slot.container():
            st.caption(
                f"Quick {coarse.request.nx}x{coarse.request.ny} preview; the full grid follows."
            )
            st.plotly_chart(fig.update_layout(height=PLANE_HEIGHT), key="lp_preview")

    return draw


def compute(request, run, other, slot) -> None:
    """Compute (or fetch from the cache) the request; the result goes to session state."""
    with slot.container():
        bar = st.progress(0.0, text=f"computing {request.label()}")
        preview = st.empty()
        try:
            result = ui.compute(
                request,
                run,
                other,
                progress=lambda f, text: bar.progress(float(min(max(f, 0.0), 1.0)), text=text),
                preview=_preview(preview),
            )
        except (ValueError, RuntimeError) as e:  # a slice that does not fit; a busy server
            show_error(e)
            return
        finally:
            bar.empty()
            preview.empty()
    st.session_state[RESULT] = result
    st.session_state[RESULT_RUNS] = (run, other)


# ----------------------------------------------------------------------------- 3. the picture


def _axis_titles(result) -> dict:
    req = result.request
    if req.direction == "pca":
        x, y = plots.pca_axis_titles(result.explained)
    elif req.direction == "hessian" and result.eigenvalues is not None:
        ev = result.eigenvalues
        x, y = f"v1 (λ1 = {ev[0]:.3g})", f"v2 (λ2 = {ev[1]:.3g})"
    else:
        x, y = f"d1 ({req.norm}-normalised, seed {req.seed})", "d2"
    return {"x_title": x, "y_title": y}


def _line_picture(result):
    req = result.request
    c1, c2 = st.columns(2)
    log = c1.toggle("Log-scale loss", **url("lp_log1"))
    acc = c2.toggle("Show accuracy", True, **url("lp_acc1"))
    names = [
        f"{key.split(':')[0]}" + (f" · d{int(key.split(':')[1]) + 1}" if req.n_lines > 1 else "")
        for key in result.surfaces
    ]
    x_title = {
        "random": "step along the direction (filter-normalised units)"
        if req.norm == "filter"
        else f"step along the direction ({req.norm})",
        "interpolation": "t (0 = initialisation, 1 = trained net)",
        "between": "t (0 = this run, 1 = the second run)",
    }[req.direction]
    return charts.chart(
        ("lp_line", result.request, log, acc),
        lambda: plots.line_figure(
            list(result.surfaces.values()), names, log_y=log, show_accuracy=acc, x_title=x_title
        ),
    )


def _colour_range(result) -> tuple[float | None, float | None]:
    """A slider over the loss values; returns (zmin, zmax), None where not narrowed."""
    loss = result.main.loss
    finite = loss[np.isfinite(loss)]
    if finite.size == 0:
        return None, None
    lo, hi = float(finite.min()), float(finite.max())
    if not hi > lo * (1 + 1e-9) + 1e-300:
        st.caption(f"The loss is constant over this range (to float precision): {lo:.6g}.")
        return None, None
    grid = np.geomspace(lo, hi, 41) if lo > 0 else np.linspace(lo, hi, 41)
    options = [float(v) for v in grid]
    if not set(st.session_state.get("lp_crange") or ()) <= set(options):
        st.session_state.pop("lp_crange", None)  # a range of another picture
    top = options[-1]
    if ui_gallery.of_result(result) is not None:  # clipped as the Gallery draws it
        top = max((v for v in options if v <= ui_gallery.ZMAX), default=top)
    a, b = st.select_slider(
        "Colour range (values outside are clipped to the end colours)",
        options=options,
        value=(options[0], top),
        format_func=_short_number,
        **url("lp_crange"),
    )
    return (a if a > options[0] else None), (b if b < options[-1] else None)


def _short_number(v: float) -> str:
    return f"{v:.3g}"


def _reset_view_widgets(result) -> None:
    """Clear the picture widgets whose options depend on the result when a new one is shown.

    They have fixed keys (a key per result would leave Streamlit one stale widget, and the
    page globals its callables reach, per result for the whole session).
    """
    if st.session_state.get(VIEW_OF) is not result:
        for key in RESULT_WIDGETS:
            st.session_state.pop(key, None)
        st.session_state[VIEW_OF] = result


def _plane_picture(result):
    _reset_view_widgets(result)
    req = result.request
    c1, c2 = st.columns([2, 1])
    kind = c1.radio("Plot", ["contour", "heatmap", "3D"], **url("lp_plot"), horizontal=True)
    log = c2.toggle("Log colour scale", True, **url("lp_logc"))
    zmin, zmax = _colour_range(result)
    path = labels = None
    if req.direction == "pca" and result.path is not None and kind != "3D":
        px, py = result.path
        last = len(px) - 1
        if st.session_state.get("lp_epoch", 0) > last:
            st.session_state.pop("lp_epoch")  # an epoch of a longer run
        k = st.slider("Path up to epoch", 0, last, last, **url("lp_epoch")) + 1
        path = (px[:k], py[:k])
        labels = [f"epoch {int(e)}" for e in result.path_epochs][:k]

    def build():
        return page_plots.plane_figure(
            result.main, kind, log=log, zmin=zmin, zmax=zmax, path=path, path_labels=labels,
            explained=result.explained, **_axis_titles(result),
        ).update_layout(height=PLANE_HEIGHT)  # fmt: skip

    shown_path = None if path is None else len(path[0])
    return charts.chart(("lp_plane", result.request, kind, log, zmin, zmax, shown_path), build)


def hessian_note(ignore: str) -> str:
    """Whose curvature λ1 and λ2 are: the weights the slice moves (Geometry's λmax counts
    every parameter, so the same run can show a different number there)."""
    if ignore == "biasbn":
        return (
            "λ1, λ2: the Hessian's top eigenvalues over the weights this slice moves; biases "
            "and BatchNorm parameters are left out ('not moved'), so λ1 can differ from "
            "Geometry's λmax, which counts every parameter. Choose 'moved too' to include them."
        )
    return "λ1, λ2: the Hessian's top eigenvalues over every parameter, biases included."


def _warn_parallel(result) -> None:
    """Two nearly parallel directions span a line, not a plane: say so."""
    if result.request.dim == 2 and result.cosine is not None and abs(result.cosine) > 0.99:
        st.warning(
            f"d1 and d2 are nearly parallel (cos = {result.cosine:.3f}): this slice is "
            "really a line. Small models have few weights to move (biases are held fixed); "
            "try 'Biases and BatchNorm: moved too', or the PCA plane."
        )


def _warn_nonfinite(result) -> None:
    bad, total = result.n_nonfinite(), result.n_total()
    if bad == total:
        st.warning(
            "Every point of this slice has a NaN/inf loss: nothing to draw. The net diverges "
            "everywhere in this range; try a smaller range (or a run that did not diverge)."
        )
    elif bad:
        st.warning(
            f"{bad} of {total} points have a NaN/inf loss (the net diverges there): they are "
            "left blank (masked) in the plot."
        )


def _facts(result) -> None:
    req, surf = result.request, result.main
    ui.metrics(result, "Loss of the trained net")
    if req.direction == "hessian" and result.eigenvalues is not None:
        st.caption(hessian_note(req.ignore))
    st.caption(
        f"{req.label()} · {result.n_total()} points in {result.seconds:.2f} s "
        f"({surf.meta.get('method', '?')} evaluation)"
    )


def _downloads(result, fig) -> None:
    req = result.request
    stem = f"landscape-{req.dim}d-{req.direction}"
    c = iter(st.columns(4))
    # 1D: the first line on train and on test data; 2D: the plane. Each with its directions.
    for n, (key, surf) in enumerate(list(result.surfaces.items())[: 2 if req.dim == 1 else 1]):
        split = key.split(":")[0]
        dirs = result.directions[:1] if req.dim == 1 else result.directions
        next(c).download_button(
            f"Surface .npz ({split})",
            data=lambda surf=surf, dirs=dirs: store.surface_to_bytes(surf, dirs),
            file_name=f"{stem}-{split}.npz",
            mime="application/octet-stream",
            on_click="ignore",
            key=f"lp_dl_npz{n}",
        )
    next(c).download_button(
        "Surface CSV",
        data=lambda: pictures.to_csv(result),
        file_name=f"{stem}.csv",
        mime="text/csv",
        on_click="ignore",
        key="lp_dl_csv",
    )
    next(c).download_button(
        "Figure HTML",
        data=lambda: fig.to_html(include_plotlyjs=True, full_html=True),
        file_name=f"{stem}.html",
        mime="text/html",
        on_click="ignore",
        key="lp_dl_html",
    )
    other = st.session_state.get(RESULT_RUNS, (None, None))[1]
    if req.direction == "between" and other is not None:
        st.download_button(
            "Second run .npz (for --end-run)",
            data=lambda: store.run_to_bytes(other),
            file_name="run_b.npz",
            on_click="ignore",
            key="lp_dl_runb",
        )
    if reproduce.needs_run_file(req.config):
        run = st.session_state.get(RESULT_RUNS, (None, None))[0]
        st.download_button(
            "Run .npz (for --load-run)",
            data=lambda: store.run_to_bytes(run),
            file_name="run.npz",
            on_click="ignore",
            key="lp_dl_run",
        )
        st.caption(
            "Reproduce it: this run was trained on your uploaded CSV, so the command loads the "
            "run file (it carries its data): save it as run.npz where you run the command."
        )
    else:
        st.caption("Reproduce it:")
    st.code(reproduce.landscape_command(result), language="bash", wrap_lines=True)


@st.fragment
def picture() -> None:
    """Section 3: draw the stored result; widgets here redraw without recomputing."""
    result = st.session_state.get(RESULT)
    if result is None:
        st.info("Choose a slice above and press **Compute landscape**.")
        return
    try:  # a fragment rerun runs outside the page's own try
        _draw(result)
    except ValueError as e:
        show_error(e)


def _draw(result) -> None:
    st.markdown(f"**{md_escape(_shown_name(result))}** · {md_escape(result.request.label())}")
    _warn_nonfinite(result)
    _warn_parallel(result)
    fig = _line_picture(result) if result.request.dim == 1 else _plane_picture(result)
    st.plotly_chart(fig, key="lp_chart")
    _facts(result)
    _downloads(result, fig)


def _shown_name(result) -> str:
    """The name of the net a result slices: its run's, or the Gallery entry's."""
    run = st.session_state.get(RESULT_RUNS, (None, None))[0]
    if run is not None:
        return run.name
    entry = ui_gallery.of_result(result)
    return f"Gallery: {entry.label}" if entry is not None else "the net"


def gallery_link() -> None:
    """``?gallery=<layers>-<0|1>`` names a Gallery slice: a link (or a reload) shows it; the
    address keeps it while that slice is the picture, and drops it when another is."""
    links.handled(ui_gallery.PARAM)
    asked = st.query_params.get(ui_gallery.PARAM)
    entry = ui_gallery.find(asked)
    linked = entry is not None and links.first_run() and links.opened_with(ui_gallery.PARAM)
    if linked and ui_gallery.of_result(st.session_state.get(RESULT)) is not entry:
        ui_gallery.show_in_landscape(entry)
    shown = ui_gallery.of_result(st.session_state.get(RESULT))
    if shown is None:
        st.query_params.pop(ui_gallery.PARAM, None)
    elif asked != ui_gallery.ident(shown):
        st.query_params[ui_gallery.PARAM] = ui_gallery.ident(shown)


def notes() -> None:
    """What to notice, with this result's numbers where there are some."""
    result = st.session_state.get(RESULT)
    share = (
        ""
        if result is None or result.path_share is None
        else (
            f" Here: **{100 * result.path_share:.3g}%** of the path's squared length lies in the "
            "plane shown."
        )
    )
    with st.expander("What to notice", expanded=True):
        st.markdown(
            f"""
- **Sharp vs flat minima.** A wide basin (loss rising slowly as you step away) is what
  nets that generalise tend to sit in; a narrow one is fragile. Compare the train and test
  lines in 1D, and compare a random plane with the top Hessian plane: the Hessian directions
  are the sharpest slice there is, while a random direction is nearly orthogonal to the few
  sharp ones and sees a much flatter bowl.
- **Why scale matters.** Set normalisation to *none*: the same function can look sharp or
  flat depending only on the size of its weights (scale invariance of ReLU layers). Filter
  normalisation measures each step relative to the filter it moves, so pictures of
  different nets are comparable (Li et al. 2018, Fig. 2-3).
- **How little of the path a random plane sees.** The PCA plane of the training path holds
  most of its movement (see the explained variance in the axis titles); a random plane in a
  space of P parameters holds only about 2/P of it, so the path drawn on a random plane
  would be almost a dot.{share}
"""
        )


# ----------------------------------------------------------------------------- page

st.title("Loss landscape")
st.markdown(
    "The loss of a trained net around its weights θ\\*: along a line θ\\* + t·d, or over a "
    "plane θ\\* + x·d1 + y·d2 (Li et al., *Visualizing the Loss Landscape of Neural Nets*, "
    "NeurIPS 2018)."
)
try:
    if ui_own.source("lp") == ui_own.OPERATOR:
        ui_own.operator_slice("lp")
    else:
        gallery_link()
        the_run = choose_run()
        asked = slice_form(the_run)
        st.subheader("3 · The picture")
        slot = st.empty()
        if asked is not None:
            compute(asked[0], the_run, asked[1], slot)
        picture()
    with st.expander("Open a surface file", expanded=False):
        ui_own.surface_file("lp")
    notes()
except ValueError as e:  # a bad value anywhere: a message, never a traceback
    show_error(e)
