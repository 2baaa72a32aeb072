"""Loss shapes: the loss zoo side by side, its derivatives, and why robust losses ignore outliers.

Each section is an `st.fragment`: moving a slider redraws only that section's charts. The
numbers come from `landscape.core.losses` / `landscape.core.robust` (through bounded caches in
`landscape.ui.loss_page`), the figures from `landscape.plots.losses`.
"""

import functools

import streamlit as st

from landscape.core import losses
from landscape.ui import loss_page as ui
from landscape.ui.common import show_error
from landscape.ui.links import url

DEFAULT_REGRESSION = ["mse", "mae", "huber", "barron"]
DEFAULT_BINARY = ["zero_one", "hinge", "logistic", "exponential", "focal"]
TRUE_SLOPE, TRUE_INTERCEPT = 2.0, 1.0  # make_outlier_line's defaults: the line under the data
CHART = {"config": {"displaylogo": False}}


def display(name: str) -> str:
    return losses.get(name).display


def chart_with_note(fig, key: str, note: str) -> None:
    """A chart with its 'what to notice' text beside it."""
    left, right = st.columns([3, 1], vertical_alignment="center")
    left.plotly_chart(fig, key=key, **CHART)
    right.markdown(note)


def section(body):
    """An st.fragment (its sliders rerun only it) that shows errors as st.error.

    The try/except must live inside the fragment: a fragment rerun does not pass through
    the page's top level. Bad input (ValueError) shows its message; anything else is a bug,
    shown without a traceback so the other sections still work."""

    @functools.wraps(body)
    def guarded() -> None:
        try:
            body()
        except ValueError as exc:
            show_error(exc)
        except Exception as exc:  # noqa: BLE001 - never let a traceback reach the user
            show_error(exc, prefix=f"This section failed ({type(exc).__name__}): ")

    return st.fragment(guarded)


def checked_range(lo: float, hi: float, what: str) -> tuple[float, float]:
    """A zero-width range cannot be drawn: widen it by 1 on each side and say so."""
    if hi - lo > 0:
        return lo, hi
    st.warning(
        f"The {what} range [{lo:g}, {hi:g}] has zero width: showing [{lo - 1:g}, {hi + 1:g}]."
    )
    return lo - 1.0, hi + 1.0


# ----------------------------------------------------------------------------- regression


NOTE_RHO = """
**What to notice**
- **MSE** grows like r²: a point 10 away costs 100× a point 1 away, so a few far points
  dominate the sum.
- **Huber**, smooth L1, pseudo-Huber and log-cosh are quadratic near 0 and only *linear*
  far away.
- **Barron** with α < 0 flattens out: past a few c a residual costs about the same however
  large it is: the loss gives up on that point.
"""

NOTE_PSI = """
**What to notice**

ψ is the pull a point exerts on the fit. MSE's pull grows without bound: the farthest point
pulls hardest. Huber's is clipped at ±δ, L1's is ±1 whatever the size. Cauchy (α = 0) and
the other α < 0 losses *redescend*: a far outlier pulls *less* than a moderate one.
"""

NOTE_WEIGHT = """
**What to notice**

Robust regression (IRLS) is least squares with a weight ψ(r)/r per point. MSE weighs every
point the same. Huber's weight is 1 inside δ and δ/|r| outside: a point 10δ away counts 10×
less. Cauchy's falls like 1/r²: outliers are all but ignored. L1's weight 1/|r| runs off to
infinity at 0.
"""


@section
def regression_section() -> None:
    st.header("Regression losses")
    controls, formulas = st.columns([1, 1])
    with controls:
        chosen = st.multiselect(
            "Losses (of the residual r = y − ŷ)",
            losses.names("regression"),
            default=DEFAULT_REGRESSION,
            format_func=display,
            **url("reg_losses"),
        )
        lo, hi = st.slider("Residual range", -50.0, 50.0, (-4.0, 4.0), step=0.5, **url("reg_range"))
        params = {}
        for name in chosen:
            params[name] = ui.param_sliders(name, "reg")
    if not chosen:
        st.info("Pick at least one loss to draw.")
        return
    lo, hi = checked_range(lo, hi, "residual")
    with formulas:
        for name in chosen:
            st.latex(rf"\text{{{display(name)}}}:\quad " + losses.get(name).latex)
        if "msle" in chosen:
            st.caption(
                f"MSLE is not a function of r alone: it is drawn at target y = "
                f"{losses.CURVE_TARGET['msle']:g} (ŷ = y − r, clamped at 0)."
            )
    given = tuple((n, ui.frozen(params[n])) for n in chosen)
    charts = ui.regression_charts(tuple(chosen), lo, hi, given)
    for key, note in (("rho", NOTE_RHO), ("psi", NOTE_PSI), ("weight", NOTE_WEIGHT)):
        chart_with_note(charts[key], f"reg_chart_{key}", note)


# ----------------------------------------------------------------------------- binary

NOTE_BINARY = r"""
**What to notice**

All are smooth or convex stand-ins for the 0-1 step, which has no useful gradient.
**Hinge** is exactly 0 once m ≥ 1: points classified with room to spare stop mattering
(only the support vectors do). **Logistic** never reaches 0: it keeps pushing confident
points further. **Exponential** explodes for m < 0: one mislabelled point dominates.
**Focal** scales the logistic loss down by $(1 - p_t)^\gamma$ where the point is
already easy.
"""


@section
def binary_section() -> None:
    st.header("Binary classification losses")
    chosen = st.multiselect(
        "Losses (of the margin m = y·f(x), y = ±1)",
        losses.names("binary"),
        default=DEFAULT_BINARY,
        format_func=display,
        **url("bin_losses"),
    )
    controls, chart = st.columns([1, 3])
    with controls:
        lo, hi = st.slider("Margin range", -10.0, 10.0, (-3.0, 3.0), step=0.5, **url("bin_range"))
        params = {n: ui.param_sliders(n, "bin") for n in chosen}
    if not chosen:
        controls.info("Pick at least one loss to draw.")
        return
    with chart:
        lo, hi = checked_range(lo, hi, "margin")
        given = tuple((n, ui.frozen(params[n])) for n in chosen)
        chart_with_note(ui.margin_chart(tuple(chosen), lo, hi, given), "bin_chart", NOTE_BINARY)
        if "bce" in chosen:
            st.caption(
                "BCE takes probabilities: it is drawn at p = σ(m), where it equals logistic."
            )


# ----------------------------------------------------------------------------- cross-entropy


@section
def cross_entropy_section() -> None:
    st.header("Cross-entropy and label smoothing")
    controls, chart = st.columns([1, 3])
    with controls:
        n_classes = st.slider("Classes C", 2, 100, 10, **url("ce_classes"))
        eps = st.slider("Label smoothing ε", 0.0, 0.5, 0.1, step=0.01, **url("ce_smoothing"))
        st.latex(losses.get("cross_entropy").latex)
    best = 1 - eps + eps / n_classes
    note = f"""
**What to notice**

Plain cross-entropy keeps falling as p → 1: it always wants more confidence, which drives
logits to infinity on separable data. With label smoothing ε = {eps:g} and C = {n_classes}
the minimum moves to p = 1 − ε + ε/C = **{best:.3f}**: being more confident than that is
*penalised*, so the net stays calibrated-ish and its logits stay finite.
"""
    with chart:
        chart_with_note(ui.cross_entropy_chart(n_classes, eps), "ce_chart", note)


# ----------------------------------------------------------------------------- outliers


@section
def outlier_section() -> None:
    st.header("Outlier demo: four losses fit one line")
    controls, chart = st.columns([1, 3])
    with controls:
        n_out = st.slider("Outliers (of 40 points)", 0, 20, 5, **url("out_n"))
        offset = st.slider(
            "How far off (below the line)", 0.0, 30.0, 10.0, step=0.5, **url("out_offset")
        )
        delta = st.slider("Huber δ", 0.1, 5.0, 1.0, step=0.1, **url("out_delta"))
        c = st.slider("Cauchy scale c (Barron α = 0)", 0.1, 5.0, 1.0, step=0.1, **url("out_c"))
        seed = st.slider("Data seed", 0, 20, 0, **url("out_seed"))
    fig, slopes = ui.outlier_chart(n_out, offset, delta, c, seed, (TRUE_SLOPE, TRUE_INTERCEPT))
    note = f"""
**What to notice**

The true slope is **{TRUE_SLOPE:g}**. MSE: **{slopes["mse"]:.2f}**, L1:
**{slopes["mae"]:.2f}**, Huber: **{slopes["huber"]:.2f}**, Cauchy: **{slopes["barron"]:.2f}**.
The outliers sit at the right end, where they have the most leverage: MSE tilts toward
them more the farther they are; Huber's pull is capped at δ, so beyond some distance moving
them further changes nothing; Cauchy all but ignores them. Push the count up: once enough
outliers cluster together, every fit breaks down, since no loss can tell which group of
points is "right".
"""
    with chart:
        chart_with_note(fig, "out_chart", note)


# ----------------------------------------------------------------------------- page

st.title("Loss shapes")
st.markdown(
    "A loss turns a prediction's error into a number to minimise. Its **shape** decides what "
    "the fit cares about: the derivative ψ is how hard each point pulls on the model, and "
    "ψ(r)/r is the weight a point gets in robust regression. Move the sliders: each section "
    "redraws on its own."
)

regression_section()
binary_section()
cross_entropy_section()
outlier_section()
