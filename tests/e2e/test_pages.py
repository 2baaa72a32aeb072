"""Every page in a real browser: it loads with no exception box and no console error, its
charts are drawn with data, and one real interaction (a slider moved with the keyboard, a
form submitted, a plot type switched) changes a chart's data.

The Train -> Landscape -> Compare tests share one browser page (one Streamlit session), as a
user does: the small run trained on the Train page is the one sliced and compared. Settings
are small (100 samples, 10 epochs, 21x21 and 11x11 grids) so the suite stays short.

Each page's screenshot goes to the shots folder (printed at the end of the run) and, with
LANDSCAPE_SCREENSHOTS_TO_DOCS=1, to docs/screenshots/<page>.png (the README shows them).
"""

from __future__ import annotations

import os
import shutil

import pytest

from .conftest import ROOT
from .helpers import (
    MAIN,
    assert_clean,
    go_via_sidebar,
    open_page,
    press_slider,
    screenshot,
    set_slider,
    settle,
    signature,
    slider,
    traces,
    wait_changed,
)

pytestmark = pytest.mark.e2e

HEAVY_S = 180  # a training or a landscape on a busy 2-core machine
DOCS = ROOT / "docs" / "screenshots"

# name, path, h1 text, charts drawn on first load
PAGES = [
    ("home", "/", "Loss Landscape Lab", 0),
    ("loss_shapes", "/loss-shapes", "Loss shapes", 6),
    ("train", "/train", "Train", 1),
    ("landscape", "/landscape", "landscape", 0),
    ("compare", "/compare", "Compare", 0),
    ("gallery", "/gallery", "Gallery", 2),
    ("geometry", "/geometry", "Geometry", 0),
]


def shoot(page, shots_dir, name: str, docs_name: str | None = None) -> None:
    """Screenshot to the shots folder; with docs_name, also to docs/screenshots/."""
    path = shots_dir / f"{name}.png"
    screenshot(page, path)
    if docs_name and os.environ.get("LANDSCAPE_SCREENSHOTS_TO_DOCS", "0") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS / f"{docs_name}.png")


def wait_charts(page, n: int, sel: str = MAIN, timeout: float = 60) -> None:
    """Plotly draws after the script run ends: wait for n charts holding data."""
    page.wait_for_function(
        """([sel, n]) => [...document.querySelectorAll(sel + ' .js-plotly-plot')]
                         .filter(e => Array.isArray(e.data) && e.data.length).length >= n""",
        arg=[sel, n],
        timeout=timeout * 1000,
    )


def assert_drawn(charts: list[list[dict]]) -> None:
    """Every chart has at least one trace with points."""
    for traces_ in charts:
        assert any(t["n"] > 0 for t in traces_), traces_


def trace(charts, **match) -> dict:
    """The first trace (over all charts) whose fields equal `match`."""
    for t in (t for chart in charts for t in chart):
        if all(t.get(k) == v for k, v in match.items()):
            return t
    raise AssertionError(f"no trace with {match} in {charts}")


# ----------------------------------------------------------------------------- every page


@pytest.mark.parametrize("name,path,title,n_charts", PAGES, ids=[p[0] for p in PAGES])
def test_page_loads_clean(page, app_url, shots_dir, name, path, title, n_charts):
    open_page(page, app_url + path, title)
    if n_charts:
        wait_charts(page, n_charts)
    charts = traces(page)
    assert len(charts) >= n_charts
    assert_drawn(charts)
    assert_clean(page)
    shoot(page, shots_dir, f"{name}-first-load", docs_name="home" if name == "home" else None)
    if name == "home":  # the home page has no chart: the screenshot is the check
        assert page.locator("[data-testid='stSidebarNav'] a").count() == 7


# ----------------------------------------------------------------------------- Loss shapes


def test_loss_shapes_slider_redraws_its_chart(page, app_url, shots_dir):
    open_page(page, app_url + "/loss-shapes", "Loss shapes")
    wait_charts(page, 6)
    ce = ".st-key-ce_chart"
    before = signature(page, ce)
    press_slider(page, "Classes C", "ArrowRight")
    wait_changed(page, ce, before)
    assert slider(page, "Classes C").get_attribute("value") == "11"
    before = signature(page, ce)
    press_slider(page, "Classes C", "End")
    wait_changed(page, ce, before)
    assert slider(page, "Classes C").get_attribute("value") == "100"
    # the page's own arithmetic, redrawn: the smoothed minimum is at 1 - eps + eps / C
    page.get_by_text("0.901", exact=True).first.wait_for(timeout=10_000)
    charts = traces(page, ce)
    assert trace(charts, name="ε = 0.1")["n"] > 100 and trace(charts, name="ε = 0")["n"] > 100
    assert_clean(page)
    shoot(page, shots_dir, "loss_shapes", docs_name="loss_shapes")


# ----------------------------------------------------------------------------- Train -> Landscape -> Compare


def test_train_form_trains_a_small_run(session_page, app_url, shots_dir):
    page = session_page
    open_page(page, app_url + "/train", "Train")
    wait_charts(page, 1)  # the data preview
    before = signature(page, ".st-key-tr_preview")
    press_slider(page, "Samples", "Home")  # 100 points: the preview redraws
    wait_changed(page, ".st-key-tr_preview", before)
    assert "80 training points" in page.locator(".st-key-tr_preview").inner_text()
    set_slider(page, "Epochs", 10)  # reruns the set-up panel only; nothing trains
    before = signature(page, ".st-key-tr_loss_chart")
    page.locator(".st-key-tr_train button").click()
    wait_changed(page, ".st-key-tr_loss_chart", before, HEAVY_S)
    loss = traces(page, ".st-key-tr_loss_chart")
    assert trace(loss, name="train")["n"] == 11  # epochs 0..10
    assert trace(loss, name="test")["n"] == 11
    assert trace(loss, name="train (each step)")["n"] == 10 * 2  # 80 train points / batch 64
    regions = traces(page, ".st-key-tr_picture")  # the decision regions over the data
    assert trace(regions, type="image")["n"] > 0 and trace(regions, name="test class 1")["n"] > 0
    page.get_by_text("This session's runs (1)").wait_for(timeout=10_000)
    assert_clean(page)
    shoot(page, shots_dir, "train", docs_name="train")


def test_landscape_plane_of_the_trained_run(session_page, shots_dir):
    page = session_page
    go_via_sidebar(page, "landscape", "landscape")
    assert page.get_by_text("No trained network in this session").count() == 0
    set_slider(page, "Points along x", 21)
    set_slider(page, "Points along y", 21)
    chart = ".st-key-lp_chart"
    before = signature(page, chart)
    page.get_by_role("button", name="Compute landscape").click()
    wait_changed(page, chart, before, HEAVY_S)
    assert trace(traces(page, chart), type="contour")["n"] == 21 * 21
    shoot(page, shots_dir, "landscape", docs_name="landscape")
    # switch the plot type: the same surface redrawn as a heatmap, nothing recomputed
    before = signature(page, chart)
    page.get_by_role("radiogroup", name="Plot").get_by_text("heatmap", exact=True).click()
    wait_changed(page, chart, before)
    charts = traces(page, chart)
    assert trace(charts, type="heatmap")["n"] == 21 * 21
    assert all(t["type"] != "contour" for c in charts for t in c)
    assert_clean(page)


def test_compare_two_runs_side_by_side(session_page, shots_dir):
    page = session_page
    go_via_sidebar(page, "compare", "Compare")
    page.get_by_text("Measurement settings").click()
    press_slider(page, "2D resolution", "Home")  # 11 x 11
    press_slider(page, "Random directions (1D + basin width)", "Home")  # 1
    for label in ("2D resolution", "Random directions (1D + basin width)"):
        thumb = slider(page, label)
        assert thumb.get_attribute("value") == thumb.get_attribute("min")
    page.wait_for_timeout(500)  # the slider commits its value to the form after a debounce
    page.get_by_role("button", name="Apply").click()
    settle(page)
    page.get_by_role("tab", name="Your runs").click()
    before = signature(page)
    page.get_by_role("button", name="Compare these runs").click()
    wait_changed(page, MAIN, before, HEAVY_S)
    wait_charts(page, 4)
    planes = traces(page, "[class*='st-key-cmp_plane_']")
    assert len(planes) == 2 and all(trace([c], type="contour")["n"] == 11 * 11 for c in planes)
    # one real interaction: the log colour scale redraws both planes
    before = signature(page, "[class*='st-key-cmp_plane_']")
    page.get_by_text("Log colour scale (2D)").click()
    wait_changed(page, "[class*='st-key-cmp_plane_']", before)
    assert_clean(page)
    shoot(page, shots_dir, "compare", docs_name="compare")
