"""The Loss shapes page through Streamlit's AppTest: every widget reruns cleanly and changes
the chart it drives (asserted on the Plotly spec), and only that chart."""

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from markdown_text import shown
from streamlit.testing.v1 import AppTest

from landscape.core import losses, robust

PAGE = str(Path(__file__).resolve().parents[1] / "landscape/ui/server/app_pages" / "loss_shapes.py")
REG = ["Loss ρ(r)", "Influence ψ(r) = dρ/dr", "Weight ψ(r)/r of a point in robust regression"]
BIN = ["Binary losses vs margin"]
CE = ["Cross-entropy vs predicted probability of the true class"]
OUT = ["Line fits under four losses"]


def _app(all_regression: bool = False) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    if all_regression:
        at.multiselect(key="reg_losses").set_value(losses.names("regression"))
        at.multiselect(key="bin_losses").set_value(losses.names("binary"))
        at.run()
        assert not at.exception, at.exception
    return at


def _charts(at: AppTest) -> dict[str, dict]:
    """Chart title -> Plotly figure dict."""
    figs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    return {f["layout"]["title"]["text"]: f for f in figs}


def _arr(v) -> np.ndarray:
    """A Plotly data array: a plain list, or numpy's base64 'bdata' encoding."""
    if isinstance(v, dict):
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]))
    return np.asarray(v, dtype=float)


def _data(fig: dict) -> list[tuple[str, np.ndarray, np.ndarray]]:
    return [(t.get("name"), _arr(t["x"]), _arr(t["y"])) for t in fig["data"]]


def _same(a: dict, b: dict) -> bool:
    da, db = _data(a), _data(b)
    return len(da) == len(db) and all(
        na == nb and x1.shape == x2.shape and np.array_equal(x1, x2) and np.array_equal(y1, y2)
        for (na, x1, y1), (nb, x2, y2) in zip(da, db)
    )


def test_default_run_draws_every_chart_without_error():
    at = _app()
    assert not at.error and not at.warning
    charts = _charts(at)
    assert set(charts) == set(REG + BIN + CE + OUT)
    names = [n for n, _, _ in _data(charts["Loss ρ(r)"])]
    assert names == ["MSE (L2)", "MAE (L1)", "Huber (δ=1)", "Barron (general robust) (α=1, c=1)"]
    # the loss chart's MSE curve is r^2 over the default range [-4, 4]
    _, r, rho = _data(charts["Loss ρ(r)"])[0]
    assert r[0] == -4 and r[-1] == 4
    np.testing.assert_allclose(rho, r**2, rtol=1e-12)
    # one st.latex per selected loss, plus the cross-entropy formula
    assert len(at.latex) == 4 + 1


SLIDERS = [
    ("reg_range", (-10.0, 2.0), REG),
    ("reg_huber_delta", 2.5, REG),
    ("reg_smooth_l1_beta", 0.3, REG),
    ("reg_pseudo_huber_delta", 3.0, REG),
    ("reg_quantile_tau", 0.8, REG),
    ("reg_barron_alpha", -3.0, REG),
    ("reg_barron_c", 0.4, REG),
    ("bin_range", (-6.0, 1.0), BIN),
    ("bin_focal_gamma", 0.5, BIN),
    ("bin_focal_alpha", 0.7, BIN),
    ("ce_classes", 3, CE),
    ("ce_smoothing", 0.3, CE),
    ("out_n", 12, OUT),
    ("out_offset", 25.0, OUT),
    ("out_delta", 3.0, OUT),
    ("out_c", 0.3, OUT),
    ("out_seed", 7, OUT),
]


@pytest.mark.parametrize("key, value, titles", SLIDERS, ids=[s[0] for s in SLIDERS])
def test_each_slider_reruns_and_changes_only_its_own_charts(key, value, titles):
    at = _app(all_regression=True)
    before = _charts(at)
    at.slider(key=key).set_value(value)
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    after = _charts(at)
    assert set(after) == set(before)
    for title in after:
        if title in titles:
            assert not _same(before[title], after[title]), f"{key} did not change {title!r}"
        else:
            assert _same(before[title], after[title]), f"{key} changed {title!r} too"


def test_barron_minus_infinity_checkbox_draws_welsch():
    at = _app()
    at.checkbox(key="reg_barron_alpha_neginf").check()
    at.run()
    assert not at.exception
    assert at.slider(key="reg_barron_alpha").disabled
    name, r, rho = _data(_charts(at)["Loss ρ(r)"])[3]
    assert name == "Barron (general robust) (α=−∞, c=1)"
    np.testing.assert_allclose(rho, 1 - np.exp(-0.5 * r**2), rtol=1e-12)


def test_param_sliders_appear_only_for_selected_losses_that_use_them():
    at = _app()
    keys = {s.key for s in at.slider}
    assert {"reg_huber_delta", "reg_barron_alpha", "reg_barron_c"} <= keys
    assert "reg_quantile_tau" not in keys and "reg_pseudo_huber_delta" not in keys
    at.multiselect(key="reg_losses").set_value(["mse", "quantile"])
    at.run()
    keys = {s.key for s in at.slider}
    assert "reg_quantile_tau" in keys
    assert not keys & {"reg_huber_delta", "reg_barron_alpha", "reg_barron_c"}
    assert [n for n, _, _ in _data(_charts(at)["Loss ρ(r)"])] == [
        "MSE (L2)",
        "Quantile (pinball) (τ=0.5)",
    ]


@pytest.mark.parametrize(
    "key, value", [("reg_losses", ["log_cosh", "msle"]), ("bin_losses", ["hinge", "bce"])]
)
def test_changing_a_selection_changes_the_traces(key, value):
    at = _app()
    before = _charts(at)
    at.multiselect(key=key).set_value(value)
    at.run()
    assert not at.exception
    after = _charts(at)
    title = REG[0] if key == "reg_losses" else BIN[0]
    want = [losses.get(n).display for n in value]
    assert [n for n, _, _ in _data(after[title])] == want
    assert not _same(before[title], after[title])


def test_empty_selection_and_zero_width_range_give_messages_not_errors():
    at = _app()
    at.slider(key="reg_range").set_value((1.0, 1.0))
    at.run()
    assert not at.exception
    assert any("zero width" in w.value for w in at.warning)
    _, r, _ = _data(_charts(at)["Loss ρ(r)"])[0]
    assert (r[0], r[-1]) == (0.0, 2.0)  # widened by 1 on each side
    at.multiselect(key="reg_losses").set_value([])
    at.run()
    assert not at.exception
    assert any("Pick at least one loss" in i.value for i in at.info)
    assert not set(REG) & set(_charts(at))
    assert set(BIN + CE + OUT) <= set(_charts(at))  # the other sections are unaffected


def _fitted_slopes(fig: dict) -> dict[str, float]:
    """Slope of each fitted line trace (two points each), keyed by its legend label prefix."""
    out = {}
    for name, x, y in _data(fig):
        if name and ": slope" in name:
            out[name.split(":")[0]] = (y[1] - y[0]) / (x[1] - x[0])
    return out


def test_outlier_sliders_refit_the_four_lines():
    at = _app()
    at.slider(key="out_n").set_value(5)
    at.slider(key="out_offset").set_value(20.0)
    at.run()
    slopes = _fitted_slopes(_charts(at)[OUT[0]])
    assert set(slopes) == {"MSE", "L1", "Huber δ=1", "Cauchy c=1"}
    x, y, _ = robust.make_outlier_line(n=40, n_outliers=5, outlier_offset=20.0, seed=0)
    assert slopes["MSE"] == pytest.approx(np.polyfit(x, y, 1)[0], rel=1e-9)
    assert slopes["Huber δ=1"] == pytest.approx(
        robust.fit_line(x, y, "huber", delta=1.0)[0], rel=1e-9
    )
    assert abs(slopes["MSE"] - 2.0) > 2.0  # dragged far off by the outliers
    assert abs(slopes["Huber δ=1"] - 2.0) < 0.35 and abs(slopes["Cauchy c=1"] - 2.0) < 0.15
    # no outliers: all four fits agree with the true line
    at.slider(key="out_n").set_value(0)
    at.run()
    slopes = _fitted_slopes(_charts(at)[OUT[0]])
    assert all(abs(s - 2.0) < 0.2 for s in slopes.values()), slopes
    # the note beside the chart quotes the same slopes
    assert any(f"MSE: **{slopes['MSE']:.2f}**" in m.value for m in at.markdown)


def test_a_library_error_is_shown_in_its_section_and_the_rest_still_renders(monkeypatch):
    import streamlit as st

    def broken(*args, **kwargs):
        raise ValueError("focal: gamma=-1 is out of range: must be in [0, inf)")

    monkeypatch.setattr(losses, "margin_curve", broken)
    # the page's caches (numbers and charts) must not answer for the broken function
    st.cache_data.clear()
    st.cache_resource.clear()
    try:
        at = _app()
        assert not at.exception
        assert [shown(e.value) for e in at.error] == [
            "focal: gamma=-1 is out of range: must be in [0, inf)"
        ]
        assert set(_charts(at)) == set(REG + CE + OUT)  # only the binary chart is missing
    finally:
        st.cache_data.clear()
        st.cache_resource.clear()
