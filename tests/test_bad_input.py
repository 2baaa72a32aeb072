"""Every widget of every page at its extremes, through AppTest: no exception escapes a page.

The table is generated from the pages themselves, not written by hand: after a run, every
slider, select_slider, number_input, selectbox, multiselect, radio, checkbox and toggle is
found and set in turn to each of its extremes (min and max; every option; empty and full
multiselects; the flipped switch; +-1e9 for unbounded numbers), the page is rerun, and it must
show no exception and no error that is really a crash in disguise (a Python exception's name
in an st.error). Widgets that appear because of another widget (a loss's parameters, a
dataset's sample slider, the 1D form) are swept too, until no new widget turns up.

Widgets inside a form are sent only when the form is submitted (AppTest models this), so they
are swept with a submit each time, on small settings (100 samples, 5 epochs, 3x3 grids).
The heavy buttons are not pressed for every combination; they are pressed with the extreme
settings that matter: the biggest model, the biggest data set, the most epochs, a learning
rate of 1e6 (divergence: a warning, no crash), the finest grid, a huge range (NaN/inf points:
a warning and a masked plot), a reversed range, a diverged run's landscape.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from markdown_text import shown
from streamlit.proto.WidgetStates_pb2 import WidgetState
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Radio, Selectbox

from landscape.data.config import Config
from landscape.training.loop import train
from landscape.ui import runs as ui_runs

ROOT = Path(__file__).resolve().parents[1]
PAGES = ROOT / "landscape/ui/server/app_pages"
KINDS = ("slider", "select_slider", "number_input", "selectbox", "multiselect", "radio")
KINDS += ("checkbox", "toggle", "text_input")
UNBOUNDED = 1e9  # what a user can type into a number box without min/max
CRASH = re.compile(
    r"\b(KeyError|TypeError|IndexError|AttributeError|ZeroDivisionError|AssertionError|"
    r"NameError|UnboundLocalError|RecursionError|NotImplementedError|OverflowError)\b"
    r"|Traceback|failed \("
)
TINY = Config(n_samples=100, epochs=5, width=8)


@pytest.fixture(scope="module")
def tiny():
    return train(TINY)


@pytest.fixture(scope="module")
def tiny2():
    return train(TINY.replace(seed=1))


# ----------------------------------------------------------------------------- the sweep


class _Staged:
    """Marks a widget whose state this test writes itself (see `stage_strings`)."""


def stage_strings(w, strings: list[str]) -> None:
    """Stage the formatted option string(s) a browser would send for a select widget.

    AppTest's own setters take the options' Python values, which are not known from the
    page (only their formatted labels are): so the widget state is written directly, the
    way the front end writes it. A form not submitted still keeps its old value (AppTest
    swaps in its unset marker, which this property respects).
    """
    base, mark = type(w), _Staged()

    def state(self):
        if self._value is not mark:
            return base._widget_state.fget(self)
        ws = WidgetState()
        ws.id = self.id
        if isinstance(self, Selectbox | Radio):
            ws.string_value = strings[0]
        else:
            ws.string_array_value.data[:] = strings
        return ws

    w.__class__ = type(f"Staged{base.__name__}", (base,), {"_widget_state": property(state)})
    w._value = mark


def ident(w) -> str:
    return w.key or w.id


def inputs(at) -> list[tuple[str, str]]:
    """(kind, key or id) of every input widget on the page now, in page order per kind."""
    return [(kind, ident(w)) for kind in KINDS for w in getattr(at, kind)]


def find(at, kind: str, name: str):
    return next((w for w in getattr(at, kind) if ident(w) == name), None)


def formatted(kind: str, w) -> list[str]:
    """The widget's current value as the formatted strings the front end sends."""
    if kind in ("selectbox", "radio"):
        return [w.options[w.index]]
    if kind == "multiselect":
        return list(w.values)
    v = w.value  # select_slider
    fmt = w.format_func
    return [fmt(x) for x in v] if isinstance(v, tuple | list) else [fmt(v)]


def extremes(kind: str, w) -> list:
    """The values to try: strings for select widgets, Python values for the others."""
    if kind == "slider":
        cast = type(w.value[0] if isinstance(w.value, tuple | list) else w.value)
        lo, hi = cast(w.min), cast(w.max)
        return [(lo, lo), (hi, hi), (lo, hi)] if isinstance(w.value, tuple | list) else [lo, hi]
    if kind == "select_slider":
        a, b = w.options[0], w.options[-1]
        return [[a, a], [b, b], [a, b]] if isinstance(w.value, tuple | list) else [[a], [b]]
    if kind == "number_input":
        cast = int if isinstance(w.value, int) else float
        lo = w.min if w.min is not None else -UNBOUNDED
        hi = w.max if w.max is not None else UNBOUNDED
        return [cast(lo), cast(hi)]
    if kind in ("selectbox", "radio"):
        return [[o] for o in w.options]
    if kind == "multiselect":
        return [[], list(w.options)]
    if kind in ("checkbox", "toggle"):
        return [not w.value]
    if kind == "text_input":
        return ["", "x" * 2000]
    raise AssertionError(kind)


def apply(kind: str, w, value) -> None:
    if kind in ("select_slider", "selectbox", "radio", "multiselect"):
        stage_strings(w, value)
    else:
        w.set_value(value)


# The Train page's optimiser panel is no st.form (its momentum slider follows the optimiser)
# but acts as one: its values train only when the Train button is pressed.
TRAIN_PANEL = {"tr_opt", "tr_lr", "tr_batch", "tr_epochs", "tr_wd", "tr_seed", "tr_mom"}


def in_form(w) -> bool:
    return bool(w.form_id) or w.key in TRAIN_PANEL


def submit(at, w) -> None:
    """Press the submit button of the form `w` sits in (if any)."""
    if w.form_id:
        button = next(b for b in at.button if b.form_id == w.form_id)
        button.click()
    elif w.key in TRAIN_PANEL:
        at.button(key="tr_train").click()


def run_ok(at, what: str, timeout: float = 120) -> None:
    """Rerun; no exception box, no crash hidden in an st.error."""
    at.run(timeout=timeout)
    assert not at.exception, f"{what}: {[e.value for e in at.exception]}"
    crashes = [e.value for e in at.error if CRASH.search(e.value)]
    assert not crashes, f"{what}: {crashes}"


class Sweep:
    """Walk every widget through its extremes, one at a time, restoring each afterwards.

    Depth first: after each value of a widget, the widgets that value made appear (a
    dataset's sample slider, a loss's parameters, the CNN's width) are swept right there,
    before the next value, so conditional widgets are covered in the state that shows them.
    """

    def __init__(self, at, page: str, forms: bool, skip: tuple[str, ...] = (), depth: int = 4):
        self.at, self.page, self.forms, self.skip, self.depth = at, page, forms, skip, depth
        self.seen: set[tuple[str, str]] = set()
        self.runs = 0

    def wanted(self, kind, name) -> bool:
        w = find(self.at, kind, name)
        if w is None or (kind, name) in self.seen or any(s in name for s in self.skip):
            return False
        if w.disabled:  # a browser user cannot change it either
            return False
        return in_form(w) == self.forms

    def __call__(self, level: int = 0, among: set | None = None) -> int:
        """Sweep every wanted widget on the page now (or only those in `among`)."""
        while todo := [k for k in inputs(self.at) if self.wanted(*k) and k in (among or {k})]:
            for kind, name in todo:
                if self.wanted(kind, name):
                    self.seen.add((kind, name))
                    self.one(kind, name, level)
        return self.runs

    def one(self, kind: str, name: str, level: int) -> None:
        w = find(self.at, kind, name)
        strings = kind in ("select_slider", "selectbox", "radio", "multiselect")
        orig = formatted(kind, w) if strings else w.value
        present = set(inputs(self.at))
        for value in extremes(kind, w):
            w = find(self.at, kind, name)
            if w is None:
                return
            apply(kind, w, value)
            submit(self.at, w)
            run_ok(self.at, f"{self.page}: {kind} {name!r} = {value!r}")
            self.runs += 1
            revealed = set(inputs(self.at)) - present
            if revealed and level < self.depth:
                self(level + 1, among=revealed)
        w = find(self.at, kind, name)
        if w is not None:  # staged: goes with the next run
            apply(kind, w, orig)


def sweep_together(at, page: str, forms: bool) -> int:
    """Every widget (of forms, or not in forms) at its first extreme at once, then at its
    last at once, then the middle options of selects one by one: the extremes of a heavy
    form without one heavy run per widget."""
    widgets = [(k, n) for k, n in inputs(at) if in_form(find(at, k, n)) == forms]
    table = {(k, n): extremes(k, find(at, k, n)) for k, n in widgets}
    runs = 0
    for pick in (0, -1):
        w = None
        for (kind, name), values in table.items():
            if find(at, kind, name).disabled:  # e.g. momentum while another optimiser is set
                continue
            w = find(at, kind, name)
            apply(kind, w, values[pick])
        submit(at, w)
        run_ok(at, f"{page}: all {'first' if pick == 0 else 'last'} extremes {table}")
        runs += 1
    for (kind, name), values in table.items():
        for value in values[1:-1]:
            w = find(at, kind, name)
            if w.disabled:
                continue
            apply(kind, w, value)
            submit(at, w)
            run_ok(at, f"{page}: {kind} {name!r} = {value!r}")
            runs += 1
    return runs


def app(page: str, *runs, timeout: float = 120) -> AppTest:
    at = AppTest.from_file(str(PAGES / page), default_timeout=timeout)
    if runs:
        at.session_state[ui_runs._SESSION_KEY] = {r.name: r for r in runs}
    run_ok(at, f"{page}: first run")
    return at


def set_and_submit(at, what: str, **values) -> None:
    """Set widgets by key (values as for `apply`), press their form's submit, rerun."""
    form_widget = None
    for key, value in values.items():
        kind, w = next((k, w) for k in KINDS for w in getattr(at, k) if w.key == key)
        apply(kind, w, value)
        form_widget = w if w.form_id else form_widget
    if form_widget is not None:
        submit(at, form_widget)
    elif any(b.key == "tr_train" for b in at.button):  # the Train page's button (no form)
        at.button(key="tr_train").click()
    run_ok(at, what)


def texts(elements) -> str:
    """What the elements show (Markdown rendered: user text in them is escaped)."""
    return " | ".join(shown(e.value) for e in elements)


def plotly_array(value) -> np.ndarray:
    """A Plotly JSON array: a list, or {"dtype", "bdata"} (base64 of the typed array)."""
    import base64

    if isinstance(value, dict):
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
    return np.asarray(value)


def plotly_specs(at) -> list[dict]:
    import json

    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


# ----------------------------------------------------------------------------- Home (lab.py)


def test_app_frame_and_home():
    at = AppTest.from_file(str(ROOT / "landscape/ui/server/lab.py"), default_timeout=60)
    run_ok(at, "lab.py")
    # nothing to set on the home page (the hidden server-instance widget is not for users)
    assert [w for w in inputs(at) if w[1] != ui_runs.BOOT_KEY] == []


# ----------------------------------------------------------------------------- Loss shapes


@pytest.mark.slow
def test_loss_shapes_every_widget_at_its_extremes():
    at = app("loss_shapes.py")
    sweep = Sweep(at, "loss_shapes", forms=False)
    assert sweep() >= 40  # 17 widgets at first, 20 once every loss is selected
    # selecting every loss revealed every loss's parameter sliders, which were swept too
    must = {"reg_barron_alpha", "reg_quantile_tau", "bin_focal_gamma", "ce_smoothing"}
    covered(sweep, must, 20)
    for key in ("reg_losses", "bin_losses"):  # and nothing selected at all
        stage_strings(find(at, "multiselect", key), [])
    run_ok(at, "loss_shapes: no loss selected")
    assert "Pick at least one loss" in texts(at.info)


def test_loss_shapes_zero_width_range_is_a_warning():
    at = app("loss_shapes.py")
    find(at, "slider", "reg_range").set_value((50.0, 50.0))
    run_ok(at, "reg_range = (50, 50)")
    assert "zero width" in texts(at.warning)


# ----------------------------------------------------------------------------- Train


def train_page() -> AppTest:
    """The Train page on small settings (100 samples, 5 epochs) with one run trained."""
    at = app("train.py")
    set_and_submit(at, "small run", tr_n_moons=100, tr_epochs=5)
    assert len(at.session_state[ui_runs._SESSION_KEY]) == 1
    return at


@pytest.mark.slow
def test_train_setup_widgets_at_their_extremes():
    at = train_page()
    sweep = Sweep(at, "train", forms=False)
    sweep()
    # every dataset's own sliders, the image models' widgets, every loss's parameters
    swept = covered(sweep, {"tr_n_digits", "tr_model_img", "tr_outliers", "tr_skip"}, 10)
    assert any(n.startswith("tr_lp_huber") for n in swept), swept
    assert len(at.session_state[ui_runs._SESSION_KEY]) == 1  # nothing trained by the sweep


def test_train_form_widgets_at_their_extremes():
    """The optimiser form at all its minima at once (SGD, lr 1e-4, batch 1, 1 epoch, ...),
    at all its maxima at once (AdamW, lr 1e6, full batch, 500 epochs, decay 1, ...), and
    each other optimiser: every submit is a real (small) training run."""
    at = train_page()
    assert sweep_together(at, "train", forms=True) == 4
    runs = at.session_state[ui_runs._SESSION_KEY]
    assert len(runs) == 5  # the small run + four new ones: they really trained
    configs = [r.config for r in runs.values()]
    assert any(c.lr == 1e-4 and c.batch_size == 1 and c.epochs == 1 for c in configs)
    assert any(c.lr == 1e6 and c.batch_size == 5000 and c.epochs == 500 for c in configs)


def test_train_huge_learning_rate_diverges_with_a_warning():
    at = train_page()
    set_and_submit(at, "lr 1e6", tr_lr=["1e+06"], tr_opt=["SGD"])
    assert "Diverged" in texts(at.warning)
    assert plotly_specs(at)  # the curves up to the last sane epoch are still drawn


def test_train_biggest_model():
    """Depth and width at their caps together exceed the parameter cap: a clear message and
    no run; the largest width at a smaller depth trains."""
    at = train_page()
    set_and_submit(at, "8x256 + BN", tr_depth_mlp=8, tr_width_mlp=["256"], tr_bn=True, tr_epochs=1)
    assert "parameters" in texts(at.error) and "cap" in texts(at.error), texts(at.error)
    before = len(at.session_state[ui_runs._SESSION_KEY])
    set_and_submit(at, "3x256 + BN", tr_depth_mlp=3, tr_width_mlp=["256"], tr_bn=True, tr_epochs=1)
    runs = list(at.session_state[ui_runs._SESSION_KEY].values())
    assert len(runs) == before + 1
    assert any(r.config.depth == 3 and r.config.width == 256 for r in runs)


def test_train_most_epochs():
    at = train_page()
    set_and_submit(at, "500 epochs", tr_epochs=500, tr_batch=["5000"])
    run = list(at.session_state[ui_runs._SESSION_KEY].values())[-1]
    assert run.config.epochs == 500 and len(run.history["epoch"]) == 501


def test_train_biggest_dataset_one_epoch():
    at = train_page()
    set_and_submit(at, "5000 samples", tr_n_moons=5000, tr_epochs=1)
    run = list(at.session_state[ui_runs._SESSION_KEY].values())[-1]
    assert run.config.n_samples == 5000


def test_train_regression_outliers_extremes():
    at = train_page()
    stage_strings(find(at, "selectbox", "tr_dataset"), ["Line with outliers"])
    run_ok(at, "dataset outliers")
    set_and_submit(at, "most outliers", tr_n_outliers=100, tr_outliers=50, tr_outlier_scale=20.0)
    set_and_submit(at, "outliers, lr 1e6", tr_lr=["1e+06"], tr_epochs=5)
    assert "Diverged" in texts(at.warning)


# ----------------------------------------------------------------------------- Landscape


def landscape_page(*runs) -> AppTest:
    """The Landscape page with `runs` in the session and a 3x3 plane computed."""
    at = app("loss_landscape.py", *runs)
    set_and_submit(at, "3x3 plane", lp_nx2=3, lp_ny2=3)
    assert "lp_result" in at.session_state
    return at


def covered(sweep: Sweep, must: set[str], at_least: int) -> set[str]:
    """The widget keys a sweep went through, checked: a renamed key must not pass unswept."""
    swept = {name for _, name in sweep.seen}
    assert must <= swept, f"not swept: {must - swept}"
    assert len(swept) >= at_least and sweep.runs >= len(swept), (len(swept), sweep.runs)
    return swept


@pytest.mark.slow
def test_landscape_widgets_at_their_extremes(tiny, tiny2):
    at = landscape_page(tiny, tiny2)
    page = Sweep(at, "landscape", forms=False, skip=("lp_preset",))  # a preset is cheap
    page()
    covered(page, {"run__pick", "lp_dim", "lp_plot", "lp_logc", "lp_crange"}, 5)
    # then every form widget, each a small computation (the 1D form too)
    form = Sweep(at, "landscape", forms=True)
    form()
    covered(form, {"lp_nx2", "lp_ny2", "lp_split", "lp_orth"}, 8)
    stage_strings(find(at, "radio", "lp_dim"), ["1D line"])
    run_ok(at, "1D line")
    line = Sweep(at, "landscape 1D", forms=True)
    line()
    covered(line, {"lp_nx1", "lp_seed1", "lp_nlines"}, 5)


@pytest.mark.slow
def test_landscape_finest_grid(tiny):
    at = landscape_page(tiny)
    set_and_submit(at, "101x101", lp_nx2=101, lp_ny2=101)
    surf = at.session_state["lp_result"].main
    assert surf.loss.shape == (101, 101) and np.isfinite(surf.loss).all()
    trace = plotly_specs(at)[-1]["data"][0]
    np.testing.assert_array_equal(plotly_array(trace["x"]), surf.xs)  # drawn at full size
    np.testing.assert_array_equal(plotly_array(trace["y"]), surf.ys)


def test_landscape_range_beyond_the_cap_is_an_error(tiny):
    at = landscape_page(tiny)
    before = at.session_state["lp_result"]
    set_and_submit(at, "range 1e9", lp2random_x0=-UNBOUNDED, lp2random_x1=UNBOUNDED)
    assert "|xmin| <= 10000" in texts(at.error)
    assert at.session_state["lp_result"] is before  # the last picture stays


def test_landscape_overflowing_range_warns_and_masks():
    """A deep net, unnormalised directions, the largest range: the loss overflows to inf/NaN
    over most of the plane. That is a result: a warning and a plot with those points masked."""
    deep = train(TINY.replace(depth=8, epochs=1))
    at = landscape_page(deep)
    set_and_submit(
        at,
        "range 1e4, norm none",
        lp2random_norm=["none"],
        lp2random_x0=-1e4,
        lp2random_x1=1e4,
        lp2random_y0=-1e4,
        lp2random_y1=1e4,
        lp_nx2=5,
        lp_ny2=5,
    )
    loss = at.session_state["lp_result"].main.loss
    assert loss.shape == (5, 5) and (~np.isfinite(loss)).any()
    assert "NaN/inf" in texts(at.warning)
    assert plotly_specs(at)  # drawn all the same
    for field in ("heatmap", "3D"):  # every plot type copes
        stage_strings(find(at, "radio", "lp_plot"), [field])
        run_ok(at, f"overflowing plane as {field}")


def test_landscape_reversed_and_empty_ranges_are_errors(tiny):
    at = landscape_page(tiny)
    for x0, x1 in ((1.0, -1.0), (0.5, 0.5)):
        set_and_submit(at, f"x range {x0}..{x1}", lp2random_x0=x0, lp2random_x1=x1)
        assert at.error, f"x from {x0} to {x1} should be refused with a message"


def test_landscape_tiny_range(tiny):
    """A range of 2e-9 is a valid slice: the grid spans it and the loss there is the loss at
    the trained weights (a step of 1e-9 along a unit-scale direction changes nothing)."""
    at = landscape_page(tiny)
    set_and_submit(at, "range 1e-9", lp2random_x0=-1e-9, lp2random_x1=1e-9)
    assert not at.error
    result = at.session_state["lp_result"]
    assert (result.main.xs[0], result.main.xs[-1]) == (-1e-9, 1e-9)
    centre = tiny.history["train_loss"][-1]
    assert result.main.ys[1] == 0.0  # the row through the trained weights: x alone moves
    np.testing.assert_allclose(result.main.loss[1, :], centre, rtol=1e-4)


def test_landscape_of_a_diverged_run(tiny):
    bad = train(TINY.replace(lr=1e6, optimizer="sgd"))
    assert bad.diverged
    at = landscape_page(bad)
    assert "diverged" in texts(at.warning)


def test_landscape_between_with_a_single_run(tiny):
    at = landscape_page(tiny)
    stage_strings(find(at, "radio", "lp_dim"), ["1D line"])
    run_ok(at, "1D line")
    stage_strings(find(at, "selectbox", "lp_kind1"), ["Between this run and another run"])
    run_ok(at, "between")
    assert "Train or load a second run" in texts(at.info)
    before = at.session_state["lp_result"]
    find(at, "button", "lp_go").click()
    run_ok(at, "between, no second run")
    assert "needs a second run" in texts(at.error)  # refused with a message, nothing computed
    assert at.session_state["lp_result"] is before


def test_landscape_rejects_a_pickled_run_file(tmp_path):
    """Loading a saved run never unpickles: a file holding a pickled object is refused."""
    import io

    evil = io.BytesIO()
    np.savez(evil, config=np.array([{"os": "system"}], dtype=object))
    at = app("loss_landscape.py")
    at.file_uploader(key="lp_upload").set_value(
        ("run.npz", evil.getvalue(), "application/octet-stream")
    )
    run_ok(at, "pickled upload")
    assert at.error and "run.npz" in texts(at.error)
    junk = b"not a zip file at all"
    at.file_uploader(key="lp_upload").set_value(("junk.npz", junk, "application/octet-stream"))
    run_ok(at, "junk upload")
    assert "junk.npz" in texts(at.error)


# ----------------------------------------------------------------------------- Compare


def test_compare_widgets_at_their_extremes(tiny, tiny2):
    at = app("compare.py", tiny, tiny2)
    page = Sweep(at, "compare", forms=False, skip=("cmp_preset_",))
    page()
    covered(page, {"cmp_run_a", "cmp_norm_a", "cmp_run_b", "cmp_norm_b"}, 4)
    form = Sweep(at, "compare settings", forms=True)  # no comparison yet: validation only
    form()
    covered(form, {"cmp_span", "cmp_res", "cmp_ndirs", "cmp_level", "cmp_seed", "cmp_conv"}, 8)


def compare_runs(at) -> None:
    find(at, "button", "cmp_go_runs").click()
    run_ok(at, "compare runs", timeout=180)
    assert "cmp_result" in at.session_state


@pytest.mark.slow
def test_compare_smallest_and_largest_settings(tiny, tiny2):
    at = app("compare.py", tiny, tiny2)
    set_and_submit(at, "small settings", cmp_res=["11"], cmp_ndirs=1, cmp_span=["0.25"])
    compare_runs(at)
    display = Sweep(
        at, "compare display", forms=False, skip=("cmp_preset_", "cmp_go", "cmp_run", "cmp_norm")
    )
    display()  # log scales, clip at 0 and at 1e9
    covered(display, {"cmp_log_y", "cmp_log_colour", "cmp_clip"}, 3)
    set_and_submit(
        at,
        "large settings",
        cmp_res=["41"],
        cmp_ndirs=8,
        cmp_span=["3.0"],
        cmp_level=1e-4,
        cmp_level_mode=["absolute loss"],
        cmp_seed=2**31 - 1,
    )
    assert at.session_state["cmp_result"]["comparison"].settings.resolution == 41


def test_compare_scaled_preset(monkeypatch):
    monkeypatch.setenv("LANDSCAPE_COMPARE_SCALE", "0.05")
    at = app("compare.py")
    set_and_submit(at, "small settings", cmp_res=["11"], cmp_ndirs=1)
    find(at, "button", "cmp_preset_loss").click()
    run_ok(at, "loss preset", timeout=180)
    assert at.session_state["cmp_result"]["preset"] == "loss"


def test_sweep_helpers_are_faithful():
    """The sweep's own machinery: a staged option really reaches the script."""
    at = AppTest.from_string(
        """
import streamlit as st
fmt = {"a": "Alpha", "b": "Beta"}.get
v = st.selectbox("s", ["a", "b"], format_func=fmt, key="s")
w = st.select_slider("l", [0.001, 1e6], value=0.001, format_func=lambda v: f"{v:g}", key="l")
m = st.multiselect("m", ["a", "b"], default=["a"], format_func=fmt, key="m")
with st.form("f"):
    r = st.radio("r", ["a", "b"], format_func=fmt, key="r")
    st.form_submit_button("go")
st.write(f"{v}|{w!r}|{m}|{r}")
"""
    )
    at.run()
    assert extremes("select_slider", find(at, "select_slider", "l")) == [["0.001"], ["1e+06"]]
    stage_strings(find(at, "selectbox", "s"), ["Beta"])
    stage_strings(find(at, "select_slider", "l"), ["1e+06"])
    stage_strings(find(at, "multiselect", "m"), [])
    stage_strings(find(at, "radio", "r"), ["Beta"])
    at.run()
    assert at.markdown[-1].value == "b|1000000.0|[]|a"  # the form was not submitted
    stage_strings(find(at, "radio", "r"), ["Beta"])
    submit(at, find(at, "radio", "r"))
    at.run()
    assert at.markdown[-1].value == "b|1000000.0|[]|b"
    assert math.isclose(find(at, "select_slider", "l").value, 1e6)


def test_sweep_finds_a_crash_and_a_disguised_one():
    """The sweep can fail: a page that breaks at a slider's maximum is caught, and so is one
    that catches the exception and shows its type in an st.error."""
    crash = "import streamlit as st\nx = st.slider('x', 0, 10, 5, key='x')\n1 / (10 - x)"
    at = AppTest.from_string(crash)
    at.run()
    with pytest.raises(AssertionError, match="slider 'x' = 10"):
        Sweep(at, "demo", forms=False)()
    disguised = (
        "import streamlit as st\nx = st.slider('x', 0, 10, 5, key='x')\n"
        "if x == 0:\n    st.error('This section failed (KeyError): 0')"
    )
    at = AppTest.from_string(disguised)
    at.run()
    with pytest.raises(AssertionError, match="KeyError"):
        Sweep(at, "demo", forms=False)()
