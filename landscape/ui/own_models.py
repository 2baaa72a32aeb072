"""Widgets for surfaces made elsewhere and for the operator's own models (Landscape, Compare).

- ``surface_file(prefix)``: open a surface ``.npz`` made by the command line (an upload: size
  capped, read by ``landscape.storage.formats`` without unpickling) and draw it with every view the
  Landscape page has (contour, heatmap, 3D, the PCA path, 1D lines, colour range, log scale,
  downloads).
- ``operator_slice(prefix)``: the models of ``$LANDSCAPE_MODELS`` (the operator's file, never
  an upload) with the built-in runs' slice options (random planes and lines over weights or
  states, several lines overlaid, PCA of the checkpoints with either projection, the top-2
  Hessian plane, the lines from the first checkpoint and to another net), computed in the
  worker pool and cached.
- ``operator_compare(prefix)`` / ``compare_models`` / ``sharpness_panels``: the Compare
  page's request for 2-4 of them and their measures (``operator_models.compare``, the
  built-in runs' measures), drawn by the page with its own table and charts.
"""

from __future__ import annotations

import io

import numpy as np
import streamlit as st

from landscape.cli import reproduce
from landscape.pipelines import operator_models as om
from landscape.pipelines import pictures
from landscape.plots import compare as compare_plots
from landscape.plots import landscape_page as page_plots
from landscape.plots import surfaces as plots
from landscape.storage import formats as store
from landscape.ui import landscape_page
from landscape.ui.common import cached_job, run_heavy, show_error
from landscape.ui.links import url

MAX_FILE_BYTES = store.MAX_FILE_BYTES  # the upload cap of the hostile-file rules
PLANE_HEIGHT = 600


# ----------------------------------------------------------------------------- reading


def read_surface(raw: bytes, name: str):
    """(Surface, directions) from an uploaded file; ValueError naming the file otherwise."""
    if len(raw) > MAX_FILE_BYTES:
        raise ValueError(
            f"{name}: the file is {len(raw) / 2**20:.1f} MiB: the cap is "
            f"{MAX_FILE_BYTES // 2**20} MiB"
        )
    try:
        surf, dirs = store.surface_from_bytes(raw)
        _check_surface(surf)
    except ValueError as e:
        raise ValueError(f"{name}: {e}") from None
    return surf, dirs


def _check_surface(surf) -> None:
    """Shapes the figures rely on: a store file could still hold inconsistent arrays."""
    if surf.kind not in ("line", "plane"):
        raise ValueError(f"kind={surf.kind!r} must be 'line' or 'plane'")
    xs = np.asarray(surf.xs)
    want = (len(xs),) if surf.kind == "line" else (len(np.asarray(surf.ys)), len(xs))
    if surf.kind == "plane" and surf.ys is None:
        raise ValueError("a plane without ys coordinates")
    for name, arr in (("loss", surf.loss), ("accuracy", surf.accuracy)):
        if arr is not None and (
            np.asarray(arr).shape != want or np.asarray(arr).dtype.kind not in "fiu"
        ):
            raise ValueError(f"{name} has shape {np.asarray(arr).shape}: must be {want}, numeric")
    if not isinstance(surf.meta, dict):
        raise ValueError("metadata must be a JSON object")


def surface_file(prefix: str) -> None:
    """An uploader for a surface .npz and, once one is open, its picture."""
    key = f"{prefix}_surface_file"
    file = st.file_uploader(
        "Surface file (.npz written by `python -m landscape line|plane --out ...`)",
        type=["npz"],
        key=f"{key}_upload",
    )
    if file is None:
        st.session_state.pop(key, None)
        return
    if st.session_state.get(key, (None,))[0] != file.file_id:
        try:
            surf, dirs = read_surface(file.getvalue(), file.name)
        except ValueError as e:
            show_error(e)
            return
        st.session_state[key] = (file.file_id, file.name, surf, dirs)
    _, name, surf, dirs = st.session_state[key]
    draw(surf, dirs, f"{key}_view", name)


# ----------------------------------------------------------------------------- drawing


def _colour_range(surf, key: str):
    finite = surf.loss[np.isfinite(surf.loss)]
    if finite.size == 0:
        return None, None
    lo, hi = float(finite.min()), float(finite.max())
    if not hi > lo * (1 + 1e-9) + 1e-300:
        return None, None
    grid = np.geomspace(lo, hi, 41) if lo > 0 else np.linspace(lo, hi, 41)
    options = [float(v) for v in grid]
    a, b = st.select_slider(
        "Colour range (values outside are clipped to the end colours)",
        options=options,
        value=(options[0], options[-1]),
        format_func=lambda v: f"{v:.3g}",
        key=f"{key}_crange",
    )
    return (a if a > options[0] else None), (b if b < options[-1] else None)


LINE_X_TITLES = {
    "interpolation": "t (0 = first checkpoint, 1 = this net)",
    "between": "t (0 = this net, 1 = the 'to' net)",
}


def figure(surf, key: str, title: str | None = None, lines: dict | None = None):
    """The figure of a surface with the page's view controls (drawn under ``key``);
    ``lines``: {name: line Surface} overlaid in one figure instead of ``surf`` alone."""
    meta = surf.meta
    if surf.kind == "line":
        lines = lines or {str(meta.get("split", "loss")): surf}
        c1, c2 = st.columns(2)
        log = c1.toggle("Log-scale loss", key=f"{key}_log1")
        acc = c2.toggle("Show accuracy", True, key=f"{key}_acc")
        direction = meta.get("direction")
        if direction not in LINE_X_TITLES:
            x_title = "step along the direction"
        elif meta.get("run_name") is None:  # a file from the command line
            x_title = "t (0 = start, 1 = end)"
        else:
            x_title = LINE_X_TITLES[direction]
        return plots.line_figure(
            list(lines.values()),
            list(lines),
            log_y=log,
            show_accuracy=acc and surf.accuracy is not None,
            title=title,
            x_title=x_title,
        )
    c1, c2, c3 = st.columns([2, 1, 1])
    kind = c1.radio("Plot", ["contour", "heatmap", "3D"], key=f"{key}_plot", horizontal=True)
    log = c2.toggle("Log colour scale", True, key=f"{key}_logc")
    field = "loss"
    if surf.accuracy is not None:
        field = c3.radio("Field", ["loss", "accuracy"], key=f"{key}_field", horizontal=True)
    zmin, zmax = _colour_range(surf, key) if field == "loss" else (None, None)
    path, ratio = _path_of(meta)
    labels = None
    if path:  # as the built-in runs' PCA plane: the path up to a chosen checkpoint
        px, py = path
        last = len(px) - 1
        k = st.slider("Path up to checkpoint", 0, last, last, key=f"{key}_upto{last}") + 1
        path, labels = (px[:k], py[:k]), path_labels(meta, last + 1)[:k]
    return page_plots.plane_figure(
        surf, kind, field=field, log=log, zmin=zmin, zmax=zmax,
        path=path if kind != "3D" else None, path_labels=labels, explained=ratio, title=title,
        **dict(zip(("x_title", "y_title"), plots.pca_axis_titles(ratio) if path else ("d1", "d2"))),
    )  # fmt: skip


def _path_of(meta: dict):
    """((xs, ys), explained ratio or None) of a PCA surface's path, (None, None) without a
    usable one (a file's metadata is checked, not trusted)."""
    path, ratio = meta.get("path"), meta.get("explained_variance")
    if not isinstance(path, dict):
        return None, None
    try:
        px, py = np.asarray(path.get("x"), float), np.asarray(path.get("y"), float)
        ratio = None if ratio is None else np.asarray(ratio, float)
    except (TypeError, ValueError):
        return None, None
    if px.ndim != 1 or px.shape != py.shape or not 1 <= px.size <= 10_000:
        return None, None
    if ratio is not None and (ratio.shape != (2,) or not np.all(np.isfinite(ratio))):
        ratio = None
    return (px, py), ratio


def path_labels(meta: dict, n: int) -> list[str]:
    """Names of the ``n`` points of a PCA path: the checkpoint files, then the net itself."""
    spec = meta.get("model") if isinstance(meta.get("model"), dict) else {}
    files = spec.get("checkpoints") if isinstance(spec.get("checkpoints"), list) else []
    names = [str(c.get("file", "")).rsplit("/", 1)[-1] for c in files if isinstance(c, dict)]
    if len(names) == n - 1:
        names.append("the net (its weights)")
    return names if len(names) == n else [f"point {i + 1}" for i in range(n)]


def to_csv(surf) -> str:
    """Long format: x,y,loss,accuracy (y empty for a line)."""
    out = io.StringIO()
    out.write("x,y,loss,accuracy\n")
    acc = surf.accuracy
    if surf.kind == "line":
        for j, x in enumerate(surf.xs):
            a = "" if acc is None else repr(float(acc[j]))
            out.write(f"{float(x)!r},,{float(surf.loss[j])!r},{a}\n")
    else:
        for i, y in enumerate(surf.ys):
            for j, x in enumerate(surf.xs):
                a = "" if acc is None else repr(float(acc[i, j]))
                out.write(f"{float(x)!r},{float(y)!r},{float(surf.loss[i, j])!r},{a}\n")
    return out.getvalue()


def draw(surf, dirs, key: str, name: str = "", result=None) -> None:
    """Figure, facts, model spec and downloads of one surface (``result``: the slice it is
    the main surface of, whose lines are all drawn and written to the CSV)."""
    lines = None
    if result is not None and surf.kind == "line" and len(result.surfaces) > 1:
        lines = {f"d{int(k.split(':')[1]) + 1}": s for k, s in result.surfaces.items()}
    try:
        fig = figure(surf, key, lines=lines)
        if surf.kind == "plane":
            fig.update_layout(height=PLANE_HEIGHT)
        st.plotly_chart(fig, key=f"{key}_chart")
    except ValueError as e:
        show_error(e)
        return
    finite = surf.loss[np.isfinite(surf.loss)]
    bad = surf.loss.size - finite.size
    facts = f"{surf.kind} · {surf.loss.size} points"
    if finite.size:
        facts += f" · lowest loss {finite.min():.4g}"
    if bad:
        facts += f" · {bad} NaN/inf points left blank"
    st.caption(facts)
    spec = surf.meta.get("model")
    if isinstance(spec, dict):
        st.caption("Model spec recorded in the file:")
        st.json(spec, expanded=False)
    stem = (name.rsplit(".", 1)[0] if name else f"surface-{surf.kind}")[:80] or "surface"
    c = st.columns(3)
    c[0].download_button(
        "Surface .npz",
        data=lambda: store.surface_to_bytes(surf, dirs),
        file_name=f"{stem}.npz",
        mime="application/octet-stream",
        on_click="ignore",
        key=f"{key}_dl_npz",
    )
    c[1].download_button(
        "Surface CSV",
        data=lambda: to_csv(surf) if lines is None else pictures.to_csv(result),
        file_name=f"{stem}.csv",
        mime="text/csv",
        on_click="ignore",
        key=f"{key}_dl_csv",
    )
    c[2].download_button(
        "Figure HTML",
        data=lambda: fig.to_html(include_plotlyjs=True, full_html=True),
        file_name=f"{stem}.html",
        mime="text/html",
        on_click="ignore",
        key=f"{key}_dl_html",
    )


def side_by_side(surfaces: list, names: list[str], key: str) -> None:
    """Planes on one colour scale (Compare), lines overlaid."""
    planes = [s for s in surfaces if s.kind == "plane"]
    if planes:
        log = st.checkbox("Log colour scale", True, key=f"{key}_log")
        pn = [n for s, n in zip(surfaces, names) if s.kind == "plane"]
        figs = compare_plots.contour_panels(planes, pn, log=log)
        cols = st.columns(min(len(figs), 2))
        for k, fig in enumerate(figs):
            cols[k % len(cols)].plotly_chart(fig, key=f"{key}_plane{k}")
    lines = [s for s in surfaces if s.kind == "line"]
    if lines:
        ln = [n for s, n in zip(surfaces, names) if s.kind == "line"]
        st.plotly_chart(plots.line_figure(lines, ln), key=f"{key}_lines")


def surface_files(prefix: str, limit: int = 4) -> None:
    """Compare: up to ``limit`` surface files side by side."""
    files = st.file_uploader(
        f"Surface files (.npz from the command line; up to {limit})",
        type=["npz"],
        accept_multiple_files=True,
        key=f"{prefix}_surface_files",
    )
    if not files:
        return
    if len(files) > limit:
        st.error(f"{len(files)} files: compare at most {limit} at once")
        return
    surfaces, names = [], []
    for f in files:
        try:
            surfaces.append(read_surface(f.getvalue(), f.name)[0])
            names.append(f.name)
        except ValueError as e:
            show_error(e)
    if surfaces:
        side_by_side(surfaces, names, f"{prefix}_files")


# ----------------------------------------------------------------------------- operator's models

BUILT_IN, OPERATOR = "Built-in runs", "Operator's models"


def source(prefix: str) -> str:
    """Built-in runs or the operator's models (the choice only shows when there are some)."""
    if not available():
        return BUILT_IN
    return st.radio("Network", [BUILT_IN, OPERATOR], **url(f"{prefix}_source"), horizontal=True)


def available() -> dict:
    """The operator's entries; {} (with the message shown) when the file is broken."""
    try:
        return om.entries()
    except ValueError as e:
        show_error(e)
        return {}


@cached_job(16)
def _compute(req: om.OwnRequest, _wrap=None):
    return run_heavy(om.compute, req, label="this slice", wrap=_wrap)


def compute(req: om.OwnRequest):
    """The slice, from the bounded cache or the worker pool (keyed with the files' times)."""
    return _compute(req.replace(stamp=om.file_stamp(om.get(req.entry))))


LABELS = {
    1: {
        "random": "Random direction(s), normalised",
        "interpolation": "First checkpoint → this net",
        "between": "This net → the 'to' net",
    },
    2: {
        "random": "Random directions, normalised",
        "pca": "PCA plane of the checkpoints",
        "hessian": "Top-2 Hessian eigenvectors",
    },
}
PROJECTION_HELP = (
    "cos: each checkpoint's offset is dotted with the two unit axes (Li et al.); lstsq: the "
    "least-squares coordinates of the offset in the plane (the same for orthogonal axes)."
)


def _random_inputs(prefix: str, kind: str, d: int) -> dict:
    """Seed, normalisation and the rest of a random (or Hessian) slice's options."""
    kw: dict = {}
    a, b, c = st.columns(3)
    kw["seed"] = int(a.number_input("Seed", 0, 2**31 - 1, 0, **url(f"{prefix}_om_seed")))
    kw["norm"] = b.selectbox("Normalisation", om.D.NORMS, **url(f"{prefix}_om_norm"))
    kw["ignore"] = c.radio(
        "Biases and BatchNorm",
        ["biasbn", "none"],
        format_func={"biasbn": "not moved", "none": "moved too"}.get,
        **url(f"{prefix}_om_ignore"),
        horizontal=True,
    )
    if kind != "random":
        return kw
    a, b = st.columns(2)
    kw["dir_type"] = a.radio(
        "Direction over",
        list(om.own.DIR_TYPES),
        **url(f"{prefix}_om_dirtype"),
        horizontal=True,
        help="states: BatchNorm running statistics move with the weights",
    )
    if d == 2:
        kw["orthogonal"] = b.checkbox("d2 orthogonal to d1", **url(f"{prefix}_om_orth"))
    else:
        kw["n_lines"] = b.slider(
            "Directions overlaid",
            1,
            om.MAX_LINES,
            1,
            **url(f"{prefix}_om_nlines"),
            help="Several random directions (seeds seed, seed+1, ...) show how much one "
            "random slice can vary.",
        )
    return kw


def operator_form(prefix: str, entry) -> om.OwnRequest | None:
    """The slice widgets for one operator's model; the request when submitted."""
    c1, c2 = st.columns([1, 2])
    dim = c1.radio("Slice", ["2D plane", "1D line"], **url(f"{prefix}_om_dim"), horizontal=True)
    d = 2 if dim == "2D plane" else 1
    kind = c2.selectbox(
        "Directions", entry.kinds(d), format_func=LABELS[d].get, **url(f"{prefix}_om_kind{d}")
    )
    with st.form(f"{prefix}_om_form"):
        kw: dict = {"entry": entry.name, "dim": d, "direction": kind}
        if kind in ("random", "hessian"):
            kw.update(_random_inputs(prefix, kind, d))
        lo, hi = (-0.5, 1.5) if kind in ("interpolation", "between") else (-1.0, 1.0)
        a, b = st.columns(2)
        kw["xmin"] = float(
            a.number_input("x from", value=lo, format="%g", **url(f"{prefix}_om_x0"))
        )
        kw["xmax"] = float(b.number_input("x to", value=hi, format="%g", **url(f"{prefix}_om_x1")))
        if d == 2:
            a, b = st.columns(2)
            kw["ymin"] = float(
                a.number_input("y from", value=-1.0, format="%g", **url(f"{prefix}_om_y0"))
            )
            kw["ymax"] = float(
                b.number_input("y to", value=1.0, format="%g", **url(f"{prefix}_om_y1"))
            )
            if kind == "pca":
                a, b = st.columns(2)
                kw["auto_range"] = a.checkbox(
                    "Range from the path", True, **url(f"{prefix}_om_auto")
                )
                kw["projection"] = b.radio(
                    "Path projection",
                    list(om.D.PROJECTIONS),
                    **url(f"{prefix}_om_projection"),
                    horizontal=True,
                    help=PROJECTION_HELP,
                )
        a, b = st.columns(2)
        kw["nx"] = a.slider("Points along x", om.MIN_RES, om.MAX_RES, 21, **url(f"{prefix}_om_nx"))
        if d == 2:
            kw["ny"] = b.slider(
                "Points along y", om.MIN_RES, om.MAX_RES, 21, **url(f"{prefix}_om_ny")
            )
        go = st.form_submit_button("Compute landscape", type="primary", key=f"{prefix}_om_go")
    if not go:
        return None
    try:
        return om.OwnRequest(**kw)
    except ValueError as e:
        show_error(e)
        return None


def operator_slice(prefix: str) -> None:
    """Pick an operator's model, slice it, draw the result (kept in session state)."""
    entries = available()
    if not entries:
        st.info(f"No operator's models: the server was started without {om.ENV}.")
        return
    name = st.selectbox("Operator's model", list(entries), **url(f"{prefix}_om_entry"))
    entry = entries[name]
    st.caption(f"factory {entry.factory} · weights {entry.weights.rsplit('/', 1)[-1]}")
    req = operator_form(prefix, entry)
    key = f"{prefix}_om_result"
    if req is not None:
        with st.spinner(f"computing {req.label()}"):
            try:
                st.session_state[key] = compute(req)
            except (ValueError, RuntimeError) as e:
                show_error(e)
    result = st.session_state.get(key)
    if result is None or result.request.entry != name:
        return
    landscape_page.metrics(result, "Loss at the model's weights", "checkpoint path")
    if result.eigenvalues is not None:
        ev = result.eigenvalues
        st.caption(f"Hessian eigenvalues of the two directions: λ1 = {ev[0]:.4g}, λ2 = {ev[1]:.4g}")
    dirs = result.directions[:1] if result.request.dim == 1 else result.directions
    draw(result.main, dirs, f"{prefix}_om_view", name, result)
    st.caption("Reproduce it, in the folder of the operator's models file:")
    st.code(reproduce.own_model_command(result), language="bash", wrap_lines=True)


def operator_compare(prefix: str) -> dict | None:
    """Compare: pick 2-4 operator's models; the page's request when the button is pressed.

    The page measures them as it measures built-in runs (``compare_models``: the same
    slices, basin width, Hessian trace and top eigenvalue, convexity map) and shows them
    with the same table and charts.
    """
    entries = available()
    c1, c2 = st.columns([2, 1])
    names = c1.multiselect(
        "Operator's models (2 to 4)", list(entries), max_selections=4, **url(f"{prefix}_om_pick")
    )
    norm = c2.selectbox("Directions", om.D.NORMS, **url(f"{prefix}_om_cmp_norm"))
    st.caption(
        "Measured on each model's own data, with the measurement settings above (the 'Data' "
        "setting does not apply: an operator's model has one data set)."
    )
    if not st.button("Compare these models", disabled=len(names) < 2, key=f"{prefix}_om_cmp_go"):
        return None
    return {"kind": "operator", "names": list(names), "norm": norm}


@cached_job(8)
def _compare(names: tuple, norm: str, settings, stamps: tuple, _progress=None, _wrap=None):
    return run_heavy(
        om.compare,
        list(names),
        settings,
        norm,
        label="the comparison",
        callbacks={"progress": _progress},
        wrap=_wrap,
    )


def _stamps(names) -> tuple:
    return tuple(om.file_stamp(om.get(n)) for n in names)


def compare_models(names: list[str], norm: str, settings, progress=None):
    """``operator_models.compare`` in the worker pool, from a bounded cache keyed with the
    entries' file times (a changed file measures again)."""
    return _compare(tuple(names), norm, settings, _stamps(names), _progress=progress)


@cached_job(8)
def _sharpness(names: tuple, stamps: tuple, _progress=None, _wrap=None):
    return run_heavy(
        om.sharpness_panels,
        list(names),
        label="the sharpness measures",
        callbacks={"progress": _progress},
        wrap=_wrap,
    )


def sharpness_panels(names: list[str], progress=None):
    """``operator_models.sharpness_panels`` in the worker pool, cached like compare_models."""
    return _sharpness(tuple(names), _stamps(names), _progress=progress)
